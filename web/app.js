// The page: one pane per transport this server mounts, side by side, an
// Automatic pane that picks one by itself, and a strip of charts on top
// that compares their costs.
//
// Each pane owns one transport object (web/transports/*.js, all with the
// same interface, described in common.js): it renders what the transport
// delivers, sends through it, and shows what it costs. This module knows
// nothing about the wire and names no transport: the list comes from
// web/transports/index.js, and each transport class brings its own title,
// summary and controls (`static options`). The transport modules know
// nothing about the page. The strip of charts is compare.js; the lines a
// pane shows beside its counters (Automatic's route, the instance that
// answered, a transport that cannot connect) are pane-lines.js.
//
// User text only ever reaches the page through textContent, never as HTML.

import { Comparison, formatBytes, formatMs, percentile } from './compare.js';
import { InstanceLine, RouteView, WAITING_AFTER_MS, showProblem, showWaiting } from './pane-lines.js';
import { setUpPresence } from './presence.js';
import { INSTANCE_HEADER } from './transports/common.js';
import { TRANSPORTS } from './transports/index.js';

/** Message elements kept per pane; older ones are removed (the cursor stays). */
const MAX_RENDERED = 500;
/** Latency percentiles are taken over this many of the latest live messages. */
const LATENCY_SAMPLES = 200;
/** How often the costs are refreshed. */
const STATS_EVERY_MS = 1000;
/** Messages sent by a burst button. */
const BURST_SIZE = 100;
/** Screen readers hear a summary of new messages at most this often. */
const ANNOUNCE_EVERY_MS = 10_000;
/** Auto-send skips a tick while this many of its sends are unanswered. */
const MAX_AUTO_IN_FLIGHT = 20;
/** The longest text, if the server does not say (GET /api/config). */
const DEFAULT_MAX_TEXT = 2000;
/** A list within this many pixels of its bottom keeps following new messages. */
const PINNED_SLACK_PX = 32;
/** Where the user name is remembered. */
const USER_KEY = 'chat-transports.user';
/** Messages stored before this are history: they do not count for latency. */
const PAGE_LOADED_AT = Date.now();

const userInput = document.getElementById('user');
const announcer = document.getElementById('announcer');

/** One column: a transport and the elements that show it. */
class Pane {
  /** `Kind` is a transport class from web/transports/index.js; `config`
   *  what loadConfig() found: `mounted` the names of the transports the
   *  server mounts, `epoch` its store's, `maxText`, and `shared`. */
  constructor(Kind, { maxText, mounted, epoch, shared }) {
    const { name, title, summary, options } = Kind;
    this.name = name;
    this.title = title;
    this.transport = new Kind({}, { mounted, epoch });
    this.latencies = []; // ms, the latest LATENCY_SAMPLES live messages
    this.pinned = true; // the list follows new messages
    this.scrollQueued = false;
    this.everConnected = false;
    this.bursting = false;
    this.unannounced = 0;
    this.lastMessage = null;
    this.bytesPerMsg = null; // the last one the server told

    const root = document.getElementById('pane-template').content.firstElementChild.cloneNode(true);
    this.root = root;
    root.dataset.transport = name;
    root.setAttribute('aria-labelledby', `title-${name}`);
    const heading = root.querySelector('.pane-title');
    heading.id = `title-${name}`;
    heading.textContent = title;
    root.querySelector('.pane-summary').textContent = summary;

    this.list = root.querySelector('ol.messages');
    this.list.setAttribute('aria-label', `Messages received by ${title}`);
    this.list.tabIndex = 0; // so that keyboard users can scroll it
    this.stats = {};
    for (const element of root.querySelectorAll('[data-stat]')) {
      this.stats[element.dataset.stat] = element;
    }
    this.form = root.querySelector('form.send');
    this.textarea = this.form.elements.text;
    this.textarea.id = `text-${name}`;
    // maxlength counts UTF-16 units, the server characters: never looser.
    this.textarea.maxLength = maxText;
    const label = this.form.querySelector('label');
    label.htmlFor = this.textarea.id;
    label.textContent = `Message to send by ${title}`;
    this.status = root.querySelector('.send-status');
    this.toggle = root.querySelector('[data-action="toggle-connection"]');
    this.burstButton = root.querySelector('[data-action="burst"]');
    const controls = root.querySelector('.pane-controls');
    for (const option of options) controls.append(this.optionControl(option));
    if (Kind.adaptive) new RouteView(root, this.transport);
    new InstanceLine(root, this.transport, shared);
    this.problem = root.querySelector('[data-problem]');

    this.wire();
  }

  /** A select for one of the transport's `static options`, after the buttons. */
  optionControl(option) {
    const field = document.getElementById('option-template').content.firstElementChild.cloneNode(true);
    const id = option.id ?? `${this.name}-${option.key}`;
    const label = field.querySelector('label');
    label.htmlFor = id;
    label.textContent = option.label;
    const select = field.querySelector('select');
    select.id = id;
    select.name = id;
    for (const choice of option.choices) {
      const item = document.createElement('option');
      item.value = String(choice.value);
      item.textContent = choice.label;
      item.defaultSelected = choice.value === option.default;
      select.append(item);
    }
    select.value = String(this.transport.settings[option.key]);
    select.addEventListener('change', () => {
      const choice = option.choices.find((c) => String(c.value) === select.value);
      if (choice) this.transport.setOption(option.key, choice.value);
    });
    return field;
  }

  wire() {
    this.transport.onMessage((event) => {
      if (event.message) this.renderMessage(event.message);
      else if (event.gap !== undefined) {
        this.renderNotice('gap', `${event.gap} older messages are no longer kept by the server; skipped.`);
      } else if (event.reset) {
        // The ids start again at 1: what the list shows belongs to a
        // history that is gone.
        this.list.replaceChildren();
        const epoch = event.epoch ? ` (new epoch ${event.epoch})` : '';
        this.renderNotice('notice', `The server's history started again${epoch}; showing it from the start.`)
          .dataset.notice = 'reset';
      }
    });
    this.transport.onState((state) => this.renderState(state));

    this.list.addEventListener('scroll', () => {
      const { scrollHeight, scrollTop, clientHeight } = this.list;
      this.pinned = scrollHeight - scrollTop - clientHeight < PINNED_SLACK_PX;
    });
    // A list that changes size (window resized, columns rearranged) stays
    // at the bottom if it was there.
    new ResizeObserver(() => {
      if (this.pinned) this.list.scrollTop = this.list.scrollHeight;
    }).observe(this.list);
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.sendTyped();
    });
    this.textarea.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.form.requestSubmit();
      }
    });
    this.toggle.addEventListener('click', () => {
      const disconnect = this.transport.running;
      if (disconnect) this.transport.close();
      else this.transport.connect();
      this.toggle.setAttribute('aria-pressed', String(disconnect));
    });
    this.burstButton.addEventListener('click', () => this.burst());
  }

  renderMessage(message) {
    const item = document.createElement('li');
    item.dataset.id = String(message.id);
    item.dataset.via = message.via;

    const via = document.createElement('span');
    via.className = 'via';
    via.textContent = message.via;
    const user = document.createElement('span');
    user.className = 'user';
    user.textContent = message.user;
    const sent = new Date(message.sent_at_ms);
    const time = document.createElement('time');
    time.dateTime = sent.toISOString();
    time.textContent = sent.toLocaleTimeString();
    const text = document.createElement('span');
    text.className = 'text';
    text.textContent = message.text;

    item.append(via, ' ', user, ' ', time, ' ', text);
    this.append(item);

    // History (stored before the page loaded) is neither latency nor news.
    if (message.sent_at_ms >= PAGE_LOADED_AT) {
      this.latencies.push(Math.max(0, Date.now() - message.sent_at_ms));
      if (this.latencies.length > LATENCY_SAMPLES) this.latencies.shift();
      this.unannounced += 1;
      this.lastMessage = message;
    }
  }

  renderNotice(className, words) {
    const item = document.createElement('li');
    item.className = className;
    item.textContent = words;
    this.append(item);
    return item;
  }

  /** Appends, trims the list to MAX_RENDERED, and follows the bottom if pinned. */
  append(item) {
    this.list.append(item);
    while (this.list.childElementCount > MAX_RENDERED) this.list.firstElementChild.remove();
    if (this.pinned && !this.scrollQueued) {
      // One scroll per frame, however many messages arrived in it.
      this.scrollQueued = true;
      requestAnimationFrame(() => {
        this.scrollQueued = false;
        this.list.scrollTop = this.list.scrollHeight;
      });
    }
  }

  renderState(state) {
    this.stats.state.textContent = state;
    this.stats.state.dataset.state = state;
    clearTimeout(this.waitTimer);
    showWaiting(this.root, this.stats.state, false);
    if (state === 'connecting') {
      this.waitTimer = setTimeout(() => showWaiting(this.root, this.stats.state, true), WAITING_AFTER_MS);
    }
    if (state === 'connected' && !this.everConnected) {
      this.everConnected = true;
      markReadyIfAllConnected();
    }
  }

  /**
   * What this pane costs, from the client's counters and `server`, the
   * part of /api/stats for its transport (null if it did not answer; then
   * the bytes keep their last value): the numbers of the pane and of the
   * charts, null where there is nothing to show yet.
   */
  measure(server) {
    const client = this.transport.stats();
    const sorted = [...this.latencies].sort((a, b) => a - b);
    if (server) {
      this.bytesPerMsg = server.messages_delivered > 0
        ? server.bytes_out / server.messages_delivered
        : null;
    }
    return {
      client,
      bytesPerMsg: this.bytesPerMsg ?? null,
      requestsPerMsg: client.received > 0 ? client.requests / client.received : null,
      p50: percentile(sorted, 0.5),
      p99: percentile(sorted, 0.99),
    };
  }

  /** Shows `costs`, what measure() found. */
  renderStats(costs) {
    const { client } = costs;
    this.stats.received.textContent = String(client.received);
    this.stats.requests.textContent = String(client.requests);
    this.stats.empty.textContent = String(client.emptyResponses);
    this.stats.bytes_per_msg.textContent = formatBytes(costs.bytesPerMsg);
    this.stats.p50.textContent = formatMs(costs.p50);
    this.stats.p99.textContent = formatMs(costs.p99);
    showProblem(this.problem, client);
  }

  async sendTyped() {
    const text = this.textarea.value.trim();
    if (!text) return;
    const user = currentUser();
    if (!user) {
      this.say('Type your name first (top of the page).');
      userInput.focus();
      return;
    }
    // Cleared at once so the next message can be typed; put back on failure.
    this.textarea.value = '';
    try {
      await this.transport.send(user, text);
      this.say('');
    } catch (error) {
      if (!this.textarea.value) this.textarea.value = text;
      this.say(`Not sent: ${error.message}`);
    }
  }

  /** Sends BURST_SIZE messages through this pane, one after another. */
  async burst() {
    if (this.bursting) return;
    const user = currentUser();
    if (!user) {
      this.say('Type your name first (top of the page).');
      userInput.focus();
      return;
    }
    this.bursting = true;
    this.burstButton.setAttribute('aria-disabled', 'true');
    this.say(`Sending ${BURST_SIZE} messages…`);
    const started = performance.now();
    let sent = 0;
    try {
      for (; sent < BURST_SIZE; sent += 1) {
        await this.transport.send(user, `burst ${sent + 1}/${BURST_SIZE}`);
      }
      const seconds = ((performance.now() - started) / 1000).toFixed(2);
      this.say(`Sent ${BURST_SIZE} messages in ${seconds} s.`);
    } catch (error) {
      this.say(`Burst stopped after ${sent} messages: ${error.message}`);
    } finally {
      this.bursting = false;
      this.burstButton.removeAttribute('aria-disabled');
    }
  }

  /** Shows a line under the send box (a polite live region: say little). */
  say(words) {
    if (this.status.textContent !== words) this.status.textContent = words;
  }
}

function readStorage(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null; // storage disabled
  }
}

function writeStorage(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // Storage disabled: the name just isn't remembered.
  }
}

function currentUser() {
  return userInput.value.trim();
}

let panes = [];
let comparison = null;

function markReadyIfAllConnected() {
  if (panes.length > 0 && panes.every((pane) => pane.everConnected)) {
    document.body.dataset.ready = 'true';
  }
}

/** What this server mounts, its store's epoch (every transport starts in
 *  it), and whether it shares its log with other instances (then every
 *  answer names its instance in a header); without GET /api/config, assume
 *  every transport and no epoch. */
async function loadConfig() {
  try {
    const response = await fetch('/api/config', { cache: 'no-store' });
    if (response.ok) {
      const config = await response.json();
      return {
        transports: shown(config.transports),
        mounted: config.transports,
        maxText: config.max_text ?? DEFAULT_MAX_TEXT,
        epoch: config.epoch ?? null,
        shared: response.headers.has(INSTANCE_HEADER),
      };
    }
  } catch {
    // Fall through.
  }
  const every = TRANSPORTS.filter((Kind) => !Kind.adaptive).map((Kind) => Kind.name);
  return { transports: shown(every), mounted: every, maxText: DEFAULT_MAX_TEXT, epoch: null, shared: false };
}

/** The panes for the `mounted` transports: theirs, and an adaptive one
 *  (Automatic) when there are at least two to choose from. */
function shown(mounted) {
  const known = TRANSPORTS.filter((Kind) => !Kind.adaptive && mounted.includes(Kind.name));
  return TRANSPORTS.filter((Kind) => (Kind.adaptive ? known.length > 1 : known.includes(Kind)));
}

function setUpUser() {
  let name = readStorage(USER_KEY);
  if (!name) {
    name = `guest-${1000 + Math.floor(Math.random() * 9000)}`;
    writeStorage(USER_KEY, name);
  }
  userInput.value = name;
  userInput.addEventListener('input', () => {
    if (currentUser()) writeStorage(USER_KEY, currentUser());
  });
}

/** Auto-send: every tick, one message through the next connected pane. */
function setUpAutoSend() {
  const select = document.getElementById('rate');
  let timer = null;
  let turn = 0;
  let count = 0;
  let inFlight = 0;
  const tick = async () => {
    const live = panes.filter((pane) => pane.transport.running);
    const user = currentUser();
    if (live.length === 0 || !user || inFlight >= MAX_AUTO_IN_FLIGHT) return;
    const pane = live[turn % live.length];
    turn += 1;
    count += 1;
    inFlight += 1;
    try {
      await pane.transport.send(user, `auto ${count}`);
    } catch (error) {
      pane.say(`Auto-send failed: ${error.message}`);
    } finally {
      inFlight -= 1;
    }
  };
  select.addEventListener('change', () => {
    clearInterval(timer);
    const rate = Number(select.value);
    timer = rate > 0 ? setInterval(tick, 1000 / rate) : null;
  });
}

/** Costs once a second: client counters, and bytes from GET /api/stats. */
async function refreshStats() {
  let server = null;
  try {
    const response = await fetch('/api/stats', { cache: 'no-store' });
    if (response.ok) server = await response.json();
  } catch {
    // The server is away; the client-side numbers still move.
  }
  const costs = panes.map((pane) => pane.measure(server?.transports?.[pane.transport.statsName]));
  panes.forEach((pane, i) => pane.renderStats(costs[i]));
  comparison?.render(costs);
  announceNews();
  setTimeout(refreshStats, STATS_EVERY_MS);
}

let lastAnnounced = 0;

/** Every pane shows the same chat, so the first one speaks for all. */
function announceNews() {
  const pane = panes[0];
  const now = Date.now();
  if (!pane || pane.unannounced === 0 || now - lastAnnounced < ANNOUNCE_EVERY_MS) return;
  const { user, text } = pane.lastMessage;
  const count = pane.unannounced === 1 ? '1 new message' : `${pane.unannounced} new messages`;
  announcer.textContent = `${count}. Latest from ${user}: ${text.slice(0, 140)}`;
  pane.unannounced = 0;
  lastAnnounced = now;
}

async function main() {
  setUpUser();
  const config = await loadConfig();
  const container = document.getElementById('panes');
  container.dataset.count = String(config.transports.length);
  if (config.transports.length === 1) {
    const { title } = config.transports[0];
    document.querySelector('.intro p').textContent = `This server runs one transport, ${title}: `
      + 'the chat below arrives through it, and your messages leave through it. The demo server '
      + '(chat-demo) runs all five side by side. The numbers show what the transport costs, live.';
  }
  panes = config.transports.map((Kind) => new Pane(Kind, config));
  for (const pane of panes) container.append(pane.root);
  const strip = document.getElementById('compare');
  if (panes.length > 1) comparison = new Comparison(strip, panes);
  else strip.hidden = true;
  setUpPresence(panes);
  for (const pane of panes) pane.transport.connect();
  setUpAutoSend();
  refreshStats();
}

main();

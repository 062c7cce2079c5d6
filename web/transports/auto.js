// Automatic: one pane that picks its transport by itself, the way Socket.IO
// and SignalR clients do, from the five others.
//
// The ladder, best first: WebSocket, SSE, HTTP streaming, long polling,
// regular polling (only those the server mounts). The pane tries each in
// turn and stays on the first that works. Networks break the better ones in
// three ways, and each is a reason to go down one rung:
//
//   refused  the transport never got an answer: the connection failed, the
//            server or a proxy refused it, or a proxy stripped the WebSocket
//            upgrade (the browser hides which: all look like a failure)
//   dropped  it opened, then closed before anything arrived
//   silent   nothing arrived in time: a proxy that buffers or compresses a
//            response that never ends holds every byte of it back, while
//            the response's head (and so EventSource's `open` event, and
//            fetch's answer) got through
//   lost     it worked, then went on reconnecting for LOST_AFTER_MS
//
// "Nothing arrived", exactly. A candidate is proven by data, never by
// opening: a poll answer, a message (even one already shown), a gap notice,
// a stream's ping, any WebSocket frame (onHeard in common.js). To be sure
// the server has something to send at once, the candidate starts one
// message behind the pane: `since=<cursor - 1>`, so the server must resend
// the last message at once; the cursor rule drops the copy, but it proves
// the path. Without a cursor yet the candidate asks for the backfill (the
// last 50 messages). Before each try the pane reads GET /api/stats once
// (store.last_id), so it knows whether that promise holds:
//
// - the store has a message after the candidate's `since`: the candidate is
//   proven by its first data, and given up (`silent`) if none came within
//   TRIAL_MS of the try starting;
// - the chat is empty, so an honest server has nothing to send: the
//   candidate is taken when it opens, on probation. Until its first data,
//   the pane reads GET /api/stats every TRIAL_MS, and gives it up (`silent`)
//   when a message the server had at one reading has still not come at the
//   next. So the first message (this pane's own send included) proves it
//   within two readings, or moves the pane down.
//
// The last rung is never given up: polling retries on its own.
//
// Switching never loses or repeats a message: the pane keeps one cursor
// (the base class's) across transports, each candidate starts at or before
// it, and every candidate's messages go through the pane's deliver(), which
// drops ids already shown.
//
// Moving back up, like Engine.IO's upgrade from polling to WebSocket: on a
// lower rung, every UPGRADE_EVERY_MS the pane tries the better ones, best
// first, alongside the one it is on, and switches only once the better one
// has delivered; during the overlap both feed the same cursor.
//
// The working transport is remembered for the tab's session
// (sessionStorage): a reload starts there, and moves up later.
//
// Sends go through the transport the pane is on (`via` names it). A
// WebSocket send cut off by a switch goes out again through the new
// transport with the same client_msg_id, so it is stored once.

import { SendError, Transport, newClientMsgId } from './common.js';
import { recall, remember } from './remember.js';
import { LongPollTransport } from './longpoll.js';
import { PollingTransport } from './polling.js';
import { SseTransport } from './sse.js';
import { StreamTransport } from './stream.js';
import { WebSocketTransport } from './websocket.js';

/** The transports to try, best first. */
export const LADDER = [
  WebSocketTransport,
  SseTransport,
  StreamTransport,
  LongPollTransport,
  PollingTransport,
];
/** A candidate that delivers nothing this long after its try began is given
 *  up; also the probation's reading interval (see above). */
export const TRIAL_MS = 4000;
/** On a lower rung, how often the better transports are tried again. */
export const UPGRADE_EVERY_MS = 60_000;
/** A working transport still reconnecting after this long is given up. */
export const LOST_AFTER_MS = 10_000;
/** How many times a send is passed on to the next transport after a switch. */
const SEND_HANDOFFS = 2;

/** What each reason (the `data-reason` of the list) means, in words. */
export const REASONS = {
  refused: 'could not connect: refused, failed, or its upgrade was stripped',
  dropped: 'opened, then closed before anything arrived',
  silent: `nothing arrived within ${TRIAL_MS / 1000} s: a proxy buffering or compressing it?`,
  lost: `stopped working, and was not back within ${LOST_AFTER_MS / 1000} s`,
};

export class AutoTransport extends Transport {
  static name = 'auto';
  static title = 'Automatic';
  static summary = 'Picks one by itself: the first of WebSocket, SSE, streaming, long polling and polling that delivers.';
  static adaptive = true;

  /** `context.mounted`: the names of the transports the server mounts;
   *  `context.epoch`: the store's epoch (see common.js). */
  constructor(settings, context = {}) {
    super(settings, context);
    const { mounted } = context;
    /** The rungs this server offers, best first. */
    this.ladder = mounted ? LADDER.filter((Kind) => mounted.includes(Kind.name)) : LADDER;
    /** The transport the pane is on, once one is proven (or the last rung). */
    this.current = null;
    /** Its rung. */
    this.currentIndex = -1;
    /** The candidate being tried, if any. */
    this.trial = null;
    /** True while the better transports are being tried (see upgrade()). */
    this.upgrading = false;
    /** Why the pane is not on each transport above the current one:
     *  name → {reason, at}. */
    this.left = new Map();
    /** Where the pane started, if not at the top. */
    this.note = '';
    /** Requests and empty answers of candidates already closed. */
    this.retired = { requests: 0, emptyResponses: 0 };
    /** Timers: the next upgrade, the lost check, the probation reading. */
    this.timers = { upgrade: null, lost: null, probation: null };
    /** Sends waiting for a transport: {resolve, reject}. */
    this.waiting = [];
    this.routeListeners = [];
    /** The cursor at which a gap was last shown, so a switch shows it once. */
    this.gapShownAt = undefined;
  }

  get statsName() {
    return this.current?.name ?? this.trial?.name ?? this.name;
  }

  stats() {
    let { requests, emptyResponses } = this.retired;
    requests += this.counters.requests;
    for (const candidate of [this.current, this.trial]) {
      if (!candidate) continue;
      requests += candidate.counters.requests;
      emptyResponses += candidate.counters.emptyResponses;
    }
    const { received } = this.counters;
    return { requests, emptyResponses, received, state: this.state, failures: this.current?.failures ?? 0 };
  }

  /** The instance of the transport the pane is on is hidden if its is. */
  get receiveHidden() {
    return this.current?.receiveHidden ?? false;
  }

  onRoute(callback) {
    this.routeListeners.push(callback);
  }

  /** Which transport the pane is on, which it is trying, and why it left
   *  the others: {now, nowTitle, trying, tryingTitle, note,
   *  left: [{transport, title, reason, text, at}]}, best first. */
  route() {
    const left = [];
    for (const Kind of this.ladder) {
      const entry = this.left.get(Kind.name);
      if (entry) left.push({ transport: Kind.name, title: Kind.title, ...entry, text: REASONS[entry.reason] });
    }
    return {
      now: this.current?.name ?? null,
      nowTitle: this.current?.constructor.title ?? null,
      trying: this.trial?.name ?? null,
      tryingTitle: this.trial?.constructor.title ?? null,
      left,
      note: this.note,
    };
  }

  routeChanged() {
    const route = this.route();
    for (const callback of this.routeListeners) callback(route);
  }

  start(generation) {
    const remembered = this.ladder.findIndex((Kind) => Kind.name === recall());
    const from = Math.max(0, remembered);
    this.note = from > 0
      ? `Started on ${this.ladder[from].title}, which worked earlier in this tab; better ones are tried every ${UPGRADE_EVERY_MS / 1000} s.`
      : '';
    this.descend(generation, from);
  }

  stop() {
    this.upgrading = false;
    for (const key of Object.keys(this.timers)) {
      clearTimeout(this.timers[key]);
      this.timers[key] = null;
    }
    for (const candidate of [this.current, this.trial]) if (candidate) this.retire(candidate);
    this.current = null;
    this.currentIndex = -1;
    this.trial = null;
    const refusal = new SendError('disconnected', 'connect the pane to send');
    for (const { reject } of this.waiting.splice(0)) reject(refusal);
    this.routeChanged();
  }

  /** Tries the rungs from `from` down, and takes the first that works. */
  async descend(generation, from) {
    for (let index = from; index < this.ladder.length; index += 1) {
      if (generation !== this.generation) return;
      if (index === this.ladder.length - 1) {
        // The last rung: nothing below to go to, so no try. It retries on
        // its own until the server answers.
        const candidate = this.candidate(this.ladder[index], generation);
        candidate.connect();
        this.adopt(generation, candidate, index, false);
        return;
      }
      const outcome = await this.attempt(generation, index);
      if (!outcome) return; // closed meanwhile
      if (outcome.candidate) {
        this.adopt(generation, outcome.candidate, index, outcome.probation);
        return;
      }
      this.giveUp(this.ladder[index].name, outcome.reason);
    }
  }

  /**
   * One try of rung `index`, alongside the current transport if there is
   * one. Resolves {candidate, probation} once it is proven (or, in an
   * empty chat, open), {reason} once it is given up, or null when the pane
   * was closed meanwhile.
   */
  async attempt(generation, index) {
    const lastId = await this.probe();
    if (generation !== this.generation) return null;
    const candidate = this.candidate(this.ladder[index], generation);
    // One behind the pane, so that the server has something to send at once.
    candidate.lastId = this.lastId === null ? null : Math.max(0, this.lastId - 1);
    const since = candidate.lastId;
    const promised = lastId !== null && lastId > (since ?? 0);
    this.trial = candidate;
    this.routeChanged();

    const outcome = await new Promise((resolve) => {
      let opened = false;
      const timer = setTimeout(() => resolve({ reason: 'silent' }), TRIAL_MS);
      const settle = (value) => {
        clearTimeout(timer);
        resolve(value);
      };
      candidate.trialHooks = {
        heard: () => settle({ candidate, probation: false }),
        state: (state) => {
          if (state === 'connected') {
            opened = true;
            if (!promised) settle({ candidate, probation: true });
          } else if (state === 'reconnecting') {
            settle({ reason: opened ? 'dropped' : 'refused' });
          }
        },
        closed: () => settle(null),
      };
      candidate.connect();
    });
    candidate.trialHooks = null;
    if (!outcome?.candidate) {
      // A proven candidate stays the trial (its news keeps coming) until
      // adopt() makes it the current one.
      if (this.trial === candidate) this.trial = null;
      this.retire(candidate);
    }
    if (generation !== this.generation) return null;
    this.routeChanged();
    return outcome;
  }

  /** A transport of class `Kind` whose news comes to this pane. */
  candidate(Kind, generation) {
    const candidate = new Kind({}, { epoch: this.epoch });
    candidate.user = this.user;
    candidate.trialHooks = null;
    candidate.onInstance((instances) => {
      if (candidate !== this.current && candidate !== this.trial) return;
      this.instances = { ...instances };
      for (const callback of this.instanceListeners) callback(this.instances);
    });
    candidate.onHeard(() => {
      if (candidate.trialHooks) candidate.trialHooks.heard();
      else if (candidate === this.current && this.timers.probation !== null) this.endProbation();
    });
    candidate.onState((state) => {
      if (candidate.trialHooks) candidate.trialHooks.state(state);
      else if (candidate === this.current) this.currentState(generation, state);
    });
    candidate.onMessage((event) => this.news(candidate, event));
    return candidate;
  }

  /** What a live candidate carries, through the pane's own cursor. */
  news(candidate, event) {
    if (candidate !== this.current && candidate !== this.trial) return; // retired
    if (event.message) {
      this.deliver(event.message, event.raw);
    } else if (event.gap !== undefined) {
      if (this.gapShownAt === this.lastId) return; // the same gap, told by the next one
      this.gapShownAt = this.lastId;
      this.deliverGap(event.gap);
    } else if (event.presence) {
      if (candidate === this.current) this.emit(event);
    } else if (event.reset) {
      // The server started over: the pane takes the candidate's new epoch
      // and cursor (0, or none without an epoch), once (the other live
      // candidate, if any, reports the same reset later).
      if (event.epoch !== null ? event.epoch === this.epoch : this.lastId === null) return;
      this.lastId = candidate.lastId;
      this.epoch = event.epoch;
      this.emit({ reset: true, epoch: event.epoch });
    }
  }

  /**
   * GET /api/stats: the newest id the server has, or null if it did not
   * answer. Without an epoch, a cursor ahead of it means the server
   * restarted with an empty store: the pane drops its cursor and says so
   * (as resetIfAhead does). With one, the candidate's first answer is the
   * server's reset notice, which proves it like any data.
   */
  async probe() {
    this.counters.requests += 1;
    try {
      const response = await fetch('/api/stats', { cache: 'no-store' });
      if (!response.ok) return null;
      const { store } = await response.json();
      if (this.epoch === null && this.lastId !== null && this.lastId > store.last_id) {
        this.lastId = null;
        this.epoch = store.epoch ?? null;
        this.emit({ reset: true, epoch: this.epoch });
      }
      return store.last_id;
    } catch {
      return null;
    }
  }

  /** Rung `index` works: the pane is on it from now on. */
  adopt(generation, candidate, index, probation) {
    const previous = this.current;
    this.current = candidate;
    this.currentIndex = index;
    if (this.trial === candidate) this.trial = null;
    if (previous && previous !== candidate) this.retire(previous);
    // A transport that works again is no longer "left"; the ones above it are.
    for (const Kind of this.ladder.slice(index)) this.left.delete(Kind.name);
    remember(candidate.name);
    if (index === 0) this.note = '';
    clearTimeout(this.timers.lost);
    this.timers.lost = null;
    this.endProbation();
    if (probation) this.startProbation(generation);
    this.scheduleUpgrade(generation);
    this.currentState(generation, candidate.state);
    for (const { resolve } of this.waiting.splice(0)) resolve(candidate);
    this.routeChanged();
  }

  /** The current transport's state is the pane's; a long reconnect is `lost`. */
  currentState(generation, state) {
    if (state === 'connected') {
      clearTimeout(this.timers.lost);
      this.timers.lost = null;
      this.setState('connected');
      return;
    }
    if (state === 'disconnected') return; // retired: the next one says
    this.setState(this.state === 'connecting' ? 'connecting' : 'reconnecting');
    if (this.timers.lost === null && this.currentIndex < this.ladder.length - 1) {
      this.timers.lost = setTimeout(() => this.lost(generation), LOST_AFTER_MS);
    }
  }

  lost(generation) {
    this.timers.lost = null;
    if (generation !== this.generation || this.current?.state === 'connected') return;
    this.leaveCurrent(generation, 'lost');
  }

  /** Gives up the transport the pane is on, and goes down from its rung.
   *  While an upgrade try is under way, waits for it: if it works, the
   *  pane moves up instead. */
  leaveCurrent(generation, reason) {
    if (this.upgrading) {
      this.timers.lost = setTimeout(() => {
        this.timers.lost = null;
        if (generation === this.generation && this.current) this.leaveCurrent(generation, reason);
      }, TRIAL_MS);
      return;
    }
    const index = this.currentIndex;
    this.giveUp(this.ladder[index].name, reason);
    for (const key of Object.keys(this.timers)) {
      clearTimeout(this.timers[key]);
      this.timers[key] = null;
    }
    this.retire(this.current);
    this.current = null;
    this.currentIndex = -1;
    this.routeChanged();
    this.descend(generation, index + 1);
  }

  /** Probation (taken on open, in an empty chat): read the server's newest
   *  id every TRIAL_MS until the transport delivers (see the top comment). */
  startProbation(generation) {
    const candidate = this.current;
    let owed = null; // an id the server had at the last reading, not yet delivered
    const read = async () => {
      const lastId = await this.probe();
      if (generation !== this.generation || candidate !== this.current || this.timers.probation === null) return;
      const seen = candidate.lastId ?? 0;
      if (owed !== null && seen < owed) {
        this.endProbation();
        this.leaveCurrent(generation, 'silent');
        return;
      }
      owed = lastId !== null && lastId > seen ? lastId : null;
      this.timers.probation = setTimeout(read, TRIAL_MS);
    };
    this.timers.probation = setTimeout(read, TRIAL_MS);
  }

  endProbation() {
    clearTimeout(this.timers.probation);
    this.timers.probation = null;
  }

  /** On a lower rung, tries the better ones every UPGRADE_EVERY_MS. */
  scheduleUpgrade(generation) {
    clearTimeout(this.timers.upgrade);
    this.timers.upgrade = null;
    if (this.currentIndex <= 0) return;
    this.timers.upgrade = setTimeout(() => this.upgrade(generation), UPGRADE_EVERY_MS);
  }

  async upgrade(generation) {
    this.timers.upgrade = null;
    this.upgrading = true;
    try {
      for (let index = 0; index < this.currentIndex; index += 1) {
        const outcome = await this.attempt(generation, index);
        if (!outcome) return; // closed meanwhile
        if (outcome.candidate) {
          this.adopt(generation, outcome.candidate, index, outcome.probation);
          return;
        }
        this.giveUp(this.ladder[index].name, outcome.reason);
      }
      this.scheduleUpgrade(generation);
    } finally {
      if (generation === this.generation) this.upgrading = false;
    }
  }

  giveUp(name, reason) {
    this.left.set(name, { reason, at: Date.now() });
    this.routeChanged();
  }

  /** Closes a candidate for good, keeping what it cost in the counters. */
  retire(candidate) {
    candidate.trialHooks?.closed();
    candidate.trialHooks = null;
    candidate.close();
    this.retired.requests += candidate.counters.requests;
    this.retired.emptyResponses += candidate.counters.emptyResponses;
    candidate.counters.requests = 0;
    candidate.counters.emptyResponses = 0;
  }

  /** The transport to send through: the current one, once there is one. */
  ready() {
    if (!this.running) return Promise.reject(new SendError('disconnected', 'connect the pane to send'));
    if (this.current) return Promise.resolve(this.current);
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  /** Sends through the transport the pane is on. A send cut off by a switch
   *  (a WebSocket closed under it) goes out through the next one with the
   *  same client_msg_id, so the server stores it once. */
  async send(user, text, clientMsgId = newClientMsgId()) {
    for (let handoff = 0; ; handoff += 1) {
      const transport = await this.ready();
      try {
        return await transport.send(user, text, clientMsgId);
      } catch (error) {
        const switched = this.running && transport !== this.current;
        if (!switched || handoff >= SEND_HANDOFFS) throw error;
      }
    }
  }
}

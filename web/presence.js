// Who is online, shown in every pane as that pane's transport learns it.
//
// Every pane's transport subscribes with `user=<your name>` (common.js puts
// it in the address), so the server lists you, with each transport you are
// on, in GET /api/presence:
//
//   {"users":[{"user":"ana","transports":["sse","websocket"]},
//             {"user":"bob","transports":["polling"],"seen_ms_ago":{"polling":1200}}],
//    "connections":7}
//
// How a pane learns the list depends on its transport, which is the point:
//
// - SSE, WebSocket and HTTP streaming are told. The server pushes the whole
//   list when it changes (at most once a second per connection), and once
//   when the connection opens: `event: presence` on SSE, a
//   `{"type":"presence","users":[…]}` frame or line on the other two. The
//   transport hands it on as an event `{presence: {users, more}}`.
// - Polling and long polling are never told anything they did not ask for,
//   so their panes ask GET /api/presence every PRESENCE_POLL_MS.
//
// "Online" is not the same promise on every transport. A push subscriber
// is online while its connection is open, and leaves the list the moment
// it closes. A poller has nothing open between requests: the server counts
// it online for two poll intervals (10 s) after its last request, so the
// page says so ("seen 3 s ago", or "recently" when the news came by push).
// The server keeps presence per instance: with several instances on one
// shared log, each lists the people connected to it.

import { TRANSPORTS } from './transports/index.js';

/** How often a polling pane asks GET /api/presence. */
const PRESENCE_POLL_MS = 2000;
/** The transports whose "online" means "asked recently". */
const POLLED = new Set(['polling', 'longpoll']);
/** Titles by wire name, for the list. */
const TITLES = new Map(TRANSPORTS.map((Kind) => [Kind.name, Kind.title]));

/** Names every pane's subscriptions after the user name field (a new name
 *  takes effect at the next connection) and gives each pane its list. */
export function setUpPresence(panes) {
  const input = document.getElementById('user');
  const apply = () => {
    const user = input.value.trim() || null;
    for (const pane of panes) pane.transport.user = user;
  };
  apply();
  input.addEventListener('input', apply);
  return panes.map((pane) => new PresenceView(pane, () => input.value.trim()));
}

/** One pane's "Online" list. */
class PresenceView {
  constructor(pane, me) {
    this.pane = pane;
    this.me = me;
    const box = document.createElement('div');
    box.className = 'pane-online';
    const label = document.createElement('p');
    label.className = 'online-label';
    label.textContent = 'Online';
    this.source = document.createElement('span');
    this.source.className = 'online-source';
    label.append(' ', this.source);
    this.list = document.createElement('ul');
    this.list.className = 'online';
    this.list.dataset.online = '';
    this.list.setAttribute('aria-label', `Who is online, as ${pane.title} learns it`);
    box.append(label, this.list);
    pane.root.querySelector('.pane-controls').before(box);

    pane.transport.onMessage((event) => {
      if (event.presence) this.render(event.presence, 'pushed');
    });
    this.poll();
  }

  /** Whether this pane's transport is a polling one right now (Automatic
   *  rides on whichever transport it chose). */
  get polls() {
    return POLLED.has(this.pane.transport.statsName);
  }

  /** For polling panes: GET /api/presence, again and again. */
  async poll() {
    if (this.polls && this.pane.transport.running) {
      try {
        const response = await fetch('/api/presence', { cache: 'no-store' });
        if (response.ok) this.render(await response.json(), 'asked');
      } catch {
        // The server is away: keep the last list until it answers.
      }
    }
    setTimeout(() => this.poll(), PRESENCE_POLL_MS);
  }

  /** Shows `{users, more}`; `how` says where it came from. */
  render({ users = [], more = 0 }, how) {
    this.source.textContent = how === 'pushed' ? '(pushed by the server)' : '(asked GET /api/presence)';
    this.list.dataset.source = how;
    const items = users.map((entry) => this.item(entry));
    if (more > 0) {
      const rest = document.createElement('li');
      rest.className = 'online-more';
      rest.textContent = `and ${more} more`;
      items.push(rest);
    }
    if (items.length === 0) {
      const nobody = document.createElement('li');
      nobody.className = 'online-nobody';
      nobody.textContent = 'nobody with a name';
      items.push(nobody);
    }
    this.list.replaceChildren(...items);
  }

  /** One user: the name, then each transport, polled ones with how recent. */
  item({ user, transports, seen_ms_ago: seen = {} }) {
    const item = document.createElement('li');
    item.dataset.user = user;
    item.dataset.transports = transports.join(' ');
    const name = document.createElement('span');
    name.className = 'user';
    name.textContent = user === this.me() ? `${user} (you)` : user;
    const via = transports.map((transport) => {
      const title = TITLES.get(transport) ?? transport;
      if (!POLLED.has(transport)) return title;
      if (seen[transport] !== undefined) return `${title} (seen ${Math.round(seen[transport] / 1000)} s ago)`;
      // Pushed lists carry no ages; an asked one without an age is a held
      // long poll, open right now.
      return this.list.dataset.source === 'pushed' ? `${title} (recently)` : title;
    });
    item.append(name, `: ${via.join(', ')}`);
    return item;
  }
}

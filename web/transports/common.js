// What every transport module shares, so that each module holds only what
// makes its transport different: the interface the page talks to, the cursor
// that makes every resume lossless and duplicate-free, the way back after a
// failure (backoff with jitter), the store's epoch that tells a client when
// the server's history started again, which server instance answered, and
// sending over `POST /api/messages`.
//
// Every transport is a subclass of `Transport` and describes itself:
//
//   static name        its name on the wire: the `via` of what it sends, its
//                      key in /api/config and /api/stats, its pane's
//                      data-transport
//   static title       the pane's heading
//   static summary     one sentence under it: how the transport works
//   static options     the controls its pane shows, e.g. polling's interval:
//                      [{key, id, label, choices: [{value, label}], default}];
//                      the current values are in `this.settings[key]`
//
// and offers the page exactly:
//
//   connect()          start receiving (again, after close(): resumes from
//                      the last id seen)
//   close()            stop receiving; the cursor is kept
//   onMessage(cb)      cb({message, raw}) for each new message, in id order;
//                      cb({gap: K}) when K messages were older than the
//                      server's history; cb({reset: true, epoch}) when the
//                      server's ids started over (a new epoch: a restarted
//                      server with a new store, a deleted shared log); the
//                      new history follows from id 1; cb({presence}) when
//                      a push transport says who is online (presence.js)
//   onState(cb)        cb(state), state one of STATES
//   onHeard(cb)        cb() whenever anything at all comes from the server:
//                      a poll answer, a message (new or already seen), a
//                      control line or frame. The Automatic pane (auto.js)
//                      tells a working transport from a held-back one by it
//   send(user, text, clientMsgId?)
//                      a Promise of the stored message's {id, ...}; rejects
//                      with a SendError. A caller that retries a send through
//                      another transport passes the same clientMsgId, so the
//                      server stores it once
//   setOption(key, v)  changes one of its static options
//   onInstance(cb)     cb(instances) when an answer names the server instance
//                      that gave it (see "Which instance answered" below)
//   stats()            {requests, emptyResponses, received, state, failures}
//                      (failures: tries in a row that got no answer)
//   statsName          the key of its counters in /api/stats (its name; the
//                      Automatic pane's is the transport it is on)
//
// A transport that rides on the others (auto.js) also sets `static adaptive
// = true` and offers route() and onRoute(cb): which transport it is on, and
// why it left the others. The page shows that under its counters.
//
// A subclass writes start(generation), which opens its connection or request
// loop, and stop(), which tears down whatever is on the wire; connect() and
// close() do the bookkeeping around them. Along the way it calls the helpers
// below: url() for the address with the cursor in it, fetchPage() and
// acceptPage() for a poll answer, opened() when a stream opens, deliver() and
// deliverGap() for what a stream carries, recover() after any failure.
//
// The cursor is the heart of it. The server numbers messages 1, 2, 3, … with
// no gaps, so "the last id I saw" is all a client needs to say where it is.
// Every request or connection after the first carries `since=<last id>`, and
// every message with an id at or below it is dropped: a retry, a reconnect or
// an overlapping answer can never show a message twice.
//
// The epoch says which history the cursor belongs to. Ids start again at 1
// whenever a store starts empty (an in-memory server restarted, a shared log
// deleted), and the store then gets a new epoch. The page learns the epoch
// from GET /api/config and every request or connection carries `epoch=E`
// beside `since` (SSE in the EventSource's URL, so the browser's own
// reconnects keep it). When E is not the store's epoch the server ignores
// `since`, says so first (polling and long polling: `"reset":true,"epoch"`
// in the answer; SSE: `event: reset`; WebSocket and streaming: a
// `{"type":"reset","epoch"}` line) and sends the new history from the start:
// startOver() drops the cursor to 0, takes the new epoch, and tells the pane,
// which clears its list. Without an epoch (a server that does not name one)
// the old rule stays as the fallback: `400 cursor_ahead`, or a refused
// stream whose cursor is ahead of GET /api/stats's newest id, drops the
// cursor (resetIfAhead()).
//
// Which instance answered: when several server instances share one log
// (`--store redis://…`, docs/scaling.md), every response carries
// `x-chat-instance: <name>`. fetch() can read it, so poll answers, a
// stream's response and POST sends report it (noteInstance()). EventSource
// and WebSocket cannot: the browser hides their response headers from the
// page, so for SSE and WebSocket the receiving side's instance is hidden
// from the browser (`static hidesHeaders`); an SSE pane still shows which
// instance took its last POST.

/** The connection states a transport reports (and the page shows). */
export const STATES = ['connecting', 'connected', 'reconnecting', 'disconnected'];

/** A poll answer this long is a full page: ask again at once. */
export const FULL_PAGE = 500;

/** First retry waits up to this long; each failure doubles it… */
const BACKOFF_BASE_MS = 500;
/** …up to this ceiling. */
const BACKOFF_CAP_MS = 15_000;
/** How often a failed `POST /api/messages` is retried (same client_msg_id). */
const SEND_RETRIES = 3;
/** The response header that names the server instance (shared store only). */
export const INSTANCE_HEADER = 'x-chat-instance';

/**
 * Exponential backoff with "full jitter": wait a random time between 0 and
 * base·2^attempt (capped). The randomness matters when a server restarts:
 * without it, every client comes back in the same millisecond.
 */
export class Backoff {
  constructor(baseMs = BACKOFF_BASE_MS, capMs = BACKOFF_CAP_MS) {
    this.baseMs = baseMs;
    this.capMs = capMs;
    this.attempt = 0;
  }

  /** The delay before the next attempt, in milliseconds. */
  next() {
    const ceiling = Math.min(this.capMs, this.baseMs * 2 ** this.attempt);
    this.attempt += 1;
    return Math.random() * ceiling;
  }

  /** After a success: the next failure starts from a short wait again. */
  reset() {
    this.attempt = 0;
  }
}

/** A refused or failed send: `code` is the server's error code, or `network`. */
export class SendError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'SendError';
    this.code = code;
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A fresh idempotency key. `crypto.randomUUID` exists only in secure
 * contexts (https, localhost); a page opened over plain http on a LAN
 * address falls back to 16 random bytes in hex.
 */
export function newClientMsgId() {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Reads a `{"error":{"code","message"}}` answer into a SendError. */
export async function errorOf(response) {
  try {
    const { error } = await response.json();
    return new SendError(error.code, error.message);
  } catch {
    return new SendError(`http_${response.status}`, `HTTP ${response.status}`);
  }
}

/**
 * The base every transport extends: its description, listeners, counters,
 * state and cursor, and everything the transports would otherwise each
 * write again.
 */
export class Transport {
  // `static name`, the transport's name on the wire, is set by each subclass.

  /** The pane's heading. */
  static title = '';
  /** One sentence under the heading: how the transport works. */
  static summary = '';
  /** The controls the pane shows for this transport (see the top comment). */
  static options = [];
  /** True when the browser hides the receiving connection's response
   *  headers from the page (EventSource, WebSocket). */
  static hidesHeaders = false;

  /** `settings` overrides the defaults of `static options`, by key;
   *  `epoch` is the store's, from GET /api/config (null if unknown). */
  constructor(settings = {}, { epoch = null } = {}) {
    /** The transport's name on the wire (`via`, `/api/stats` key). */
    this.name = this.constructor.name;
    /** The current value of each of `static options`, by key. */
    this.settings = {};
    for (const option of this.constructor.options) {
      this.settings[option.key] = settings[option.key] ?? option.default;
    }
    /** The last message id seen, or null before the first answer. */
    this.lastId = null;
    /** The epoch the cursor belongs to, or null if the server named none. */
    this.epoch = epoch;
    /** Who subscribes (`user=`, for presence: web/presence.js), or null. */
    this.user = null;
    /** The instance that gave the last answer of each kind (null: none yet,
     *  or the server does not say): `receive` (polls, a stream's response)
     *  and `send` (POSTs), and `last`, whichever came last. */
    this.instances = { receive: null, send: null, last: null };
    /** Tries in a row that failed (reset by any answer). */
    this.failures = 0;
    /** True between connect() and close(). */
    this.running = false;
    /** Bumped by every connect() and close(), so that an answer to a request
     *  made before a close is recognised as stale and ignored. */
    this.generation = 0;
    this.state = 'disconnected';
    this.backoff = new Backoff();
    this.counters = { requests: 0, emptyResponses: 0, received: 0 };
    this.messageListeners = [];
    this.stateListeners = [];
    this.heardListeners = [];
    this.instanceListeners = [];
    /** Aborts the fetchPage() request on the wire, if any. */
    this.inFlight = null;
  }

  /** Starts receiving, resuming from the last id seen. The bookkeeping is
   *  here; each transport's start(generation) opens its connection or loop. */
  connect() {
    if (this.running) return;
    this.running = true;
    this.generation += 1;
    this.setState('connecting');
    this.start(this.generation);
  }

  /** Stops receiving and keeps the cursor; each transport's stop() tears
   *  down whatever is on the wire. */
  close() {
    if (!this.running) return;
    this.running = false;
    this.generation += 1;
    this.stop();
    this.setState('disconnected');
  }

  /** Tears down what is on the wire. Here: the poll request, if any; a
   *  transport with a stream or a timer of its own extends this. */
  stop() {
    this.inFlight?.abort();
    this.inFlight = null;
  }

  onMessage(callback) {
    this.messageListeners.push(callback);
  }

  onState(callback) {
    this.stateListeners.push(callback);
  }

  onHeard(callback) {
    this.heardListeners.push(callback);
  }

  onInstance(callback) {
    this.instanceListeners.push(callback);
  }

  stats() {
    return { ...this.counters, state: this.state, failures: this.failures };
  }

  /** True when the receiving connection's instance cannot be known. */
  get receiveHidden() {
    return this.constructor.hidesHeaders;
  }

  /** The key of this transport's counters in /api/stats. */
  get statsName() {
    return this.name;
  }

  /** Changes one of the transport's `static options` (the pane's controls
   *  call this) and lets the transport act on it at once. */
  setOption(key, value) {
    this.settings[key] = value;
    this.optionChanged(key, value);
  }

  /** Called after setOption(); a transport that must act at once (say, move
   *  a poll already scheduled) overrides it. Settings are read when used. */
  optionChanged() {}

  /**
   * The address of the next request or connection: `path`, then
   * `since=<last id>` (none before anything was seen: the server then
   * answers with its backfill), `epoch=<epoch>` when known, then `params`,
   * e.g. url('/longpoll/messages', {wait_s: 25})
   * → /longpoll/messages?since=16&epoch=k3x9&wait_s=25
   */
  url(path, params = {}) {
    const query = new URLSearchParams();
    if (this.lastId !== null) query.set('since', String(this.lastId));
    if (this.epoch !== null) query.set('epoch', this.epoch);
    if (this.user) query.set('user', this.user);
    for (const [key, value] of Object.entries(params)) query.set(key, String(value));
    const search = query.toString();
    return search ? `${path}?${search}` : path;
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    for (const callback of this.stateListeners) callback(state);
  }

  /** Something came from the server (see onHeard in the top comment). */
  heard() {
    for (const callback of this.heardListeners) callback();
  }

  /** Hands on a message unless it was seen already; true if it was new. */
  deliver(message, raw) {
    this.heard();
    if (this.lastId !== null && message.id <= this.lastId) return false;
    this.lastId = message.id;
    this.counters.received += 1;
    this.emit({ message, raw });
    return true;
  }

  deliverGap(missed) {
    this.heard();
    this.emit({ gap: missed });
  }

  /** Who is online, as a push transport was told: `{users, more}`. */
  deliverPresence(list) {
    this.heard();
    this.emit({ presence: list });
  }

  /** A reset notice: the server's history started again under `epoch`, and
   *  sends it from the start right after the notice. The cursor goes back
   *  to 0, the epoch is the new one, and the pane is told. */
  startOver(epoch) {
    this.heard();
    this.lastId = 0;
    this.epoch = epoch ?? null;
    this.emit({ reset: true, epoch: this.epoch });
  }

  /** Reads the instance header of `response`, an answer of `kind`
   *  (`receive` or `send`), and tells the listeners. */
  noteInstance(kind, response) {
    const instance = response.headers.get(INSTANCE_HEADER);
    if (instance === null) return; // one server on its own: it does not say
    this.instances[kind] = instance;
    this.instances.last = instance;
    for (const callback of this.instanceListeners) callback(this.instances);
  }

  /**
   * One poll request (polling and long polling share them): GET `url`, and
   * the answer as `{"messages":[…],"cursor":C,"missed"?:K}`. Counts the
   * request; stop() aborts it. A refusal throws the server's SendError (its
   * `code` is what recover() looks at); a lost answer throws what fetch threw.
   */
  async fetchPage(url) {
    const controller = new AbortController();
    this.inFlight = controller;
    this.counters.requests += 1;
    const response = await fetch(url, { signal: controller.signal, cache: 'no-store' });
    this.noteInstance('receive', response);
    if (!response.ok) throw await errorOf(response);
    return response.json();
  }

  /** A poll answer came: the server is there (connected, and the next
   *  failure backs off from the start again). Hands on the page's messages
   *  and moves the cursor, also on an empty answer: the first one, without
   *  `since`, tells a client where the chat is now. A page with `reset`
   *  starts a new history (startOver()) before its messages. */
  acceptPage(page) {
    this.heard();
    this.backoff.reset();
    this.failures = 0;
    this.setState('connected');
    if (page.reset) this.startOver(page.epoch);
    if (page.missed) this.deliverGap(page.missed);
    if (page.messages.length === 0) this.counters.emptyResponses += 1;
    for (const message of page.messages) this.deliver(message, JSON.stringify(message));
    if (this.lastId === null || page.cursor > this.lastId) this.lastId = page.cursor;
  }

  /** A stream (an event stream, a socket) opened: connected, and the next
   *  failure backs off from the start again. Without `since`, the backfill
   *  follows at once; if the chat is empty there is none, and the chat
   *  starts at 0. Remember that, so that a reconnect asks for everything
   *  after 0 rather than a fresh backfill. */
  opened() {
    this.backoff.reset();
    this.failures = 0;
    if (this.lastId === null) this.lastId = 0;
    this.setState('connected');
  }

  /**
   * The way back after any failure, the same for every transport: say
   * 'reconnecting', wait, and resolve true when the caller should try again
   * (with url(), so with the cursor), or false when close() or a newer
   * connect() came first and this attempt is over.
   *
   * The wait is a jittered backoff. A server that knows our epoch never
   * refuses a cursor from another history (it answers a reset notice), so
   * the fallback below resets only without one, or when the store's epoch
   * did change: then a `400 cursor_ahead` means the server restarted with
   * an empty store, so the cursor is dropped, the pane told, and the next
   * try goes out at once. In the same epoch it means an instance that has
   * not yet read the newest messages of a shared log: just try again.
   *
   * `error` is what the request threw, when the transport can read the
   * server's answer (fetch can). `hidden: true` says the server may have
   * refused us without the browser showing why (EventSource and WebSocket
   * hide the status of a refused request): then, without an epoch, the
   * cursor is checked against /api/stats after the backoff.
   */
  async recover(generation, { error = null, hidden = false } = {}) {
    if (generation !== this.generation) return false;
    this.failures += 1;
    this.setState('reconnecting');
    if (error?.code === 'cursor_ahead' && (await this.resetIfAhead())) {
      return generation === this.generation;
    }
    await sleep(this.backoff.next());
    if (hidden && this.epoch === null && generation === this.generation) await this.resetIfAhead();
    return generation === this.generation;
  }

  /**
   * The fallback for a server that does not answer our epoch with a reset
   * notice: is our cursor ahead of the server's newest id, in another
   * epoch (or without one)? Then the server was restarted with an empty
   * store, and every `since` we send is refused (`400 cursor_ahead`): drop
   * the cursor, take the store's epoch if it names one, and tell the pane,
   * which shows the new history from the start. Asks /api/stats rather
   * than trusting one answer. Returns true if the cursor was reset.
   */
  async resetIfAhead() {
    if (this.lastId === null) return false;
    try {
      const response = await fetch('/api/stats', { cache: 'no-store' });
      if (!response.ok) return false;
      const { store } = await response.json();
      if (this.lastId <= store.last_id) return false;
      // Same history: that instance has not caught up yet (shared log).
      if (this.epoch !== null && store.epoch === this.epoch) return false;
      this.epoch = store.epoch ?? null;
    } catch {
      return false; // The server is down: nothing to learn yet.
    }
    this.lastId = null;
    this.emit({ reset: true, epoch: this.epoch });
    return true;
  }

  emit(event) {
    for (const callback of this.messageListeners) callback(event);
  }

  /**
   * Sends over `POST /api/messages` with `via` set to this transport: how
   * every transport but the WebSocket sends (it overrides this). The
   * client_msg_id makes retries safe: if the first attempt was stored but
   * its answer lost, the retry gets the same message back (200, not 201).
   */
  async send(user, text, clientMsgId = newClientMsgId()) {
    const body = JSON.stringify({ user, text, client_msg_id: clientMsgId, via: this.name });
    const backoff = new Backoff();
    for (let attempt = 0; ; attempt += 1) {
      this.counters.requests += 1;
      let response = null;
      try {
        response = await fetch('/api/messages', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body,
        });
      } catch {
        // The request never got an answer: the server is down or unreachable.
      }
      if (response) this.noteInstance('send', response);
      if (response?.ok) return response.json();
      const error = response
        ? await errorOf(response)
        : new SendError('network', 'the server could not be reached');
      // A 4xx would be refused again; only a lost answer or a 5xx is retried.
      const retryable = response === null || response.status >= 500;
      if (!retryable || attempt >= SEND_RETRIES) throw error;
      await sleep(backoff.next());
    }
  }
}

// What the four transport modules share: the interface the page talks to,
// the cursor that makes every resume lossless and duplicate-free, backoff
// with jitter, and sending over `POST /api/messages`.
//
// Every transport is a subclass of `Transport` and offers exactly:
//
//   connect()          start receiving (again, after close(): resumes from
//                      the last id seen)
//   close()            stop receiving; the cursor is kept
//   onMessage(cb)      cb({message, raw}) for each new message, in id order;
//                      cb({gap: K}) when K messages were older than the
//                      server's history; cb({reset: true}) when the server's
//                      ids started over (a restarted server with a new store)
//   onState(cb)        cb(state), state one of STATES
//   send(user, text)   a Promise of the stored message's {id, ...}; rejects
//                      with a SendError
//   stats()            {requests, emptyResponses, received, state}
//
// connect() and close() do the bookkeeping here; a subclass writes only
// start(generation), which opens its connection or request loop, and stop(),
// which tears down whatever is on the wire.
//
// The cursor is the heart of it. The server numbers messages 1, 2, 3, … with
// no gaps, so "the last id I saw" is all a client needs to say where it is.
// Every request or connection after the first carries `since=<last id>`, and
// every message with an id at or below it is dropped: a retry, a reconnect or
// an overlapping answer can never show a message twice.

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
 * The base every transport extends: listeners, counters, state and cursor.
 * Subclasses do the wire work and call `deliver`, `deliverGap`, `acceptPage`
 * and `setState`.
 */
export class Transport {
  constructor(name) {
    /** The transport's name on the wire (`via`, `/api/stats` key). */
    this.name = name;
    /** The last message id seen, or null before the first answer. */
    this.lastId = null;
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

  onMessage(callback) {
    this.messageListeners.push(callback);
  }

  onState(callback) {
    this.stateListeners.push(callback);
  }

  stats() {
    return { ...this.counters, state: this.state };
  }

  /** `since=N` for the next request, or '' before anything was seen. */
  sinceParam() {
    return this.lastId === null ? '' : `since=${this.lastId}`;
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    for (const callback of this.stateListeners) callback(state);
  }

  /** Hands on a message unless it was seen already; true if it was new. */
  deliver(message, raw) {
    if (this.lastId !== null && message.id <= this.lastId) return false;
    this.lastId = message.id;
    this.counters.received += 1;
    this.emit({ message, raw });
    return true;
  }

  deliverGap(missed) {
    this.emit({ gap: missed });
  }

  /** A poll answer, `{"messages":[…],"cursor":C,"missed"?:K}` (polling and
   *  long polling share it). The cursor also moves on an empty answer: the
   *  first one, without `since`, tells a client where the chat is now. */
  acceptPage(page) {
    if (page.missed) this.deliverGap(page.missed);
    if (page.messages.length === 0) this.counters.emptyResponses += 1;
    for (const message of page.messages) this.deliver(message, JSON.stringify(message));
    if (this.lastId === null || page.cursor > this.lastId) this.lastId = page.cursor;
  }

  /**
   * After a failed (re)connection: is our cursor ahead of the server's newest
   * id? Then the server was restarted with an empty store, every `since` we
   * send is refused (`400 cursor_ahead`), and the only way on is to start
   * over without a cursor. Returns true if the cursor was reset.
   */
  async resetIfAhead() {
    if (this.lastId === null) return false;
    try {
      const response = await fetch('/api/stats', { cache: 'no-store' });
      if (!response.ok) return false;
      const { store } = await response.json();
      if (this.lastId <= store.last_id) return false;
    } catch {
      return false; // The server is down: nothing to learn yet.
    }
    this.lastId = null;
    this.emit({ reset: true });
    return true;
  }

  emit(event) {
    for (const callback of this.messageListeners) callback(event);
  }

  /**
   * `POST /api/messages` with `via` set to this transport. The
   * client_msg_id makes retries safe: if the first attempt was stored but
   * its answer lost, the retry gets the same message back (200, not 201).
   */
  async postMessage(user, text) {
    const body = JSON.stringify({ user, text, client_msg_id: newClientMsgId(), via: this.name });
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

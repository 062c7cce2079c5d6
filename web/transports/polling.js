// Regular polling: the browser half of crates/chat-polling.
//
// On the wire, once per interval:
//
//   GET /polling/messages?since=16
//
//   200 {"messages":[{"id":17,"user":"ana","text":"hello",…}],"cursor":17}
//
// The server answers at once, usually with an empty list. Nothing is held
// between polls: the client's whole state is one number, the cursor, sent as
// `since` next time. The very first poll has no `since`: the server answers
// with the last 50 messages (the backfill), and its `cursor` says where the
// chat is, even when the list is empty.
//
// Resuming: there is no connection to lose. A failed poll is retried with the
// same cursor after a backoff with jitter; close() then connect() picks up
// after the last id seen. A full page (500 messages) means more is waiting,
// so the next poll goes out at once rather than after the interval.
//
// What it costs: a request and a response head every interval, news or not
// (the pane's "empty" counter), and a message waits half an interval on
// average before anyone sees it. Shorter intervals buy latency with requests.
//
// Sending: POST /api/messages with "via":"polling" (see common.js).

import { FULL_PAGE, Transport, errorOf } from './common.js';

/** The default time between two polls. */
export const DEFAULT_INTERVAL_MS = 1000;

export class PollingTransport extends Transport {
  constructor({ intervalMs = DEFAULT_INTERVAL_MS } = {}) {
    super('polling');
    this.intervalMs = intervalMs;
    /** The timer of the next poll, while one is waiting. */
    this.timer = null;
    /** Aborts the poll on the wire, if any. */
    this.inFlight = null;
  }

  start(generation) {
    this.poll(generation);
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = null;
    this.inFlight?.abort();
  }

  send(user, text) {
    return this.postMessage(user, text);
  }

  /** Changes the interval; a poll already waiting is rescheduled. */
  setPollInterval(ms) {
    this.intervalMs = ms;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.schedule(this.generation, ms);
    }
  }

  async poll(generation) {
    this.timer = null;
    const controller = new AbortController();
    this.inFlight = controller;
    const since = this.sinceParam();
    this.counters.requests += 1;
    let page;
    try {
      const response = await fetch(`/polling/messages${since ? `?${since}` : ''}`, {
        signal: controller.signal,
        cache: 'no-store',
      });
      if (!response.ok) throw await errorOf(response);
      page = await response.json();
    } catch (error) {
      if (generation !== this.generation) return; // closed meanwhile
      this.setState('reconnecting');
      if (error.code === 'cursor_ahead' && (await this.resetIfAhead())) {
        this.schedule(generation, 0);
      } else {
        this.schedule(generation, this.backoff.next());
      }
      return;
    }
    if (generation !== this.generation) return;
    this.backoff.reset();
    this.setState('connected');
    this.acceptPage(page);
    this.schedule(generation, page.messages.length >= FULL_PAGE ? 0 : this.intervalMs);
  }

  schedule(generation, ms) {
    if (generation !== this.generation) return;
    this.timer = setTimeout(() => this.poll(generation), ms);
  }
}

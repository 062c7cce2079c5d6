// Regular polling: the browser half of crates/chat-polling.
//
// On the wire, once per interval:
//
//   GET /polling/messages?since=16&epoch=k3x9
//
//   200 {"messages":[{"id":17,"user":"ana","text":"hello",…}],"cursor":17}
//
// (after a restart, a different epoch: `"reset":true,"epoch":"…"` and the
// new history from id 1; see common.js)
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
// average before anyone sees it. Shorter intervals buy latency with requests:
// the pane lets you pick the interval (`static options` below).
//
// Sending: POST /api/messages with "via":"polling" (see common.js).

import { FULL_PAGE, Transport } from './common.js';

export class PollingTransport extends Transport {
  static name = 'polling';
  static title = 'Regular polling';
  static summary = 'Asks every interval; the server answers at once, usually with nothing.';
  static options = [
    {
      key: 'intervalMs',
      id: 'poll-interval',
      label: 'Poll every',
      choices: [
        { value: 500, label: '0.5 s' },
        { value: 1000, label: '1 s' },
        { value: 2000, label: '2 s' },
        { value: 5000, label: '5 s' },
      ],
      default: 1000,
    },
  ];

  constructor(settings, context) {
    super(settings, context);
    /** The timer of the next poll, while one is waiting. */
    this.timer = null;
  }

  start(generation) {
    this.poll(generation);
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = null;
    super.stop(); // aborts the poll on the wire, if any
  }

  /** A new interval: a poll already waiting is rescheduled with it. */
  optionChanged() {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.schedule(this.generation, this.settings.intervalMs);
    }
  }

  async poll(generation) {
    this.timer = null;
    let page;
    try {
      page = await this.fetchPage(this.url('/polling/messages'));
    } catch (error) {
      if (await this.recover(generation, { error })) this.poll(generation);
      return;
    }
    if (generation !== this.generation) return; // closed meanwhile
    this.acceptPage(page);
    this.schedule(generation, page.messages.length >= FULL_PAGE ? 0 : this.settings.intervalMs);
  }

  schedule(generation, ms) {
    if (generation !== this.generation) return;
    this.timer = setTimeout(() => this.poll(generation), ms);
  }
}

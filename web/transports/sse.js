// Server-sent events: the browser half of crates/chat-sse.
//
// On the wire, one GET whose response never ends:
//
//   GET /sse/events?since=16&epoch=k3x9    accept: text/event-stream
//
//   200 content-type: text/event-stream
//   retry: 1000
//
//   id: 17
//   data: {"id":17,"user":"ana","text":"hello",…}
//
//   : keep-alive
//
// One event per message, named `message` (the default), carrying the stored
// JSON and the message id as the event id. A cursor older than the server's
// history first gets `event: gap` with `data: {"missed":K}`; an epoch that
// is not the store's (the history started again) gets `event: reset` with
// `data: {"epoch":"…"}`, then the new history from id 1. Comment lines keep
// the stream alive through quiet spells.
//
// The browser's EventSource parses all this, and does half of resuming by
// itself: it remembers the last `id:` it saw and, when the stream drops,
// reconnects after `retry:` milliseconds with a `Last-Event-ID: 17` header,
// which the server prefers over `since`.
//
// The other half is ours. When a reconnect is answered with anything but a
// 200 event stream (a 503 from a proxy, a 204, a 400), EventSource gives up
// for good: readyState CLOSED, and no more retries. Then this module makes a
// new EventSource with since=<last id seen> after a backoff with jitter.
// Either way the cursor rule drops anything already seen.
//
// The epoch is in the EventSource's URL, so the browser's own reconnects
// carry it beside `Last-Event-ID`. That URL cannot change, so after a reset
// this module closes the EventSource and opens a new one with since=0 and
// the new epoch; otherwise the browser's next reconnect would name the old
// epoch and be reset a second time.
//
// Which instance answered: EventSource hides the response's headers, so the
// instance the stream comes from is hidden from the browser; only the
// POST sends show theirs (see common.js).
//
// Sending: EventSource only receives, so sends are
// POST /api/messages with "via":"sse" (see common.js).

import { Transport } from './common.js';

export class SseTransport extends Transport {
  static name = 'sse';
  static title = 'Server-Sent Events';
  static summary = 'One response that never ends, one event per message. Sends go over POST.';
  static hidesHeaders = true;

  constructor(settings, context) {
    super(settings, context);
    /** The current EventSource, if any. */
    this.source = null;
  }

  start(generation) {
    this.open(generation);
  }

  stop() {
    this.source?.close();
    this.source = null;
  }

  open(generation) {
    const source = new EventSource(this.url('/sse/events'));
    this.source = source;
    this.counters.requests += 1;

    source.addEventListener('open', () => this.opened());
    source.addEventListener('message', (event) => {
      this.deliver(JSON.parse(event.data), event.data);
    });
    source.addEventListener('gap', (event) => {
      this.deliverGap(JSON.parse(event.data).missed);
    });
    source.addEventListener('presence', (event) => this.deliverPresence(JSON.parse(event.data)));
    source.addEventListener('reset', (event) => {
      if (generation !== this.generation || source !== this.source) return;
      this.startOver(JSON.parse(event.data).epoch);
      // Reopen with the new epoch in the URL (see the top comment).
      source.close();
      this.open(generation);
    });
    source.addEventListener('error', () => this.failed(source, generation));
  }

  async failed(source, generation) {
    if (generation !== this.generation || source !== this.source) return;
    if (source.readyState === EventSource.CONNECTING) {
      // The stream dropped; the browser retries by itself after `retry:`,
      // with Last-Event-ID. That retry is one more request.
      this.setState('reconnecting');
      this.counters.requests += 1;
      this.failures += 1;
      return;
    }
    // CLOSED: the browser gave up, and hides why. Start over with our own
    // cursor and epoch; without an epoch, recover() first checks whether
    // the server lost its history (a restart with a new store refuses our
    // cursor as being ahead of its newest id).
    source.close();
    this.source = null;
    if (await this.recover(generation, { hidden: true })) this.open(generation);
  }
}

// HTTP streaming (Comet): the browser half of crates/chat-stream.
//
// On the wire, one GET whose response never ends, one JSON line per message:
//
//   GET /stream/messages?since=16&epoch=k3x9
//
//   200 content-type: application/x-ndjson
//   {"id":17,"user":"ana","text":"hello",…}
//   {"type":"ping"}                       after 15 s without a line
//   {"type":"gap","missed":K}             cursor older than the history
//   {"type":"reset","epoch":"…"}          the history started again (a new
//                                         epoch); the new one follows from 1
//
// History: before SSE had a name, pages got pushed data from a response
// that never ended, through a hidden "forever iframe" fed <script> tags, or
// an XMLHttpRequest whose responseText grew until it was dropped and made anew.
//
// Why there is no browser protocol here: this is the raw idea, which SSE
// later wrapped in a standard. No EventSource parses the stream, no
// `Last-Event-ID` is sent, nothing reconnects by itself. Everything
// EventSource does for SSE, this module does with `fetch()` and a
// `ReadableStream` reader:
//
// - framing: bytes arrive in chunks that cut lines (and UTF-8 characters)
//   anywhere. A `TextDecoder` in stream mode keeps a cut character for the
//   next chunk, and the splitter keeps the unfinished last line (the tail)
//   until its newline comes. JSON escapes every line break inside a string,
//   so one line is always one whole message or control line.
// - dispatch: a line without `type` is a message; `gap` is a gap notice;
//   `reset` starts the new history (cursor 0, the new epoch, which the next
//   request carries); `ping` carries nothing but proves the stream is alive.
// - liveness: a connection that died without a FIN (a laptop lid, a NAT
//   that forgot us) stays silent forever. The server writes at least a ping
//   every 15 s, so a stream silent for SILENCE_LIMIT_MS is aborted.
// - resuming: when the response ends (server shutdown), fails or is
//   aborted, a new fetch goes out with since=<last id seen> after a backoff
//   with full jitter (common.js's recover()), and the cursor rule drops
//   anything already seen.
//
// Sending: the response only carries news down, so sends are
// POST /api/messages with "via":"stream" (see common.js).
//
// Which instance answered: fetch() shows the response's headers, so the
// pane knows the instance its stream comes from (x-chat-instance).

import { Transport, errorOf } from './common.js';

/** A stream silent this long is dead: three of the server's 15 s keep-alives
 *  (`--stream-keepalive`; a server set above 15 s costs a reconnect now and
 *  then, never a message). */
export const SILENCE_LIMIT_MS = 45_000;

export class StreamTransport extends Transport {
  static name = 'stream';
  static title = 'HTTP streaming';
  static summary = 'One fetch whose response never ends, read line by line; the page does all the protocol. Sends go over POST.';

  constructor(settings, context) {
    super(settings, context);
    /** Aborts the fetch on the wire, if any. */
    this.controller = null;
    /** Aborts a silent stream (see SILENCE_LIMIT_MS). */
    this.watchdog = null;
  }

  start(generation) {
    this.loop(generation);
  }

  stop() {
    clearTimeout(this.watchdog);
    this.watchdog = null;
    this.controller?.abort();
    this.controller = null;
  }

  /** Reads one stream after another until close(). */
  async loop(generation) {
    while (generation === this.generation) {
      let error = null;
      try {
        await this.read(generation);
      } catch (thrown) {
        error = thrown; // a refusal (SendError with the server's code) or a lost connection
      }
      clearTimeout(this.watchdog);
      if (!(await this.recover(generation, { error }))) return;
    }
  }

  /** One request: opens the stream and reads it line by line until it ends. */
  async read(generation) {
    const controller = new AbortController();
    this.controller = controller;
    this.counters.requests += 1;
    this.keepWatch(controller);
    const response = await fetch(this.url('/stream/messages'), {
      signal: controller.signal,
      cache: 'no-store',
      headers: { Accept: 'application/x-ndjson' },
    });
    this.noteInstance('receive', response);
    if (!response.ok) throw await errorOf(response);
    if (generation !== this.generation) return;
    this.opened();

    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let tail = ''; // the start of a line whose newline has not come yet
    for (;;) {
      const { value, done } = await reader.read();
      if (generation !== this.generation) return; // closed meanwhile
      if (done) return; // the server ended the response: reconnect
      this.keepWatch(controller);
      tail += decoder.decode(value, { stream: true });
      const lines = tail.split('\n');
      tail = lines.pop();
      for (const line of lines) if (line) this.line(line);
    }
  }

  /** (Re)starts the silence timer of the stream `controller` aborts. */
  keepWatch(controller) {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => controller.abort(), SILENCE_LIMIT_MS);
  }

  /** One complete line: a message, or a control line with a `type`. */
  line(text) {
    let value;
    try {
      value = JSON.parse(text);
    } catch {
      return; // not from our server
    }
    if (value.type === undefined) this.deliver(value, text);
    else if (value.type === 'gap') this.deliverGap(value.missed);
    else if (value.type === 'reset') this.startOver(value.epoch);
    else if (value.type === 'presence') this.deliverPresence(value);
    else this.heard(); // ping (and lines this page does not use): alive
  }
}

// Long polling: the browser half of crates/chat-longpoll.
//
// On the wire, one request after another:
//
//   GET /longpoll/messages?since=16&epoch=k3x9&wait_s=25
//                     … held by the server until message 17 is stored …
//   200 {"messages":[{"id":17,"user":"ana","text":"hello",…}],"cursor":17}
//
// The answer is exactly polling's; only *when* it comes differs. If anything
// after `since` exists the server answers at once; otherwise it holds the
// request until a message is stored, or until `wait_s` seconds pass and it
// answers an empty list with the same cursor. The client asks again the
// moment it has an answer, so a request is almost always waiting on the
// server and a message arrives as soon as it is stored.
//
// The first request of each connection asks for a 1-second wait: its answer
// comes quickly even in a silent chat, so the pane knows the server is there
// (and, without `since`, where the chat is) instead of showing "connecting"
// for 25 seconds.
//
// Resuming: as with polling, the cursor is everything. A request that fails
// (network down, or a proxy's 502, 503, 504) is retried with the same cursor
// after a backoff with jitter. close() aborts the held request; the server
// notices the hang-up and forgets it.
//
// Sending: POST /api/messages with "via":"longpoll" (see common.js).

import { Transport } from './common.js';

/** How long the server may hold a request, in seconds (it clamps to 1..=55). */
export const WAIT_S = 25;
/** The wait of a connection's first request (see above). */
const FIRST_WAIT_S = 1;

export class LongPollTransport extends Transport {
  static name = 'longpoll';
  static title = 'Long polling';
  static summary = 'Asks again as soon as it has an answer; the server holds each request until there is news.';

  start(generation) {
    this.loop(generation);
  }

  /** Asks, waits for the answer, asks again, until close(). */
  async loop(generation) {
    let answered = false; // has this connection had an answer yet?
    while (generation === this.generation) {
      const wait_s = answered ? WAIT_S : FIRST_WAIT_S;
      try {
        const page = await this.fetchPage(this.url('/longpoll/messages', { wait_s }));
        if (generation !== this.generation) return; // closed meanwhile
        answered = true;
        this.acceptPage(page);
      } catch (error) {
        answered = false;
        if (!(await this.recover(generation, { error }))) return;
      }
    }
  }
}

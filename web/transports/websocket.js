// WebSocket: the browser half of crates/chat-websocket.
//
// On the wire, one HTTP request that upgrades into a two-way stream of
// frames:
//
//   GET /ws?since=16&epoch=k3x9   upgrade: websocket  → 101 Switching Protocols
//   ← {"id":17,"user":"ana","text":"hello",…}          a message: no "type"
//   ← {"type":"gap","missed":K}                        cursor older than history
//   ← {"type":"reset","epoch":"…"}                     the history started again:
//                                                      the new one follows from id 1
//   → {"type":"send","user":"bob","text":"hi","client_msg_id":"c1"}
//   ← {"type":"ack","client_msg_id":"c1","id":18}      stored as message 18
//   ← {"id":18,"user":"bob","text":"hi",…,"via":"websocket"}
//   ← {"type":"error","code":"invalid_text","message":"…"}   a refused send
//
// Every frame the server sends is JSON; control frames have a "type",
// messages never do. The server pings every 15 s; the browser answers with
// pongs by itself. A sent message comes back like everyone else's, as a
// message frame: the ack only says it was stored.
//
// Resuming is all ours: a closed WebSocket stays closed. Whatever the close
// code (1001 the server is shutting down, 1008 ping timeout, 1006 connection
// lost, …), this module opens a new socket with since=<last id seen> after a
// backoff with jitter. Sends still waiting for their ack go out again on the
// new socket with the same client_msg_id; the server's idempotency makes that
// safe (a repeat is acked with the id stored the first time).
//
// An error frame names no client_msg_id. The server answers one socket's
// frames in order, so it belongs to the oldest send still waiting.
//
// Which instance answered: the browser shows the page no header of the 101
// answer, and sends go over the socket, so the instance a WebSocket pane
// talks to is hidden from the browser (see common.js).

import { SendError, Transport, newClientMsgId } from './common.js';

/** A send with no ack or error after this long is given up (rejected). */
const SEND_TIMEOUT_MS = 10_000;
/** The close code the server sends for a frame over its size limit. */
const CLOSE_TOO_BIG = 1009;

export class WebSocketTransport extends Transport {
  static name = 'websocket';
  static title = 'WebSocket';
  static summary = 'One upgraded connection: messages come down and sends go up, as frames.';
  static hidesHeaders = true;

  constructor(settings, context) {
    super(settings, context);
    /** The current socket, if any. */
    this.socket = null;
    /** Sends waiting for an answer, oldest first: client_msg_id → entry. */
    this.pending = new Map();
  }

  start(generation) {
    this.open(generation);
  }

  stop() {
    this.socket?.close(1000, 'disconnected by the user');
    this.socket = null;
    this.failPending(new SendError('disconnected', 'the pane was disconnected'));
  }

  /** Sends over the socket rather than POST (this replaces the base's send):
   *  resolves with {id, client_msg_id} on the ack; rejects on an error frame. */
  send(user, text, clientMsgId = newClientMsgId()) {
    if (!this.running) {
      return Promise.reject(new SendError('disconnected', 'connect the pane to send'));
    }
    const frame = JSON.stringify({ type: 'send', user, text, client_msg_id: clientMsgId });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.settle(clientMsgId, new SendError('timeout', 'no answer from the server'));
      }, SEND_TIMEOUT_MS);
      this.pending.set(clientMsgId, { frame, resolve, reject, timer });
      // While (re)connecting it waits, and goes out when the socket opens.
      if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(frame);
    });
  }

  open(generation) {
    // WebSocket wants an absolute ws: or wss: address.
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = new WebSocket(`${scheme}//${location.host}${this.url('/ws')}`);
    this.socket = socket;
    this.counters.requests += 1; // the upgrade request
    let opened = false;

    socket.addEventListener('open', () => {
      opened = true;
      this.opened();
      for (const { frame } of this.pending.values()) socket.send(frame);
    });
    socket.addEventListener('message', (event) => this.receive(event.data));
    socket.addEventListener('close', async (event) => {
      if (socket !== this.socket) return; // closed by close(), or replaced
      this.socket = null;
      // Sending the same frame again would only be refused again.
      if (event.code === CLOSE_TOO_BIG) {
        this.failPending(new SendError('too_big', 'the server refused a frame as too big'));
      }
      // A refused upgrade never opens; it looks like any lost connection
      // (1006). Without an epoch it may be a 400 cursor_ahead after a server
      // restart, so recover() then checks the cursor before the next try.
      if (await this.recover(generation, { hidden: !opened })) this.open(generation);
    });
  }

  receive(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return; // not from our server
    }
    this.heard();
    if (frame.type === undefined) {
      this.deliver(frame, data);
    } else if (frame.type === 'gap') {
      this.deliverGap(frame.missed);
    } else if (frame.type === 'reset') {
      this.startOver(frame.epoch);
    } else if (frame.type === 'presence') {
      this.deliverPresence(frame);
    } else if (frame.type === 'ack') {
      this.settle(frame.client_msg_id, null, { id: frame.id, client_msg_id: frame.client_msg_id });
    } else if (frame.type === 'error') {
      const [oldest] = this.pending.keys();
      if (oldest !== undefined) this.settle(oldest, new SendError(frame.code, frame.message));
    }
  }

  /** Ends a waiting send with an error, or with a value. */
  settle(clientMsgId, error, value) {
    const entry = this.pending.get(clientMsgId);
    if (!entry) return;
    this.pending.delete(clientMsgId);
    clearTimeout(entry.timer);
    if (error) entry.reject(error);
    else entry.resolve(value);
  }

  failPending(error) {
    for (const clientMsgId of [...this.pending.keys()]) this.settle(clientMsgId, error);
  }
}

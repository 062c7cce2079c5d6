// What a pane shows beside its counters: which transport the Automatic pane
// is on and why it left the others (RouteView), which server instance
// answered it (InstanceLine), and a transport that keeps failing to connect
// (showProblem). Each works from the pane's root element and its transport
// object, and knows nothing about the wire.

/**
 * For a transport that rides on the others: which one it is on, and the
 * ones it left and why. Tests read the pane's data-transport-now,
 * data-transport-trying and data-transport-since (when it got on the one it
 * is on: milliseconds after the page started loading), and the [data-left]
 * items' data-transport and data-reason.
 */
export class RouteView {
  constructor(root, transport) {
    const route = document.getElementById('route-template').content.firstElementChild.cloneNode(true);
    root.querySelector('.stats').after(route);
    this.root = root;
    this.now = route.querySelector('[data-route=now]');
    this.trying = route.querySelector('[data-route=trying]');
    this.note = route.querySelector('[data-route=note]');
    this.left = route.querySelector('.route-left');
    transport.onRoute((value) => this.render(value));
    this.render(transport.route());
  }

  render({ now, nowTitle, trying, tryingTitle, left, note }) {
    if ((this.root.dataset.transportNow ?? '') !== (now ?? '')) {
      this.root.dataset.transportSince = String(Math.round(performance.now()));
    }
    this.root.dataset.transportNow = now ?? '';
    this.root.dataset.transportTrying = trying ?? '';
    this.now.textContent = nowTitle ?? 'nothing yet';
    this.trying.textContent = tryingTitle ? `, trying ${tryingTitle}…` : '';
    this.note.textContent = note;
    this.note.hidden = !note;
    this.left.replaceChildren(...left.map((entry) => {
      const item = document.createElement('li');
      item.dataset.left = '';
      item.dataset.transport = entry.transport;
      item.dataset.reason = entry.reason;
      const name = document.createElement('strong');
      name.textContent = entry.title;
      const time = document.createElement('time');
      const at = new Date(entry.at);
      time.dateTime = at.toISOString();
      time.textContent = at.toLocaleTimeString();
      item.append(name, `: ${entry.text} `, time);
      return item;
    }));
  }
}

/**
 * Which server instance answered the pane, shown only when several share
 * one log (`shared`: GET /api/config's answer named its instance in the
 * x-chat-instance header; a server on its own sends none). Polls, a
 * stream's fetch and POST sends can read the header; EventSource and
 * WebSocket cannot (the browser shows the page none of their headers), so
 * for those the instance they receive from is "hidden from the browser".
 * Tests read the pane's data-instance (the instance of its last answer
 * that named one) and data-instance-receive (the one its messages come
 * from, or `hidden`).
 */
export class InstanceLine {
  constructor(root, transport, shared) {
    this.root = root;
    this.transport = transport;
    this.line = root.querySelector('[data-instance-line]');
    this.line.hidden = !shared;
    this.shown = null;
    if (!shared) return;
    transport.onInstance(() => this.render());
    transport.onRoute?.(() => this.render());
    this.render();
  }

  render() {
    const { receive, send, last } = this.transport.instances;
    const hidden = this.transport.receiveHidden;
    const key = `${receive}|${send}|${hidden}`;
    this.root.dataset.instance = last ?? '';
    if (key === this.shown) return;
    this.shown = key;
    this.root.dataset.instanceReceive = hidden ? 'hidden' : receive ?? '';
    const parts = ['Instance: '];
    if (hidden) parts.push('hidden from the browser');
    else parts.push(code(receive ?? '…'));
    this.line.title = hidden
      ? 'EventSource and WebSocket show the page none of their response headers, so which instance this connection reached cannot be known here.'
      : 'The server instance that answered the last request (x-chat-instance).';
    if (send !== null && (hidden || send !== receive)) parts.push('; last send: ', code(send));
    this.line.replaceChildren(...parts);
  }
}

function code(text) {
  const element = document.createElement('code');
  element.textContent = text;
  return element;
}

/** Says so under the counters while a transport keeps failing to connect
 *  (two tries or more in a row): say, a WebSocket behind a proxy that
 *  strips the upgrade. `client` is the transport's stats(). */
export function showProblem(element, { failures, state }) {
  const stuck = failures >= 2 && (state === 'connecting' || state === 'reconnecting');
  const words = stuck ? `Cannot connect: ${failures} tries in a row failed.` : '';
  if (element.textContent !== words) element.textContent = words;
  element.hidden = !stuck;
}

/** A pane still connecting after this long says it is waiting. */
export const WAITING_AFTER_MS = 5000;

/** Marks a pane that has been connecting for WAITING_AFTER_MS without a
 *  connection (`on`), or clears the mark. A request the browser queues
 *  behind its connections to this server (six per server over HTTP/1.1,
 *  shared by every tab) does not fail: without this the pane would say
 *  "connecting" for ever. */
export function showWaiting(root, badge, on) {
  if (on) {
    root.dataset.waiting = 'true';
    badge.textContent = 'waiting for a connection';
    badge.title = 'No answer yet: the browser may be holding every connection it allows to '
      + 'this server for other panes or tabs (six per server over HTTP/1.1).';
  } else if (root.dataset.waiting) {
    delete root.dataset.waiting;
    badge.title = '';
  }
}

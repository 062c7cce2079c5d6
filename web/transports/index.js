// Every transport the page knows, in the order its panes are shown: the
// mount list of the web side. Each module describes itself (`static name`,
// `title`, `summary`, `options`; see common.js), so a new transport is one
// new module here and one line in this list. The page shows only those the
// server mounts (GET /api/config), and the Automatic pane, which rides on
// them, whenever there are at least two to choose from.

import { AutoTransport } from './auto.js';
import { LongPollTransport } from './longpoll.js';
import { PollingTransport } from './polling.js';
import { SseTransport } from './sse.js';
import { StreamTransport } from './stream.js';
import { WebSocketTransport } from './websocket.js';

export const TRANSPORTS = [
  PollingTransport,
  LongPollTransport,
  SseTransport,
  WebSocketTransport,
  StreamTransport,
  AutoTransport,
];

// Every transport the page knows, in the order its panes are shown: the
// mount list of the web side. Each module describes itself (`static name`,
// `title`, `summary`, `options`; see common.js), so a new transport is one
// new module here and one line in this list. The page shows only those the
// server mounts (GET /api/config).

import { PollingTransport } from './polling.js';
import { LongPollTransport } from './longpoll.js';
import { SseTransport } from './sse.js';
import { WebSocketTransport } from './websocket.js';

export const TRANSPORTS = [
  PollingTransport,
  LongPollTransport,
  SseTransport,
  WebSocketTransport,
];

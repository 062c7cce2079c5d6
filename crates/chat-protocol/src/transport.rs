//! The transports, by the names the wire, `/api/stats` and `via` use.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::message::Via;

/// One way of carrying the chat to a client. Adding a transport means a
/// variant here (its name and route), a crate that serves it, its line in
/// the demo's mount list and one web module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Regular polling: ask every interval, answered at once.
    Polling,
    /// HTTP long polling: the answer is held until there is news.
    Longpoll,
    /// Server-sent events: one response that never ends, parsed by the browser.
    Sse,
    /// WebSocket: one upgraded socket, frames both ways.
    Websocket,
    /// HTTP streaming (Comet): one response that never ends, a JSON line per
    /// message, read with `fetch` and a `ReadableStream`.
    Stream,
}

impl Transport {
    /// Every transport, in the order the page shows them.
    pub const ALL: [Transport; 5] = [
        Transport::Polling,
        Transport::Longpoll,
        Transport::Sse,
        Transport::Websocket,
        Transport::Stream,
    ];

    /// This transport's position in [`Transport::ALL`], for tables indexed
    /// by transport.
    pub fn index(self) -> usize {
        // ALL lists the variants in declaration order (tested below).
        self as usize
    }

    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Polling => "polling",
            Transport::Longpoll => "longpoll",
            Transport::Sse => "sse",
            Transport::Websocket => "websocket",
            Transport::Stream => "stream",
        }
    }

    /// The path a client subscribes on.
    pub fn route(self) -> &'static str {
        match self {
            Transport::Polling => "/polling/messages",
            Transport::Longpoll => "/longpoll/messages",
            Transport::Sse => "/sse/events",
            Transport::Websocket => "/ws",
            Transport::Stream => "/stream/messages",
        }
    }

    /// Whether a client of this transport sends with `POST /api/messages`
    /// (every transport but WebSocket, which sends over its own socket).
    pub fn sends_by_post(self) -> bool {
        self != Transport::Websocket
    }

    /// The `via` a message sent through this transport carries.
    pub fn via(self) -> Via {
        match self {
            Transport::Polling => Via::Polling,
            Transport::Longpoll => Via::Longpoll,
            Transport::Sse => Via::Sse,
            Transport::Websocket => Via::Websocket,
            Transport::Stream => Via::Stream,
        }
    }

    /// The transport a `via` names, if any (`api` names none).
    pub fn from_via(via: Via) -> Option<Transport> {
        Transport::ALL.into_iter().find(|t| t.via() == via)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no transport's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownTransport(pub String);

impl fmt::Display for UnknownTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Transport::ALL.iter().map(|t| t.as_str()).collect();
        write!(
            f,
            "no transport is named {:?} (one of: {})",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownTransport {}

impl FromStr for Transport {
    type Err = UnknownTransport;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Transport::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownTransport(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `index` is the position in `ALL`, and names parse back.
    #[test]
    fn index_and_names() {
        for (i, t) in Transport::ALL.into_iter().enumerate() {
            assert_eq!(t.index(), i);
            assert_eq!(t.as_str().parse::<Transport>(), Ok(t));
            assert_eq!(Transport::from_via(t.via()), Some(t));
        }
        assert!("carrier-pigeon".parse::<Transport>().is_err());
    }
}

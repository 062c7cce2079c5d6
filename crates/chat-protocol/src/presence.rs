//! Who is online: the body of `GET /api/presence`, and the list that push
//! transports send when it changes (SSE's `event: presence` data; the
//! `{"type":"presence",…}` item of WebSocket and streaming is
//! [`crate::Control::Presence`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::transport::Transport;

/// The most users a presence list names. Past it, the list holds the first
/// ones by name and `more` says how many were left out, so that one list
/// (and so one push to every subscriber) stays a few kilobytes, however many
/// people are online.
pub const MAX_LISTED: usize = 100;

/// One user who is online, and through which transports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPresence {
    /// The name, as a subscription gave it (trimmed, like a message's).
    pub user: String,
    /// Through which transports, in [`Transport::ALL`] order.
    pub transports: Vec<Transport>,
    /// For polling and long polling when no request of the user's is open
    /// right now: how long ago, in milliseconds, the last one was. Only in
    /// `GET /api/presence` (a pushed list would be stale the moment after).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub seen_ms_ago: BTreeMap<Transport, u64>,
}

/// A presence list: `{"users":[…]}`, with `"more":K` when [`MAX_LISTED`]
/// left `K` users out. The data of an SSE `presence` event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceList {
    /// The users online, by name, at most [`MAX_LISTED`].
    pub users: Vec<UserPresence>,
    /// Users online and not listed (0 when absent).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more: u64,
}

impl PresenceList {
    /// `{"users":[…]}`.
    pub fn to_json(&self) -> String {
        // Strings, integers and enums of strings always serialize.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The body of `GET /api/presence`:
/// `{"users":[…],"connections":N}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceBody {
    /// Who is online, as in [`PresenceList`] (with `seen_ms_ago`).
    pub users: Vec<UserPresence>,
    /// Users online and not listed (0 when absent).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more: u64,
    /// Subscriptions open on this server right now, named or not: SSE,
    /// WebSocket and streaming connections and held long polls (a regular
    /// poll is never open).
    pub connections: u64,
}

/// For `skip_serializing_if`.
pub(crate) fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Control;

    /// The list, the push item and the answer have the contract's shapes.
    #[test]
    fn shapes() {
        let ana = UserPresence {
            user: "ana".into(),
            transports: vec![Transport::Sse, Transport::Websocket],
            seen_ms_ago: BTreeMap::new(),
        };
        let list = PresenceList {
            users: vec![ana.clone()],
            more: 0,
        };
        assert_eq!(
            list.to_json(),
            r#"{"users":[{"user":"ana","transports":["sse","websocket"]}]}"#
        );
        let control = Control::Presence {
            users: vec![ana.clone()],
            more: 2,
        };
        assert_eq!(
            control.to_json(),
            r#"{"type":"presence","users":[{"user":"ana","transports":["sse","websocket"]}],"more":2}"#
        );
        let body = PresenceBody {
            users: vec![UserPresence {
                seen_ms_ago: BTreeMap::from([(Transport::Polling, 1200)]),
                transports: vec![Transport::Polling],
                ..ana
            }],
            more: 0,
            connections: 3,
        };
        assert_eq!(
            serde_json::to_string(&body).expect("serializes"),
            r#"{"users":[{"user":"ana","transports":["polling"],"seen_ms_ago":{"polling":1200}}],"connections":3}"#
        );
    }
}

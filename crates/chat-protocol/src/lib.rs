//! # chat-protocol: the wire contract, once, as types
//!
//! Every server, client, bench and test of this project speaks the contract
//! in `docs/protocol.md` through this crate, the way mini-redis keeps its
//! protocol in one `frame.rs`. Nothing else in the workspace writes a frame,
//! a body or a counter name by hand.
//!
//! - [`id`]: [`MessageId`] names a message; [`Cursor`] says "I have seen
//!   everything up to here". Every transport resumes from a cursor.
//! - [`message`]: the [`Message`] object and its one serialized form
//!   ([`MessageRef`]), [`Via`], and the body of a send ([`SendRequest`]).
//! - [`epoch`]: the [`Epoch`]: which numbering of ids a cursor belongs to.
//! - [`transport`]: the [`Transport`] enum: each transport's wire name and
//!   route. Adding a transport starts here.
//! - [`page`]: the body of a polling and long-polling answer
//!   (`{"messages":[…],"cursor":C}`), written around stored bytes and read
//!   back without re-encoding them.
//! - [`control`]: everything that is not a message: the control items of
//!   push transports ([`Control`]: gap, ack, error) and what a WebSocket
//!   client sends ([`ClientFrame`]). A message never has a `type` field; a
//!   control item always has one, which is how a reader tells them apart
//!   ([`Incoming::parse`]).
//! - [`presence`]: who is online: the body of `GET /api/presence` and the
//!   list push transports send when it changes ([`Control::Presence`]).
//! - [`stats`]: the body of `GET /api/stats` and `GET /api/config`.
//! - [`error`]: the body of every refusal, `{"error":{"code":…,"message":…}}`.
//! - [`limits`]: the numbers the contract fixes or defaults.
//!
//! The crate knows nothing about HTTP servers or clients: it is serde types
//! and a few byte-level writers, so the store, the servers, the clients and
//! the load generator can all depend on it.

pub mod control;
pub mod epoch;
pub mod error;
pub mod id;
pub mod limits;
pub mod message;
pub mod page;
pub mod presence;
pub mod stats;
pub mod transport;

pub use control::{ClientFrame, Control, Gap, Incoming, Reset};
pub use epoch::{Epoch, InvalidEpoch};
pub use error::ErrorBody;
pub use id::{Cursor, MessageId};
pub use message::{Message, MessageRef, SendRequest, Via};
pub use page::PageBody;
pub use presence::{PresenceBody, PresenceList, UserPresence};
pub use stats::{
    AccountingSnapshot, ConfigBody, CountersSnapshot, RefusalsSnapshot, StatsBody, StoreSnapshot,
    TlsSnapshot, TransportStats,
};
pub use transport::{Transport, UnknownTransport};

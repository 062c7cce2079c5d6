//! # chat-demo: all the transports on one port, over one store
//!
//! `cargo run --release` at the workspace root runs this crate's binary. It
//! mounts every transport crate's routes next to the shared endpoints of
//! `chat-http`, so a message sent through any of them reaches clients of all
//! of them, and the page at `/` shows them side by side.
//!
//! The list of transports is [`MOUNTS`]; the behaviour tests in `tests/`
//! start a server with the same list on port 0.

use chat_http::Mount;

/// Every transport the demo serves, in the order the page shows them.
pub const MOUNTS: &[Mount] = &[
    chat_polling::MOUNT,
    chat_longpoll::MOUNT,
    chat_sse::MOUNT,
    chat_websocket::MOUNT,
];

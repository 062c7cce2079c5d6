//! # chat-demo: all the transports on one port, over one store
//!
//! `cargo run --release` at the workspace root runs this crate's binary. It
//! mounts every transport crate's routes next to the shared endpoints of
//! `chat-http`, so a message sent through any of them reaches clients of all
//! of them, and the page at `/` shows them side by side.
//!
//! The list of transports is [`mounts`], the only place that names them all;
//! their settings are [`Settings`]. The behaviour tests in `tests/` start a
//! server with the same list on port 0.

use chat_http::Mount;

/// Every transport's own settings, flattened into the demo's command line.
#[derive(Debug, Clone, Default, clap::Args)]
#[group(id = "transports")]
pub struct Settings {
    /// Long polling.
    #[command(flatten)]
    pub longpoll: chat_longpoll::Settings,
    /// Server-sent events.
    #[command(flatten)]
    pub sse: chat_sse::Settings,
    /// WebSocket.
    #[command(flatten)]
    pub websocket: chat_websocket::Settings,
    /// HTTP streaming.
    #[command(flatten)]
    pub stream: chat_stream::Settings,
}

/// Every transport the demo serves, in the order the page shows them.
pub fn mounts(settings: Settings) -> Vec<Mount> {
    vec![
        chat_polling::mount(),
        chat_longpoll::mount(settings.longpoll),
        chat_sse::mount(settings.sse),
        chat_websocket::mount(settings.websocket),
        chat_stream::mount(settings.stream),
    ]
}

//! `chat-websocket`: the chat over WebSocket alone, with the shared
//! `POST /api/messages`, `GET /api/stats` and the page.
//!
//! Run with `cargo run -p chat-websocket -- --addr 127.0.0.1:8084`.

fn main() -> std::process::ExitCode {
    chat_http::run_binary(
        "chat-websocket",
        "The chat over WebSocket only",
        |settings| vec![chat_websocket::mount(settings)],
    )
}

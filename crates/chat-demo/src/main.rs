//! `chat-demo`: every transport on one port over one store, and the page.
//!
//! Run with `cargo run --release` (at the workspace root), then open
//! <http://127.0.0.1:8080>. `--help` lists every setting.

fn main() -> std::process::ExitCode {
    chat_http::run_binary(
        "chat-demo",
        "One chat, five transports: polling, long polling, SSE, WebSocket and HTTP streaming side by side",
        chat_demo::mounts,
    )
}

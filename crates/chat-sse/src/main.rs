//! `chat-sse`: the chat over server-sent events alone, with the shared
//! `POST /api/messages`, `GET /api/stats` and the page.
//!
//! Run with `cargo run -p chat-sse -- --addr 127.0.0.1:8083`.

fn main() -> std::process::ExitCode {
    chat_http::run_binary(
        "chat-sse",
        "The chat over server-sent events only",
        |settings| vec![chat_sse::mount(settings)],
    )
}

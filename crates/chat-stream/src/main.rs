//! `chat-stream`: the chat over HTTP streaming alone, with the shared
//! `POST /api/messages`, `GET /api/stats` and the page.
//!
//! Run with `cargo run -p chat-stream -- --addr 127.0.0.1:8085`.

fn main() -> std::process::ExitCode {
    chat_http::run_binary(
        "chat-stream",
        "The chat over HTTP streaming (Comet) only",
        |settings| vec![chat_stream::mount(settings)],
    )
}

//! `chat-polling`: the chat over regular polling alone, with the shared
//! `POST /api/messages`, `GET /api/stats` and the page.
//!
//! Run with `cargo run -p chat-polling -- --addr 127.0.0.1:8081`.

use chat_http::NoSettings;

fn main() -> std::process::ExitCode {
    chat_http::run_binary(
        "chat-polling",
        "The chat over regular polling only",
        |_: NoSettings| vec![chat_polling::mount()],
    )
}

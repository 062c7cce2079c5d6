//! `chat-longpoll`: the chat over HTTP long polling alone, with the shared
//! `POST /api/messages`, `GET /api/stats` and the page.
//!
//! Run with `cargo run -p chat-longpoll -- --addr 127.0.0.1:8082`.

fn main() -> std::process::ExitCode {
    chat_http::run_binary(
        "chat-longpoll",
        "The chat over HTTP long polling only",
        |settings| vec![chat_longpoll::mount(settings)],
    )
}

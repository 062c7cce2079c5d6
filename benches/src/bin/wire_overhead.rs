//! Bytes and requests per delivered message, per transport, from the
//! server's own counters (`/api/stats`).
//!
//! For each transport a fresh demo server gets one subscriber that runs the
//! whole time (polling every second, like the page; long polls held up to
//! 25 s), then:
//! - **steady**: `--messages` messages of about 100 bytes of JSON, one every
//!   `--every-ms` milliseconds (default 500);
//! - **burst**: the same number sent back to back.
//!
//! Sends go through `via: api`, so they are not counted under any transport:
//! what is left is the cost of *delivering*.
//!
//! Run with `cargo run --release -p chat-benches --bin wire_overhead`.

use std::time::Duration;

use chat_benches::{base_url, start_server};
use chat_client::{Client, Cursor, Event, Options, Transport, Via};

/// Text that makes a stored message about 100 bytes of JSON.
const TEXT: &str = "a message of the usual sort";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let messages: usize = flag("--messages")?.unwrap_or(40);
    let every = Duration::from_millis(flag("--every-ms")?.unwrap_or(500));
    println!(
        "| transport | scenario | messages | requests/msg | empty answers | bytes in/msg | bytes out/msg |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for transport in Transport::ALL {
        for burst in [false, true] {
            let server = start_server(chat_http::Config::default())?;
            let client = Client::new(base_url(&server));
            let mut sub = client.subscribe(
                transport,
                Options {
                    since: Some(Cursor(0)),
                    poll_interval: Duration::from_secs(1),
                    ..Options::default()
                },
            );
            let reader = tokio::spawn(async move {
                let mut delivered = 0;
                while delivered < messages {
                    if let Event::Message { .. } = sub.next().await? {
                        delivered += 1;
                    }
                }
                anyhow::Ok(())
            });
            for _ in 0..messages {
                client.send("bench", TEXT, None, Via::Api).await?;
                if !burst {
                    tokio::time::sleep(every).await;
                }
            }
            tokio::time::timeout(Duration::from_secs(60), reader).await???;
            let stats = client.stats().await?;
            let c = &stats["transports"][transport.as_str()];
            let per = |key: &str| c[key].as_f64().unwrap_or(0.0) / messages as f64;
            println!(
                "| {} | {} | {} | {:.2} | {} | {:.0} | {:.0} |",
                transport.as_str(),
                if burst {
                    "burst".to_owned()
                } else {
                    format!("one every {} ms", every.as_millis())
                },
                messages,
                per("requests"),
                c["empty_responses"],
                per("bytes_in"),
                per("bytes_out"),
            );
            server.shutdown().await?;
        }
    }
    Ok(())
}

/// The value after `name` on the command line, parsed.
fn flag<T: std::str::FromStr>(name: &str) -> anyhow::Result<Option<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    Ok(std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .map(|v| v.parse())
        .transpose()?)
}

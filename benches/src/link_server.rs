//! The page through a slow link: the demo server (or one already running)
//! behind a counting [`Relay`] that models a link, so a person can open the
//! relay's URL and watch each pane's latency at that round trip. The core of
//! `cargo run --release -p chat-benches --bin link`.

use std::net::SocketAddr;
use std::time::Duration;

use chat_http::RunningServer;

use crate::link::Link;
use crate::relay::Relay;

/// What to put in front of which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkOptions {
    /// The round trip: half of it each way.
    pub round_trip: Duration,
    /// Up to this much more per chunk, each way.
    pub jitter: Duration,
    /// Each direction's rate, bits per second; `None`: no limit.
    pub bits_per_second: Option<u64>,
    /// A server already running; `None`: start the demo server here.
    pub upstream: Option<SocketAddr>,
    /// Where the relay listens (port 0: any free port).
    pub listen: SocketAddr,
}

impl LinkOptions {
    /// One direction of the link these options describe.
    pub fn link(&self) -> Link {
        Link {
            delay: self.round_trip / 2,
            jitter: self.jitter,
            bits_per_second: self.bits_per_second,
        }
    }
}

/// The relay, and the demo server behind it when this started one.
pub struct LinkServer {
    /// The relay with the link model; what it counted is in its tally.
    pub relay: Relay,
    /// Where the relay forwards to.
    pub upstream: SocketAddr,
    link: Link,
    server: Option<RunningServer>,
}

impl LinkServer {
    /// Starts the demo server (unless `options.upstream` names one) and the
    /// relay in front of it.
    pub async fn start(options: LinkOptions) -> anyhow::Result<LinkServer> {
        let (server, upstream) = match options.upstream {
            Some(addr) => (None, addr),
            None => {
                let server = crate::start_server(chat_http::Config::default())?;
                let addr = server.addr;
                (Some(server), addr)
            }
        };
        let link = options.link();
        let relay = Relay::with_link(options.listen, upstream, link, link).await?;
        Ok(LinkServer {
            relay,
            upstream,
            link,
            server,
        })
    }

    /// One direction of the link in front of the server.
    pub fn link(&self) -> Link {
        self.link
    }

    /// The URL to open: the page through the link.
    pub fn url(&self) -> String {
        format!("{}/", self.relay.base_url())
    }

    /// Stops the relay, and the demo server if this started it.
    pub async fn stop(self) {
        drop(self.relay);
        if let Some(server) = self.server {
            chat_loadgen::server::shut_down(server).await;
        }
    }
}

//! `compare`'s section "Slow links": every transport at 0, 50 and 150 ms
//! round trip, with send-to-deliver p50/p99 and the bytes and requests each
//! message cost, at a realistic chat rate.
//!
//! One demo server; for each round trip and transport, one subscriber
//! behind its own counting [`Relay`] that models the link (half the round
//! trip each way, [`crate::link`]; no jitter, no bandwidth limit). All
//! fifteen subscribers listen at once, so they see the same messages at the
//! same moments. The sender sits on the server's side (straight to the
//! server, `via: api`), so the latency is the delivery path alone.
//! Messages come at random, one every 500 ms on average (exponential gaps,
//! a fixed seed, capped at 2 s), so some come close together, as in a
//! chat: that is where a transport that must ask again after each answer
//! pays a round trip. Polling polls every second, its default.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chat_client::{Client, Event, Options, Transport, Via};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::link::Link;
use crate::relay::{Counts, Relay};
use crate::wire::TEXT;
use crate::{base_url, stamp, start_server};

/// The heading of the section (and of its table) in `results.md`.
pub const HEADING: &str = "Slow links: latency by round trip";

/// The round trips measured, in ms.
pub const ROUND_TRIPS_MS: [u64; 3] = [0, 50, 150];

/// How many messages, how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Messages measured (after one for warming up).
    pub messages: u64,
    /// The mean gap between two messages.
    pub mean_gap: Duration,
}

/// A full run: 200 messages, about 100 s.
pub const FULL: Plan = Plan {
    messages: 200,
    mean_gap: Duration::from_millis(500),
};
/// `--quick`: 20 messages, about 10 s.
pub const QUICK: Plan = Plan {
    messages: 20,
    mean_gap: Duration::from_millis(500),
};

/// One transport at one round trip.
#[derive(Debug, Clone)]
pub struct LinkRun {
    /// The transport.
    pub transport: Transport,
    /// The round trip, ms.
    pub round_trip_ms: u64,
    /// Messages that reached the subscriber, of [`Plan::messages`].
    pub delivered: u64,
    /// Every delivery's send-to-deliver time, sorted.
    pub latencies: Vec<Duration>,
    /// What the relay counted after the warm-up.
    pub counts: Counts,
}

impl LinkRun {
    /// The `q` quantile of the latencies (nearest rank), in ms.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let rank = (q * self.latencies.len() as f64).ceil().max(1.0) as usize;
        self.latencies[rank.min(self.latencies.len()) - 1].as_secs_f64() * 1e3
    }

    fn per_message(&self, x: u64) -> f64 {
        x as f64 / self.delivered.max(1) as f64
    }
}

/// What one subscriber has received: message id, when.
type Log = Arc<Mutex<Vec<(u64, Instant)>>>;

/// One subscriber behind its link.
struct Listener {
    transport: Transport,
    round_trip_ms: u64,
    relay: Relay,
    log: Log,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    fn has(&self, id: u64) -> bool {
        lock(&self.log).iter().any(|(i, _)| *i == id)
    }
}

fn lock(log: &Log) -> std::sync::MutexGuard<'_, Vec<(u64, Instant)>> {
    log.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the section: every transport at every round trip, at once.
pub async fn measure(plan: Plan) -> anyhow::Result<Vec<LinkRun>> {
    let server = start_server(chat_http::Config::default())?;
    let since = server.state.store.newest();
    let mut listeners = Vec::new();
    for round_trip_ms in ROUND_TRIPS_MS {
        let link = Link::half_of(Duration::from_millis(round_trip_ms));
        for transport in Transport::ALL {
            let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
            let relay = Relay::with_link(listen, server.addr, link, link).await?;
            let mut sub = Client::new(relay.base_url()).subscribe(
                transport,
                Options {
                    since: Some(since),
                    poll_interval: Duration::from_secs(1),
                    wait_s: 25,
                    ..Options::default()
                },
            );
            let log = Log::default();
            let task = tokio::spawn({
                let log = log.clone();
                async move {
                    while let Ok(event) = sub.next().await {
                        if let Event::Message { message, .. } = event {
                            lock(&log).push((message.id.0, Instant::now()));
                        }
                    }
                }
            });
            listeners.push(Listener {
                transport,
                round_trip_ms,
                relay,
                log,
                task,
            });
        }
    }
    let sender = Client::new(base_url(&server));

    // Warm up: every subscriber connected and has one message.
    let first = sender.send("bench", TEXT, None, Via::Api).await?;
    let first = first.message.id.0;
    wait_until(Duration::from_secs(60), || {
        listeners.iter().all(|l| l.has(first))
    })
    .await
    .context("a subscriber did not get the warm-up message within 60 s")?;
    let before: Vec<Counts> = listeners.iter().map(|l| l.relay.tally.counts()).collect();

    let mut rng = StdRng::seed_from_u64(14);
    let mut sent: HashMap<u64, Instant> = HashMap::new();
    for _ in 0..plan.messages {
        let u: f64 = rng.random();
        let gap = plan
            .mean_gap
            .mul_f64(-(1.0 - u).ln())
            .min(4 * plan.mean_gap);
        tokio::time::sleep(gap).await;
        let start = Instant::now();
        let message = sender.send("bench", TEXT, None, Via::Api).await?.message;
        sent.insert(message.id.0, start);
    }
    let ids: Vec<u64> = sent.keys().copied().collect();
    let all_in = wait_until(Duration::from_secs(30), || {
        listeners.iter().all(|l| ids.iter().all(|id| l.has(*id)))
    })
    .await;
    if all_in.is_err() {
        eprintln!("links: not every message arrived within 30 s; counting what did");
    }

    let mut runs = Vec::new();
    for (listener, before) in listeners.iter().zip(before) {
        let counts = listener.relay.tally.counts().since(before);
        let mut latencies = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (id, at) in lock(&listener.log).iter() {
            if let Some(start) = sent.get(id)
                && seen.insert(*id)
            {
                latencies.push(at.saturating_duration_since(*start));
            }
        }
        latencies.sort();
        runs.push(LinkRun {
            transport: listener.transport,
            round_trip_ms: listener.round_trip_ms,
            delivered: latencies.len() as u64,
            latencies,
            counts,
        });
    }
    for listener in &listeners {
        listener.task.abort();
    }
    drop(listeners);
    server.shutdown().await?;
    // Rows by transport, then round trip.
    runs.sort_by_key(|r| {
        let order = Transport::ALL.iter().position(|t| *t == r.transport);
        (order, r.round_trip_ms)
    });
    Ok(runs)
}

/// Waits, checking every 10 ms, until `done` or `limit` has passed.
async fn wait_until(
    limit: Duration,
    done: impl Fn() -> bool,
) -> Result<(), tokio::time::error::Elapsed> {
    tokio::time::timeout(limit, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// The section in Markdown; `command` is the command line of the run and
/// `load` the one-minute load average at its start and end.
pub fn markdown(
    runs: &[LinkRun],
    plan: Plan,
    command: &str,
    load: [Option<f64>; 2],
) -> Result<String, std::fmt::Error> {
    let mut md = String::new();
    writeln!(md, "\n## {HEADING}\n")?;
    let load_text = match load {
        [Some(a), Some(b)] => format!(
            "; the one-minute load average was {a:.1} at the start and {b:.1} at the end, on {} cores{}",
            stamp::cores(),
            if a.max(b) >= 1.0 {
                ": the machine was not idle"
            } else {
                ""
            }
        ),
        _ => String::new(),
    };
    writeln!(
        md,
        "Measured by `{}` on {}, {} UTC{load_text}.\n",
        stamp::command_line(command),
        stamp::machine(),
        stamp::now_utc(),
    )?;
    writeln!(
        md,
        "| transport | round trip ms | delivered | p50 ms | p99 ms | bytes down/msg | \
         bytes up/msg | requests/msg |"
    )?;
    writeln!(
        md,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )?;
    for r in runs {
        writeln!(
            md,
            "| {} | {} | {}/{} | {:.2} | {:.2} | {:.1} | {:.1} | {:.3} |",
            r.transport.as_str(),
            r.round_trip_ms,
            r.delivered,
            plan.messages,
            r.quantile_ms(0.5),
            r.quantile_ms(0.99),
            r.per_message(r.counts.bytes_down),
            r.per_message(r.counts.bytes_up),
            r.per_message(r.counts.requests),
        )?;
    }
    writeln!(
        md,
        "\n![Send-to-deliver latency by round trip](results/latency_by_round_trip.svg)\n"
    )?;
    writeln!(
        md,
        "All {} subscribers (every transport at every round trip) listen to one server \
         at once, each through its own counting relay that holds every byte back by half \
         the round trip in each direction (no jitter, no bandwidth limit: \
         `benches/src/link.rs`). {} messages of 100 bytes of JSON are sent straight to the \
         server (`via: api`, not through a link), one every {} ms on average with \
         exponential gaps (capped at {} ms), so the latency is the delivery path alone: \
         from just before the send to the subscriber having the message. Polling polls \
         every second (a second after each answer), long polls are held up to 25 s. The \
         relay counts from after a warm-up message to the last delivery; requests include \
         polling's empty polls. A sender behind the same link would add one one-way delay \
         to every row.",
        ROUND_TRIPS_MS.len() * Transport::ALL.len(),
        plan.messages,
        plan.mean_gap.as_millis(),
        (4 * plan.mean_gap).as_millis(),
    )?;
    Ok(md)
}

/// `results_md` with its slow-links section replaced by `section` (which
/// starts with its `##` heading), or with `section` appended when it has
/// none: for `compare --links-only`, which leaves every other section as it
/// was.
pub fn splice(results_md: &str, section: &str) -> String {
    let heading = format!("\n## {HEADING}\n");
    let Some(start) = results_md.find(&heading) else {
        let mut out = results_md.trim_end().to_owned();
        out.push('\n');
        out.push_str(section);
        return out;
    };
    let after = start + heading.len();
    let end = results_md[after..]
        .find("\n## ")
        .map_or(results_md.len(), |i| after + i);
    let mut out = results_md[..start].trim_end().to_owned();
    out.push('\n');
    out.push_str(section.trim_end());
    out.push('\n');
    out.push_str(&results_md[end..]);
    out
}

/// The slow-links section: its runs and its Markdown.
pub async fn section(plan: Plan, command: &str) -> anyhow::Result<(Vec<LinkRun>, String)> {
    eprintln!(
        "slow links: every transport at {:?} ms round trip, {} messages",
        ROUND_TRIPS_MS, plan.messages
    );
    let load_before = stamp::load_average();
    let runs = measure(plan).await?;
    let load = [load_before, stamp::load_average()];
    let section = markdown(&runs, plan, command, load)?;
    Ok((runs, section))
}

/// `--links-only`: measures the slow-links section and splices it into the
/// existing results.md, then regenerates the docs' tables from it.
pub async fn only(out: &Path, plan: Plan, command: &str) -> anyhow::Result<()> {
    let (runs, section) = section(plan, command).await?;
    let path = out.join("results.md");
    let old = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Results\n".to_owned());
    std::fs::create_dir_all(out.join("results"))?;
    chart(&runs, &out.join("results/latency_by_round_trip.svg"))?;
    std::fs::write(&path, splice(&old, &section))
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote the slow-links section of {}", path.display());
    crate::tables::update_docs(out)?;
    Ok(())
}

/// Two panels, p50 and p99 against the round trip, one line per transport.
pub fn chart(runs: &[LinkRun], path: &Path) -> anyhow::Result<()> {
    use plotters::prelude::*;
    if runs.is_empty() {
        return Ok(());
    }
    let root = SVGBackend::new(path, (1000, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 2));
    let max_rtt = *ROUND_TRIPS_MS.iter().max().unwrap_or(&150) as f64;
    for (panel, (q, name)) in panels.iter().zip([(0.5, "p50"), (0.99, "p99")]) {
        // A log scale: polling's hundreds of ms and the push transports'
        // single ms on one chart.
        let values = || runs.iter().map(|r| r.quantile_ms(q)).filter(|v| *v > 0.0);
        let top = values().fold(1.0, f64::max) * 1.5;
        let bottom = values().fold(top, f64::min) / 1.5;
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!("Send-to-deliver {name} by round trip"),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(0.0..max_rtt * 1.05, (bottom..top).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("round trip, ms")
            .y_desc(format!("{name}, ms (log scale)"))
            .draw()?;
        for (i, transport) in Transport::ALL.iter().enumerate() {
            let colour = Palette99::pick(i).to_rgba();
            let points: Vec<(f64, f64)> = runs
                .iter()
                .filter(|r| r.transport == *transport)
                .map(|r| (r.round_trip_ms as f64, r.quantile_ms(q)))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?
                .label(transport.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
                });
            chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, colour.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{HEADING, splice};

    #[test]
    fn splicing_replaces_only_the_slow_links_section() {
        let section = format!("\n## {HEADING}\n\nnew table\n");
        let without = "# Results\n\n## Under load\n\nload table\n";
        let added = splice(without, &section);
        assert_eq!(
            added,
            format!("# Results\n\n## Under load\n\nload table\n\n## {HEADING}\n\nnew table\n")
        );
        let old = format!("# Results\n\n## {HEADING}\n\nold table\n\n## Several\n\nscale\n");
        let replaced = splice(&old, &section);
        assert_eq!(
            replaced,
            format!("# Results\n\n## {HEADING}\n\nnew table\n\n## Several\n\nscale\n")
        );
        // Replacing twice changes nothing more.
        assert_eq!(splice(&replaced, &section), replaced);
    }
}

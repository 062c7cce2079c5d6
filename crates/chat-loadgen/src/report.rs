//! The report: every subscriber's log added up ([`Report::tally`]), printed
//! as lines for a person and then as one Markdown table row for the docs.
//!
//! The printed format is a contract with `compare`, which runs `loadgen` as
//! a subprocess and reads its output back with [`parse_output`]: the row
//! (under [`TABLE_HEADER`] and [`TABLE_ALIGN`], which `compare` prints above
//! the rows it collects) and the server's memory per client once connected
//! (the `memory per client` line). Both sides live here, and a test renders
//! a report and parses it back.

use std::fmt::Write as _;
use std::time::Duration;

use chat_client::Transport;
use chat_protocol::CountersSnapshot;
use hdrhistogram::Histogram;

use crate::process::Sample;
use crate::sender::SenderLog;
use crate::subscriber::SubscriberLog;

/// Largest latency the histogram holds (one hour, in microseconds); larger
/// ones are recorded as this.
pub const LATENCY_MAX_US: u64 = 3_600_000_000;
/// Significant digits the histogram keeps.
pub const LATENCY_SIGFIGS: u8 = 3;
/// Below this share of `--rate`, the report says the sender fell behind.
pub const KEEPING_UP: f64 = 0.95;
/// The header of the table whose rows `loadgen` prints last.
pub const TABLE_HEADER: &str = "| transport | clients | msgs/s | sent | deliveries | deliveries/s \
     | p50 ms | p99 ms | max ms | lost | dup | out of order | bytes out/delivery \
     | server RSS MiB | KiB/client | server CPU s |";
/// The line under [`TABLE_HEADER`]: the first column left, the others right.
pub const TABLE_ALIGN: &str = "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: \
     | ---: | ---: | ---: | ---: | ---: | ---: | ---: |";
/// The start of the line with the server's memory per client.
const MEMORY_LINE: &str = "memory per client";

/// Everything measured, ready to print.
#[derive(Debug)]
pub struct Report {
    /// What every subscriber used.
    pub transport: Transport,
    /// `--clients`.
    pub clients: u32,
    /// `--rate`, messages per second asked for.
    pub rate: f64,
    /// The servers, when there were several (subscribers and sends were
    /// spread over them round-robin); empty for one.
    pub servers: Vec<String>,
    /// Messages the server confirmed storing.
    pub sent: u64,
    /// Sends that failed for good.
    pub send_errors: u64,
    /// The first failed send's error.
    pub send_error: Option<String>,
    /// How long sending took.
    pub send_time: Duration,
    /// How long ramping up took.
    pub ramp_time: Duration,
    /// How many subscribers the server saw connected then.
    pub connected: u64,
    /// `sent × clients`.
    pub expected: u64,
    /// Deliveries of confirmed messages, duplicates included.
    pub received: u64,
    /// From the first send to the last delivery.
    pub delivery_time: Duration,
    /// Send-to-delivery times, in microseconds.
    pub latency: Histogram<u64>,
    /// Stored messages a subscriber never received, summed over subscribers.
    pub lost: u64,
    /// Extra receipts of a message, summed over subscribers.
    pub duplicated: u64,
    /// Messages whose id was not above the previous one's.
    pub out_of_order: u64,
    /// Messages the subscribers were told they missed (gap notices).
    pub gap_missed: u64,
    /// Reset notices the subscribers got (the server's store started again).
    pub resets: u64,
    /// Failed requests or connections the clients retried.
    pub reconnects: u64,
    /// Subscribers that ended with an error.
    pub failed_subscribers: u64,
    /// The first of those errors.
    pub subscriber_error: Option<String>,
    /// Counter growth while messages flowed, if the server told.
    pub traffic: Option<CountersSnapshot>,
    /// Server process figures, when a pid is known.
    pub process: Option<ProcessReport>,
}

/// The server process at the start, once everyone connected, and at the end
/// (several server processes: their samples added up).
#[derive(Debug, Clone)]
pub struct ProcessReport {
    /// The server's process (or processes).
    pub pids: Vec<u32>,
    /// Whether that is this process (server and load generator in one).
    pub in_process: bool,
    /// Before the first subscriber.
    pub start: Sample,
    /// Once everyone connected.
    pub connected: Sample,
    /// After the last delivery, connections still open.
    pub end: Sample,
    /// Clock ticks per second of [`Sample::cpu_ticks`].
    pub clock_ticks: u64,
}

impl ProcessReport {
    /// CPU seconds (user + system) spent over the run.
    pub fn cpu_seconds(&self) -> f64 {
        self.end.cpu_ticks.saturating_sub(self.start.cpu_ticks) as f64 / self.clock_ticks as f64
    }

    /// RSS growth between two samples, per client, in KiB.
    pub fn kib_per_client(from: Sample, to: Sample, clients: u32) -> f64 {
        (to.rss_kib as f64 - from.rss_kib as f64) / f64::from(clients)
    }
}

impl Report {
    /// An empty latency histogram with the report's bounds.
    pub fn latency_histogram() -> Result<Histogram<u64>, hdrhistogram::CreationError> {
        Histogram::new_with_bounds(1, LATENCY_MAX_US, LATENCY_SIGFIGS)
    }

    /// Adds up every subscriber's log: deliveries, latency, lost,
    /// duplicated and out-of-order messages, and the delivery time.
    pub fn tally(&mut self, sent: &SenderLog, logs: &[Result<SubscriberLog, String>]) {
        // How often each message reached the subscriber at hand (index: seq).
        let mut seen = vec![0u32; sent.stored.len()];
        let mut last_delivery_us = sent.first_send_us;
        for log in logs {
            let log = match log {
                Ok(log) => log,
                Err(e) => {
                    // Nothing is known of what it received: count it all lost.
                    self.failed_subscribers += 1;
                    self.subscriber_error.get_or_insert_with(|| e.clone());
                    self.lost += sent.stored();
                    continue;
                }
            };
            if let Some(e) = &log.error {
                self.failed_subscribers += 1;
                self.subscriber_error.get_or_insert_with(|| e.clone());
            }
            seen.fill(0);
            for delivery in &log.deliveries {
                let seq = delivery.seq as usize;
                if sent.stored.get(seq) == Some(&true) {
                    seen[seq] += 1;
                    self.received += 1;
                    self.latency
                        .saturating_record(u64::from(delivery.latency_us).max(1));
                }
            }
            for (count, &stored) in seen.iter().zip(&sent.stored) {
                if stored {
                    match count {
                        0 => self.lost += 1,
                        n => self.duplicated += u64::from(n - 1),
                    }
                }
            }
            self.out_of_order += log.out_of_order;
            self.gap_missed += log.gap_missed;
            self.resets += log.resets;
            self.reconnects += log.reconnects;
            last_delivery_us = last_delivery_us.max(log.last_delivery_us);
        }
        self.delivery_time = Duration::from_micros(last_delivery_us - sent.first_send_us);
    }

    /// No message lost or duplicated, and every send stored. Messages that
    /// a reset took away are reported, not failed: the server said so.
    pub fn passed(&self) -> bool {
        (self.lost == 0 || self.resets > 0) && self.duplicated == 0 && self.send_errors == 0
    }

    /// Messages stored per second while sending.
    pub fn send_rate(&self) -> f64 {
        self.sent as f64 / self.send_time.as_secs_f64().max(f64::EPSILON)
    }

    /// Deliveries from the first send to the last delivery, per second.
    pub fn deliveries_per_second(&self) -> f64 {
        self.received as f64 / self.delivery_time.as_secs_f64().max(f64::EPSILON)
    }

    /// The transport's bytes out per message delivered, from the server's
    /// counters.
    pub fn bytes_per_delivery(&self) -> Option<f64> {
        self.traffic
            .filter(|t| t.messages_delivered > 0)
            .map(|t| t.bytes_out as f64 / t.messages_delivered as f64)
    }

    /// Latency at `quantile` (or the maximum), in milliseconds.
    pub fn latency_ms(&self, quantile: Option<f64>) -> f64 {
        let us = match quantile {
            Some(q) => self.latency.value_at_quantile(q),
            None => self.latency.max(),
        };
        us as f64 / 1000.0
    }

    /// Prints [`Report::render`] on stdout.
    pub fn print(&self) {
        print!("{}", self.render());
    }

    /// The report, then its Markdown table row (with the header).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_lines(&mut out);
        let _ = self.write_table(&mut out);
        out
    }

    /// The lines for a person.
    fn write_lines(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out)?;
        writeln!(out, "transport            {}", self.transport.as_str())?;
        writeln!(
            out,
            "clients              {} ({} connected after {:.1} s of ramp-up)",
            self.clients,
            self.connected,
            self.ramp_time.as_secs_f64()
        )?;
        if !self.servers.is_empty() {
            let n = self.servers.len() as u32;
            let listed: Vec<String> = (0..n)
                .zip(&self.servers)
                .map(|(i, base)| {
                    // Subscriber j went to server j % n.
                    let on_it = self.clients / n + u32::from(i < self.clients % n);
                    format!("{base} ({on_it})")
                })
                .collect();
            writeln!(
                out,
                "servers              {n} sharing one log, subscribers and sends round-robin: {}",
                listed.join(", ")
            )?;
        }
        writeln!(
            out,
            "messages sent        {} in {:.1} s ({:.1}/s, {} asked)",
            self.sent,
            self.send_time.as_secs_f64(),
            self.send_rate(),
            self.rate
        )?;
        if self.send_rate() < self.rate * KEEPING_UP {
            writeln!(
                out,
                "                     the sender could not keep up: each send waits for the \
                 last, so the server (or this machine) is saturated at this load"
            )?;
        }
        if let Some(e) = &self.send_error {
            writeln!(
                out,
                "send errors          {} (first: {e})",
                self.send_errors
            )?;
        }
        writeln!(
            out,
            "deliveries           {} of {} expected, {:.0}/s",
            self.received,
            self.expected,
            self.deliveries_per_second()
        )?;
        writeln!(
            out,
            "latency              p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.latency_ms(Some(0.5)),
            self.latency_ms(Some(0.99)),
            self.latency_ms(None)
        )?;
        writeln!(
            out,
            "lost / dup / order   {} lost, {} duplicated, {} out of order",
            self.lost, self.duplicated, self.out_of_order
        )?;
        writeln!(
            out,
            "client retries       {} reconnects, {} messages reported missed by gap notices",
            self.reconnects, self.gap_missed
        )?;
        if self.resets > 0 {
            writeln!(
                out,
                "store resets         {} reset notices: the server's ids started again during \
                 the run, so the old log's messages are gone (counted as lost above, by the \
                 server's word, not the transport's fault)",
                self.resets
            )?;
        }
        if let Some(e) = &self.subscriber_error {
            writeln!(
                out,
                "subscriber errors    {} (first: {e})",
                self.failed_subscribers
            )?;
        }
        if let Some(traffic) = &self.traffic {
            writeln!(
                out,
                "server counters      {} requests, {} deliveries, {} bytes out{}",
                traffic.requests,
                traffic.messages_delivered,
                traffic.bytes_out,
                match self.bytes_per_delivery() {
                    Some(b) => format!(" ({b:.0} per delivery)"),
                    None => String::new(),
                }
            )?;
        }
        if let Some(p) = &self.process {
            let pids: Vec<String> = p.pids.iter().map(u32::to_string).collect();
            writeln!(
                out,
                "{} {}{}: RSS {} -> {} -> {} KiB (start, connected, end), \
                 {:.2} CPU s (clock ticks {}/s)",
                if p.pids.len() > 1 {
                    "server processes     pids"
                } else {
                    "server process       pid"
                },
                pids.join(" + "),
                if p.in_process {
                    " (this process: server and load generator)"
                } else if p.pids.len() > 1 {
                    " (added up)"
                } else {
                    ""
                },
                p.start.rss_kib,
                p.connected.rss_kib,
                p.end.rss_kib,
                p.cpu_seconds(),
                p.clock_ticks
            )?;
            writeln!(
                out,
                "{MEMORY_LINE}    {:.1} KiB over the run, {:.1} KiB once connected",
                ProcessReport::kib_per_client(p.start, p.end, self.clients),
                ProcessReport::kib_per_client(p.start, p.connected, self.clients)
            )?;
        }
        Ok(())
    }

    /// The table: header, alignment and this run's row.
    fn write_table(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out)?;
        writeln!(out, "{TABLE_HEADER}")?;
        writeln!(out, "{TABLE_ALIGN}")?;
        let (rss, per_client, cpu) = match &self.process {
            Some(p) => (
                format!("{:.1}", p.end.rss_kib as f64 / 1024.0),
                format!(
                    "{:.1}",
                    ProcessReport::kib_per_client(p.start, p.end, self.clients)
                ),
                format!("{:.2}", p.cpu_seconds()),
            ),
            None => ("–".into(), "–".into(), "–".into()),
        };
        writeln!(
            out,
            "| {} | {} | {} | {} | {}/{} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} \
             | {rss} | {per_client} | {cpu} |",
            self.transport.as_str(),
            self.clients,
            self.rate,
            self.sent,
            self.received,
            self.expected,
            self.deliveries_per_second(),
            self.latency_ms(Some(0.5)),
            self.latency_ms(Some(0.99)),
            self.latency_ms(None),
            self.lost,
            self.duplicated,
            self.out_of_order,
            self.bytes_per_delivery()
                .map_or_else(|| "–".into(), |b| format!("{b:.0}")),
        )
    }
}

/// What `compare` keeps of one `loadgen` run's output.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedOutput {
    /// The Markdown table row.
    pub row: String,
    /// Server memory per client once every client was connected, in KiB
    /// (only when the server's pid was known).
    pub kib_per_client_connected: Option<f64>,
}

/// Reads back what [`Report::render`] printed for `transport`; `None` when
/// there is no table row (the run failed before its report).
pub fn parse_output(stdout: &str, transport: Transport) -> Option<ParsedOutput> {
    let row_start = format!("| {} |", transport.as_str());
    let row = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with(&row_start))?
        .to_owned();
    let kib_per_client_connected = stdout
        .lines()
        .find_map(|l| l.strip_prefix(MEMORY_LINE))
        .and_then(|l| l.split(',').nth(1))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    Some(ParsedOutput {
        row,
        kib_per_client_connected,
    })
}

/// The figures of one table row that `compare` puts in tables of its own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowFigures {
    /// Messages stored.
    pub sent: u64,
    /// Deliveries per second.
    pub deliveries_per_second: f64,
    /// Median send-to-deliver latency, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Lost messages, summed over subscribers.
    pub lost: u64,
    /// Duplicated ones.
    pub duplicated: u64,
}

impl ParsedOutput {
    /// [`row_figures`] of this output's row.
    pub fn figures(&self) -> Option<RowFigures> {
        row_figures(&self.row)
    }
}

/// Reads a row under [`TABLE_HEADER`] back into numbers, finding each
/// column by its name in the header; `None` if the row does not fit it.
pub fn row_figures(row: &str) -> Option<RowFigures> {
    let cells = |line: &'static str| -> Vec<&'static str> {
        line.trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect()
    };
    let header = cells(TABLE_HEADER);
    let values: Vec<&str> = row
        .trim()
        .trim_matches('|')
        .split('|')
        .map(str::trim)
        .collect();
    if values.len() != header.len() {
        return None;
    }
    let cell = |name: &str| -> Option<&str> {
        let i = header.iter().position(|h| *h == name)?;
        values.get(i).copied()
    };
    Some(RowFigures {
        sent: cell("sent")?.parse().ok()?,
        deliveries_per_second: cell("deliveries/s")?.parse().ok()?,
        p50_ms: cell("p50 ms")?.parse().ok()?,
        p99_ms: cell("p99 ms")?.parse().ok()?,
        lost: cell("lost")?.parse().ok()?,
        duplicated: cell("dup")?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests;

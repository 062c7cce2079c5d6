//! The chaos report: every subscriber's log added up per transport, checked
//! against what the sender stored, and printed as a Markdown table.

use std::fmt::Write as _;
use std::time::Duration;

use chat_client::Transport;
use chat_protocol::CountersSnapshot;

use super::subscriber::ChaosLog;
use crate::sender::SenderLog;

/// The header of the per-transport table.
pub const TABLE_HEADER: &str = "| transport | subscribers | forced disconnects | closes (FIN) \
     | resets (RST) | connections | server requests | deliveries | lost | duplicated \
     | reorders |";
/// The line under [`TABLE_HEADER`].
pub const TABLE_ALIGN: &str =
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |";

/// One transport's share of the run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportRow {
    /// Subscribers on it.
    pub subscribers: u64,
    /// Connections they closed (FIN).
    pub forced_closes: u64,
    /// Connections they reset (RST).
    pub forced_resets: u64,
    /// Connections the server answered.
    pub connections: u64,
    /// Connections the server ended by itself.
    pub ended_by_server: u64,
    /// This run's messages received, repeats included.
    pub deliveries: u64,
    /// Stored messages some subscriber never received (summed).
    pub lost: u64,
    /// Extra copies received (summed).
    pub duplicated: u64,
    /// Messages whose id was not above the previous one's.
    pub reorders: u64,
    /// Messages gap notices said were missed.
    pub gap_missed: u64,
    /// Reset notices.
    pub resets: u64,
    /// Failed opens and contract breaks.
    pub failures: u64,
    /// The first of those.
    pub first_failure: Option<String>,
    /// Requests the server counted for this transport during the run.
    pub server_requests: u64,
    /// Connections the server still counted open after the subscribers
    /// stopped, above what it had before the run.
    pub server_open_after: u64,
}

impl TransportRow {
    /// Forced disconnects of both kinds.
    pub fn forced(&self) -> u64 {
        self.forced_closes + self.forced_resets
    }
}

/// The whole chaos run.
#[derive(Debug, Clone)]
pub struct ChaosReport {
    /// Per transport, in [`Transport::ALL`] order.
    pub rows: Vec<(Transport, TransportRow)>,
    /// Messages the server confirmed storing.
    pub sent: u64,
    /// Sends that failed for good.
    pub send_errors: u64,
    /// The first of those.
    pub send_error: Option<String>,
    /// From the first send to the end of the drain.
    pub elapsed: Duration,
    /// The seed the connections' lives were drawn from.
    pub seed: u64,
    /// TCP resets this machine sent during the run (`OutRsts` in
    /// `/proc/net/snmp`), at least the forced resets if those were real.
    pub rst_segments: Option<u64>,
}

impl ChaosReport {
    /// Adds up `logs` per transport against what `sender` stored.
    /// `traffic` is each transport's counter growth on the server and its
    /// `open` count after the run over the one before.
    pub fn tally(
        sender: &SenderLog,
        logs: &[ChaosLog],
        traffic: &[(Transport, CountersSnapshot, u64)],
        elapsed: Duration,
        seed: u64,
    ) -> Self {
        let mut rows: Vec<(Transport, TransportRow)> = Transport::ALL
            .iter()
            .filter(|t| logs.iter().any(|log| log.transport == **t))
            .map(|t| (*t, TransportRow::default()))
            .collect();
        for log in logs {
            let Some((_, row)) = rows.iter_mut().find(|(t, _)| *t == log.transport) else {
                continue;
            };
            let mut copies = vec![0u32; sender.stored.len()];
            for &seq in &log.seqs {
                if let Some(n) = copies.get_mut(seq as usize) {
                    *n += 1;
                }
            }
            for (n, stored) in copies.iter().zip(&sender.stored) {
                match (*stored, *n) {
                    (true, 0) => row.lost += 1,
                    (_, n) if n > 1 => row.duplicated += u64::from(n - 1),
                    _ => {}
                }
            }
            row.subscribers += 1;
            row.forced_closes += log.forced_closes;
            row.forced_resets += log.forced_resets;
            row.connections += log.connections;
            row.ended_by_server += log.ended_by_server;
            row.deliveries += log.seqs.len() as u64;
            row.reorders += log.reorders;
            row.gap_missed += log.gap_missed;
            row.resets += log.resets;
            row.failures += log.failures;
            if row.first_failure.is_none() {
                row.first_failure.clone_from(&log.first_failure);
            }
        }
        for (transport, growth, open_after) in traffic {
            if let Some((_, row)) = rows.iter_mut().find(|(t, _)| t == transport) {
                row.server_requests = growth.requests;
                row.server_open_after = *open_after;
            }
        }
        ChaosReport {
            rows,
            sent: sender.stored(),
            send_errors: sender.errors,
            send_error: sender.first_error.clone(),
            elapsed,
            seed,
            rst_segments: None,
        }
    }

    /// Every transport added up.
    pub fn total(&self) -> TransportRow {
        let mut total = TransportRow::default();
        for (_, row) in &self.rows {
            total.subscribers += row.subscribers;
            total.forced_closes += row.forced_closes;
            total.forced_resets += row.forced_resets;
            total.connections += row.connections;
            total.ended_by_server += row.ended_by_server;
            total.deliveries += row.deliveries;
            total.lost += row.lost;
            total.duplicated += row.duplicated;
            total.reorders += row.reorders;
            total.gap_missed += row.gap_missed;
            total.resets += row.resets;
            total.failures += row.failures;
            total.server_requests += row.server_requests;
            total.server_open_after += row.server_open_after;
        }
        total
    }

    /// Whether the run passed: messages were stored and none failed; no
    /// message was lost, repeated or out of order; no gap or reset notice;
    /// every transport was really disconnected.
    pub fn passed(&self) -> bool {
        let total = self.total();
        self.sent > 0
            && self.send_errors == 0
            && total.lost == 0
            && total.duplicated == 0
            && total.reorders == 0
            && total.gap_missed == 0
            && total.resets == 0
            && self.rows.iter().all(|(_, row)| row.forced() > 0)
    }

    /// The per-transport table, with a row for all of them.
    pub fn table(&self) -> String {
        let mut out = format!("{TABLE_HEADER}\n{TABLE_ALIGN}\n");
        for (transport, row) in &self.rows {
            let _ = writeln!(out, "{}", table_row(transport.as_str(), row));
        }
        let _ = writeln!(out, "{}", table_row("**all**", &self.total()));
        out
    }

    /// The report as printed: a summary, the table, and what went wrong.
    pub fn render(&self) -> String {
        let total = self.total();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "chaos: {} messages stored in {:.1} s; {} forced disconnects ({} closes, {} resets) \
             over {} connections; lost {}, duplicated {}, reorders {}; seed {}",
            self.sent,
            self.elapsed.as_secs_f64(),
            total.forced(),
            total.forced_closes,
            total.forced_resets,
            total.connections,
            total.lost,
            total.duplicated,
            total.reorders,
            self.seed,
        );
        if let Some(rsts) = self.rst_segments {
            let _ = writeln!(
                out,
                "TCP resets sent on this machine during the run (OutRsts, /proc/net/snmp): {rsts}"
            );
        }
        out.push_str(&self.table());
        if self.send_errors > 0 {
            let _ = writeln!(
                out,
                "send errors: {} (first: {})",
                self.send_errors,
                self.send_error.as_deref().unwrap_or("?")
            );
        }
        for (transport, row) in &self.rows {
            if row.failures > 0 {
                let _ = writeln!(
                    out,
                    "{}: {} failed connections (first: {})",
                    transport.as_str(),
                    row.failures,
                    row.first_failure.as_deref().unwrap_or("?")
                );
            }
            if row.gap_missed > 0 || row.resets > 0 {
                let _ = writeln!(
                    out,
                    "{}: gap notices for {} messages, {} reset notices",
                    transport.as_str(),
                    row.gap_missed,
                    row.resets
                );
            }
            if row.server_open_after > 0 {
                let _ = writeln!(
                    out,
                    "{}: the server still counts {} connections open",
                    transport.as_str(),
                    row.server_open_after
                );
            }
        }
        let _ = writeln!(out, "{}", if self.passed() { "PASSED" } else { "FAILED" });
        out
    }
}

/// One row of the table.
fn table_row(name: &str, row: &TransportRow) -> String {
    format!(
        "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        row.subscribers,
        row.forced(),
        row.forced_closes,
        row.forced_resets,
        row.connections,
        row.server_requests,
        row.deliveries,
        row.lost,
        row.duplicated,
        row.reorders,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(transport: Transport, seqs: &[u32]) -> ChaosLog {
        ChaosLog {
            transport,
            seqs: seqs.to_vec(),
            reorders: 0,
            gap_missed: 0,
            resets: 0,
            connections: 3,
            forced_closes: 1,
            forced_resets: 1,
            ended_by_server: 0,
            failures: 0,
            first_failure: None,
        }
    }

    /// A missing message counts as lost, an extra copy as duplicated, and
    /// either fails the run; a message whose send failed is not lost.
    #[test]
    fn lost_and_duplicated_are_counted() {
        let sender = SenderLog {
            stored: vec![true, true, false, true],
            errors: 0,
            first_error: None,
            first_send_us: 0,
            elapsed: Duration::ZERO,
        };
        let clean = [log(Transport::Sse, &[0, 1, 3])];
        let report = ChaosReport::tally(&sender, &clean, &[], Duration::ZERO, 7);
        assert_eq!(report.total().lost, 0);
        assert!(report.passed(), "{}", report.render());

        let broken = [
            log(Transport::Sse, &[0, 1, 1, 3]),
            log(Transport::Websocket, &[0, 3]),
        ];
        let report = ChaosReport::tally(&sender, &broken, &[], Duration::ZERO, 7);
        let rows: Vec<_> = report.rows.iter().map(|(t, r)| (*t, r.clone())).collect();
        assert_eq!(rows[0].0, Transport::Sse);
        assert_eq!(rows[0].1.duplicated, 1);
        assert_eq!(rows[1].1.lost, 1);
        assert_eq!(report.total().forced(), 4);
        assert!(!report.passed());
        assert!(report.render().contains("| **all** | 2 | 4 | 2 | 2 | 6 |"));
    }
}

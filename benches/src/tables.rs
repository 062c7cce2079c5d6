//! The tables of `docs/comparison.md`, and the decision guide it shares with
//! `README.md`, generated from `docs/results.md`.
//!
//! `compare` writes `results.md`, then calls [`update_docs`], which rewrites
//! only what sits between `<!-- table:NAME begin -->` and
//! `<!-- table:NAME end -->` in `comparison.md` (in the same folder as
//! `results.md`) and in `README.md` (the folder above it, when it has such
//! markers), and leaves the prose around them alone. Every figure in a block
//! is read back from the text of `results.md`, so the docs say what
//! `results.md` says, digit for digit. The docs test
//! (`crates/chat-demo/tests/suite/docs.rs`) checks the same from the other
//! side, with a parser of its own, and fails when they drift apart.
//!
//! The blocks:
//! - `wire`, `idle`, `memory`, `links`: `results.md`'s tables of the same
//!   subject, copied whole;
//! - `load`: `results.md`'s load table, with fewer columns;
//! - `decision`: per transport, the idle row × 10,000 (computed from one
//!   client's minute, not measured with 10,000 clients), the p50 latency at
//!   1,000 clients, the p50 latency at 50 ms round trip (the slow-links
//!   section), and two columns of text that no run of `compare`
//!   measures: sticky sessions and the nginx setups of the proxy tests.
//!
//! A table `results.md` does not have (the load runs are skipped with
//! `--no-load`) becomes one line saying so, never an old table.

use std::path::{Path, PathBuf};

use anyhow::Context;
use chat_client::Transport;

/// The heading above the wire table in `results.md`.
pub const WIRE: &str = "Wire overhead per delivered message";
/// The heading above the idle table in `results.md`.
pub const IDLE: &str = "The cost of waiting: an idle client";
/// The heading above the load table in `results.md`.
pub const LOAD: &str = "Under load";
/// The heading above the memory-per-connection table in `results.md`.
pub const MEMORY: &str = "Server memory per connection, once connected";
/// The heading above the slow-links table in `results.md`.
pub const LINKS: &str = crate::links::HEADING;

/// The columns of the load table that `comparison.md` shows.
const LOAD_COLUMNS: [&str; 9] = [
    "transport",
    "clients",
    "msgs/s",
    "sent",
    "deliveries/s",
    "p50 ms",
    "p99 ms",
    "bytes out/delivery",
    "server CPU s",
];

/// The idle figures are one client's; the decision guide shows this many.
pub const IDLE_CLIENTS: f64 = 10_000.0;

/// The load runs whose latency the decision guide shows.
const LATENCY_CLIENTS: &str = "1000";

/// The round trip, ms, of the slow-link runs whose latency the decision
/// guide shows.
const LATENCY_ROUND_TRIP: &str = "50";

/// One Markdown table and the heading it sits under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The nearest heading above, without its `#`s.
    pub heading: String,
    /// The header cells.
    pub header: Vec<String>,
    /// The alignment cells (`---`, `---:`).
    pub align: Vec<String>,
    /// The body rows' cells.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// The index of the column named `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// The first row whose first cell is `label` and, if `clients` is given,
    /// whose `clients` cell is that.
    pub fn row(&self, label: &str, clients: Option<&str>) -> Option<&[String]> {
        let clients_at = self.column("clients");
        self.rows
            .iter()
            .find(|r| {
                r.first().is_some_and(|c| c == label)
                    && match (clients, clients_at) {
                        (None, _) => true,
                        (Some(n), Some(i)) => r.get(i).is_some_and(|c| c == n),
                        (Some(_), None) => false,
                    }
            })
            .map(Vec::as_slice)
    }

    /// The table as Markdown, without a trailing newline.
    pub fn render(&self) -> String {
        let line = |cells: &[String]| format!("| {} |", cells.join(" | "));
        let mut lines = vec![line(&self.header), line(&self.align)];
        lines.extend(self.rows.iter().map(|r| line(r)));
        lines.join("\n")
    }

    /// The same table with only `columns`, in that order.
    fn project(&self, columns: &[&str]) -> anyhow::Result<Table> {
        let at: Vec<usize> = columns
            .iter()
            .map(|c| {
                self.column(c)
                    .with_context(|| format!("no column {c:?} under {:?}", self.heading))
            })
            .collect::<anyhow::Result<_>>()?;
        let pick = |cells: &[String]| {
            at.iter()
                .map(|&i| cells.get(i).cloned().unwrap_or_default())
                .collect()
        };
        Ok(Table {
            heading: self.heading.clone(),
            header: pick(&self.header),
            align: pick(&self.align),
            rows: self.rows.iter().map(|r| pick(r)).collect(),
        })
    }
}

/// Every table in a Markdown text, with the heading each sits under.
pub fn parse(markdown: &str) -> Vec<Table> {
    let cells = |line: &str| -> Vec<String> {
        let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
        inner.split('|').map(|c| c.trim().to_owned()).collect()
    };
    let mut tables = Vec::new();
    let mut heading = String::new();
    let mut lines = markdown.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') {
            heading = trimmed.trim_start_matches('#').trim().to_owned();
            continue;
        }
        let is_table = trimmed.starts_with('|')
            && lines.peek().is_some_and(|next| {
                next.trim().starts_with("| ---") || next.trim().starts_with("|---")
            });
        if !is_table {
            continue;
        }
        let header = cells(trimmed);
        let align = cells(lines.next().unwrap_or_default());
        let mut rows = Vec::new();
        while let Some(next) = lines.peek().filter(|l| l.trim().starts_with('|')) {
            rows.push(cells(next));
            lines.next();
        }
        tables.push(Table {
            heading: heading.clone(),
            header,
            align,
            rows,
        });
    }
    tables
}

/// The table under `heading`.
pub fn section<'a>(tables: &'a [Table], heading: &str) -> Option<&'a Table> {
    tables.iter().find(|t| t.heading == heading)
}

/// What a block shows when `results.md` has no table under `heading`.
fn missing(heading: &str) -> String {
    format!(
        "*Not in `docs/results.md` yet: the run of `compare` that wrote it had no \
         \"{heading}\" table (`--no-load` skips the load runs, `--no-links` the slow \
         links).*"
    )
}

/// The decision guide's cells that no run of `compare` measures: sticky
/// sessions (none needed with a shared log and cursors: the scale tests,
/// `crates/chat-demo/tests/suite/scale.rs`) and the three nginx setups of
/// the proxy tests (`crates/chat-demo/tests/suite/proxy.rs`): *passes*,
/// *refused* and *held back* are what a test proves; *expected* is what the
/// configuration is meant to do, with no test of that transport through it.
fn described(transport: Transport) -> [&'static str; 2] {
    let sticky = "not needed";
    let proxies = match transport {
        Transport::Polling => "expected / expected / expected",
        Transport::Longpoll => "expected / expected / passes",
        Transport::Sse => "expected / passes / held back",
        Transport::Websocket => "passes / refused / refused",
        Transport::Stream => "expected / expected / held back",
    };
    [sticky, proxies]
}

/// `n` with a comma every three digits, no decimals.
fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.abs());
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(d);
    }
    if n < 0.0 { format!("-{out}") } else { out }
}

/// A number from a cell of `results.md` (`9381`, `59.0`, `1,000`).
fn number(cell: &str) -> Option<f64> {
    cell.replace(',', "").trim().parse().ok()
}

/// The decision guide's table: per transport, the idle minute of 10,000
/// clients, the p50 latency with 1,000 clients and at 50 ms round trip,
/// sticky sessions, proxies.
fn decision(tables: &[Table]) -> String {
    let idle = section(tables, IDLE);
    let load = section(tables, LOAD);
    let links = section(tables, LINKS);
    let not_yet = || "not measured yet".to_owned();
    let mut rows = Vec::new();
    for transport in Transport::ALL {
        let name = transport.as_str();
        let idle_cell = |column: &str| {
            let table = idle?;
            let value = number(table.row(name, None)?.get(table.column(column)?)?)?;
            Some(value * IDLE_CLIENTS)
        };
        let requests = idle_cell("requests/min").map_or_else(not_yet, thousands);
        let megabytes = |column: &str| {
            idle_cell(column).map_or_else(not_yet, |b| {
                if b == 0.0 {
                    "0".to_owned()
                } else {
                    format!("{:.2} MB", b / 1e6)
                }
            })
        };
        let p50 = load
            .and_then(|t| {
                let row = t.row(name, Some(LATENCY_CLIENTS))?;
                row.get(t.column("p50 ms")?).cloned()
            })
            .filter(|c| number(c).is_some())
            .unwrap_or_else(not_yet);
        let p50_slow = links
            .and_then(|t| {
                let at = t.column("round trip ms")?;
                let row = t
                    .rows
                    .iter()
                    .find(|r| r[0] == name && r.get(at).is_some_and(|c| c == LATENCY_ROUND_TRIP))?;
                row.get(t.column("p50 ms")?).cloned()
            })
            .filter(|c| number(c).is_some())
            .unwrap_or_else(not_yet);
        let [sticky, proxies] = described(transport);
        rows.push(vec![
            name.to_owned(),
            requests,
            megabytes("bytes down/min"),
            megabytes("bytes up/min"),
            p50,
            p50_slow,
            sticky.to_owned(),
            proxies.to_owned(),
        ]);
    }
    let strings = |cells: &[&str]| cells.iter().map(|c| (*c).to_owned()).collect();
    Table {
        heading: String::new(),
        header: strings(&[
            "transport",
            "requests/min × 10,000",
            "bytes down/min × 10,000",
            "bytes up/min × 10,000",
            "p50 ms at 1000 clients",
            "p50 ms at 50 ms round trip",
            "sticky sessions",
            "nginx: correct / no upgrade / compressing",
        ]),
        align: strings(&["---", "---:", "---:", "---:", "---:", "---:", "---", "---"]),
        rows,
    }
    .render()
}

/// Every block's name and content, from the text of `results.md`.
pub fn blocks(results_md: &str) -> anyhow::Result<Vec<(&'static str, String)>> {
    let tables = parse(results_md);
    let copy =
        |heading: &str| section(&tables, heading).map_or_else(|| missing(heading), Table::render);
    let load = match section(&tables, LOAD) {
        Some(t) => t.project(&LOAD_COLUMNS)?.render(),
        None => missing(LOAD),
    };
    Ok(vec![
        ("decision", decision(&tables)),
        ("wire", copy(WIRE)),
        ("idle", copy(IDLE)),
        ("load", load),
        ("memory", copy(MEMORY)),
        ("links", copy(LINKS)),
    ])
}

/// `doc` with the content of every marked block named in `blocks` replaced,
/// and the names of the blocks it had.
pub fn replace_blocks(doc: &str, blocks: &[(&'static str, String)]) -> (String, Vec<&'static str>) {
    let mut out = doc.to_owned();
    let mut found = Vec::new();
    for (name, content) in blocks {
        let begin = format!("<!-- table:{name} begin -->");
        let end = format!("<!-- table:{name} end -->");
        let Some(start) = out.find(&begin).map(|i| i + begin.len()) else {
            continue;
        };
        let Some(stop) = out[start..].find(&end).map(|i| start + i) else {
            continue;
        };
        out.replace_range(start..stop, &format!("\n{content}\n"));
        found.push(*name);
    }
    (out, found)
}

/// Rewrites the marked blocks of `out/comparison.md` and `out/../README.md`
/// from `out/results.md`; returns the files it changed. A file that does not
/// exist or has no markers (a trial run with `--out /tmp/…`) is left alone.
pub fn update_docs(out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let results_path = out.join("results.md");
    let results = std::fs::read_to_string(&results_path)
        .with_context(|| format!("reading {}", results_path.display()))?;
    let blocks = blocks(&results)?;
    let mut changed = Vec::new();
    for path in [out.join("comparison.md"), out.join("../README.md")] {
        let Ok(doc) = std::fs::read_to_string(&path) else {
            continue;
        };
        let (new, found) = replace_blocks(&doc, &blocks);
        if new != doc {
            std::fs::write(&path, &new).with_context(|| format!("writing {}", path.display()))?;
            changed.push(path.clone());
        }
        if !found.is_empty() {
            eprintln!(
                "tables from results.md: {} ({})",
                path.display(),
                found.join(", ")
            );
        }
    }
    Ok(changed)
}

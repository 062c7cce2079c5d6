//! The docs name only what exists: every repository path and every `cargo`
//! command in `README.md` and `docs/*.md` must point at a real file, package,
//! binary, bench or test.

use std::path::{Path, PathBuf};

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `README.md` and every Markdown file under `docs/`.
fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut dirs = vec![root().join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("docs/ exists") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files
}

/// Repository paths mentioned in backticks, and relative link targets.
fn mentioned_paths(text: &str, file: &Path) -> Vec<PathBuf> {
    const ROOTS: [&str; 5] = ["crates/", "web/", "benches/", "docs/", ".ci/"];
    let mut paths = Vec::new();
    for (i, span) in text.split('`').enumerate() {
        if i % 2 == 1 && !span.contains(' ') && ROOTS.iter().any(|r| span.starts_with(r)) {
            let clean = span.split([':', '#']).next().unwrap_or(span);
            paths.push(root().join(clean.trim_end_matches('/')));
        }
    }
    let dir = file.parent().expect("a folder");
    for link in text.split("](").skip(1) {
        let Some(target) = link.split(')').next() else {
            continue;
        };
        let target = target.split('#').next().unwrap_or("").trim();
        if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        paths.push(dir.join(target));
    }
    paths
}

/// Every package in the workspace, with its bins, benches and tests.
struct Package {
    name: String,
    dir: PathBuf,
}

fn packages() -> Vec<Package> {
    let mut packages = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root().join("crates"))
        .expect("crates/")
        .map(|e| e.expect("entry").path())
        .collect();
    dirs.push(root().join("benches"));
    for dir in dirs {
        let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        let name = manifest
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .and_then(|l| l.strip_suffix('"'))
            .expect("a package name")
            .to_owned();
        packages.push(Package { name, dir });
    }
    packages
}

impl Package {
    fn has_bin(&self, bin: &str) -> bool {
        (bin == self.name && self.dir.join("src/main.rs").exists())
            || self.dir.join(format!("src/bin/{bin}.rs")).exists()
    }
    fn has_bench(&self, bench: &str) -> bool {
        self.dir.join(format!("benches/{bench}.rs")).exists()
    }
    fn has_test(&self, test: &str) -> bool {
        self.dir.join(format!("tests/{test}.rs")).exists()
            || self.dir.join(format!("tests/{test}/main.rs")).exists()
    }
}

/// Checks one `cargo …` command line; returns what is wrong with it.
fn check_command(line: &str, packages: &[Package]) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |flag: &str| {
        words
            .iter()
            .position(|w| *w == flag)
            .and_then(|i| words.get(i + 1))
            .copied()
    };
    // `-p NAME`, or the default member (the demo) when there is none.
    let package = match after("-p") {
        Some(name) => match packages.iter().find(|p| p.name == name) {
            Some(p) => p,
            None => return Some(format!("no package {name}")),
        },
        None => packages.iter().find(|p| p.name == "chat-demo")?,
    };
    if let Some(bin) = after("--bin")
        && !package.has_bin(bin)
    {
        return Some(format!("{} has no binary {bin}", package.name));
    }
    if let Some(bench) = after("--bench")
        && !package.has_bench(bench)
    {
        return Some(format!("{} has no bench {bench}", package.name));
    }
    if let Some(test) = after("--test")
        && !package.has_test(test)
    {
        return Some(format!("{} has no test {test}", package.name));
    }
    None
}

/// `cargo` commands in code blocks and in backticks.
fn mentioned_commands(text: &str) -> Vec<String> {
    let mut commands = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim().trim_start_matches("$ ");
        if trimmed.starts_with("cargo ") {
            commands.push(trimmed.to_owned());
        }
    }
    for (i, span) in text.split('`').enumerate() {
        if i % 2 == 1 && span.starts_with("cargo ") {
            commands.push(span.to_owned());
        }
    }
    commands
}

/// Every path and `cargo` command named in the docs exists.
#[test]
fn every_path_and_command_in_the_docs_exists() {
    let packages = packages();
    let mut problems = Vec::new();
    let files = doc_files();
    assert!(files.len() >= 3, "README and docs found: {files:?}");
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable");
        let name = file
            .strip_prefix(root())
            .unwrap_or(file)
            .display()
            .to_string();
        for path in mentioned_paths(&text, file) {
            if !path.exists() {
                problems.push(format!("{name}: no such path {}", path.display()));
            }
        }
        for command in mentioned_commands(&text) {
            if let Some(problem) = check_command(&command, &packages) {
                problems.push(format!("{name}: `{command}`: {problem}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The checker itself catches what it is for.
#[test]
fn the_checker_catches_missing_things() {
    let packages = packages();
    assert!(check_command("cargo run --release", &packages).is_none());
    assert!(check_command("cargo bench -p chat-benches --bench fanout", &packages).is_none());
    assert!(check_command("cargo bench -p chat-benches --bench nothing", &packages).is_some());
    assert!(check_command("cargo run -p chat-nothing", &packages).is_some());
    assert!(check_command("cargo run -p chat-benches --bin compare", &packages).is_none());
    assert!(check_command("cargo test -p chat-demo --test browser", &packages).is_none());
    let file = root().join("docs/x.md");
    let paths = mentioned_paths("see `crates/nothing.rs` and [a](../web/app.js)", &file);
    assert!(!paths[0].exists());
    assert!(paths[1].exists());
}

// ---------------------------------------------------------------------------
// Numbers: the docs say what docs/results.md and docs/measurements.md say.
// ---------------------------------------------------------------------------

/// One Markdown table, with the nearest heading above it.
#[derive(Debug)]
struct MdTable {
    heading: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl MdTable {
    fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// The first row whose first cell is `parts[0]` and which has every
    /// other part as one of its cells.
    fn row(&self, parts: &[&str]) -> Option<&Vec<String>> {
        self.rows.iter().find(|r| {
            r.first().is_some_and(|c| c == parts[0])
                && parts[1..].iter().all(|p| r.iter().any(|c| c == p))
        })
    }
}

/// Every table in a Markdown text. Written apart from `chat_benches::tables`
/// on purpose: it is the other side of the check.
fn md_tables(text: &str) -> Vec<MdTable> {
    let cells = |line: &str| -> Vec<String> {
        let line = line.trim();
        let inner = line.strip_prefix('|').unwrap_or(line);
        let inner = inner.strip_suffix('|').unwrap_or(inner);
        inner.split('|').map(|c| c.trim().to_owned()).collect()
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut tables = Vec::new();
    let mut heading = String::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        if line.starts_with('#') {
            heading = line.trim_start_matches('#').trim().to_owned();
        } else if line.starts_with('|')
            && lines
                .get(i + 1)
                .is_some_and(|l| l.trim().starts_with('|') && l.contains("---"))
        {
            let header = cells(line);
            i += 2;
            let mut rows = Vec::new();
            while i < lines.len() && lines[i].trim().starts_with('|') {
                rows.push(cells(lines[i]));
                i += 1;
            }
            tables.push(MdTable {
                heading: heading.clone(),
                header,
                rows,
            });
            continue;
        }
        i += 1;
    }
    tables
}

/// The text between `<!-- table:NAME begin -->` and `<!-- table:NAME end -->`,
/// by name, in order (NAME: lowercase letters, digits and `-`); a begin
/// marker without its end is a problem.
fn marked_blocks(text: &str) -> Result<Vec<(String, String)>, String> {
    const OPEN: &str = "<!-- table:";
    let mut blocks = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find(OPEN).map(|i| from + i) {
        let after = &text[at + OPEN.len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
            .collect();
        let begin = format!("{OPEN}{name} begin -->");
        if name.is_empty() || !text[at..].starts_with(&begin) {
            from = at + OPEN.len();
            continue;
        }
        let end = format!("{OPEN}{name} end -->");
        let start = at + begin.len();
        let Some(stop) = text[start..].find(&end).map(|i| start + i) else {
            return Err(format!("`{begin}` without `{end}`"));
        };
        blocks.push((name, text[start..stop].to_owned()));
        from = stop + end.len();
    }
    Ok(blocks)
}

/// The first number in a cell (`9,381`, `+0.00%`, `93.81 MB`, `120 µs`):
/// its value, how many decimals it was written with, and what its unit
/// multiplies it by (`MB`: 10⁶; anything else: 1).
fn number(cell: &str) -> Option<(f64, usize, f64)> {
    let start = cell.find(|c: char| c.is_ascii_digit())?;
    let signed = if cell[..start].ends_with(['-', '+']) {
        start - 1
    } else {
        start
    };
    let body: String = cell[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ',')
        .collect();
    let digits = body.trim_end_matches(['.', ',']).replace(',', "");
    let value: f64 = format!("{}{digits}", &cell[signed..start]).parse().ok()?;
    let decimals = digits.split('.').nth(1).map_or(0, str::len);
    let unit = cell[start + body.len()..].trim_start();
    let scale = if unit.starts_with("MB") { 1e6 } else { 1.0 };
    Some((value, decimals, scale))
}

/// Which sections of results.md each block is generated from.
const BLOCK_SOURCES: [(&str, &[&str]); 5] = [
    (
        "decision",
        &["The cost of waiting: an idle client", "Under load"],
    ),
    ("wire", &["Wire overhead per delivered message"]),
    ("idle", &["The cost of waiting: an idle client"]),
    ("load", &["Under load"]),
    ("memory", &["Server memory per connection, once connected"]),
];

/// Columns that, with the first, say which row of the source a row is.
const KEY_COLUMNS: [&str; 2] = ["scenario", "clients"];

/// What is wrong with one generated block, checked against results.md.
///
/// A column named like a column of the source must hold, in each row, what
/// the source's row with the same transport (and scenario and clients, when
/// the block has those columns) holds. Two suffixes change that:
/// `H × 10,000` holds the source's `H` times 10,000, and `H at N clients`
/// reads `H` from the source row with N clients. A column the source does
/// not have may hold no digit at all. A cell with no digit (`not measured
/// yet`) is only right when the source has no figure there either.
fn check_block(name: &str, block: &str, results: &[MdTable]) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((_, headings)) = BLOCK_SOURCES.iter().find(|(n, _)| *n == name) else {
        return vec![format!("block {name}: not one compare writes")];
    };
    let sources: Vec<&MdTable> = results
        .iter()
        .filter(|t| headings.contains(&t.heading.as_str()))
        .collect();
    let tables = md_tables(block);
    if tables.is_empty() {
        if !sources.is_empty() {
            problems.push(format!(
                "block {name} has no table, but results.md has {:?}",
                headings
            ));
        }
        return problems;
    }
    for table in &tables {
        if name != "decision" {
            let source_rows = sources.first().map_or(0, |s| s.rows.len());
            if table.rows.len() != source_rows {
                problems.push(format!(
                    "block {name}: {} rows, results.md has {source_rows}",
                    table.rows.len()
                ));
            }
        }
        for (j, header) in table.header.iter().enumerate().skip(1) {
            let (base, factor) = match header.strip_suffix(" × 10,000") {
                Some(base) => (base, 10_000.0),
                None => (header.as_str(), 1.0),
            };
            let (base, clients) = match base.split_once(" at ") {
                Some((b, rest)) => (b, rest.strip_suffix(" clients")),
                None => (base, None),
            };
            let source = sources.iter().find(|s| s.column(base).is_some());
            for row in &table.rows {
                let cell = row.get(j).map_or("", String::as_str);
                let has_digits = cell.chars().any(|c| c.is_ascii_digit());
                let Some(source) = source else {
                    if has_digits {
                        problems.push(format!(
                            "block {name}, column {header:?}: {cell:?} has no source in results.md"
                        ));
                    }
                    continue;
                };
                if KEY_COLUMNS.contains(&header.as_str()) {
                    continue;
                }
                let mut key = vec![row[0].as_str()];
                for k in KEY_COLUMNS {
                    if let Some(i) = table.column(k) {
                        key.push(row[i].as_str());
                    }
                }
                let source_row = source.row(&key).filter(|r| {
                    clients.is_none_or(|n| source.column("clients").is_some_and(|c| r[c] == n))
                });
                let source_row = match clients {
                    Some(n) => source.rows.iter().find(|r| {
                        r[0] == row[0] && source.column("clients").is_some_and(|c| r[c] == n)
                    }),
                    None => source_row,
                };
                let truth = source_row
                    .and_then(|r| source.column(base).and_then(|c| r.get(c)))
                    .map(String::as_str);
                let where_ = format!("block {name}, row {key:?}, column {header:?}");
                match (has_digits, truth) {
                    (false, Some(t)) if t.chars().any(|c| c.is_ascii_digit()) => {
                        problems.push(format!("{where_}: says {cell:?}, results.md has {t:?}"))
                    }
                    (false, _) => {}
                    (true, None) => problems.push(format!(
                        "{where_}: {cell:?}, but results.md has no such row"
                    )),
                    (true, Some(t)) if factor == 1.0 && !cell.contains("MB") => {
                        if cell != t {
                            problems.push(format!("{where_}: {cell:?}, results.md has {t:?}"));
                        }
                    }
                    (true, Some(t)) => match (number(cell), number(t)) {
                        (Some((shown, decimals, unit)), Some((truth, _, _))) => {
                            let tolerance = 0.5 * 10f64.powi(-(decimals as i32)) * unit / factor;
                            if (shown * unit / factor - truth).abs() > tolerance + 1e-9 {
                                problems
                                    .push(format!("{where_}: {cell:?} is not {t:?} × {factor}"));
                            }
                        }
                        _ => problems.push(format!("{where_}: {cell:?} or {t:?} is no number")),
                    },
                }
            }
        }
    }
    problems
}

/// What is wrong with the generated blocks of one doc.
fn check_doc_blocks(text: &str, results: &[MdTable], required: &[&str]) -> Vec<String> {
    let blocks = match marked_blocks(text) {
        Ok(blocks) => blocks,
        Err(problem) => return vec![problem],
    };
    let mut problems = Vec::new();
    for name in required {
        if !blocks.iter().any(|(n, _)| n == name) {
            problems.push(format!("no `<!-- table:{name} begin -->` block"));
        }
    }
    for (name, block) in &blocks {
        problems.extend(check_block(name, block, results));
    }
    problems
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every number in a table that `compare` wrote into the docs (between
/// `<!-- table:NAME begin -->` and `<!-- table:NAME end -->`) is in
/// docs/results.md, in the same row and column (or is that × 10,000 where
/// the column says so); and no row of results.md is missing from a copy.
#[test]
fn generated_tables_match_results_md() {
    let results = md_tables(&read("docs/results.md"));
    let mut problems = Vec::new();
    for (file, required) in [
        (
            "docs/comparison.md",
            &["decision", "wire", "idle", "load", "memory"][..],
        ),
        ("README.md", &["decision"][..]),
    ] {
        for p in check_doc_blocks(&read(file), &results, required) {
            problems.push(format!("{file}: {p}"));
        }
    }
    assert!(
        problems.is_empty(),
        "the docs' tables no longer match docs/results.md (run \
         `cargo run --release -p chat-benches --bin compare`, which rewrites both):\n{}",
        problems.join("\n")
    );
}

/// The tables comparison.md copies from measurements.md (same header) have
/// exactly measurements.md's rows.
#[test]
fn copied_tables_match_measurements_md() {
    let measurements = md_tables(&read("docs/measurements.md"));
    let comparison = read("docs/comparison.md");
    let mut outside = comparison.clone();
    for (name, block) in marked_blocks(&comparison).expect("well-formed markers") {
        outside = outside.replace(&block, &format!("(block {name})\n"));
    }
    let mut copies = 0;
    let mut problems = Vec::new();
    for table in md_tables(&outside) {
        let Some(source) = measurements.iter().find(|m| m.header == table.header) else {
            continue;
        };
        copies += 1;
        if table.rows != source.rows {
            problems.push(format!(
                "comparison.md under {:?}: {:?}\nmeasurements.md under {:?}: {:?}",
                table.heading, table.rows, source.heading, source.rows
            ));
        }
    }
    assert!(
        copies >= 5,
        "only {copies} tables copied from measurements.md"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A figure in prose: in `source`, the table under `heading`, the row whose
/// first cell is the first `|`-separated part of `row` (and which has the
/// other parts as cells), column `column`, holds `value`.
struct Figure {
    source: &'static str,
    heading: &'static str,
    row: &'static str,
    column: &'static str,
    value: &'static str,
}

/// A sentence of the docs and the figures in it.
struct Claim {
    file: &'static str,
    phrase: &'static str,
    figures: &'static [Figure],
}

const RESULTS: &str = "docs/results.md";
const MEASUREMENTS: &str = "docs/measurements.md";
const WIRE: &str = "Wire overhead per delivered message";
const IDLE: &str = "The cost of waiting: an idle client";
const LOAD: &str = "Under load";
const MEMORY: &str = "Server memory per connection, once connected";
const LATENCY: &str = "Send-to-deliver latency, one subscriber, every transport";
const BURST: &str = "Burst: 1,000 messages to 10 subscribers";
const HEAP: &str = "Where the memory of a connection goes";
const HEAP_BUFFERS: &str =
    "actix-http's read and write buffers, 8 KiB each (`Dispatcher::new`, `h1/dispatcher.rs`)";
const HEAP_ALL: &str = "per connection, in all (the first three rows)";

const fn fig(
    source: &'static str,
    heading: &'static str,
    row: &'static str,
    column: &'static str,
    value: &'static str,
) -> Figure {
    Figure {
        source,
        heading,
        row,
        column,
        value,
    }
}

/// The figures the docs' prose quotes, each tied to its source cell. When a
/// new run changes a source, the claim fails until the prose is updated.
const CLAIMS: &[Claim] = &[
    // The README's decision guide.
    Claim {
        file: "README.md",
        phrase: "one subscriber, no load: SSE 120 µs, WebSocket 154 µs, long polling 159 µs",
        figures: &[
            fig(
                MEASUREMENTS,
                LATENCY,
                "server-sent events",
                "median",
                "120 µs",
            ),
            fig(MEASUREMENTS, LATENCY, "WebSocket", "median", "154 µs"),
            fig(MEASUREMENTS, LATENCY, "long polling", "median", "159 µs"),
        ],
    },
    // comparison.md.
    Claim {
        file: "docs/comparison.md",
        phrase: "one subscriber and no load gives SSE 120 µs, WebSocket 154 µs, long polling 159 µs and polling its interval, 51.5 ms at 50 ms",
        figures: &[
            fig(
                MEASUREMENTS,
                LATENCY,
                "server-sent events",
                "median",
                "120 µs",
            ),
            fig(MEASUREMENTS, LATENCY, "WebSocket", "median", "154 µs"),
            fig(MEASUREMENTS, LATENCY, "long polling", "median", "159 µs"),
            fig(
                MEASUREMENTS,
                LATENCY,
                "polling (50 ms interval)",
                "median",
                "51.5 ms",
            ),
        ],
    },
    Claim {
        file: "docs/comparison.md",
        phrase: "200 of 500 messages with 1,000 clients, 47 of 100 with 10,000; with SSE, 84 of 100 with 10,000 (and 458 of 500 with 1,000); WebSocket managed 89 of 100 and streaming 92 with 10,000",
        figures: &[
            fig(RESULTS, LOAD, "longpoll|1000", "sent", "200"),
            fig(RESULTS, LOAD, "longpoll|10000", "sent", "47"),
            fig(RESULTS, LOAD, "sse|10000", "sent", "84"),
            fig(RESULTS, LOAD, "sse|1000", "sent", "458"),
            fig(RESULTS, LOAD, "websocket|10000", "sent", "89"),
            fig(RESULTS, LOAD, "stream|10000", "sent", "92"),
        ],
    },
    Claim {
        file: "docs/comparison.md",
        phrase: "22.7 KiB allocated per connection, of which 16.4 KiB (72%)",
        figures: &[
            fig(MEASUREMENTS, HEAP, HEAP_ALL, "per connection", "22.7 KiB"),
            fig(
                MEASUREMENTS,
                HEAP,
                HEAP_BUFFERS,
                "per connection",
                "16.4 KiB",
            ),
        ],
    },
    Claim {
        file: "docs/comparison.md",
        phrase: "cheap idle (76 bytes a minute, no requests)",
        figures: &[fig(RESULTS, IDLE, "sse", "bytes down/min", "76")],
    },
    Claim {
        file: "docs/comparison.md",
        phrase: "Idle, polling costs 11,328 bytes and 59 requests a minute per client, SSE 76 bytes and none",
        figures: &[
            fig(RESULTS, IDLE, "polling", "bytes down/min", "11,328"),
            fig(RESULTS, IDLE, "polling", "requests/min", "59"),
            fig(RESULTS, IDLE, "sse", "bytes down/min", "76"),
        ],
    },
    Claim {
        file: "docs/comparison.md",
        phrase: "polling costs 100.3 bytes per message and SSE 120.8",
        figures: &[
            fig(
                RESULTS,
                WIRE,
                "polling|burst of 1000",
                "bytes down/msg (relay)",
                "100.3",
            ),
            fig(
                RESULTS,
                WIRE,
                "sse|burst of 1000",
                "bytes down/msg (relay)",
                "120.8",
            ),
        ],
    },
    Claim {
        file: "docs/comparison.md",
        phrase: "(959 k/s against 295 k/s and 437 k/s)",
        figures: &[
            fig(
                MEASUREMENTS,
                BURST,
                "long polling",
                "deliveries/s",
                "959 k/s",
            ),
            fig(
                MEASUREMENTS,
                BURST,
                "server-sent events",
                "deliveries/s",
                "295 k/s",
            ),
            fig(MEASUREMENTS, BURST, "WebSocket", "deliveries/s", "437 k/s"),
        ],
    },
    // The chapters.
    Claim {
        file: "docs/polling.md",
        phrase: "An idle polling client makes 59 requests and downloads 11,328 bytes a minute, against 76 bytes for an idle SSE stream",
        figures: &[
            fig(RESULTS, IDLE, "polling", "requests/min", "59"),
            fig(RESULTS, IDLE, "polling", "bytes down/min", "11,328"),
            fig(RESULTS, IDLE, "sse", "bytes down/min", "76"),
        ],
    },
    Claim {
        file: "docs/polling.md",
        phrase: "51.5 ms with a 50 ms interval",
        figures: &[fig(
            MEASUREMENTS,
            LATENCY,
            "polling (50 ms interval)",
            "median",
            "51.5 ms",
        )],
    },
    Claim {
        file: "docs/longpoll.md",
        phrase: "19.6 KiB per held long poll",
        figures: &[fig(
            RESULTS,
            MEMORY,
            "longpoll",
            "KiB per connection",
            "19.6",
        )],
    },
    Claim {
        file: "docs/longpoll.md",
        phrase: "291.9 bytes down and 112.9 up per message one at a time",
        figures: &[
            fig(
                RESULTS,
                WIRE,
                "longpoll|100 one at a time",
                "bytes down/msg (relay)",
                "291.9",
            ),
            fig(
                RESULTS,
                WIRE,
                "longpoll|100 one at a time",
                "bytes up/msg (relay)",
                "112.9",
            ),
        ],
    },
    Claim {
        file: "docs/longpoll.md",
        phrase: "polling sends 101.9 up",
        figures: &[fig(
            RESULTS,
            WIRE,
            "polling|100 one at a time",
            "bytes up/msg (relay)",
            "101.9",
        )],
    },
    Claim {
        file: "docs/longpoll.md",
        phrase: "a burst of 1,000 cost 100.3 bytes per message",
        figures: &[fig(
            RESULTS,
            WIRE,
            "longpoll|burst of 1000",
            "bytes down/msg (relay)",
            "100.3",
        )],
    },
    Claim {
        file: "docs/sse.md",
        phrase: "the 76 bytes a minute of the idle SSE row",
        figures: &[fig(RESULTS, IDLE, "sse", "bytes down/min", "76")],
    },
    Claim {
        file: "docs/sse.md",
        phrase: "17.0 KiB of server memory per connected stream",
        figures: &[fig(RESULTS, MEMORY, "sse", "KiB per connection", "17.0")],
    },
    Claim {
        file: "docs/sse.md",
        phrase: "22.7 KiB allocated per connection, 72% of it (16.4 KiB)",
        figures: &[
            fig(MEASUREMENTS, HEAP, HEAP_ALL, "per connection", "22.7 KiB"),
            fig(
                MEASUREMENTS,
                HEAP,
                HEAP_BUFFERS,
                "per connection",
                "16.4 KiB",
            ),
        ],
    },
    Claim {
        file: "docs/websocket.md",
        phrase: "16.1 KiB of server memory per connected socket",
        figures: &[fig(
            RESULTS,
            MEMORY,
            "websocket",
            "KiB per connection",
            "16.1",
        )],
    },
    Claim {
        file: "docs/streaming.md",
        phrase: "14.6 KiB of server memory per connected stream, against SSE's 17.0 KiB",
        figures: &[
            fig(RESULTS, MEMORY, "stream", "KiB per connection", "14.6"),
            fig(RESULTS, MEMORY, "sse", "KiB per connection", "17.0"),
        ],
    },
];

/// `text` with every run of whitespace made one space.
fn squeeze(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What is wrong with one claim, given the files' texts.
fn check_claim(claim: &Claim, read: &dyn Fn(&str) -> String) -> Vec<String> {
    let mut problems = Vec::new();
    let phrase = squeeze(claim.phrase);
    if !squeeze(&read(claim.file)).contains(&phrase) {
        problems.push(format!("{}: no longer says {phrase:?}", claim.file));
    }
    for f in claim.figures {
        if !phrase.contains(f.value) {
            problems.push(format!("{phrase:?} does not quote {:?}", f.value));
        }
        let tables = md_tables(&read(f.source));
        let parts: Vec<&str> = f.row.split('|').collect();
        let cell = tables
            .iter()
            .filter(|t| t.heading == f.heading)
            .find_map(|t| t.row(&parts).and_then(|r| r.get(t.column(f.column)?)));
        let Some(cell) = cell else {
            problems.push(format!(
                "{}: no cell {:?} / {:?} under {:?}",
                f.source, f.row, f.column, f.heading
            ));
            continue;
        };
        let unit = |s: &str| {
            s.trim_start_matches(|c: char| c.is_ascii_digit() || ".,+-".contains(c))
                .trim()
                .to_owned()
        };
        let same = number(f.value).map(|n| n.0) == number(cell).map(|n| n.0)
            && unit(f.value) == unit(cell);
        if !same {
            problems.push(format!(
                "{} says {:?}, but {} has {cell:?} ({} / {})",
                claim.file, f.value, f.source, f.row, f.column
            ));
        }
    }
    problems
}

/// The figures quoted in prose (the README's decision guide among them) are
/// what results.md and measurements.md say.
#[test]
fn prose_figures_match_their_source() {
    let problems: Vec<String> = CLAIMS
        .iter()
        .flat_map(|c| check_claim(c, &|path| read(path)))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every test the docs name (a backquoted snake_case name of four words or
/// more) is a function somewhere in the Rust sources, or a string the code
/// uses (an error code).
#[test]
fn every_test_named_in_the_docs_exists() {
    let mut sources = String::new();
    let mut dirs = vec![root().join("crates"), root().join("benches")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("a folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                sources.push_str(&std::fs::read_to_string(&path).expect("readable"));
            }
        }
    }
    let is_name = |s: &str| {
        s.split('_').count() >= 4
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !s.contains("__")
    };
    let mut missing = Vec::new();
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).expect("readable");
        for (i, span) in text.split('`').enumerate() {
            if i % 2 == 1
                && is_name(span)
                && !sources.contains(&format!("fn {span}("))
                && !sources.contains(&format!("\"{span}\""))
            {
                missing.push(format!("{}: `{span}`", file.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "named in the docs, found nowhere:\n{}",
        missing.join("\n")
    );
}

/// The number checks catch what they are for.
#[test]
fn the_number_checks_catch_drift() {
    let results = md_tables(
        "## The cost of waiting: an idle client\n\n\
         | transport | requests/min | bytes down/min |\n| --- | ---: | ---: |\n\
         | polling | 59.0 | 9381 |\n| sse | 0.0 | 76 |\n",
    );
    let block = |rows: &str| {
        format!(
            "<!-- table:idle begin -->\n| transport | requests/min | bytes down/min |\n\
             | --- | ---: | ---: |\n{rows}<!-- table:idle end -->\n"
        )
    };
    let good = block("| polling | 59.0 | 9381 |\n| sse | 0.0 | 76 |\n");
    assert!(check_doc_blocks(&good, &results, &["idle"]).is_empty());
    let changed = block("| polling | 59.0 | 9380 |\n| sse | 0.0 | 76 |\n");
    assert_eq!(check_doc_blocks(&changed, &results, &["idle"]).len(), 1);
    let short = block("| polling | 59.0 | 9381 |\n");
    assert!(!check_doc_blocks(&short, &results, &["idle"]).is_empty());
    assert!(!check_doc_blocks("no blocks", &results, &["idle"]).is_empty());

    let scaled = |cell: &str| {
        format!(
            "<!-- table:decision begin -->\n| transport | bytes down/min × 10,000 | note |\n\
             | --- | ---: | --- |\n| polling | {cell} | fine |\n| stream | not measured yet | fine |\n\
             <!-- table:decision end -->\n"
        )
    };
    assert!(check_doc_blocks(&scaled("93.81 MB"), &results, &[]).is_empty());
    assert!(!check_doc_blocks(&scaled("93.82 MB"), &results, &[]).is_empty());
    let stale = scaled("93.81 MB").replace("| stream |", "| sse |");
    assert!(!check_doc_blocks(&stale, &results, &[]).is_empty());

    let texts = |path: &str| match path {
        "doc.md" => "Idle, polling costs 9,381\n bytes.".to_owned(),
        _ => "## The cost of waiting: an idle client\n\n\
              | transport | bytes down/min |\n| --- | ---: |\n| polling | 9381 |\n"
            .to_owned(),
    };
    let claim = |value: &'static str, phrase: &'static str| Claim {
        file: "doc.md",
        phrase,
        figures: Box::leak(Box::new([fig(
            RESULTS,
            IDLE,
            "polling",
            "bytes down/min",
            value,
        )])),
    };
    assert!(check_claim(&claim("9,381", "polling costs 9,381 bytes"), &texts).is_empty());
    assert!(!check_claim(&claim("9,380", "polling costs 9,380 bytes"), &texts).is_empty());
}

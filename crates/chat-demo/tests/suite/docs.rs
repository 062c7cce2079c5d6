//! The docs name only what exists: every repository path and every `cargo`
//! command in `README.md` and `docs/*.md` must point at a real file, package,
//! binary, bench or test.

use std::path::{Path, PathBuf};

use crate::docs_claims::{CLAIMS, Claim, IDLE, RESULTS, fig};
use crate::docs_tables::*;

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
            &["decision", "wire", "idle", "load", "memory", "links"][..],
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

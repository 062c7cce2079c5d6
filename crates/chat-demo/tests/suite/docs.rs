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

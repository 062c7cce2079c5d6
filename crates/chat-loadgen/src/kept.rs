//! A section of `docs/results.md` that a run of its own writes (`loadgen
//! --chaos`, `capacity`, `tls`), not `compare`. It sits between two marker
//! lines and is kept beside results.md in `docs/results/`, so that
//! `compare`, which rewrites results.md whole, can put it back.

use std::path::Path;

use anyhow::Context;

/// One kept section: its marker lines and where its copy is kept.
#[derive(Debug, Clone, Copy)]
pub struct KeptSection {
    /// The line the section starts with.
    pub start: &'static str,
    /// The line it ends with.
    pub end: &'static str,
    /// Its copy, relative to the docs folder.
    pub saved: &'static str,
}

impl KeptSection {
    /// Writes `section` to its copy and into `docs/results.md`.
    pub fn write(&self, docs: &Path, section: &str) -> anyhow::Result<()> {
        let saved = docs.join(self.saved);
        if let Some(folder) = saved.parent() {
            std::fs::create_dir_all(folder)?;
        }
        std::fs::write(&saved, section).with_context(|| format!("writing {}", saved.display()))?;
        self.splice(&docs.join("results.md"), section)
    }

    /// Puts the kept copy back into `docs/results.md` after `compare`
    /// rewrote it; nothing if there is none.
    pub fn restore(&self, docs: &Path) -> anyhow::Result<()> {
        match std::fs::read_to_string(docs.join(self.saved)) {
            Ok(section) => self.splice(&docs.join("results.md"), &section),
            Err(_) => Ok(()),
        }
    }

    /// Puts `section` into the file at `results`, in place of an earlier
    /// one, else at the end.
    pub fn splice(&self, results: &Path, section: &str) -> anyhow::Result<()> {
        let text = std::fs::read_to_string(results).unwrap_or_default();
        let section = section.trim_end();
        let text = match (text.find(self.start), text.find(self.end)) {
            (Some(start), Some(end)) if end > start => format!(
                "{}{section}{}",
                &text[..start],
                &text[end + self.end.len()..]
            ),
            _ => format!("{}\n\n{section}\n", text.trim_end()),
        };
        std::fs::write(results, text).with_context(|| format!("writing {}", results.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEPT: KeptSection = KeptSection {
        start: "<!-- test: begin -->",
        end: "<!-- end of test -->",
        saved: "results/test.md",
    };

    /// The section goes at the end the first time, then replaces itself,
    /// leaving what is around it alone; after a rewrite of results.md, the
    /// kept copy goes back in.
    #[test]
    fn splices_in_place_and_restores() {
        let (start, end) = (KEPT.start, KEPT.end);
        let dir = std::env::temp_dir().join(format!("kept-section-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        let results = dir.join("results.md");
        std::fs::write(&results, "# Results\n\nbefore\n").expect("written");
        KEPT.write(&dir, &format!("{start}\none\n{end}\n"))
            .expect("written");
        let text = std::fs::read_to_string(&results).expect("read") + "\nafter\n";
        std::fs::write(&results, text).expect("written");
        KEPT.write(&dir, &format!("{start}\ntwo\n{end}"))
            .expect("written");
        let text = std::fs::read_to_string(&results).expect("read");
        assert_eq!(
            text,
            format!("# Results\n\nbefore\n\n{start}\ntwo\n{end}\n\nafter\n")
        );
        std::fs::write(&results, "# Results, rewritten\n").expect("written");
        KEPT.restore(&dir).expect("restored");
        let text = std::fs::read_to_string(&results).expect("read");
        assert_eq!(
            text,
            format!("# Results, rewritten\n\n{start}\ntwo\n{end}\n")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

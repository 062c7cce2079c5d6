//! Reading the Markdown tables of the docs back, for `docs.rs`: every table
//! with its heading, the blocks `compare` generates, and the check of a block
//! against docs/results.md. Written apart from `chat_benches::tables` on
//! purpose: it is the other side of the check.

/// One Markdown table, with the nearest heading above it.
#[derive(Debug)]
pub(crate) struct MdTable {
    pub(crate) heading: String,
    pub(crate) header: Vec<String>,
    pub(crate) rows: Vec<Vec<String>>,
}

impl MdTable {
    pub(crate) fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// The first row whose first cell is `parts[0]` and which has every
    /// other part as one of its cells.
    pub(crate) fn row(&self, parts: &[&str]) -> Option<&Vec<String>> {
        self.rows.iter().find(|r| {
            r.first().is_some_and(|c| c == parts[0])
                && parts[1..].iter().all(|p| r.iter().any(|c| c == p))
        })
    }
}

/// Every table in a Markdown text. Written apart from `chat_benches::tables`
/// on purpose: it is the other side of the check.
pub(crate) fn md_tables(text: &str) -> Vec<MdTable> {
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
pub(crate) fn marked_blocks(text: &str) -> Result<Vec<(String, String)>, String> {
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
pub(crate) fn number(cell: &str) -> Option<(f64, usize, f64)> {
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
pub(crate) const BLOCK_SOURCES: [(&str, &[&str]); 6] = [
    (
        "decision",
        &[
            "The cost of waiting: an idle client",
            "Under load",
            "Slow links: latency by round trip",
        ],
    ),
    ("wire", &["Wire overhead per delivered message"]),
    ("idle", &["The cost of waiting: an idle client"]),
    ("load", &["Under load"]),
    ("memory", &["Server memory per connection, once connected"]),
    ("links", &["Slow links: latency by round trip"]),
];

/// Columns that, with the first, say which row of the source a row is.
pub(crate) const KEY_COLUMNS: [&str; 3] = ["scenario", "clients", "round trip ms"];

/// What is wrong with one generated block, checked against results.md.
///
/// A column named like a column of the source must hold, in each row, what
/// the source's row with the same transport (and scenario and clients, when
/// the block has those columns) holds. Three suffixes change that:
/// `H × 10,000` holds the source's `H` times 10,000, `H at N clients`
/// reads `H` from the source row with N clients, and `H at N ms round trip`
/// from the source row whose `round trip ms` is N. A column the source does
/// not have may hold no digit at all. A cell with no digit (`not measured
/// yet`) is only right when the source has no figure there either.
pub(crate) fn check_block(name: &str, block: &str, results: &[MdTable]) -> Vec<String> {
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
            // `at N clients` or `at N ms round trip`: (column, N).
            let (base, at) = match base.split_once(" at ") {
                Some((b, rest)) => (
                    b,
                    rest.strip_suffix(" clients")
                        .map(|n| ("clients", n))
                        .or_else(|| {
                            rest.strip_suffix(" ms round trip")
                                .map(|n| ("round trip ms", n))
                        }),
                ),
                None => (base, None),
            };
            let source = sources.iter().find(|s| {
                s.column(base).is_some() && at.is_none_or(|(c, _)| s.column(c).is_some())
            });
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
                let source_row = match at {
                    Some((column, n)) => source.rows.iter().find(|r| {
                        r[0] == row[0] && source.column(column).is_some_and(|c| r[c] == n)
                    }),
                    None => source.row(&key),
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
pub(crate) fn check_doc_blocks(text: &str, results: &[MdTable], required: &[&str]) -> Vec<String> {
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

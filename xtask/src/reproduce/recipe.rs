//! `cargo xtask reproduce <table> --recipe`: the recipe sheet of a table. Every cell's effective
//! settings (`effective.rs`: loaded and planned by kd itself) beside the official value and its
//! source from `configs/reproduce/recipes/<table>.toml` (`sheet.rs`), every difference marked.
//!
//! Cells that agree on a setting are printed as one line (`every cell`, a whole row, or the
//! cells by name), so a table of 39 cells stays readable. `--markdown` prints the form
//! docs/reproduce.md carries between `<!-- recipe-sheet <table> -->` markers, `--update-docs`
//! rewrites that block, `--check` fails listing every difference (table, cell, setting, both
//! values and where each came from).

mod effective;
mod sheet;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::bail;
use serde_json::Value;

use super::manifest::{self, CellKind, Manifest};
use crate::BadInput;
use effective::ALWAYS;
pub use sheet::Sheet;

/// Options of `--recipe`.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// With `--recipe`: print the sheet as docs/reproduce.md carries it.
    #[arg(long, requires = "recipe")]
    pub markdown: bool,
    /// With `--recipe`: fail when a cell's effective setting differs from its sheet.
    #[arg(long, requires = "recipe")]
    pub check: bool,
    /// With `--recipe`: rewrite this table's sheet in docs/reproduce.md.
    #[arg(long, requires = "recipe")]
    pub update_docs: bool,
    /// With `--recipe`: the sheet to read (default `configs/reproduce/recipes/<table>.toml`).
    #[arg(long, requires = "recipe")]
    pub sheet: Option<PathBuf>,
}

/// One printed line: a setting, the cells that share these values, and the comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Setting name.
    pub setting: String,
    /// `every cell`, rows (`` `kd` ``) or cells (`` `teacher/resnet56` ``).
    pub cells: String,
    /// kd's effective value.
    pub ours: String,
    /// The official value (`—`: does not apply).
    pub official: String,
    /// The official source, or `ours: <reason>`.
    pub source: String,
    /// Whether the two agree.
    pub same: bool,
}

/// A table's sheet, computed.
#[derive(Debug, Clone)]
pub struct Report {
    /// Table name.
    pub table: String,
    /// The official code, from the sheet.
    pub code: String,
    /// Number of distinct cells (row × key).
    pub cells: usize,
    /// Lines in display order.
    pub lines: Vec<Line>,
    /// Every difference, one sentence each.
    pub differences: Vec<String>,
}

/// The directory a table with released teachers is planned with when none is given: it need
/// not exist (`kd plan --allow-missing-checkpoints`).
const RELEASED_PLACEHOLDER: &str = "released-teachers";

/// Where a table's sheet lives.
pub fn sheet_path(repo: &Path, table: &str) -> PathBuf {
    repo.join("configs")
        .join("reproduce")
        .join("recipes")
        .join(format!("{table}.toml"))
}

/// Runs `--recipe`.
///
/// # Errors
/// A missing or malformed sheet ([`BadInput`]), a cell kd cannot load or plan, a docs file
/// without the table's block, or, with `--check`, any difference.
pub fn run(
    kd: &Path,
    repo: &Path,
    table: &str,
    manifest: &Manifest,
    released: Option<&Path>,
    options: &Options,
) -> anyhow::Result<()> {
    let path = options
        .sheet
        .clone()
        .unwrap_or_else(|| sheet_path(repo, table));
    let sheet = Sheet::load(&path)?;
    let report = compute(kd, repo, table, manifest, released, &sheet)?;
    if options.update_docs {
        let docs = repo.join("docs").join("reproduce.md");
        let text = std::fs::read_to_string(&docs)?;
        let updated = replace_block(&text, table, &markdown(&report))
            .ok_or_else(|| BadInput(missing_block(&docs, table)))?;
        std::fs::write(&docs, updated)?;
        println!("updated the sheet of `{table}` in {}", docs.display());
    } else if options.markdown {
        print!("{}", markdown(&report));
    } else {
        print!("{}", text(&report));
    }
    if options.check && !report.differences.is_empty() {
        bail!(
            "{} setting(s) of table `{table}` differ from {}:\n{}",
            report.differences.len(),
            path.display(),
            report.differences.join("\n")
        );
    }
    Ok(())
}

/// Every cell's effective settings compared with `sheet`: the cells `cargo xtask reproduce`
/// runs, with the released teachers in `released` when given.
///
/// # Errors
/// kd fails on a cell.
pub fn compute(
    kd: &Path,
    repo: &Path,
    table: &str,
    manifest: &Manifest,
    released: Option<&Path>,
    sheet: &Sheet,
) -> anyhow::Result<Report> {
    // A table whose official code distils from released teachers is compared on that route
    // (the files need not exist: cells are only loaded and planned).
    let official_route = manifest
        .teachers
        .as_ref()
        .and_then(|t| t.released.as_ref())
        .map(|_| Path::new(RELEASED_PLACEHOLDER));
    let cells = match released.or(official_route) {
        Some(dir) => manifest.cells_with(1, false, Some(dir))?,
        None => manifest.cells(1, false)?,
    };
    let extra: Vec<String> = sheet.setting.iter().map(|s| s.name.clone()).collect();
    // (cell name, row) → setting → (ours, official, source, same)
    let mut compared: Vec<Compared> = Vec::new();
    let mut differences = Vec::new();
    for cell in &cells {
        let name = format!("{}/{}", cell.row, cell.key);
        let row = manifest
            .row
            .iter()
            .find(|r| r.name == cell.row)
            .expect("cells come from rows");
        let column = manifest
            .column
            .iter()
            .find(|c| {
                manifest::render(row.key.as_deref().unwrap_or("{column}"), c, 0, &|_| {
                    Ok(String::new())
                })
                .is_ok_and(|k| k == cell.key)
            })
            .map_or("", |c| c.name.as_str());
        let settings = match &cell.kind {
            CellKind::Train => effective::settings(kd, repo, manifest, cell, &extra)?,
            CellKind::Eval { checkpoint, .. } => effective::evaluated(repo, manifest, checkpoint),
        };
        let arch = settings
            .get("arch")
            .and_then(|e| e.value.as_ref())
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let key = sheet::CellKey {
            row: &cell.row,
            column,
            arch: &arch,
        };
        let mut names: Vec<&String> = settings.keys().filter(|n| *n != "arch").collect();
        // A cell that evaluates a released file is compared on its teacher only.
        if cell.kind == CellKind::Train {
            names.extend(extra.iter().filter(|n| !settings.contains_key(*n)));
        }
        let mut values = BTreeMap::new();
        for setting in names {
            let ours = settings.get(setting).and_then(|e| e.value.clone());
            let origin = settings.get(setting).map_or("", |e| e.origin.as_str());
            let (official, source) = match sheet.get(setting) {
                Some(s) => {
                    let o = s.for_cell(key);
                    (o.json(), o.cited())
                }
                None if ours.is_none() => continue,
                None => (None, "not in the sheet".to_string()),
            };
            let same = agree(ours.as_ref(), official.as_ref()) && sheet.get(setting).is_some();
            if !same {
                differences.push(format!(
                    "table `{table}`, cell `{name}`, setting `{setting}`: kd has {} ({}), \
                     official {} ({source})",
                    show(ours.as_ref()),
                    if origin.is_empty() { "unset" } else { origin },
                    show(official.as_ref()),
                ));
            }
            values.insert(
                setting.clone(),
                (show(ours.as_ref()), show(official.as_ref()), source, same),
            );
        }
        compared.push((name, cell.row.clone(), values));
    }
    let lines = group(manifest, &compared);
    Ok(Report {
        table: table.to_string(),
        code: sheet.code.clone(),
        cells: compared.len(),
        lines,
        differences,
    })
}

/// One setting of one cell as shown: kd's value, the official one, its source, whether they agree.
type Shown = (String, String, String, bool);

/// A cell's name (`row/key`), its row, and its settings as shown.
type Compared = (String, String, BTreeMap<String, Shown>);

/// One line per setting and distinct comparison, naming the cells it covers.
fn group(manifest: &Manifest, compared: &[Compared]) -> Vec<Line> {
    let mut settings: Vec<&String> = compared.iter().flat_map(|c| c.2.keys()).collect();
    settings.sort_by_key(|s| (rank(s), s.to_string()));
    settings.dedup();
    let mut lines = Vec::new();
    for setting in settings {
        let mut groups: Vec<(Shown, Vec<usize>)> = Vec::new();
        for (i, (_, _, values)) in compared.iter().enumerate() {
            let Some(v) = values.get(setting) else {
                continue;
            };
            match groups.iter_mut().find(|(g, _)| g == v) {
                Some((_, members)) => members.push(i),
                None => groups.push((v.clone(), vec![i])),
            }
        }
        for ((ours, official, source, same), members) in groups {
            lines.push(Line {
                setting: setting.clone(),
                cells: cells_label(manifest, compared, &members),
                ours,
                official,
                source,
                same,
            });
        }
    }
    lines
}

/// Display order: the settings of [`ALWAYS`] in order, a role's rate after `lr`, method terms
/// after `ce_weight`, the teacher last.
fn rank(setting: &str) -> usize {
    let at = |name: &str| ALWAYS.iter().position(|s| *s == name).unwrap_or(0) * 10;
    match ALWAYS.iter().position(|s| *s == setting) {
        Some(i) => i * 10,
        None if setting.starts_with("lr.") => at("lr") + 1,
        None => at("ce_weight") + 1,
    }
}

fn cells_label(manifest: &Manifest, compared: &[Compared], members: &[usize]) -> String {
    if members.len() == compared.len() {
        return "every cell".into();
    }
    let mut parts = Vec::new();
    for row in &manifest.row {
        let of_row: Vec<usize> = (0..compared.len())
            .filter(|i| compared[*i].1 == row.name)
            .collect();
        let inside: Vec<usize> = of_row
            .iter()
            .copied()
            .filter(|i| members.contains(i))
            .collect();
        if inside.is_empty() {
            continue;
        }
        if inside.len() == of_row.len() {
            parts.push(format!("`{}`", row.name));
        } else {
            parts.extend(inside.iter().map(|i| format!("`{}`", compared[*i].0)));
        }
    }
    parts.join(", ")
}

/// Whether kd's value and the official one agree: both absent, or equal, numbers within a
/// relative 1e-6 (kd keeps statistics in f32).
pub fn agree(ours: Option<&Value>, official: Option<&Value>) -> bool {
    match (ours, official) {
        (None, None) => true,
        (Some(a), Some(b)) => same_value(a, b),
        _ => false,
    }
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            (x - y).abs() <= 1e-6 * x.abs().max(y.abs()).max(1e-12)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(a, b))
        }
        _ => a == b,
    }
}

/// A value as the sheet shows it: numbers to six significant digits, `—` for absent.
pub fn show(value: Option<&Value>) -> String {
    match value {
        None => "—".into(),
        Some(Value::Number(n)) => number(n.as_f64().unwrap_or(f64::NAN)),
        Some(Value::Array(items)) => format!(
            "[{}]",
            items
                .iter()
                .map(|v| show(Some(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e9 {
        return format!("{}", x as i64);
    }
    let magnitude = x.abs().log10().floor() as i32;
    let decimals = (5 - magnitude).clamp(0, 12) as usize;
    let text = format!("{x:.decimals$}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The sheet as plain text: setting, kd's value, the official one, the mark and the cells on
/// one line, aligned; the source indented below.
pub fn text(report: &Report) -> String {
    let mut out = format!(
        "{}: {} cells; official code: {}\n",
        report.table,
        report.cells,
        report.code.trim()
    );
    let width = |f: fn(&Line) -> &str| {
        report
            .lines
            .iter()
            .map(|l| f(l).chars().count())
            .max()
            .unwrap_or(0)
    };
    let w = [
        width(|l| &l.setting),
        width(|l| &l.ours).max(2),
        width(|l| &l.official).max(8),
    ];
    let pad = |s: &str, n: usize| format!("{s}{}", " ".repeat(n.saturating_sub(s.chars().count())));
    out.push_str(&format!(
        "{}  {}  {}     cells\n",
        pad("setting", w[0]),
        pad("kd", w[1]),
        pad("official", w[2])
    ));
    for l in &report.lines {
        let mark = if l.same { "✓" } else { "✗" };
        out.push_str(&format!(
            "{}  {}  {}  {mark}  {}\n{}  {}\n",
            pad(&l.setting, w[0]),
            pad(&l.ours, w[1]),
            pad(&l.official, w[2]),
            l.cells,
            " ".repeat(w[0]),
            l.source
        ));
    }
    out.push_str(&summary(report));
    out.push('\n');
    out
}

fn summary(report: &Report) -> String {
    match report.differences.len() {
        0 => "Every setting of every cell is the official one (✓).".into(),
        n => format!("{n} setting(s) of a cell differ from the official recipe (✗)."),
    }
}

/// The sheet as docs/reproduce.md carries it, markers included.
pub fn markdown(report: &Report) -> String {
    let cell = |s: &str| s.replace('|', "\\|");
    let mut out = format!("<!-- recipe-sheet {} -->\n", report.table);
    out.push_str(&format!(
        "#### `{}`\n\nOfficial code: {}. {} cells. {}\n\n",
        report.table,
        report.code.trim(),
        report.cells,
        summary(report)
    ));
    out.push_str("| setting | cells | kd | official | | source |\n");
    out.push_str("|---|---|---|---|---|---|\n");
    for l in &report.lines {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            cell(&l.setting),
            cell(&l.cells),
            cell(&l.ours),
            cell(&l.official),
            if l.same { "✓" } else { "✗" },
            cell(&l.source)
        ));
    }
    out.push_str(&format!("<!-- /recipe-sheet {} -->\n", report.table));
    out
}

/// The block of `table` in a docs text, markers included, if it has one.
pub fn block<'a>(docs: &'a str, table: &str) -> Option<&'a str> {
    let open = format!("<!-- recipe-sheet {table} -->\n");
    let close = format!("<!-- /recipe-sheet {table} -->\n");
    let start = docs.find(&open)?;
    let end = start + docs[start..].find(&close)? + close.len();
    Some(&docs[start..end])
}

fn replace_block(docs: &str, table: &str, new: &str) -> Option<String> {
    let old = block(docs, table)?;
    Some(docs.replacen(old, new, 1))
}

fn missing_block(docs: &Path, table: &str) -> String {
    format!(
        "{} has no block `<!-- recipe-sheet {table} -->` … `<!-- /recipe-sheet {table} -->` \
         to update; add the two marker lines where the sheet belongs",
        docs.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_agree_within_f32_precision_and_show_compactly() {
        let f32_mean = Value::from(0.507_075_16_f32 as f64);
        assert!(agree(
            Some(&f32_mean),
            Some(&Value::from(0.5070751592371323))
        ));
        assert!(!agree(
            Some(&Value::from(0.4865)),
            Some(&Value::from(0.48655))
        ));
        assert!(agree(None, None));
        assert!(!agree(Some(&Value::from(1)), None));
        assert!(agree(
            Some(&serde_json::json!([150, 180, 210])),
            Some(&serde_json::json!([150.0, 180.0, 210.0]))
        ));
        assert_eq!(show(Some(&Value::from(0.0005))), "0.0005");
        assert_eq!(show(Some(&Value::from(240))), "240");
        assert_eq!(show(Some(&Value::from(4.0))), "4");
        assert_eq!(show(Some(&Value::from(0.5070751592371323))), "0.507075");
        assert_eq!(show(Some(&serde_json::json!([60, 120]))), "[60, 120]");
        assert_eq!(show(None), "—");
    }

    #[test]
    fn a_docs_block_is_found_and_replaced_between_its_markers() {
        let docs = "a\n<!-- recipe-sheet t -->\nold\n<!-- /recipe-sheet t -->\nb\n";
        assert_eq!(
            block(docs, "t"),
            Some("<!-- recipe-sheet t -->\nold\n<!-- /recipe-sheet t -->\n")
        );
        let new = "<!-- recipe-sheet t -->\nnew\n<!-- /recipe-sheet t -->\n";
        assert_eq!(
            replace_block(docs, "t", new).unwrap(),
            format!("a\n{new}b\n")
        );
        assert_eq!(block(docs, "u"), None);
    }
}

//! Writing a table's results: `docs/results/<table>.md` (one table per column, our numbers
//! beside the paper's, the claims checked, how and where it was made) and `.csv`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

use super::aggregate::{Entry, Stat, Verdict};
use super::manifest::Manifest;

/// Where and how a report was made.
pub struct Provenance {
    /// The command line.
    pub command: String,
    /// CPU and core count.
    pub machine: String,
    /// UTC date.
    pub date: String,
    /// Git commit.
    pub commit: String,
}

impl Provenance {
    /// This machine, now, at the repository's commit.
    pub fn here(repo: &Path, command: String) -> Provenance {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with("model name"))
                    .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let run = |program: &str, args: &[&str]| {
            std::process::Command::new(program)
                .args(args)
                .current_dir(repo)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        let dirty = run("git", &["status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|s| !s.is_empty());
        let commit =
            run("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
        Provenance {
            command,
            machine: format!("{cpu}, {cores} cores, {}", std::env::consts::OS),
            date: run("date", &["-u", "+%Y-%m-%d"]).unwrap_or_else(|| "unknown".into()),
            commit: if dirty {
                format!("{commit} (with uncommitted changes)")
            } else {
                commit
            },
        }
    }
}

fn stat(s: Option<Stat>) -> String {
    match s {
        Some(s) if s.n > 1 => format!("{:.2} ± {:.2}", s.mean, s.std),
        Some(s) => format!("{:.2}", s.mean),
        None => "—".into(),
    }
}

/// The Markdown report.
pub fn markdown(
    manifest: &Manifest,
    entries: &[Entry],
    verdicts: &[Verdict],
    provenance: &Provenance,
    chart: Option<&str>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", manifest.title);
    let _ = writeln!(out, "{}\n", manifest.description.trim());
    let _ = writeln!(
        out,
        "Made by `{}` on {}, {} (commit {}).\n",
        provenance.command, provenance.machine, provenance.date, provenance.commit
    );
    let _ = writeln!(
        out,
        "Top-1 accuracy (%) on the test split, mean ± sample standard deviation over seeds, of the last \
         epoch and of the best epoch. Δ is our last-epoch mean minus the paper's number.\n"
    );
    for column in &manifest.column {
        let _ = writeln!(out, "## {}\n", column.label);
        let _ = writeln!(
            out,
            "| row | seeds | last top-1 | best top-1 | paper | Δ | paper source |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        for row in &manifest.row {
            let Some(e) = entries
                .iter()
                .find(|e| e.row == row.name && e.column == column.name)
            else {
                continue;
            };
            let done = e.last.map_or(0, |s| s.n);
            let (paper, delta, source) = match (&e.paper, e.last) {
                (Some(p), Some(l)) => (
                    format!("{:.2}", p.value),
                    format!("{:+.2}", l.mean - p.value),
                    p.source.clone(),
                ),
                (Some(p), None) => (format!("{:.2}", p.value), "—".into(), p.source.clone()),
                (None, _) => (
                    "not known".into(),
                    "—".into(),
                    row.paper_unknown.clone().unwrap_or_default(),
                ),
            };
            let _ = writeln!(
                out,
                "| {} | {done}/{} | {} | {} | {paper} | {delta} | {source} |",
                row.label,
                e.seeds,
                stat(e.last),
                stat(e.best)
            );
        }
        let _ = writeln!(out);
    }
    if !verdicts.is_empty() {
        let _ = writeln!(
            out,
            "## Claims\n\nEach paper's claim from its abstract, checked on the last-epoch means: \"supported\" when \
             the difference exceeds two standard errors, \"contradicted\" when it is below minus two, \
             \"inconclusive\" in between.\n"
        );
        for verdict in verdicts {
            for (column, sentence) in &verdict.per_column {
                let _ = writeln!(out, "- {} — {column}: {sentence}.", verdict.text);
            }
        }
        let _ = writeln!(out);
    }
    if let Some(chart) = chart {
        let _ = writeln!(out, "![last-epoch top-1 per row and column]({chart})\n");
    }
    out
}

/// The CSV report, written by the `csv` crate so that a row, column or source holding a comma,
/// a quote or a line break stays one cell.
pub fn csv(manifest: &Manifest, entries: &[Entry]) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    let cell = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_default();
    let record = |out: &mut csv::Writer<Vec<u8>>, cells: &[String]| {
        out.write_record(cells)
            .expect("writing CSV into memory cannot fail")
    };
    let header = [
        "row",
        "column",
        "seeds_done",
        "seeds",
        "last_mean",
        "last_std",
        "best_mean",
        "best_std",
        "paper",
        "difference",
        "paper_source",
    ];
    record(&mut out, &header.map(String::from));
    for e in entries {
        let row = manifest
            .row
            .iter()
            .find(|r| r.name == e.row)
            .expect("entries come from rows");
        let source = e
            .paper
            .as_ref()
            .map(|p| p.source.clone())
            .or(row.paper_unknown.clone())
            .unwrap_or_default();
        record(
            &mut out,
            &[
                e.row.clone(),
                e.column.clone(),
                e.last.map_or(0, |s| s.n).to_string(),
                e.seeds.to_string(),
                cell(e.last.map(|s| s.mean)),
                cell(e.last.map(|s| s.std)),
                cell(e.best.map(|s| s.mean)),
                cell(e.best.map(|s| s.std)),
                cell(e.paper.as_ref().map(|p| p.value)),
                cell(e.paper.as_ref().zip(e.last).map(|(p, l)| l.mean - p.value)),
                source,
            ],
        );
    }
    let bytes = out
        .into_inner()
        .expect("flushing CSV into memory cannot fail");
    String::from_utf8(bytes).expect("every cell is a String")
}

/// Writes a file, creating its folder.
pub fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reproduce::manifest::PaperNumber;

    #[test]
    fn csv_quotes_cells_with_commas_and_quotes_and_keeps_every_row_eleven_cells_wide() {
        let manifest: Manifest = toml::from_str(
            r#"
title = "t"
description = "d"
output_dir = "runs"
seeds = 2
[[column]]
name = "r14,r8"
label = "l"
teacher = "resnet14"
student = "resnet8"
[[row]]
name = "kd"
label = "KD"
config = "c.toml"
"#,
        )
        .unwrap();
        let entry = Entry {
            row: "kd".into(),
            column: "r14,r8".into(),
            last: Stat::of(&[70.0, 71.0]),
            best: Stat::of(&[72.0]),
            seeds: 2,
            paper: Some(PaperNumber {
                value: 50.0,
                source: "Hinton et al., \"Distilling\", table 1".into(),
            }),
        };
        let text = csv(&manifest, &[entry]);
        assert_eq!(
            text.lines().nth(1).unwrap(),
            "kd,\"r14,r8\",2,2,70.5000,0.7071,72.0000,0.0000,50.0000,20.5000,\
             \"Hinton et al., \"\"Distilling\"\", table 1\""
        );
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(reader.headers().unwrap().len(), 11);
        let row = reader.records().next().unwrap().unwrap();
        assert_eq!(row.len(), 11);
        assert_eq!(&row[1], "r14,r8");
        assert_eq!(&row[10], "Hinton et al., \"Distilling\", table 1");
    }
}

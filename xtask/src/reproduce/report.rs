//! Writing a table's results: `docs/results/<table>.md` (one table per column, our numbers
//! beside the paper's, then each seed's with the cell's wall time and whether the row's mean
//! curve has flattened; the claims checked with the test behind each verdict; the charts; how,
//! where and in how much cell time it was made), `.csv` (one line per row and column) and
//! `-seeds.csv` (one line per finished seed).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

use super::aggregate::{CellTime, Entry, Stat, Verdict};
use super::curves::{self, Curve};
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

/// A duration in words: `42 s`, `3 min 05 s`, `2 h 07 min`.
fn duration(seconds: f64) -> String {
    let total = seconds.max(0.0).round() as u64;
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    if hours > 0 {
        format!("{hours} h {minutes:02} min")
    } else if minutes > 0 {
        format!("{minutes} min {seconds:02} s")
    } else {
        format!("{seconds} s")
    }
}

/// What a table's report shows.
pub struct Results<'a> {
    /// Every row × column.
    pub entries: &'a [Entry],
    /// The claims checked.
    pub verdicts: &'a [Verdict],
    /// The learning curves.
    pub curves: &'a [Curve],
    /// The time the training cells took.
    pub cell_time: CellTime,
}

/// The files written beside the report, by name, that it links to or names.
pub struct Files<'a> {
    /// The bar chart, if it was drawn.
    pub chart: Option<&'a str>,
    /// The learning curves' picture, if it was drawn.
    pub curves: Option<&'a str>,
    /// The numbers behind the curves.
    pub curves_csv: &'a str,
    /// One line per finished seed.
    pub seeds_csv: &'a str,
}

/// The text explaining the test behind the claims' verdicts.
const TEST: &str = "Each paper's claim from its abstract, checked on the last-epoch top-1 of every \
     seed, the seeds taken as independent samples. The test is the difference of the two rows' \
     means, Δ = mean_a − mean_b, against twice its standard error SE = √(se_a² + se_b²), where \
     se = s/√n is a mean's standard error (s the sample standard deviation over its n seeds); \
     z = Δ/SE. \"supported\" when z > 2, \"contradicted\" when z < −2, \"inconclusive\" in \
     between; with one seed on a side there is no standard error and only the means are \
     compared. A claim that an output improves during training tests the mean gain over seeds \
     (last-epoch top-1 minus top-1 before training) against 0 the same way, SE = s/√n of the \
     gains. With few seeds this is less strict than a t-test at the 5% level: Welch's threshold \
     for 3 against 3 seeds (2 to 4 degrees of freedom) is 2.78 to 4.30 rather than 2, and a \
     one-sample test of 2 or 3 gains needs 12.71 or 4.30, so a \"supported\" here can fail \
     them.";

/// The per-seed table of one column, with each row's last-3-epoch change, and the line
/// naming the rows whose mean curve has not flattened.
fn per_seed(out: &mut String, manifest: &Manifest, column: &str, results: &Results<'_>) {
    let entries: Vec<(&super::manifest::Row, &Entry)> = manifest
        .row
        .iter()
        .filter_map(|row| {
            results
                .entries
                .iter()
                .find(|e| e.row == row.name && e.column == column)
                .map(|e| (row, e))
        })
        .collect();
    let mut seeds: Vec<usize> = entries
        .iter()
        .flat_map(|(_, e)| e.runs.iter().map(|r| r.seed))
        .collect();
    seeds.sort_unstable();
    seeds.dedup();
    if seeds.is_empty() {
        let _ = writeln!(out, "No seed has finished yet.\n");
        return;
    }
    let change = |row: &str| {
        results
            .curves
            .iter()
            .find(|c| c.row == row && c.column == column && c.reported)
            .and_then(|c| c.last_change(curves::FLAT_EPOCHS))
    };
    let _ = writeln!(
        out,
        "Per seed: last-epoch top-1 (%) and the cell's wall time. The last-{n}-epoch change is \
         max − min of the row's mean curve over its last {n} epochs.\n",
        n = curves::FLAT_EPOCHS
    );
    let _ = write!(out, "| row |");
    for seed in &seeds {
        let _ = write!(out, " seed {seed} |");
    }
    let _ = writeln!(out, " last-{}-epoch change |", curves::FLAT_EPOCHS);
    let _ = writeln!(out, "|---|{}---|", "---|".repeat(seeds.len()));
    let mut not_flat = Vec::new();
    let mut no_curve = Vec::new();
    for (row, entry) in &entries {
        let _ = write!(out, "| {} |", row.label);
        for seed in &seeds {
            let text = match entry.runs.iter().find(|r| r.seed == *seed) {
                Some(run) if run.evaluated => format!("{:.2} (evaluated)", run.last_top1),
                Some(run) => match run.wall_seconds {
                    Some(w) => format!("{:.2} ({})", run.last_top1, duration(w)),
                    None => format!("{:.2}", run.last_top1),
                },
                None => "—".into(),
            };
            let _ = write!(out, " {text} |");
        }
        let trained = entry.runs.iter().any(|r| !r.evaluated);
        match change(&row.name) {
            Some(c) => {
                let _ = writeln!(out, " {c:.2} |");
                if c >= curves::FLAT_LIMIT {
                    not_flat.push(format!("{} ({c:.2})", row.label));
                }
            }
            None => {
                let _ = writeln!(out, " — |");
                if trained {
                    no_curve.push(row.label.clone());
                }
            }
        }
    }
    let _ = writeln!(out);
    let (n, limit) = (curves::FLAT_EPOCHS, curves::FLAT_LIMIT);
    let none_of = |rows: &[String]| {
        format!(
            "no mean curve of {n} epochs or more to check: {}.",
            rows.join(", ")
        )
    };
    if !not_flat.is_empty() {
        let _ = write!(
            out,
            "Not flat (the mean curve changes {limit} points or more over its last {n} epochs): {}.",
            not_flat.join(", ")
        );
        if !no_curve.is_empty() {
            let _ = write!(out, " Also {}", none_of(&no_curve));
        }
    } else if no_curve.is_empty() {
        let _ = write!(
            out,
            "Every row's mean curve changes less than {limit} points over its last {n} epochs."
        );
    } else if no_curve.len()
        < entries
            .iter()
            .filter(|(_, e)| e.runs.iter().any(|r| !r.evaluated))
            .count()
    {
        let _ = write!(
            out,
            "Every row with a mean curve of {n} epochs or more changes less than {limit} points \
             over its last {n} epochs; {}",
            none_of(&no_curve)
        );
    } else {
        let _ = write!(out, "Convergence: {}", none_of(&no_curve));
    }
    let _ = writeln!(out, "\n");
}

/// The Markdown report.
pub fn markdown(
    manifest: &Manifest,
    results: &Results<'_>,
    provenance: &Provenance,
    files: &Files<'_>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", manifest.title);
    let _ = writeln!(out, "{}\n", manifest.description.trim());
    let time = results.cell_time;
    let untimed = match time.untimed {
        0 => String::new(),
        1 => " One of them records no wall time.".to_string(),
        n => format!(" {n} of them record no wall time."),
    };
    let _ = writeln!(
        out,
        "Made by `{}` on {}, {} (commit {}). Cell time: {}, the sum of the wall times of the {} \
         finished training cells (cells that ran at the same time each counted).{untimed}\n",
        provenance.command,
        provenance.machine,
        provenance.date,
        provenance.commit,
        duration(time.seconds),
        time.cells
    );
    let _ = writeln!(
        out,
        "Top-1 accuracy (%) on the test split, mean ± sample standard deviation over seeds, of the last \
         epoch and of the best epoch; seeds: finished of expected. Δ is our last-epoch mean minus the paper's \
         number. Each seed's numbers are in {}.\n",
        files.seeds_csv
    );
    for column in &manifest.column {
        let _ = writeln!(out, "## {}\n", column.label);
        let _ = writeln!(
            out,
            "| row | seeds | last top-1 | best top-1 | paper | Δ | paper source |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        for row in &manifest.row {
            let Some(e) = results
                .entries
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
        let _ = writeln!(out, "### {}, per seed\n", column.label);
        per_seed(&mut out, manifest, &column.name, results);
    }
    if !results.verdicts.is_empty() {
        let _ = writeln!(out, "## Claims\n\n{TEST}\n");
        for verdict in results.verdicts {
            for (column, sentence) in &verdict.per_column {
                let _ = writeln!(out, "- {} — {column}: {sentence}.", verdict.text);
            }
        }
        let _ = writeln!(out);
    }
    if let Some(chart) = files.chart {
        let _ = writeln!(out, "![last-epoch top-1 per row and column]({chart})\n");
    }
    if let Some(picture) = files.curves {
        let mut dashed: Vec<String> = Vec::new();
        for curve in results.curves.iter().filter(|c| !c.reported) {
            let row = manifest
                .row
                .iter()
                .find(|r| r.name == curve.row)
                .map_or(curve.row.as_str(), |r| r.label.as_str());
            let label = format!("{row} ({})", curve.output);
            if !dashed.contains(&label) {
                dashed.push(label);
            }
        }
        let dashed = if dashed.is_empty() {
            String::new()
        } else {
            format!(
                "; dashed, mean only: {}, the output a claim says improves during training",
                dashed.join(", ")
            )
        };
        let _ = writeln!(
            out,
            "![test top-1 after each epoch, mean over seeds]({picture})\n\n\
             Learning curves, one panel per column: the test top-1 (%) after each epoch of the \
             output each row reports, the mean over the row's seeds (line) and the range from the \
             lowest to the highest seed (band){dashed}. Rows with no finished cell are left out. \
             The numbers are in {}.\n",
            files.curves_csv
        );
    }
    out
}

/// One line per finished seed of every row and column (a cell shared by several columns, as a
/// teacher row keyed on the teacher, under each): `row,column,seed,last_top1,best_top1,
/// best_epoch,epochs,wall_seconds`, the last three empty for an evaluated released file.
pub fn seeds_csv(entries: &[Entry]) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    let header = [
        "row",
        "column",
        "seed",
        "last_top1",
        "best_top1",
        "best_epoch",
        "epochs",
        "wall_seconds",
    ];
    out.write_record(header)
        .expect("writing CSV into memory cannot fail");
    let or_empty = |v: Option<String>| v.unwrap_or_default();
    for e in entries {
        for run in &e.runs {
            out.write_record([
                e.row.clone(),
                e.column.clone(),
                run.seed.to_string(),
                format!("{:.4}", run.last_top1),
                format!("{:.4}", run.best_top1),
                or_empty(run.best_epoch.map(|b| b.to_string())),
                or_empty(run.epochs.map(|n| n.to_string())),
                or_empty(run.wall_seconds.map(|w| format!("{w:.3}"))),
            ])
            .expect("writing CSV into memory cannot fail");
        }
    }
    let bytes = out
        .into_inner()
        .expect("flushing CSV into memory cannot fail");
    String::from_utf8(bytes).expect("every cell is a String")
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

    use crate::reproduce::{aggregate, curves};

    #[test]
    fn durations_in_words() {
        assert_eq!(duration(42.4), "42 s");
        assert_eq!(duration(185.0), "3 min 05 s");
        assert_eq!(duration(900.5), "15 min 01 s");
        assert_eq!(duration(7620.0), "2 h 07 min");
        assert_eq!(duration(0.0), "0 s");
    }

    #[test]
    fn the_seeds_csv_has_a_line_per_finished_seed() {
        let (repo, manifest, cells) = curves::fixture::table();
        let entries = aggregate::collect(repo.path(), &manifest, &cells).unwrap();
        let text = seeds_csv(&entries);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "row,column,seed,last_top1,best_top1,best_epoch,epochs,wall_seconds",
                "teacher,r20-r8,0,78.5000,78.5000,3,4,100.000",
                "teacher,r20-r8,1,78.2500,78.5000,1,4,200.000",
                "teacher,r20-r8,2,78.0000,78.2500,1,4,300.500",
                "kd,r20-r8,0,71.0000,71.0000,3,4,60.000",
                "kd,r20-r8,1,72.0000,72.0000,3,4,",
                "ffkd,r20-r8,0,66.0000,66.0000,3,4,150.000",
                "ffkd,r20-r8,1,67.0000,67.0000,3,4,90.000",
            ]
        );
    }

    fn report(manifest: &Manifest, repo: &Path, cells: &[super::super::manifest::Cell]) -> String {
        let entries = aggregate::collect(repo, manifest, cells).unwrap();
        let verdicts = aggregate::verdicts(manifest, &entries, repo, cells);
        let curves = curves::collect(repo, manifest, cells).unwrap();
        let results = Results {
            entries: &entries,
            verdicts: &verdicts,
            curves: &curves,
            cell_time: aggregate::cell_time(repo, cells),
        };
        let provenance = Provenance {
            command: "cargo xtask reproduce t".into(),
            machine: "a CPU, 2 cores, linux".into(),
            date: "2026-01-01".into(),
            commit: "abc1234".into(),
        };
        let files = Files {
            chart: Some("t.png"),
            curves: Some("t-curves.png"),
            curves_csv: "t-curves.csv",
            seeds_csv: "t-seeds.csv",
        };
        markdown(manifest, &results, &provenance, &files)
    }

    #[test]
    fn the_report_shows_seeds_convergence_tests_time_and_curves() {
        let (repo, manifest, cells) = curves::fixture::table();
        let md = report(&manifest, repo.path(), &cells);
        for line in [
            "Made by `cargo xtask reproduce t` on a CPU, 2 cores, linux, 2026-01-01 (commit \
             abc1234). Cell time: 15 min 01 s, the sum of the wall times of the 7 finished \
             training cells (cells that ran at the same time each counted). One of them records \
             no wall time.",
            "| Teacher | 3/3 | 78.25 ± 0.25 | 78.42 ± 0.14 | not known | — |  |",
            "| KD | 2/3 | 71.50 ± 0.71 | 71.50 ± 0.71 | not known | — |  |",
            "| FFKD | 2/2 | 66.50 ± 0.71 | 66.50 ± 0.71 | not known | — |  |",
            "| row | seed 0 | seed 1 | seed 2 | last-3-epoch change |",
            "|---|---|---|---|---|",
            "| Teacher | 78.50 (1 min 40 s) | 78.25 (3 min 20 s) | 78.00 (5 min 01 s) | 0.00 |",
            "| KD | 71.00 (1 min 00 s) | 72.00 | — | 10.50 |",
            "| FFKD | 66.00 (2 min 30 s) | 67.00 (1 min 30 s) | — | 5.50 |",
            "Not flat (the mean curve changes 0.5 points or more over its last 3 epochs): \
             KD (10.50), FFKD (5.50).",
            "- KD beats the teacher — resnet20 → resnet8: contradicted: kd 71.50 vs teacher 78.25 \
             (Δ -6.75); SE 0.52, z = -12.97 < -2; seeds: kd 2, teacher 3.",
            "![last-epoch top-1 per row and column](t.png)",
            "![test top-1 after each epoch, mean over seeds](t-curves.png)",
        ] {
            assert!(md.lines().any(|l| l == line), "no line\n{line}\nin\n{md}");
        }
        assert!(md.contains("less strict than a t-test"), "{md}");
        assert!(md.contains("dashed, mean only: FFKD (teacher)"), "{md}");
        assert!(md.contains("The numbers are in t-curves.csv"), "{md}");
        // The curves come after the bar chart.
        assert!(md.find("(t.png)").unwrap() < md.find("(t-curves.png)").unwrap());
    }

    #[test]
    fn flat_curves_and_missing_curves_are_said_so() {
        let (repo, manifest, cells) = curves::fixture::table();
        // Only the teacher, whose mean curve ends flat.
        let teacher: Vec<_> = cells
            .iter()
            .filter(|c| c.row == "teacher")
            .cloned()
            .collect();
        let md = report(&manifest, repo.path(), &teacher);
        assert!(
            md.contains(
                "Every row's mean curve changes less than 0.5 points over its last 3 epochs."
            ),
            "{md}"
        );
        // A finished KD cell with no metrics.csv has no curve to check.
        std::fs::remove_file(repo.path().join("runs/kd/r20-r8/seed0/metrics.csv")).unwrap();
        std::fs::remove_file(repo.path().join("runs/kd/r20-r8/seed1/metrics.csv")).unwrap();
        let some: Vec<_> = cells.iter().filter(|c| c.row != "ffkd").cloned().collect();
        let md = report(&manifest, repo.path(), &some);
        assert!(
            md.contains("| KD | 71.00 (1 min 00 s) | 72.00 | — | — |"),
            "{md}"
        );
        assert!(
            md.contains(
                "Every row with a mean curve of 3 epochs or more changes less than 0.5 points \
                 over its last 3 epochs; no mean curve of 3 epochs or more to check: KD."
            ),
            "{md}"
        );
    }

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
            runs: Vec::new(),
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

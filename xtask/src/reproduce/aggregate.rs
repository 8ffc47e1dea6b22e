//! Reading finished cells back and summarising them: mean ± standard deviation over seeds of
//! last- and best-epoch top-1 for every row and column, the paper's number beside it, and the
//! claims checked.

use std::path::Path;

use serde::Deserialize;

use super::manifest::{Cell, CellKind, Claim, Manifest, PaperNumber};

/// What a cell's `summary.json` says about one output.
#[derive(Debug, Clone, Deserialize)]
struct OutputSummary {
    best_top1: f64,
    last_top1: f64,
    #[serde(default)]
    initial_top1: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
struct Summary {
    outputs: std::collections::BTreeMap<String, OutputSummary>,
}

/// Mean and sample standard deviation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1; 0 for one value).
    pub std: f64,
    /// Number of values.
    pub n: usize,
}

impl Stat {
    /// The statistics of some values (`None` for none).
    pub fn of(values: &[f64]) -> Option<Stat> {
        if values.is_empty() {
            return None;
        }
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        Some(Stat {
            mean,
            std: var.sqrt(),
            n,
        })
    }

    /// Standard error of the mean.
    pub fn se(&self) -> f64 {
        self.std / (self.n as f64).sqrt()
    }
}

/// One row × column of the table.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Row name.
    pub row: String,
    /// Column name.
    pub column: String,
    /// Last-epoch top-1 over seeds.
    pub last: Option<Stat>,
    /// Best-epoch top-1 over seeds.
    pub best: Option<Stat>,
    /// Seeds expected.
    pub seeds: usize,
    /// The paper's number.
    pub paper: Option<PaperNumber>,
}

/// A claim with what our numbers say about it, per column.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The claim.
    pub text: String,
    /// `(column label, sentence)`.
    pub per_column: Vec<(String, String)>,
}

/// What `kd eval --json` reports (an evaluation cell: a released teacher).
#[derive(Debug, Clone, Deserialize)]
struct EvalReport {
    top1: f64,
}

fn read_output(repo: &Path, cell: &Cell, output: &str) -> Option<OutputSummary> {
    if let CellKind::Eval { .. } = cell.kind {
        // One evaluation of a fixed file: its top-1 is both the last and the best.
        let text =
            std::fs::read_to_string(repo.join(&cell.dir).join(super::run::EVAL_REPORT)).ok()?;
        let report: EvalReport = serde_json::from_str(&text).ok()?;
        return Some(OutputSummary {
            best_top1: report.top1,
            last_top1: report.top1,
            initial_top1: None,
        });
    }
    let text = std::fs::read_to_string(repo.join(&cell.dir).join("summary.json")).ok()?;
    let summary: Summary = serde_json::from_str(&text).ok()?;
    summary.outputs.get(output).cloned()
}

/// Every entry of the table from what is on disk.
pub fn collect(
    repo: &Path,
    manifest: &Manifest,
    cells: &[Cell],
    seeds: usize,
) -> anyhow::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for row in &manifest.row {
        for column in &manifest.column {
            let key = super::manifest::render(
                row.key.as_deref().unwrap_or("{column}"),
                column,
                0,
                &|_| Ok(String::new()),
            )?;
            let runs: Vec<&Cell> = cells
                .iter()
                .filter(|c| c.row == row.name && c.key == key)
                .collect();
            let outputs: Vec<OutputSummary> = runs
                .iter()
                .filter_map(|c| read_output(repo, c, &row.report))
                .collect();
            // A released file is evaluated once, whatever the seeds.
            let evaluated = runs.iter().any(|c| matches!(c.kind, CellKind::Eval { .. }));
            let last: Vec<f64> = outputs.iter().map(|o| o.last_top1).collect();
            let best: Vec<f64> = outputs.iter().map(|o| o.best_top1).collect();
            entries.push(Entry {
                row: row.name.clone(),
                column: column.name.clone(),
                last: Stat::of(&last),
                best: Stat::of(&best),
                seeds: if evaluated { 1 } else { seeds },
                paper: row.paper.get(&column.name).cloned(),
            });
        }
    }
    Ok(entries)
}

/// Two means compared at about two standard errors.
fn compare(a: Stat, b: Stat) -> &'static str {
    let diff = a.mean - b.mean;
    let se = (a.se().powi(2) + b.se().powi(2)).sqrt();
    if a.n < 2 || b.n < 2 {
        if diff > 0.0 {
            "supported on the mean (one seed: no error bar)"
        } else {
            "not supported (one seed)"
        }
    } else if diff > 2.0 * se {
        "supported"
    } else if diff < -2.0 * se {
        "contradicted"
    } else {
        "inconclusive (within two standard errors)"
    }
}

/// Checks every claim in every column.
pub fn verdicts(
    manifest: &Manifest,
    entries: &[Entry],
    repo: &Path,
    cells: &[Cell],
) -> Vec<Verdict> {
    let find =
        |row: &str, column: &str| entries.iter().find(|e| e.row == row && e.column == column);
    manifest
        .claim
        .iter()
        .map(|claim: &Claim| {
            let per_column = manifest
                .column
                .iter()
                .map(|column| {
                    let sentence = if let [a, b] = claim.better.as_slice() {
                        match (
                            find(a, &column.name).and_then(|e| e.last),
                            find(b, &column.name).and_then(|e| e.last),
                        ) {
                            (Some(x), Some(y)) => {
                                format!(
                                    "{}: {a} {:.2} vs {b} {:.2} (Δ {:+.2})",
                                    compare(x, y),
                                    x.mean,
                                    y.mean,
                                    x.mean - y.mean
                                )
                            }
                            _ => "no result yet".to_string(),
                        }
                    } else if let Some(improves) = &claim.improves {
                        let key = manifest
                            .row
                            .iter()
                            .find(|r| r.name == improves.row)
                            .and_then(|r| {
                                super::manifest::render(
                                    r.key.as_deref().unwrap_or("{column}"),
                                    column,
                                    0,
                                    &|_| Ok(String::new()),
                                )
                                .ok()
                            })
                            .unwrap_or_default();
                        let gains: Vec<f64> = cells
                            .iter()
                            .filter(|c| c.row == improves.row && c.key == key)
                            .filter_map(|c| read_output(repo, c, &improves.output))
                            .filter_map(|o| o.initial_top1.map(|i| o.last_top1 - i))
                            .collect();
                        match Stat::of(&gains) {
                            Some(g) => {
                                let zero = Stat {
                                    mean: 0.0,
                                    std: 0.0,
                                    n: g.n,
                                };
                                format!(
                                    "{}: {} top-1 {:+.2} over its start",
                                    compare(g, zero),
                                    improves.output,
                                    g.mean
                                )
                            }
                            None => "no result yet".to_string(),
                        }
                    } else {
                        "malformed claim".to_string()
                    };
                    (column.label.clone(), sentence)
                })
                .collect();
            Verdict {
                text: claim.text.clone(),
                per_column,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_and_comparisons() {
        let s = Stat::of(&[1.0, 2.0, 3.0]).unwrap();
        assert_eq!((s.mean, s.std, s.n), (2.0, 1.0, 3));
        assert!((s.se() - 1.0 / 3f64.sqrt()).abs() < 1e-12);
        assert_eq!(Stat::of(&[5.0]).unwrap().std, 0.0);
        assert!(Stat::of(&[]).is_none());
        let a = Stat {
            mean: 80.0,
            std: 0.5,
            n: 3,
        };
        let b = Stat {
            mean: 78.0,
            std: 0.5,
            n: 3,
        };
        assert_eq!(compare(a, b), "supported");
        assert_eq!(compare(b, a), "contradicted");
        let c = Stat {
            mean: 78.3,
            std: 0.5,
            n: 3,
        };
        assert_eq!(compare(c, b), "inconclusive (within two standard errors)");
    }

    #[test]
    fn an_evaluation_cell_reports_its_top1_as_last_and_best() {
        let repo = tempfile::tempdir().unwrap();
        let cell = Cell {
            row: "teacher".into(),
            key: "resnet56".into(),
            seed: 0,
            config: "c.toml".into(),
            sets: Vec::new(),
            dir: "runs/t/teacher-released/resnet56/seed0".into(),
            needs: Vec::new(),
            kind: CellKind::Eval {
                arch: "resnet56".into(),
                checkpoint: "/r/resnet56_vanilla/ckpt_epoch_240.pth".into(),
                format: "cifar100".into(),
            },
        };
        assert_eq!(
            super::super::run::cell_state(repo.path(), &cell),
            super::super::run::CellState::New
        );
        assert!(read_output(repo.path(), &cell, "student").is_none());
        let dir = repo.path().join(&cell.dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A kd train summary beside it does not count: an evaluation is done by its report.
        std::fs::write(dir.join("summary.json"), r#"{"outputs": {}}"#).unwrap();
        assert_eq!(
            super::super::run::cell_state(repo.path(), &cell),
            super::super::run::CellState::New
        );
        std::fs::write(
            dir.join(super::super::run::EVAL_REPORT),
            r#"{"checkpoint": "x", "role": "student", "arch": "resnet56", "count": 10000,
                "top1": 72.34, "top5": 92.0, "per_class": []}"#,
        )
        .unwrap();
        assert_eq!(
            super::super::run::cell_state(repo.path(), &cell),
            super::super::run::CellState::Done
        );
        let out = read_output(repo.path(), &cell, "student").unwrap();
        assert_eq!((out.last_top1, out.best_top1), (72.34, 72.34));
        assert_eq!(out.initial_top1, None);
    }
}

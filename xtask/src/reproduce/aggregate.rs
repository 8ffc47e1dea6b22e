//! Reading finished cells back and summarising them: mean ± standard deviation over seeds of
//! last- and best-epoch top-1 for every row and column, each seed's own numbers beside them,
//! the paper's number, the total time the cells took, and the claims checked, each with the
//! test behind its verdict (difference of means over its standard error).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::manifest::{Cell, CellKind, Claim, Column, Manifest, PaperNumber, Row};

/// What a cell's `summary.json` says about one output.
#[derive(Debug, Clone, Deserialize)]
struct OutputSummary {
    best_top1: f64,
    last_top1: f64,
    #[serde(default)]
    best_epoch: Option<usize>,
    #[serde(default)]
    initial_top1: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
struct Summary {
    #[serde(default)]
    epochs: Option<usize>,
    #[serde(default)]
    wall_seconds: Option<f64>,
    outputs: BTreeMap<String, OutputSummary>,
}

/// One output of a finished cell, with the cell's own length and time.
#[derive(Debug, Clone)]
struct CellOutput {
    output: OutputSummary,
    epochs: Option<usize>,
    wall_seconds: Option<f64>,
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

/// One finished seed of a row and column: what its cell reports for the row's output.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedResult {
    /// Seed.
    pub seed: usize,
    /// Last-epoch top-1 (an evaluation's top-1).
    pub last_top1: f64,
    /// Best-epoch top-1 (an evaluation's top-1).
    pub best_top1: f64,
    /// The epoch of the best top-1, from 1 (none for an evaluation).
    pub best_epoch: Option<usize>,
    /// Epochs trained (none for an evaluation).
    pub epochs: Option<usize>,
    /// The cell's wall time in seconds, over all its sessions (none for an evaluation).
    pub wall_seconds: Option<f64>,
    /// Whether the cell evaluated a released file rather than trained.
    pub evaluated: bool,
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
    /// Seeds expected: the cells of this row and column (1 for an evaluated released file).
    pub seeds: usize,
    /// The paper's number.
    pub paper: Option<PaperNumber>,
    /// Every finished seed, by seed.
    pub runs: Vec<SeedResult>,
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

fn read_output(repo: &Path, cell: &Cell, output: &str) -> Option<CellOutput> {
    if let CellKind::Eval { .. } = cell.kind {
        // One evaluation of a fixed file: its top-1 is both the last and the best.
        let text =
            std::fs::read_to_string(repo.join(&cell.dir).join(super::run::EVAL_REPORT)).ok()?;
        let report: EvalReport = serde_json::from_str(&text).ok()?;
        return Some(CellOutput {
            output: OutputSummary {
                best_top1: report.top1,
                last_top1: report.top1,
                best_epoch: None,
                initial_top1: None,
            },
            epochs: None,
            wall_seconds: None,
        });
    }
    let summary = read_summary(repo, cell)?;
    Some(CellOutput {
        output: summary.outputs.get(output).cloned()?,
        epochs: summary.epochs,
        wall_seconds: summary.wall_seconds,
    })
}

fn read_summary(repo: &Path, cell: &Cell) -> Option<Summary> {
    let text = std::fs::read_to_string(repo.join(&cell.dir).join("summary.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// The key of a row's cells in a column (the folder under the row's).
///
/// # Errors
/// A key that does not render.
pub fn row_key(row: &Row, column: &Column) -> anyhow::Result<String> {
    super::manifest::render(row.key.as_deref().unwrap_or("{column}"), column, 0, &|_| {
        Ok(String::new())
    })
}

/// Whether a cell trained and finished (its `summary.json` reads).
pub fn finished_training(repo: &Path, cell: &Cell) -> bool {
    cell.kind == CellKind::Train && read_summary(repo, cell).is_some()
}

/// The time a table's training cells took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellTime {
    /// Sum of the finished training cells' wall times, in seconds (each cell counted once,
    /// however many columns share it).
    pub seconds: f64,
    /// Finished training cells.
    pub cells: usize,
    /// Of those, the ones whose summary records no wall time.
    pub untimed: usize,
}

/// The time the finished training cells took, summed (evaluation cells are not counted).
pub fn cell_time(repo: &Path, cells: &[Cell]) -> CellTime {
    let finished: Vec<Option<f64>> = cells
        .iter()
        .filter(|c| c.kind == CellKind::Train)
        .filter_map(|c| read_summary(repo, c).map(|s| s.wall_seconds))
        .collect();
    CellTime {
        seconds: finished.iter().flatten().sum(),
        cells: finished.len(),
        untimed: finished.iter().filter(|w| w.is_none()).count(),
    }
}

/// Every entry of the table from what is on disk; a row and column expects as many seeds as
/// `cells` holds for it.
pub fn collect(repo: &Path, manifest: &Manifest, cells: &[Cell]) -> anyhow::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for row in &manifest.row {
        for column in &manifest.column {
            let key = row_key(row, column)?;
            let runs: Vec<&Cell> = cells
                .iter()
                .filter(|c| c.row == row.name && c.key == key)
                .collect();
            let mut seeds: Vec<SeedResult> = runs
                .iter()
                .filter_map(|c| {
                    let read = read_output(repo, c, &row.report)?;
                    Some(SeedResult {
                        seed: c.seed,
                        last_top1: read.output.last_top1,
                        best_top1: read.output.best_top1,
                        best_epoch: read.output.best_epoch,
                        epochs: read.epochs,
                        wall_seconds: read.wall_seconds,
                        evaluated: matches!(c.kind, CellKind::Eval { .. }),
                    })
                })
                .collect();
            seeds.sort_by_key(|s| s.seed);
            let last: Vec<f64> = seeds.iter().map(|s| s.last_top1).collect();
            let best: Vec<f64> = seeds.iter().map(|s| s.best_top1).collect();
            entries.push(Entry {
                row: row.name.clone(),
                column: column.name.clone(),
                last: Stat::of(&last),
                best: Stat::of(&best),
                seeds: runs.len(),
                paper: row.paper.get(&column.name).cloned(),
                runs: seeds,
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

/// The test behind a verdict: the difference of two independent means over its standard error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Test {
    /// Difference of the means, a − b.
    pub diff: f64,
    /// Its standard error, √(se_a² + se_b²).
    pub se: f64,
}

impl Test {
    /// The test of `a` against `b`.
    pub fn of(a: Stat, b: Stat) -> Test {
        Test {
            diff: a.mean - b.mean,
            se: (a.se().powi(2) + b.se().powi(2)).sqrt(),
        }
    }

    /// `diff / se` (infinite for a nonzero difference with no spread, NaN for none at all).
    pub fn z(&self) -> f64 {
        self.diff / self.se
    }

    /// The standard error, z and the rule it met, as a claim line states them.
    fn describe(&self) -> String {
        let z = self.z();
        let z_text = if z.is_nan() {
            "undefined (Δ and SE both 0)".to_string()
        } else if z.is_infinite() {
            if z > 0.0 { "+∞" } else { "-∞" }.to_string()
        } else {
            format!("{z:+.2}")
        };
        // The same comparisons as `compare`, so the rule stated is the one applied.
        let rule = if self.diff > 2.0 * self.se {
            "> 2"
        } else if self.diff < -2.0 * self.se {
            "< -2"
        } else {
            "within ±2"
        };
        format!("SE {:.2}, z = {z_text} {rule}", self.se)
    }
}

/// A claim's sentence in one column from its two sides: the verdict, the means and their
/// difference, then the test (or why there is none) and the seeds behind each side.
fn sentence(a: (&str, Stat), b: (&str, Stat)) -> String {
    let ((a_name, x), (b_name, y)) = (a, b);
    let test = if x.n < 2 || y.n < 2 {
        "no standard error with one seed".to_string()
    } else {
        Test::of(x, y).describe()
    };
    format!(
        "{}: {a_name} {:.2} vs {b_name} {:.2} (Δ {:+.2}); {test}; seeds: {a_name} {}, {b_name} {}",
        compare(x, y),
        x.mean,
        y.mean,
        x.mean - y.mean,
        x.n,
        y.n
    )
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
                            (Some(x), Some(y)) => sentence((a, x), (b, y)),
                            _ => "no result yet".to_string(),
                        }
                    } else if let Some(improves) = &claim.improves {
                        let key = manifest
                            .row
                            .iter()
                            .find(|r| r.name == improves.row)
                            .and_then(|r| row_key(r, column).ok())
                            .unwrap_or_default();
                        let gains: Vec<f64> = cells
                            .iter()
                            .filter(|c| c.row == improves.row && c.key == key)
                            .filter_map(|c| read_output(repo, c, &improves.output))
                            .filter_map(|o| o.output.initial_top1.map(|i| o.output.last_top1 - i))
                            .collect();
                        match Stat::of(&gains) {
                            Some(g) => {
                                // The mean gain against no gain: the second side adds no error.
                                let zero = Stat {
                                    mean: 0.0,
                                    std: 0.0,
                                    n: g.n,
                                };
                                let test = if g.n < 2 {
                                    "no standard error with one seed".to_string()
                                } else {
                                    Test::of(g, zero).describe()
                                };
                                format!(
                                    "{}: {} top-1 {:+.2} over its start; {test}; seeds: {}",
                                    compare(g, zero),
                                    improves.output,
                                    g.mean,
                                    g.n
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
    fn the_test_is_the_difference_over_its_standard_error() {
        // se = 3/√9 = 1 and 4/√16 = 1, so SE = √2 and z = 3/√2.
        let a = Stat {
            mean: 80.0,
            std: 3.0,
            n: 9,
        };
        let b = Stat {
            mean: 77.0,
            std: 4.0,
            n: 16,
        };
        let test = Test::of(a, b);
        assert_eq!(test.diff, 3.0);
        assert!((test.se - 2f64.sqrt()).abs() < 1e-12);
        assert!((test.z() - 3.0 / 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(test.describe(), "SE 1.41, z = +2.12 > 2");
        assert_eq!(Test::of(b, a).describe(), "SE 1.41, z = -2.12 < -2");
        let c = Stat { mean: 78.0, ..b };
        assert_eq!(Test::of(c, b).describe(), "SE 1.41, z = +0.71 within ±2");
        // No spread at all: the rule still follows `compare`.
        let flat = Stat {
            mean: 1.0,
            std: 0.0,
            n: 3,
        };
        let zero = Stat { mean: 0.0, ..flat };
        assert_eq!(compare(flat, zero), "supported");
        assert_eq!(Test::of(flat, zero).describe(), "SE 0.00, z = +∞ > 2");
        assert_eq!(
            Test::of(zero, zero).describe(),
            "SE 0.00, z = undefined (Δ and SE both 0) within ±2"
        );
    }

    #[test]
    fn seeds_expected_come_from_the_cells_and_each_seed_is_kept() {
        let (repo, manifest, cells) = super::super::curves::fixture::table();
        let entries = collect(repo.path(), &manifest, &cells).unwrap();
        let find = |row: &str| entries.iter().find(|e| e.row == row).unwrap();
        // Teacher 3 cells, KD 3 (one unfinished), FFKD 2 (its cells stop at two seeds).
        let counts: Vec<(usize, usize)> = ["teacher", "kd", "ffkd"]
            .iter()
            .map(|r| (find(r).last.map_or(0, |s| s.n), find(r).seeds))
            .collect();
        assert_eq!(counts, [(3, 3), (2, 3), (2, 2)]);
        // Teacher: last 78.5, 78.25, 78 → mean 78.25, std 0.25.
        assert_eq!(
            find("teacher").last,
            Some(Stat {
                mean: 78.25,
                std: 0.25,
                n: 3
            })
        );
        assert_eq!(
            find("teacher").runs[1],
            SeedResult {
                seed: 1,
                last_top1: 78.25,
                best_top1: 78.5,
                best_epoch: Some(1),
                epochs: Some(4),
                wall_seconds: Some(200.0),
                evaluated: false,
            }
        );
        let kd: Vec<(usize, f64, Option<f64>)> = find("kd")
            .runs
            .iter()
            .map(|r| (r.seed, r.last_top1, r.wall_seconds))
            .collect();
        assert_eq!(kd, [(0, 71.0, Some(60.0)), (1, 72.0, None)]);
    }

    #[test]
    fn cell_time_sums_each_finished_training_cell_once() {
        let (repo, _, cells) = super::super::curves::fixture::table();
        // 100 + 200 + 300.5 (teacher) + 60 (KD seed 0; seed 1 has none) + 150 + 90 (FFKD).
        assert_eq!(
            cell_time(repo.path(), &cells),
            CellTime {
                seconds: 900.5,
                cells: 7,
                untimed: 1
            }
        );
    }

    #[test]
    fn each_claim_line_states_its_test_and_seeds() {
        let (repo, manifest, cells) = super::super::curves::fixture::table();
        let entries = collect(repo.path(), &manifest, &cells).unwrap();
        let checked = verdicts(&manifest, &entries, repo.path(), &cells);
        // KD 71.5 (se 0.7071/√2 = 0.5) vs teacher 78.25 (se 0.25/√3 = 0.1443):
        // SE = √(0.25 + 0.0208) = 0.5204, z = −6.75 / 0.5204 = −12.97.
        assert_eq!(
            checked[0].per_column,
            [(
                "resnet20 → resnet8".to_string(),
                "contradicted: kd 71.50 vs teacher 78.25 (Δ -6.75); SE 0.52, z = -12.97 < -2; \
                 seeds: kd 2, teacher 3"
                    .to_string()
            )]
        );
        // FFKD's teacher gains 80 − 78.5 = 1.5 and 80.5 − 78 = 2.5: mean 2, std 0.7071,
        // SE 0.5, z = 4.
        assert_eq!(
            checked[1].per_column[0].1,
            "supported: teacher top-1 +2.00 over its start; SE 0.50, z = +4.00 > 2; seeds: 2"
        );
        // One seed a side: no standard error.
        let one = cells
            .iter()
            .filter(|c| c.seed == 0)
            .cloned()
            .collect::<Vec<_>>();
        let entries = collect(repo.path(), &manifest, &one).unwrap();
        let checked = verdicts(&manifest, &entries, repo.path(), &one);
        assert_eq!(
            checked[0].per_column[0].1,
            "not supported (one seed): kd 71.00 vs teacher 78.50 (Δ -7.50); no standard error \
             with one seed; seeds: kd 1, teacher 1"
        );
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
        let read = read_output(repo.path(), &cell, "student").unwrap();
        let out = read.output;
        assert_eq!((out.last_top1, out.best_top1), (72.34, 72.34));
        assert_eq!(out.initial_top1, None);
        assert_eq!((read.epochs, read.wall_seconds), (None, None));
    }
}

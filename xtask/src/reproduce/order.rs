//! The order in which a sweep starts its cells when it runs several at once (`--jobs`).
//!
//! Started in manifest order, a table's longest cells (FFKD's, which train their teacher beside
//! the student) come last, and the sweep ends with one of them running alone while the other
//! workers idle. Instead, of the cells ready to start, the one heading the longest chain of work
//! still to do starts first: its own cost plus that of the longest chain of cells waiting on it
//! (list scheduling by "bottom level"). A cell's cost is its own earlier run's wall time (the
//! latest `seed<k>.replaced-<n>` with a `summary.json`), else the mean of its row's known costs,
//! else the mean of all known costs. With nothing known (a table's first run) every chain is
//! equal and cells start in manifest order, as before. Costs only order the cells: what runs,
//! and each cell's result, do not depend on them.

use std::path::Path;

use super::manifest::Cell;

/// The wall time, in seconds, of the latest earlier run of `cell` moved aside by the reuse
/// check (`<dir>.replaced-<n>/summary.json`, highest `n`), if any recorded one.
pub fn previous_seconds(repo: &Path, cell: &Cell) -> Option<f64> {
    let dir = repo.join(&cell.dir);
    let name = dir.file_name()?.to_string_lossy().into_owned();
    let prefix = format!("{name}.replaced-");
    let parent = dir.parent()?;
    let mut runs: Vec<(u64, std::path::PathBuf)> = std::fs::read_dir(parent)
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let file = entry.file_name().to_string_lossy().into_owned();
            let n = file.strip_prefix(&prefix)?.parse::<u64>().ok()?;
            Some((n, entry.path()))
        })
        .collect();
    runs.sort();
    runs.iter().rev().find_map(|(_, run)| {
        let text = std::fs::read_to_string(run.join("summary.json")).ok()?;
        let summary: serde_json::Value = serde_json::from_str(&text).ok()?;
        summary
            .get("wall_seconds")?
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0)
    })
}

/// Every cell's cost: its own (`known[i]`), else its row's mean, else the mean of all known
/// ones, else 1 (nothing known: every cell costs the same).
pub fn costs(cells: &[Cell], known: &[Option<f64>]) -> Vec<f64> {
    let mean = |values: Vec<f64>| {
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    };
    let all = mean(known.iter().flatten().copied().collect()).unwrap_or(1.0);
    cells
        .iter()
        .zip(known)
        .map(|(cell, own)| {
            own.or_else(|| {
                mean(
                    cells
                        .iter()
                        .zip(known)
                        .filter(|(other, _)| other.row == cell.row)
                        .filter_map(|(_, k)| *k)
                        .collect(),
                )
            })
            .unwrap_or(all)
        })
        .collect()
}

/// Each cell's priority: its cost plus the largest priority among the cells that need it.
/// Cells only need earlier ones (the manifest expands in dependency order).
pub fn priorities(cells: &[Cell], costs: &[f64]) -> Vec<f64> {
    let mut priority = costs.to_vec();
    for i in (0..cells.len()).rev() {
        for &need in &cells[i].needs {
            if need < i {
                priority[need] = priority[need].max(costs[need] + priority[i]);
            }
        }
    }
    priority
}

/// The cell to start next among `ready` (indices): the highest priority, the earliest in the
/// manifest among equals.
pub fn next(ready: impl Iterator<Item = usize>, priority: &[f64]) -> Option<usize> {
    ready.fold(None, |best: Option<usize>, i| match best {
        Some(b) if priority[b] >= priority[i] => Some(b),
        _ => Some(i),
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::reproduce::manifest::CellKind;

    fn cell(row: &str, seed: usize, needs: &[usize]) -> Cell {
        Cell {
            row: row.into(),
            key: "k".into(),
            seed,
            config: PathBuf::from("c.toml"),
            sets: Vec::new(),
            dir: PathBuf::from(format!("runs/t/{row}/k/seed{seed}")),
            needs: needs.to_vec(),
            kind: CellKind::Train,
        }
    }

    /// A teacher (0), a short row needing it (1), a cheap independent row (2), a long row
    /// needing the teacher (3).
    fn table() -> Vec<Cell> {
        vec![
            cell("teacher", 0, &[]),
            cell("kd", 0, &[0]),
            cell("student", 0, &[]),
            cell("ffkd", 0, &[0]),
        ]
    }

    #[test]
    fn the_longest_chain_starts_first() {
        let cells = table();
        let known = [Some(400.0), Some(200.0), Some(150.0), Some(1400.0)];
        let costs = costs(&cells, &known);
        let priority = priorities(&cells, &costs);
        // The teacher heads teacher → ffkd: 400 + 1400.
        assert_eq!(priority, vec![1800.0, 200.0, 150.0, 1400.0]);
        assert_eq!(next([0, 2].into_iter(), &priority), Some(0));
        // Once the teacher is done, FFKD before KD before the student, though listed last.
        assert_eq!(next([1, 2, 3].into_iter(), &priority), Some(3));
        assert_eq!(next([1, 2].into_iter(), &priority), Some(1));
    }

    #[test]
    fn with_nothing_known_cells_start_in_manifest_order() {
        let cells = table();
        let costs = costs(&cells, &[None; 4]);
        assert_eq!(costs, vec![1.0; 4]);
        let priority = priorities(&cells, &costs);
        // Equal costs: the teacher still goes first (it heads a chain of two), then the
        // manifest's order among equals.
        assert_eq!(next([0, 2].into_iter(), &priority), Some(0));
        assert_eq!(next([1, 2, 3].into_iter(), &priority), Some(1));
        assert_eq!(next(std::iter::empty(), &priority), None);
    }

    #[test]
    fn an_unknown_cost_is_its_rows_mean_else_the_tables() {
        let mut cells = table();
        cells.push(cell("ffkd", 1, &[0]));
        let costs = costs(
            &cells,
            &[Some(400.0), None, Some(100.0), Some(1400.0), None],
        );
        // kd: no row mean, the table's mean (400 + 100 + 1400) / 3; ffkd seed 1: its row's.
        assert_eq!(costs, vec![400.0, 1900.0 / 3.0, 100.0, 1400.0, 1400.0]);
    }

    #[test]
    fn the_cost_is_the_latest_earlier_runs_wall_time() {
        let repo = tempfile::tempdir().unwrap();
        let cell = cell("ffkd", 0, &[]);
        let dir = repo.path().join(&cell.dir);
        assert_eq!(previous_seconds(repo.path(), &cell), None);
        let write = |n: u32, summary: &str| {
            let run = dir.with_file_name(format!("seed0.replaced-{n}"));
            std::fs::create_dir_all(&run).unwrap();
            std::fs::write(run.join("summary.json"), summary).unwrap();
        };
        write(2, r#"{"wall_seconds": 1400.5}"#);
        write(10, r#"{"wall_seconds": 900.0}"#);
        // Numbered 10, not 1: the highest number is the latest, compared as a number.
        assert_eq!(previous_seconds(repo.path(), &cell), Some(900.0));
        // The latest without a usable time falls back to the one before it.
        write(11, r#"{"epochs": 3}"#);
        write(12, "not json");
        assert_eq!(previous_seconds(repo.path(), &cell), Some(900.0));
        // Another seed's runs are not this cell's.
        let other = dir.with_file_name("seed1.replaced-13");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("summary.json"), r#"{"wall_seconds": 5.0}"#).unwrap();
        assert_eq!(previous_seconds(repo.path(), &cell), Some(900.0));
    }
}

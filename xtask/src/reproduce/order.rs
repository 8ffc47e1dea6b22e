//! The order in which a sweep starts its cells.
//!
//! Started in manifest order, a table's longest cells (FFKD's, which train their teacher beside
//! the student) come last, and a sweep with `--jobs 2` ends with one of them running alone while
//! the other worker idles. Instead, of the cells ready to start, the one heading the longest
//! chain of work still to do starts first: its own cost plus the largest such priority among the
//! cells that need it (list scheduling by "bottom level"). A cell's cost is the wall time its
//! own `summary.json` records (a finished cell's; it only informs its row's mean), else that of
//! its newest earlier run moved aside by the reuse check (`seed<k>.replaced-<n>`), else the mean
//! of its row's known costs, else the mean of all known costs, else 1. With nothing known every
//! cell costs the same, so a cell that more cells wait on goes first and ties keep manifest
//! order. Costs only order the cells: what runs, and each cell's result, do not depend on them.

use std::path::Path;

use super::manifest::Cell;

/// The wall time, in seconds, that `cell`'s own `summary.json` records, else the newest (by the
/// file's modification time) of its earlier runs moved aside by the reuse check
/// (`<dir>.replaced-<n>/summary.json`) that records a usable one.
pub fn recorded_seconds(repo: &Path, cell: &Cell) -> Option<f64> {
    let dir = repo.join(&cell.dir);
    let read = |run: &Path| -> Option<(std::time::SystemTime, f64)> {
        let path = run.join("summary.json");
        let text = std::fs::read_to_string(&path).ok()?;
        let summary: serde_json::Value = serde_json::from_str(&text).ok()?;
        let seconds = summary.get("wall_seconds")?.as_f64()?;
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
        (seconds.is_finite() && seconds >= 0.0).then_some((modified, seconds))
    };
    if let Some((_, seconds)) = read(&dir) {
        return Some(seconds);
    }
    let prefix = format!("{}.replaced-", dir.file_name()?.to_string_lossy());
    std::fs::read_dir(dir.parent()?)
        .ok()?
        .flatten()
        .filter(|entry| {
            let file = entry.file_name().to_string_lossy().into_owned();
            file.strip_prefix(&prefix)
                .is_some_and(|n| n.parse::<u64>().is_ok())
        })
        .filter_map(|entry| read(&entry.path()))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, seconds)| seconds)
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
            debug_assert!(need < i, "a cell needs a later one");
            priority[need] = priority[need].max(costs[need] + priority[i]);
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
    fn with_nothing_known_the_longer_chain_then_manifest_order() {
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
    fn the_cost_is_the_cells_own_time_else_its_newest_earlier_runs() {
        let repo = tempfile::tempdir().unwrap();
        let cell = cell("ffkd", 0, &[]);
        let dir = repo.path().join(&cell.dir);
        assert_eq!(recorded_seconds(repo.path(), &cell), None);
        let write = |run: &std::path::Path, summary: &str, age: u64| {
            std::fs::create_dir_all(run).unwrap();
            let path = run.join("summary.json");
            std::fs::write(&path, summary).unwrap();
            let when = std::time::SystemTime::now() - std::time::Duration::from_secs(age);
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(when)
                .unwrap();
        };
        let replaced = |n: u32| dir.with_file_name(format!("seed0.replaced-{n}"));
        // Numbered 1 but written last (an earlier replaced-1 was deleted, so the reuse check
        // took the lowest free number): the newest file wins, not the highest number.
        write(&replaced(2), r#"{"wall_seconds": 1400.5}"#, 300);
        write(&replaced(1), r#"{"wall_seconds": 900.0}"#, 100);
        assert_eq!(recorded_seconds(repo.path(), &cell), Some(900.0));
        // Newer runs without a usable time are passed over.
        write(&replaced(3), r#"{"epochs": 3}"#, 10);
        write(&replaced(4), "not json", 10);
        write(&replaced(5), r#"{"wall_seconds": -1.0}"#, 10);
        assert_eq!(recorded_seconds(repo.path(), &cell), Some(900.0));
        // Logs beside the runs and another seed's runs are not this cell's.
        std::fs::write(dir.with_file_name("seed0.replaced-6.log"), "").unwrap();
        write(
            &dir.with_file_name("seed1.replaced-7"),
            r#"{"wall_seconds": 5.0}"#,
            0,
        );
        write(
            &dir.with_file_name("seed0.replaced-x"),
            r#"{"wall_seconds": 6.0}"#,
            0,
        );
        assert_eq!(recorded_seconds(repo.path(), &cell), Some(900.0));
        // A finished cell's own time comes first.
        write(&dir, r#"{"wall_seconds": 250.0}"#, 500);
        assert_eq!(recorded_seconds(repo.path(), &cell), Some(250.0));
    }

    #[test]
    fn a_chain_of_three_and_a_diamond() {
        // 0 → 1 → 3 and 0 → 2 → 3: the teacher heads the longer branch.
        let cells = vec![
            cell("teacher", 0, &[]),
            cell("a", 0, &[0]),
            cell("b", 0, &[0]),
            cell("c", 0, &[1, 2]),
            cell("alone", 0, &[]),
        ];
        let costs = [10.0, 5.0, 20.0, 1.0, 30.0];
        let priority = priorities(&cells, &costs);
        assert_eq!(priority, vec![31.0, 6.0, 21.0, 1.0, 30.0]);
        // The teacher (31) before the longer independent cell (30).
        assert_eq!(next([0, 4].into_iter(), &priority), Some(0));
        assert_eq!(next([1, 2, 4].into_iter(), &priority), Some(4));
    }
}

//! The metrics files of a run directory: `metrics.jsonl` (one JSON object per row) and
//! `metrics.csv` (the same rows under a fixed header), appended as the run goes.
//!
//! Columns are fixed at the start from the plan: `kind` (`step` or `epoch`), `epoch`, `batch`,
//! `step`, `lr_factor`, `loss`, every term as `<instance>/<term>` (`ce/<role>` for the task
//! loss), every evaluated output as `<name>/top1` and `<name>/top5`, then the timing columns
//! `images_per_sec` and `wall_seconds`. On resume both files are cut back to the lengths saved
//! in the checkpoint, so rows written after it are written again, identically but for timing.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Columns whose values depend on wall-clock time.
pub const TIMING_COLUMNS: [&str; 2] = ["images_per_sec", "wall_seconds"];

/// One row: `kind` plus named numeric values.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `step` or `epoch`.
    pub kind: &'static str,
    /// Values by column.
    pub values: BTreeMap<String, f64>,
}

/// Appends rows to both files.
pub struct MetricsWriter {
    columns: Vec<String>,
    jsonl: (PathBuf, File),
    csv: (PathBuf, File),
}

impl MetricsWriter {
    /// Opens the files in `dir`: fresh (writing the CSV header) or, with `resume_at`, cut back to
    /// the given lengths.
    pub fn open(
        dir: &Path,
        columns: Vec<String>,
        resume_at: Option<(u64, u64)>,
    ) -> std::io::Result<Self> {
        let jsonl_path = dir.join("metrics.jsonl");
        let csv_path = dir.join("metrics.csv");
        let open = |path: &Path, len: Option<u64>| -> std::io::Result<File> {
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            file.set_len(len.unwrap_or(0))?;
            Ok(file)
        };
        let jsonl = open(&jsonl_path, resume_at.map(|l| l.0))?;
        let mut csv = open(&csv_path, resume_at.map(|l| l.1))?;
        if resume_at.is_none() {
            writeln!(csv, "kind,{}", columns.join(","))?;
        }
        Ok(MetricsWriter {
            columns,
            jsonl: (jsonl_path, jsonl),
            csv: (csv_path, csv),
        })
    }

    /// Appends one row to both files.
    pub fn append(&mut self, row: &Row) -> std::io::Result<()> {
        let mut object = serde_json::Map::new();
        object.insert("kind".into(), row.kind.into());
        for (key, value) in &row.values {
            object.insert(key.clone(), json_number(*value));
        }
        writeln!(self.jsonl.1, "{}", serde_json::Value::Object(object))?;
        let cells: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                row.values
                    .get(c)
                    .map(|v| format_number(*v))
                    .unwrap_or_default()
            })
            .collect();
        writeln!(self.csv.1, "{},{}", row.kind, cells.join(","))?;
        Ok(())
    }

    /// Current lengths of the two files (flushed first).
    pub fn lengths(&mut self) -> std::io::Result<(u64, u64)> {
        self.jsonl.1.flush()?;
        self.csv.1.flush()?;
        Ok((self.jsonl.1.metadata()?.len(), self.csv.1.metadata()?.len()))
    }
}

/// Whole numbers (epoch, batch, step) as JSON integers, the rest as floats.
fn json_number(v: f64) -> serde_json::Value {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return serde_json::Value::from(v as i64);
    }
    serde_json::Number::from_f64(v)
        .map(serde_json::Value::Number)
        .unwrap_or(serde_json::Value::Null)
}

fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

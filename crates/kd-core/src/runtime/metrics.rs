//! The metrics files of a run directory: `metrics.jsonl` (one JSON object per row) and
//! `metrics.csv` (the same rows under a fixed header, written by the `csv` crate so a column
//! name holding a comma or a quote is quoted), appended as the run goes. The trainer opens them
//! through [`MetricsWriter`]; `run_dir.rs` checks them with [`check_resumable`] before a resumed
//! run touches anything.
//!
//! Columns are fixed at the start from the plan: `kind` (`step` or `epoch`), `epoch`, `batch`,
//! `step`, `lr_factor`, `loss`, every term as `<instance>/<term>` (`ce/<role>` for the task
//! loss), every evaluated output as `<name>/top1` and `<name>/top5`, then the timing columns
//! `images_per_sec` and `wall_seconds`. On resume both files are cut back to the lengths saved
//! in the checkpoint, so rows written after it are written again, identically but for timing.
//! A file shorter than its saved length (deleted, or cut by hand) is refused, never padded.
//!
//! Every row also goes to the run's TensorBoard event file (`tensorboard.rs`) at the row's
//! `step`: a step row's values under their column names, an epoch row's under `epoch/<column>`
//! (`epoch/student/top1`, `epoch/loss`, `epoch/lr_factor`); the position columns `epoch`,
//! `batch` and `step` are not values there. Event files are never cut: a resumed run opens a
//! new one.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::error::TrainError;
use super::tensorboard::{self, EventWriter};

/// Columns whose values depend on wall-clock time.
pub const TIMING_COLUMNS: [&str; 2] = ["images_per_sec", "wall_seconds"];

/// The JSON-lines file, in the run directory.
pub const JSONL_FILE: &str = "metrics.jsonl";

/// The CSV file, in the run directory.
pub const CSV_FILE: &str = "metrics.csv";

/// Columns that place a row (in the event file, its step) rather than measure anything.
const POSITION_COLUMNS: [&str; 3] = ["epoch", "batch", "step"];

/// One row: `kind` plus named numeric values.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `step` or `epoch`.
    pub kind: &'static str,
    /// Values by column.
    pub values: BTreeMap<String, f64>,
}

/// Appends rows to both files and to the session's TensorBoard event file.
pub struct MetricsWriter {
    columns: Vec<String>,
    jsonl: (PathBuf, File),
    csv: (PathBuf, csv::Writer<File>),
    events: EventWriter,
}

impl MetricsWriter {
    /// Opens the files in `dir`: fresh (writing the CSV header) or, with `resume_at` (the lengths
    /// of `metrics.jsonl` and `metrics.csv` in bytes, as saved in the checkpoint), cut back to
    /// those lengths; in both cases a new TensorBoard event file is created under
    /// `dir/tensorboard/` before either metrics file is touched.
    ///
    /// # Errors
    ///
    /// Any I/O error (an event file's names the folder or file); on resume, an `InvalidData`
    /// error when a file is missing or shorter than its saved length (it is never padded;
    /// [`check_resumable`] reports the same thing as a user error before the run starts).
    pub fn open(
        dir: &Path,
        columns: Vec<String>,
        resume_at: Option<(u64, u64)>,
    ) -> std::io::Result<Self> {
        let jsonl_path = dir.join(JSONL_FILE);
        let csv_path = dir.join(CSV_FILE);
        if let Some(saved) = resume_at {
            // Both files are checked before either is cut.
            for (path, len) in [(&jsonl_path, saved.0), (&csv_path, saved.1)] {
                if let Some(problem) = resume_problem(path, len)? {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        problem.to_string(),
                    ));
                }
            }
        }
        let events = EventWriter::create(dir)?;
        let open = |path: &Path, len: Option<u64>| -> std::io::Result<File> {
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            file.set_len(len.unwrap_or(0))?;
            Ok(file)
        };
        let jsonl = open(&jsonl_path, resume_at.map(|l| l.0))?;
        let mut csv = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(open(&csv_path, resume_at.map(|l| l.1))?);
        if resume_at.is_none() {
            csv.write_record(std::iter::once("kind").chain(columns.iter().map(String::as_str)))?;
            csv.flush()?;
        }
        Ok(MetricsWriter {
            columns,
            jsonl: (jsonl_path, jsonl),
            csv: (csv_path, csv),
            events,
        })
    }

    /// Appends one row to both files and the event file (each row reaches every file before
    /// this returns).
    pub fn append(&mut self, row: &Row) -> std::io::Result<()> {
        let mut object = serde_json::Map::new();
        object.insert("kind".into(), row.kind.into());
        for (key, value) in &row.values {
            object.insert(key.clone(), json_number(*value));
        }
        writeln!(self.jsonl.1, "{}", serde_json::Value::Object(object))?;
        let cells = self.columns.iter().map(|c| {
            row.values
                .get(c)
                .map(|v| format_number(*v))
                .unwrap_or_default()
        });
        self.csv
            .1
            .write_record(std::iter::once(row.kind.to_string()).chain(cells))?;
        self.csv.1.flush()?;
        let step = row.values.get("step").copied().unwrap_or(0.0) as i64;
        self.events.scalars(step, &event_values(row))
    }

    /// Current lengths of the two files in bytes (flushed first).
    pub fn lengths(&mut self) -> std::io::Result<(u64, u64)> {
        self.jsonl.1.flush()?;
        self.csv.1.flush()?;
        Ok((
            self.jsonl.1.metadata()?.len(),
            self.csv.1.get_ref().metadata()?.len(),
        ))
    }
}

/// The values of `row` as the event file holds them: (tag, value) by column name, the
/// position columns left out, an epoch row's tags under `epoch/`.
fn event_values(row: &Row) -> Vec<(String, f32)> {
    row.values
        .iter()
        .filter(|(name, _)| !POSITION_COLUMNS.contains(&name.as_str()))
        .map(|(name, value)| {
            let tag = if row.kind == "step" {
                name.clone()
            } else {
                format!("{}/{name}", row.kind)
            };
            (tag, *value as f32)
        })
        .collect()
}

/// Checks that both metrics files of `dir` can be cut back to `saved` (the lengths of
/// `metrics.jsonl` and `metrics.csv` in bytes saved in the checkpoint a run resumes from): each
/// must exist, be at least that long, and end a row there; and that the TensorBoard event
/// folder can take the resumed session's file. Nothing is modified.
///
/// # Errors
///
/// [`TrainError::MetricsDamaged`] naming the first file that cannot, with both lengths (or the
/// byte offset that should end a row); [`TrainError::RunDirUnwritable`] when `tensorboard` in
/// `dir` is not a folder; [`TrainError::Io`] when a file cannot be read.
pub fn check_resumable(dir: &Path, saved: (u64, u64)) -> Result<(), TrainError> {
    for (name, len) in [(JSONL_FILE, saved.0), (CSV_FILE, saved.1)] {
        let path = dir.join(name);
        if let Some(problem) = resume_problem(&path, len).map_err(TrainError::io(&path))? {
            return Err(problem);
        }
    }
    tensorboard::check_folder(dir)
}

/// What stops `path` from being cut back to `saved` bytes, if anything.
fn resume_problem(path: &Path, saved: u64) -> std::io::Result<Option<TrainError>> {
    let damaged = |detail: String| TrainError::MetricsDamaged {
        path: path.to_path_buf(),
        saved,
        detail,
    };
    if path.exists() && !path.is_file() {
        return Ok(Some(damaged("it is not a file (a directory?)".into())));
    }
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Some(damaged("it is missing".into())));
        }
        Err(e) => return Err(e),
    };
    let found = file.metadata()?.len();
    if found < saved {
        return Ok(Some(damaged(format!(
            "it is {found} bytes, shorter than that"
        ))));
    }
    if saved > 0 {
        let mut last = [0u8; 1];
        file.seek(SeekFrom::Start(saved - 1))?;
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            return Ok(Some(damaged(format!(
                "byte {} is not the end of a row, so its rows were changed",
                saved - 1
            ))));
        }
    }
    Ok(None)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &'static str, values: &[(&str, f64)]) -> Row {
        Row {
            kind,
            values: values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    fn columns() -> Vec<String> {
        ["epoch", "kd,a/kl", "say \"hi\"/x"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn csv_quotes_names_with_commas_and_quotes_and_every_row_has_the_header_s_width() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = MetricsWriter::open(dir.path(), columns(), None).unwrap();
        writer
            .append(&row("step", &[("epoch", 0.0), ("kd,a/kl", 0.5)]))
            .unwrap();
        writer
            .append(&row("epoch", &[("epoch", 1.0), ("say \"hi\"/x", 2.25)]))
            .unwrap();
        let text = std::fs::read_to_string(dir.path().join(CSV_FILE)).unwrap();
        assert_eq!(
            text,
            "kind,epoch,\"kd,a/kl\",\"say \"\"hi\"\"/x\"\nstep,0,0.5,\nepoch,1,,2.25\n"
        );
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header = reader.headers().unwrap().clone();
        assert_eq!(
            header.iter().collect::<Vec<_>>(),
            ["kind", "epoch", "kd,a/kl", "say \"hi\"/x"]
        );
        for record in reader.records() {
            assert_eq!(record.unwrap().len(), header.len());
        }
    }

    #[test]
    fn lengths_count_every_row_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = MetricsWriter::open(dir.path(), columns(), None).unwrap();
        writer.append(&row("step", &[("epoch", 0.0)])).unwrap();
        let (jsonl, csv) = writer.lengths().unwrap();
        assert_eq!(
            jsonl,
            std::fs::metadata(dir.path().join(JSONL_FILE))
                .unwrap()
                .len()
        );
        assert_eq!(
            csv,
            std::fs::metadata(dir.path().join(CSV_FILE)).unwrap().len()
        );
        assert_eq!(jsonl, "{\"epoch\":0,\"kind\":\"step\"}\n".len() as u64);
    }

    #[test]
    fn event_values_leave_out_the_position_and_put_epoch_rows_under_epoch() {
        let step = row(
            "step",
            &[
                ("epoch", 1.0),
                ("batch", 2.0),
                ("step", 2.0),
                ("kd/kl", 0.5),
            ],
        );
        assert_eq!(event_values(&step), [("kd/kl".to_string(), 0.5)]);
        let epoch = row(
            "epoch",
            &[
                ("epoch", 1.0),
                ("step", 4.0),
                ("student/top1", 0.75),
                ("loss", 1.25),
            ],
        );
        assert_eq!(
            event_values(&epoch),
            [
                ("epoch/loss".to_string(), 1.25),
                ("epoch/student/top1".to_string(), 0.75)
            ]
        );
    }

    /// The event files of `dir` with their lengths in bytes, by name.
    fn event_files(dir: &Path) -> Vec<(PathBuf, u64)> {
        let mut out: Vec<(PathBuf, u64)> = std::fs::read_dir(dir.join(tensorboard::DIR))
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                let len = std::fs::metadata(&path).unwrap().len();
                (path, len)
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn every_row_reaches_the_event_file_and_a_resume_opens_another() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = MetricsWriter::open(dir.path(), columns(), None).unwrap();
        let opened = event_files(dir.path());
        assert_eq!(opened.len(), 1);
        writer.append(&row("step", &[("step", 1.0)])).unwrap();
        let saved = writer.lengths().unwrap();
        let one_row = event_files(dir.path());
        assert!(one_row[0].1 > opened[0].1, "{one_row:?}");
        writer
            .append(&row("step", &[("step", 2.0), ("kd,a/kl", 0.5)]))
            .unwrap();
        let two_rows = event_files(dir.path());
        assert!(two_rows[0].1 > one_row[0].1, "{two_rows:?}");
        drop(writer);
        let mut resumed = MetricsWriter::open(dir.path(), columns(), Some(saved)).unwrap();
        resumed.append(&row("step", &[("step", 2.0)])).unwrap();
        let files = event_files(dir.path());
        assert_eq!(files.len(), 2, "{files:?}");
        // The first session's file is never cut, unlike the metrics files.
        assert_eq!(files[0], two_rows[0]);
    }

    /// A run directory with two rows in each file; returns the lengths after the first.
    fn two_rows(dir: &Path) -> (u64, u64) {
        let mut writer = MetricsWriter::open(dir, columns(), None).unwrap();
        writer.append(&row("step", &[("epoch", 0.0)])).unwrap();
        let saved = writer.lengths().unwrap();
        writer.append(&row("step", &[("epoch", 1.0)])).unwrap();
        saved
    }

    #[test]
    fn resume_cuts_both_files_back_to_the_saved_lengths() {
        let dir = tempfile::tempdir().unwrap();
        let saved = two_rows(dir.path());
        check_resumable(dir.path(), saved).unwrap();
        let mut writer = MetricsWriter::open(dir.path(), columns(), Some(saved)).unwrap();
        assert_eq!(writer.lengths().unwrap(), saved);
        let csv = std::fs::read_to_string(dir.path().join(CSV_FILE)).unwrap();
        assert!(csv.starts_with("kind,epoch,"), "{csv}");
        assert_eq!(csv.lines().count(), 2, "{csv}");
    }

    #[test]
    fn a_missing_metrics_file_is_refused_naming_it_and_never_recreated_padded() {
        for name in [JSONL_FILE, CSV_FILE] {
            let dir = tempfile::tempdir().unwrap();
            let saved = two_rows(dir.path());
            let path = dir.path().join(name);
            std::fs::remove_file(&path).unwrap();
            let err = check_resumable(dir.path(), saved).unwrap_err();
            assert!(err.is_user_error());
            let message = err.to_string();
            let len = if name == JSONL_FILE { saved.0 } else { saved.1 };
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains(&format!("{len} bytes")), "{message}");
            assert!(message.contains("missing"), "{message}");
            let io = MetricsWriter::open(dir.path(), columns(), Some(saved))
                .err()
                .unwrap();
            assert_eq!(io.kind(), std::io::ErrorKind::InvalidData);
            assert!(!path.exists(), "{name} was recreated");
        }
    }

    #[test]
    fn a_directory_where_a_metrics_file_goes_is_refused_as_a_user_error() {
        let dir = tempfile::tempdir().unwrap();
        let saved = two_rows(dir.path());
        let path = dir.path().join(JSONL_FILE);
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        let err = check_resumable(dir.path(), saved).unwrap_err();
        assert!(err.is_user_error());
        assert!(err.to_string().contains("not a file"), "{err}");
    }

    #[test]
    fn a_shorter_metrics_file_is_refused_with_both_lengths_and_nothing_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let saved = two_rows(dir.path());
        let csv_path = dir.path().join(CSV_FILE);
        std::fs::write(&csv_path, "kind\n").unwrap();
        let jsonl_before = std::fs::read(dir.path().join(JSONL_FILE)).unwrap();
        let err = check_resumable(dir.path(), saved).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&csv_path.display().to_string()),
            "{message}"
        );
        assert!(message.contains(&format!("{} bytes", saved.1)), "{message}");
        assert!(message.contains("it is 5 bytes"), "{message}");
        assert!(MetricsWriter::open(dir.path(), columns(), Some(saved)).is_err());
        // The longer file was not cut back either, and the short one not padded.
        assert_eq!(
            std::fs::read(dir.path().join(JSONL_FILE)).unwrap(),
            jsonl_before
        );
        assert_eq!(std::fs::read(&csv_path).unwrap(), b"kind\n");
    }

    #[test]
    fn a_saved_length_inside_a_row_names_the_byte_offset() {
        let dir = tempfile::tempdir().unwrap();
        let saved = two_rows(dir.path());
        let jsonl = dir.path().join(JSONL_FILE);
        // The first row rewritten one byte longer: the saved length now ends mid-row.
        let text = std::fs::read_to_string(&jsonl).unwrap();
        std::fs::write(&jsonl, text.replacen("\"step\"", "\"steps\"", 1)).unwrap();
        let message = check_resumable(dir.path(), saved).unwrap_err().to_string();
        assert!(message.contains(&jsonl.display().to_string()), "{message}");
        assert!(
            message.contains(&format!("byte {} is not the end of a row", saved.0 - 1)),
            "{message}"
        );
    }
}

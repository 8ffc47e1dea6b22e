//! TensorBoard event files of a run: `<run dir>/tensorboard/events.out.tfevents.<secs>.<host>`,
//! one file per session of the run (a resumed run opens a new one), written by
//! [`EventWriter`]. `metrics.rs` sends every row it appends here as well, so
//! `tensorboard --logdir runs/` shows every run, every term of every method, the top-1 and
//! top-5 of every evaluated output and the learning-rate factor.
//!
//! A file is a sequence of TFRecords (a `u64` little-endian length, the masked CRC-32C of those
//! 8 bytes, the data, the masked CRC-32C of the data; masked = `((crc >> 15) | (crc << 17)) +
//! 0xa282ead8`), each holding one `Event` protobuf: `wall_time` (field 1, double, seconds since
//! the Unix epoch), `step` (2, int64), then either `file_version` (3, `"brain.Event:2"`, the
//! first event of every file), a `Summary` (5: repeated `Value` {`tag` 1, `simple_value` 2
//! float}) or a `SessionLog` (7: `status` 1, `START` = 1; field 6 is the deprecated
//! `LogMessage`). Every event reaches the file before [`EventWriter::scalars`] returns, so a
//! killed run's events are readable up to its last row. TensorBoard's own Python reader was
//! run over a killed and resumed run's files when this was written: every scalar read back,
//! each step once.
//!
//! Own code rather than a crate: the crates that write these files when this was written
//! (`tensorboard-rs` 0.5, `tboard` 0.1, `tfrecord` 0.15) each bring an older protobuf stack and
//! older copies of crates kd already uses (`image`, `thiserror`, `prost`), for three message
//! types of at most three fields. The checksum is the `crc32c` crate's.
//!
//! Restarts: every session writes a `SessionLog` `START` just before its first scalars, at
//! that first row's step. TensorBoard (its Python event loader) then drops the points of
//! earlier files at or after that step, which are exactly the rows a resume writes again
//! (`metrics.rs` cuts the metrics files back to the checkpoint the same way); the earlier
//! files themselves are never touched.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::error::TrainError;

/// The folder of the event files, in the run directory.
pub const DIR: &str = "tensorboard";

/// The `file_version` of the first event of every file.
pub const FILE_VERSION: &str = "brain.Event:2";

/// What every event file's name starts with (TensorBoard looks for `tfevents`).
pub const FILE_PREFIX: &str = "events.out.tfevents.";

/// `SessionLog.status` of a session that starts (or restarts) writing.
const SESSION_START: u64 = 1;

/// One event file being written.
#[derive(Debug)]
pub struct EventWriter {
    path: PathBuf,
    file: File,
    /// Whether this session's `START` has been written (just before its first scalars).
    started: bool,
}

impl EventWriter {
    /// Creates `<run_dir>/tensorboard/` when needed and a new event file in it, named
    /// `events.out.tfevents.<seconds since the Unix epoch>.<host name>` (with `.<n>` added when
    /// a file of that name exists: files already written are never opened again), holding the
    /// `file_version` event.
    ///
    /// # Errors
    ///
    /// An I/O error whose message names the folder or the file that could not be created or
    /// written (`tensorboard` being a file, a read-only run directory, a full disk).
    pub fn create(run_dir: &Path) -> std::io::Result<Self> {
        let dir = run_dir.join(DIR);
        if let Some(problem) = folder_problem(&dir) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{}: {problem}", dir.display()),
            ));
        }
        std::fs::create_dir_all(&dir).map_err(naming(&dir))?;
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let stem = format!("{FILE_PREFIX}{secs:010}.{}", host_name());
        let mut n = 0usize;
        let (path, file) = loop {
            let name = if n == 0 {
                stem.clone()
            } else {
                format!("{stem}.{n}")
            };
            let path = dir.join(name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => break (path, file),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => return Err(naming(&path)(e)),
            }
        };
        let mut writer = EventWriter {
            path,
            file,
            started: false,
        };
        writer.write_event(&version_event(wall_time()))?;
        tracing::info!(path = %writer.path().display(), "TensorBoard events");
        Ok(writer)
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event holding `values` (tag, value) at `step`, preceded by this session's
    /// `START` at the same step when it is the first; written and flushed before returning.
    /// NaN and infinite values are written as they are (TensorBoard shows them).
    ///
    /// # Errors
    ///
    /// An I/O error naming the file.
    pub fn scalars(&mut self, step: i64, values: &[(String, f32)]) -> std::io::Result<()> {
        let wall = wall_time();
        if !self.started {
            self.write_event(&start_event(wall, step))?;
            self.started = true;
        }
        self.write_event(&summary_event(wall, step, values))
    }

    /// Frames `event` as one TFRecord and writes it with a single `write_all`.
    fn write_event(&mut self, event: &[u8]) -> std::io::Result<()> {
        let record = tf_record(event);
        self.file
            .write_all(&record)
            .and_then(|()| self.file.flush())
            .map_err(naming(&self.path))
    }
}

/// Checks that the event folder of `run_dir` can hold event files: absent, or a folder. Nothing
/// is created or modified. `metrics::check_resumable` calls it before a resumed run touches
/// anything.
///
/// # Errors
///
/// [`TrainError::RunDirUnwritable`] (a user error) naming the run directory and the folder when
/// something other than a folder has its name.
pub fn check_folder(run_dir: &Path) -> Result<(), TrainError> {
    let dir = run_dir.join(DIR);
    match folder_problem(&dir) {
        None => Ok(()),
        Some(problem) => Err(TrainError::RunDirUnwritable {
            dir: run_dir.to_path_buf(),
            path: dir,
            source: std::io::Error::new(std::io::ErrorKind::AlreadyExists, problem),
        }),
    }
}

/// What stops `dir` from being the event folder, if anything.
fn folder_problem(dir: &Path) -> Option<String> {
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Some(
            "it is a file, not a folder, so TensorBoard event files cannot be written there; \
             move it away"
                .into(),
        ),
        _ => None,
    }
}

/// Prefixes an I/O error's message with the path it concerns, keeping its kind.
fn naming(path: &Path) -> impl FnOnce(std::io::Error) -> std::io::Error {
    let path = path.to_path_buf();
    move |e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Seconds since the Unix epoch, as TensorBoard's `wall_time`.
fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// This machine's name, as TensorBoard's writers put it in file names: characters other than
/// ASCII letters, digits, `.`, `-` and `_` become `_`; `localhost` when it cannot be read.
fn host_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    sanitize_host(raw.trim())
}

fn sanitize_host(raw: &str) -> String {
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

/// The CRC-32C of `data`, masked as TFRecord stores it.
pub fn masked_crc(data: &[u8]) -> u32 {
    // ((crc >> 15) | (crc << 17)) + 0xa282ead8, wrapping.
    crc32c::crc32c(data)
        .rotate_right(15)
        .wrapping_add(0xa282_ead8)
}

/// `data` framed as one TFRecord.
fn tf_record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

/// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

fn key(out: &mut Vec<u8>, field: u8, wire: u8) {
    out.push((field << 3) | wire);
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    key(out, field, LEN);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// `Event.wall_time` and `Event.step`, the head of every event.
fn event_head(wall: f64, step: i64) -> Vec<u8> {
    let mut out = Vec::new();
    key(&mut out, 1, FIXED64);
    out.extend_from_slice(&wall.to_le_bytes());
    key(&mut out, 2, VARINT);
    // int64 is a varint of the two's-complement bits.
    varint(&mut out, step as u64);
    out
}

fn version_event(wall: f64) -> Vec<u8> {
    let mut out = event_head(wall, 0);
    bytes_field(&mut out, 3, FILE_VERSION.as_bytes());
    out
}

fn start_event(wall: f64, step: i64) -> Vec<u8> {
    let mut session = Vec::new();
    key(&mut session, 1, VARINT);
    varint(&mut session, SESSION_START);
    let mut out = event_head(wall, step);
    bytes_field(&mut out, 7, &session);
    out
}

fn summary_event(wall: f64, step: i64, values: &[(String, f32)]) -> Vec<u8> {
    let mut summary = Vec::new();
    for (tag, value) in values {
        let mut v = Vec::new();
        bytes_field(&mut v, 1, tag.as_bytes());
        key(&mut v, 2, FIXED32);
        v.extend_from_slice(&value.to_le_bytes());
        bytes_field(&mut summary, 1, &v);
    }
    let mut out = event_head(wall, step);
    bytes_field(&mut out, 5, &summary);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event file under `run_dir/tensorboard`, sorted by name.
    fn files(run_dir: &Path) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(run_dir.join(DIR))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        out.sort();
        out
    }

    /// The records of a file, each checked against both its checksums.
    fn records(bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let len_bytes = &bytes[at..at + 8];
            let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
            assert_eq!(crc, masked_crc(len_bytes), "length checksum at {at}");
            let data = &bytes[at + 12..at + 12 + len];
            let crc = u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap());
            assert_eq!(crc, masked_crc(data), "data checksum at {at}");
            out.push(data.to_vec());
            at += 16 + len;
        }
        out
    }

    #[test]
    fn the_checksum_is_crc32c_masked() {
        // CRC-32C of "123456789" is 0xe3069283 (RFC 3720's check value); masked by hand:
        // (0xe3069283 >> 15 | 0xe3069283 << 17) = 0x2507c60d, + 0xa282ead8 = 0xc78ab0e5.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(masked_crc(b"123456789"), 0xc78a_b0e5);
    }

    #[test]
    fn a_summary_event_is_encoded_field_by_field() {
        let event = summary_event(1.5, 300, &[("kd/kl".into(), 0.25)]);
        let mut expected = vec![0x09];
        expected.extend_from_slice(&1.5f64.to_le_bytes());
        // step 300 = 0b10_0101100: varint ac 02.
        expected.extend_from_slice(&[0x10, 0xac, 0x02]);
        // Summary (5) of one Value (1): tag (1) "kd/kl", simple_value (2) 0.25.
        expected.extend_from_slice(&[0x2a, 14, 0x0a, 12, 0x0a, 5]);
        expected.extend_from_slice(b"kd/kl");
        expected.push(0x15);
        expected.extend_from_slice(&0.25f32.to_le_bytes());
        assert_eq!(event, expected);
    }

    #[test]
    fn a_file_opens_with_the_version_and_a_session_starts_at_its_first_step() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = EventWriter::create(dir.path()).unwrap();
        writer.scalars(7, &[("loss".into(), 1.0)]).unwrap();
        writer.scalars(8, &[("loss".into(), 0.5)]).unwrap();
        let name = writer.path().file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(FILE_PREFIX), "{name}");
        // Written through before scalars returned: readable while the writer is open.
        let records = records(&std::fs::read(writer.path()).unwrap());
        assert_eq!(records.len(), 4);
        assert!(records[0].ends_with(b"\x1a\x0dbrain.Event:2"));
        // START: step 7, SessionLog (7) { status (1) = 1 }.
        assert!(records[1].ends_with(&[0x10, 7, 0x3a, 2, 0x08, 1]));
        assert_eq!(records[2][9..11], [0x10, 7]);
        assert_eq!(records[3][9..11], [0x10, 8]);
    }

    #[test]
    fn a_second_writer_in_the_same_second_opens_a_new_file_and_leaves_the_first_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = EventWriter::create(dir.path()).unwrap();
        first.scalars(1, &[("loss".into(), 1.0)]).unwrap();
        let before = std::fs::read(first.path()).unwrap();
        let second = EventWriter::create(dir.path()).unwrap();
        assert_ne!(first.path(), second.path());
        assert_eq!(std::fs::read(first.path()).unwrap(), before);
        let files = files(dir.path());
        assert_eq!(files.len(), 2);
        // Name order is the order TensorBoard reads them in: the later file sorts last.
        assert_eq!(files[1], second.path());
    }

    #[test]
    fn an_event_folder_that_is_a_file_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DIR);
        std::fs::write(&path, "not a folder").unwrap();
        let err = EventWriter::create(dir.path()).unwrap_err();
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("it is a file, not a folder"), "{message}");
        let err = check_folder(dir.path()).unwrap_err();
        assert!(err.is_user_error());
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("it is a file, not a folder"), "{message}");
        assert_eq!(std::fs::read(&path).unwrap(), b"not a folder");
        check_folder(tempfile::tempdir().unwrap().path()).unwrap();
    }

    #[test]
    fn host_names_keep_only_file_name_characters() {
        assert_eq!(sanitize_host("node-7.cluster_a"), "node-7.cluster_a");
        assert_eq!(sanitize_host("a/b c"), "a_b_c");
        assert_eq!(sanitize_host(""), "localhost");
    }
}

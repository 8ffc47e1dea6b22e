//! TensorBoard event files of real runs, read back with a decoder of this file's own (TFRecord
//! framing with a bitwise CRC-32C, the `Event` protobuf read field by field), independent of the
//! writer in kd-core: every metrics row is there at its step, a killed and resumed run adds a
//! file whose `SessionLog` `START` hides exactly the rows written again, and an event folder
//! that is not a folder stops a resume with exit status 2 before anything is touched.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kd_tests::{failure, kd, metrics, run_dir, success, tiny_config, write};

/// CRC-32C (Castagnoli, reflected polynomial 0x82f63b78), bit by bit.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn masked(data: &[u8]) -> u32 {
    // ((crc >> 15) | (crc << 17)) + 0xa282ead8, wrapping.
    crc32c(data).rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One decoded `Event`.
#[derive(Debug, Default, Clone, PartialEq)]
struct Event {
    wall_time: f64,
    step: i64,
    file_version: Option<String>,
    /// `SessionLog.status`, when the event is one.
    session_status: Option<u64>,
    /// (tag, simple_value) of the summary.
    values: Vec<(String, f32)>,
}

/// A protobuf message being read: (field, wire type, payload) at a time.
struct Fields<'a> {
    bytes: &'a [u8],
    at: usize,
}

enum Payload<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    Fixed32([u8; 4]),
    Bytes(&'a [u8]),
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Fields { bytes, at: 0 }
    }

    fn varint(&mut self) -> u64 {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.bytes[self.at];
            self.at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return value;
            }
        }
        panic!("varint longer than 10 bytes");
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        out
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = (u64, Payload<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.bytes.len() {
            return None;
        }
        let key = self.varint();
        let payload = match key & 7 {
            0 => Payload::Varint(self.varint()),
            1 => Payload::Fixed64(self.take(8).try_into().unwrap()),
            2 => {
                let n = self.varint() as usize;
                Payload::Bytes(self.take(n))
            }
            5 => Payload::Fixed32(self.take(4).try_into().unwrap()),
            wire => panic!("unexpected wire type {wire}"),
        };
        Some((key >> 3, payload))
    }
}

fn decode_event(bytes: &[u8]) -> Event {
    let mut event = Event::default();
    for (field, payload) in Fields::new(bytes) {
        match (field, payload) {
            (1, Payload::Fixed64(b)) => event.wall_time = f64::from_le_bytes(b),
            (2, Payload::Varint(v)) => event.step = v as i64,
            (3, Payload::Bytes(b)) => {
                event.file_version = Some(String::from_utf8(b.to_vec()).unwrap())
            }
            (5, Payload::Bytes(summary)) => {
                for (field, value) in Fields::new(summary) {
                    let (1, Payload::Bytes(value)) = (field, value) else {
                        panic!("Summary field {field}");
                    };
                    let (mut tag, mut simple) = (None, None);
                    for (field, payload) in Fields::new(value) {
                        match (field, payload) {
                            (1, Payload::Bytes(b)) => {
                                tag = Some(String::from_utf8(b.to_vec()).unwrap())
                            }
                            (2, Payload::Fixed32(b)) => simple = Some(f32::from_le_bytes(b)),
                            (field, _) => panic!("Summary.Value field {field}"),
                        }
                    }
                    event.values.push((tag.unwrap(), simple.unwrap()));
                }
            }
            (7, Payload::Bytes(session)) => {
                for (field, payload) in Fields::new(session) {
                    if let (1, Payload::Varint(status)) = (field, payload) {
                        event.session_status = Some(status);
                    }
                }
            }
            (field, _) => panic!("Event field {field}"),
        }
    }
    event
}

/// Every event of a file, each record's two checksums checked.
fn read_events(path: &Path) -> Vec<Event> {
    let bytes = std::fs::read(path).unwrap();
    let mut events = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        assert!(
            bytes.len() >= at + 12,
            "{}: cut inside a record header",
            path.display()
        );
        let len_bytes = &bytes[at..at + 8];
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
        assert_eq!(
            crc,
            masked(len_bytes),
            "{}: length checksum at byte {at}",
            path.display()
        );
        let data = &bytes[at + 12..at + 12 + len];
        let crc = u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap());
        assert_eq!(
            crc,
            masked(data),
            "{}: data checksum at byte {at}",
            path.display()
        );
        events.push(decode_event(data));
        at += 16 + len;
    }
    events
}

/// The event files of a run, in name order (the order TensorBoard reads them in).
fn event_files(run: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(run.join("tensorboard"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// The scalars TensorBoard shows for a run: every file in order, each `START` dropping the
/// points of earlier files at or after its step (as its event loader purges a restart).
fn shown(files: &[PathBuf]) -> BTreeMap<(String, i64), f32> {
    let mut points: BTreeMap<(String, i64), f32> = BTreeMap::new();
    for file in files {
        let events = read_events(file);
        assert_eq!(
            events[0].file_version.as_deref(),
            Some("brain.Event:2"),
            "{}",
            file.display()
        );
        for event in &events[1..] {
            if event.session_status == Some(1) {
                points.retain(|(_, step), _| *step < event.step);
            }
            for (tag, value) in &event.values {
                let previous = points.insert((tag.clone(), event.step), *value);
                assert!(previous.is_none(), "{tag} twice at step {}", event.step);
            }
        }
    }
    points
}

/// What the event files should show for a run's `metrics.jsonl`.
fn expected(run: &Path) -> BTreeMap<(String, i64), f32> {
    let mut out = BTreeMap::new();
    for row in metrics(run) {
        let kind = row["kind"].as_str().unwrap().to_string();
        let step = row["step"].as_i64().unwrap();
        for (column, value) in &row {
            if ["kind", "epoch", "batch", "step"].contains(&column.as_str()) {
                continue;
            }
            let tag = if kind == "step" {
                column.clone()
            } else {
                format!("{kind}/{column}")
            };
            out.insert((tag, step), value.as_f64().unwrap() as f32);
        }
    }
    out
}

#[test]
fn this_file_s_crc32c_has_the_check_value() {
    // RFC 3720's check value, so the decoder below checks against CRC-32C itself.
    assert_eq!(crc32c(b"123456789"), 0xe306_9283);
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn every_metrics_row_of_a_dml_run_is_in_its_event_file_at_its_step() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "[networks.peer]\narch = \"resnet8\"\n[method.dml]\nkind = \"dml\"\npeers = [\"student\", \"peer\"]\n";
    let config = write(
        dir.path(),
        "dml.toml",
        &format!(
            "stack = [\"dml\"]\n{}",
            tiny_config(dir.path(), "dml", "resnet8", 5, 2, extra)
        ),
    );
    success(kd(dir.path(), &["train", arg(&config)]));
    let run = run_dir(dir.path(), "dml");
    let files = event_files(&run);
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with("events.out.tfevents."), "{name}");

    let events = read_events(&files[0]);
    // The version, this session's START at the first row's step (1), then one event per row.
    assert_eq!(events[1].session_status, Some(1));
    assert_eq!(events[1].step, 1);
    assert_eq!(events.len(), 2 + metrics(&run).len());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        events
            .iter()
            .all(|e| e.wall_time > now - 3600.0 && e.wall_time <= now)
    );

    let points = shown(&files);
    assert_eq!(points, expected(&run));
    // Every term of the method, the task loss of both peers and every evaluated output.
    let tags: std::collections::BTreeSet<&str> = points.keys().map(|(t, _)| t.as_str()).collect();
    for tag in [
        "loss",
        "lr_factor",
        "ce/student",
        "ce/peer",
        "dml/kl/student",
        "dml/kl/peer",
        "epoch/loss",
        "epoch/lr_factor",
        "epoch/student/top1",
        "epoch/student/top5",
        "epoch/peer/top1",
        "epoch/dml.ensemble/top5",
    ] {
        assert!(tags.contains(tag), "{tag} missing from {tags:?}");
    }
    // Epoch rows sit at the step that ended the epoch: 50 images in batches of 16, 4 steps.
    assert!(points.contains_key(&("epoch/student/top1".to_string(), 4)));
    assert!(points.contains_key(&("epoch/student/top1".to_string(), 8)));
}

#[test]
fn a_killed_run_resumed_adds_a_file_whose_start_hides_the_rows_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let body = tiny_config(dir.path(), "killed", "resnet8", 20, 2, "")
        .replace("seed = 7", "seed = 7\ncheckpoint_every = 2");
    let config = write(dir.path(), "killed.toml", &body);
    let run = run_dir(dir.path(), "killed");
    let last = run.join("checkpoints").join("last.kdc");
    kd_tests::train_and_kill_at_first_checkpoint(dir.path(), &config, &last);
    let saved = kd_core::checkpoint::read_header(&last).unwrap().state;
    let killed_files = event_files(&run);
    assert_eq!(killed_files.len(), 1);
    let killed_bytes = std::fs::read(&killed_files[0]).unwrap();
    // Readable up to the kill: every record whole, both checksums right.
    read_events(&killed_files[0]);

    success(kd(dir.path(), &["train", arg(&config), "--resume"]));
    let files = event_files(&run);
    assert_eq!(files.len(), 2, "{files:?}");
    // The first session's file is as it was, and sorts first.
    assert_eq!(files[0], killed_files[0]);
    assert_eq!(std::fs::read(&files[0]).unwrap(), killed_bytes);

    // The new session starts at the step after the checkpoint it resumed from (a row a step).
    let resumed = read_events(&files[1]);
    assert_eq!(resumed[0].file_version.as_deref(), Some("brain.Event:2"));
    assert_eq!(resumed[1].session_status, Some(1));
    assert_eq!(resumed[1].step, saved.global_step as i64 + 1);
    assert_eq!(resumed[2].step, resumed[1].step);

    // What TensorBoard shows is the finished run's metrics, each point once: the killed
    // session's rows after the checkpoint are hidden by the START, as the metrics files were cut.
    assert_eq!(shown(&files), expected(&run));
}

#[test]
fn a_resume_with_a_file_where_the_event_folder_goes_is_refused_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "blocked.toml",
        &tiny_config(dir.path(), "blocked", "resnet8", 5, 1, ""),
    );
    success(kd(dir.path(), &["train", arg(&config)]));
    let run = run_dir(dir.path(), "blocked");
    let folder = run.join("tensorboard");
    std::fs::remove_dir_all(&folder).unwrap();
    std::fs::write(&folder, "not a folder").unwrap();
    let before: Vec<Vec<u8>> = ["metrics.jsonl", "metrics.csv", "tensorboard"]
        .iter()
        .map(|name| std::fs::read(run.join(name)).unwrap())
        .collect();
    let stderr = failure(kd(dir.path(), &["train", arg(&config), "--resume"]), 2);
    assert!(
        stderr.contains(&format!(
            "cannot write the run directory {}: {}: it is a file, not a folder",
            run.display(),
            folder.display()
        )),
        "{stderr}"
    );
    let after: Vec<Vec<u8>> = ["metrics.jsonl", "metrics.csv", "tensorboard"]
        .iter()
        .map(|name| std::fs::read(run.join(name)).unwrap())
        .collect();
    assert_eq!(before, after);
}

/// A fresh run fails the same way as a resume, before its configuration is written over.
#[test]
fn a_fresh_run_with_a_file_where_the_event_folder_goes_is_a_user_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "blocked.toml",
        &tiny_config(dir.path(), "blocked", "resnet8", 5, 1, ""),
    );
    let run = run_dir(dir.path(), "blocked");
    let folder = write(&run, "tensorboard", "not a folder");
    let stderr = failure(kd(dir.path(), &["train", arg(&config)]), 2);
    assert!(
        stderr.contains(&format!(
            "cannot write the run directory {}: {}: it is a file, not a folder",
            run.display(),
            folder.display()
        )),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&folder).unwrap(), b"not a folder");
    assert!(!run.join("metrics.jsonl").exists());
}

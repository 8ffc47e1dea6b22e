//! Checkpoints that are not what they say, through the binary: a flipped byte, a length field
//! near `u64::MAX`, NaN weights, an impossible resume position, a directory. Each is an error
//! naming the file (and the byte offset, the tensor or the position), exit status 2, never a
//! panic and never a checkpoint called good that failed verification; the files on disk are
//! left as they were.

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Device, Tensor};
use kd_core::checkpoint::{self, TrainState};
use kd_tests::{failure, kd, run_dir, subset, success, tiny_config, write};

/// Trains the tiny run `name` (resnet8, 10 images per class, `epochs` epochs) and returns its
/// config file and checkpoint folder.
fn trained(dir: &Path, name: &str, epochs: usize) -> (PathBuf, PathBuf) {
    let config = write(
        dir,
        &format!("{name}.toml"),
        &tiny_config(dir, name, "resnet8", 10, epochs, ""),
    );
    success(kd(dir, &["train", config.to_str().unwrap()]));
    (config, run_dir(dir, name).join("checkpoints"))
}

/// `kd eval` of a checkpoint on the shipped subset.
fn eval(dir: &Path, checkpoint: &Path) -> Command {
    kd(
        dir,
        &[
            "eval",
            "--checkpoint",
            checkpoint.to_str().unwrap(),
            "--data",
            subset().to_str().unwrap(),
            "--format",
            "idx",
        ],
    )
}

/// `kd predict` of a checkpoint on the shipped subset.
fn predict(dir: &Path, checkpoint: &Path) -> Command {
    kd(
        dir,
        &[
            "predict",
            "--arch",
            "resnet8",
            "--checkpoint",
            checkpoint.to_str().unwrap(),
            "--data",
            subset().to_str().unwrap(),
            "--format",
            "idx",
            "--limit",
            "4",
        ],
    )
}

fn resume(dir: &Path, config: &Path) -> Command {
    kd(dir, &["train", config.to_str().unwrap(), "--resume"])
}

/// A config distilling into a fresh student from `teacher`.
fn with_teacher(dir: &Path, name: &str, teacher: &Path) -> PathBuf {
    let extra = format!(
        "[networks.teacher]\narch = \"resnet8\"\ncheckpoint = \"{}\"\n\n[method.kd]\nkind = \"kd\"\n",
        teacher.display()
    );
    let text = format!(
        "stack = [\"kd\"]\n{}",
        tiny_config(dir, name, "resnet8", 5, 1, &extra)
    );
    write(dir, &format!("{name}.toml"), &text)
}

fn copy(from: &Path, to: &Path) -> PathBuf {
    std::fs::copy(from, to).unwrap();
    to.to_path_buf()
}

/// Rewrites a checkpoint through kd's own writer (checksums valid) after `edit`.
fn rewrite(path: &Path, edit: impl FnOnce(&mut TrainState, &mut Vec<checkpoint::Blob>)) {
    let (mut header, mut blobs) = checkpoint::read(path).unwrap();
    edit(&mut header.state, &mut blobs);
    checkpoint::write(path, header, blobs).unwrap();
}

#[test]
fn a_flipped_byte_is_a_damaged_checkpoint_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (config, checkpoints) = trained(d, "t", 1);
    let flipped = copy(&checkpoints.join("best.kdc"), &d.join("flipped.kdc"));
    let mut bytes = std::fs::read(&flipped).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x10;
    std::fs::write(&flipped, &bytes).unwrap();

    for command in [eval(d, &flipped), predict(d, &flipped)] {
        let stderr = failure(command, 2);
        assert!(
            stderr.contains("flipped.kdc: the checkpoint is damaged: checksum mismatch in blob"),
            "{stderr}"
        );
    }
    // The plan verifies a teacher's checksums (building no tensor), so neither `kd plan` nor
    // `kd train` gets past it, and the key is named.
    let student = with_teacher(d, "s", &flipped);
    for command in ["plan", "train"] {
        let stderr = failure(kd(d, &[command, student.to_str().unwrap()]), 2);
        assert!(
            stderr.contains("`networks.teacher.checkpoint`")
                && stderr.contains("flipped.kdc: the checkpoint is damaged"),
            "{stderr}"
        );
    }

    // A resume from a damaged last.kdc stops before training, calls nothing good and leaves
    // the file as it was.
    let last = checkpoints.join("last.kdc");
    let mut bytes = std::fs::read(&last).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&last, &bytes).unwrap();
    let stderr = failure(resume(d, &config), 2);
    assert!(
        stderr.contains("last.kdc: the checkpoint is damaged: checksum mismatch"),
        "{stderr}"
    );
    assert!(!stderr.contains("last good"), "{stderr}");
    assert_eq!(std::fs::read(&last).unwrap(), bytes);
}

#[test]
fn lengths_near_u64_max_are_errors_with_the_byte_offset() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (config, checkpoints) = trained(d, "t", 1);
    let good = std::fs::read(checkpoints.join("best.kdc")).unwrap();

    // The header length.
    let huge = d.join("huge.kdc");
    let mut bytes = good.clone();
    bytes[8..16].copy_from_slice(&(u64::MAX - 3).to_le_bytes());
    std::fs::write(&huge, &bytes).unwrap();
    let stderr = failure(eval(d, &huge), 2);
    assert!(
        stderr.contains(&format!(
            "huge.kdc: the checkpoint is damaged: the header length at byte 8 says {} bytes, \
             past the end of the {}-byte file",
            u64::MAX - 3,
            good.len()
        )),
        "{stderr}"
    );
    let last = checkpoints.join("last.kdc");
    let mut bytes = std::fs::read(&last).unwrap();
    bytes[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    std::fs::write(&last, &bytes).unwrap();
    let stderr = failure(resume(d, &config), 2);
    assert!(
        stderr.contains("last.kdc: the checkpoint is damaged: the header length at byte 8"),
        "{stderr}"
    );

    // A blob offset, in a checkpoint of format 1 (no checksum to catch it first).
    let len = u64::from_le_bytes(good[8..16].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&good[20..20 + len]).unwrap();
    header["format"] = 1.into();
    for blob in header["blobs"].as_array_mut().unwrap() {
        blob.as_object_mut().unwrap().remove("crc32");
    }
    header["blobs"][0]["offset"] = (u64::MAX - 5).into();
    let json = serde_json::to_vec(&header).unwrap();
    let mut old = b"KDCKPT\0\x01".to_vec();
    old.extend((json.len() as u64).to_le_bytes());
    old.extend(&json);
    old.extend(&good[20 + len..]);
    let offset = d.join("offset.kdc");
    std::fs::write(&offset, &old).unwrap();
    let stderr = failure(eval(d, &offset), 2);
    assert!(
        stderr.contains("offset.kdc: the checkpoint is damaged: blob `")
            && stderr.contains(&format!("at offset {} of the blob area", u64::MAX - 5))
            && stderr.contains("past any file"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Multiplies one tensor (by its dotted burn name) by NaN.
struct Poison {
    path: Vec<String>,
    target: &'static str,
}

impl ModuleMapper for Poison {
    fn enter_module(&mut self, name: &str, container: &str) {
        if !container.starts_with("Enum:") {
            self.path.push(name.to_string());
        }
    }
    fn exit_module(&mut self, _name: &str, container: &str) {
        if !container.starts_with("Enum:") {
            self.path.pop();
        }
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.path.join(".") == self.target {
            param.map(|t| t.mul_scalar(f32::NAN))
        } else {
            param
        }
    }
}

/// Replaces the student's weights in a checkpoint by the same weights with `target` NaN.
fn poison(path: &Path, target: &'static str) {
    let device = Device::flex();
    let (network, _) = kd_core::runtime::load_network(path, "student", &device).unwrap();
    let network = network.map(&mut Poison {
        path: Vec::new(),
        target,
    });
    let bytes = network.into_record().into_bytes().unwrap().to_vec();
    rewrite(path, |_, blobs| {
        let blob = blobs
            .iter_mut()
            .find(|(name, _)| name == "role:student/module")
            .unwrap();
        blob.1 = bytes;
    });
}

#[test]
fn non_finite_weights_are_refused_where_they_are_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (config, checkpoints) = trained(d, "t", 1);
    let nan = copy(&checkpoints.join("best.kdc"), &d.join("nan.kdc"));
    poison(&nan, "layer1.0.bn1.running_var");
    let expected = "nan.kdc: tensor `layer1.0.bn1.running_var` of role `student` holds NaN or \
                    infinite values";
    for command in [eval(d, &nan), predict(d, &nan)] {
        let stderr = failure(command, 2);
        assert!(stderr.contains(expected), "{stderr}");
    }
    let student = with_teacher(d, "s", &nan);
    let stderr = failure(kd(d, &["train", student.to_str().unwrap()]), 2);
    assert!(stderr.contains(expected), "{stderr}");
    assert!(!run_dir(d, "s").join("summary.json").exists());

    let last = checkpoints.join("last.kdc");
    poison(&last, "fc.weight");
    let stderr = failure(resume(d, &config), 2);
    assert!(
        stderr.contains("last.kdc: `role:student` holds NaN or infinite values"),
        "{stderr}"
    );
}

/// An edit of a training state.
type Edit = fn(&mut TrainState);

#[test]
fn impossible_resume_positions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (config, checkpoints) = trained(d, "t", 2);
    let last = checkpoints.join("last.kdc");
    let good = std::fs::read(&last).unwrap();
    let (header, _) = checkpoint::read(&last).unwrap();
    // 10 images of each of 10 classes in batches of 16.
    assert_eq!((header.state.epoch, header.state.global_step), (2, 14));

    let cases: [(&str, Edit); 4] = [
        (
            "counts 18446744073709551615 image(s) trained in epoch 1, but 3 batch(es) of 16 hold 48",
            |s| {
                s.epoch = 1;
                s.history.truncate(1);
                s.next_batch = 3;
                s.epoch_batches = 3;
                s.global_step = 10;
                s.epoch_images = usize::MAX;
            },
        ),
        (
            "stands at batch 1000 (from 0) of epoch 1, but an epoch has 7 batches",
            |s| {
                s.epoch = 1;
                s.history.truncate(1);
                s.next_batch = 1000;
                s.epoch_batches = 1000;
                s.global_step = 1007;
            },
        ),
        (
            "stands at epoch 5, batch 0 (from 0), past the end of a run of 2 epoch(s)",
            |s| s.epoch = 5,
        ),
        (
            "counts 3 step(s), but epoch 2, batch 0 (from 0) of 7-batch epochs comes after 14",
            |s| s.global_step = 3,
        ),
    ];
    for (expected, edit) in cases {
        std::fs::write(&last, &good).unwrap();
        rewrite(&last, |state, _| edit(state));
        let edited = std::fs::read(&last).unwrap();
        let stderr = failure(resume(d, &config), 2);
        assert!(
            stderr.contains("last.kdc: cannot resume from it: its training state")
                && stderr.contains(expected),
            "{stderr}"
        );
        assert_eq!(std::fs::read(&last).unwrap(), edited, "left as it was");
    }

    // A header describing the student as another network is refused, though the weights fit.
    std::fs::write(&last, &good).unwrap();
    let (mut header, blobs) = checkpoint::read(&last).unwrap();
    header.networks[0].arch = "resnet9999".into();
    checkpoint::write(&last, header, blobs).unwrap();
    let stderr = failure(resume(d, &config), 2);
    assert!(
        stderr.contains("its header does not describe role `student` as this run builds it"),
        "{stderr}"
    );
}

#[test]
fn a_directory_is_named_as_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let folder = d.join("checkpoints");
    std::fs::create_dir(&folder).unwrap();
    for command in [eval(d, &folder), predict(d, &folder)] {
        let stderr = failure(command, 2);
        assert!(
            stderr.contains("checkpoints: is a directory, not a checkpoint file"),
            "{stderr}"
        );
        assert!(!stderr.contains("magic number"), "{stderr}");
    }
    let student = with_teacher(d, "s", &folder);
    let stderr = failure(kd(d, &["plan", student.to_str().unwrap()]), 2);
    assert!(
        stderr.contains("networks.teacher.checkpoint")
            && stderr.contains("is a directory, not a checkpoint file"),
        "{stderr}"
    );
}

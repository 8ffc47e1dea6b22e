//! Self-describing checkpoints through the binary: a run records the input preparation it
//! trained with, and `kd eval`/`kd predict` use it without being told; a flag that disagrees is
//! used and named in a warning; a checkpoint without the record works from flags and defaults,
//! with a note; `kd import` records what its flags said and what it assumed; a record that
//! contradicts itself is refused naming the file and the field.

use std::path::{Path, PathBuf};

use kd_core::checkpoint::{self, InputPreparation};
use kd_tests::{cifar10, failure, kd, pytorch_fixture, run_dir, subset, success, write};
use serde_json::Value;

/// A tiny run on the shipped subset normalised with non-default constants, evaluated on the
/// whole test split (so `kd eval` on the split sees the images the run scored).
fn trained(dir: &Path) -> PathBuf {
    let config = format!(
        r#"
[run]
name = "prepared"
output_dir = "{runs}"
epochs = 1
seed = 7

[data]
format = "idx"
root = "{root}"
train_per_class = 10
batch_size = 16
eval_batch_size = 100
mean = [0.6]
std = [0.2]

[schedule]
kind = "constant"

[networks.student]
arch = "resnet8"
"#,
        runs = dir.join("runs").display(),
        root = subset().display(),
    );
    let config = write(dir, "prepared.toml", &config);
    success(kd(dir, &["train", config.to_str().unwrap()]));
    run_dir(dir, "prepared")
        .join("checkpoints")
        .join("best.kdc")
}

fn json(stdout: &[u8]) -> Value {
    serde_json::from_slice(stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(stdout)))
}

/// `kd <command> --checkpoint CHECKPOINT --data DATA` with `extra` flags.
fn with_data(command: &str, checkpoint: &Path, data: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        command.to_string(),
        "--checkpoint".into(),
        checkpoint.display().to_string(),
        "--data".into(),
        data.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn run(dir: &Path, args: &[String]) -> std::process::Command {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    kd(dir, &args)
}

/// A copy of `from` whose header says `preparation` (written as kd writes checkpoints).
fn with_preparation(from: &Path, to: &Path, preparation: Option<InputPreparation>) -> PathBuf {
    let (mut header, blobs) = checkpoint::read(from).unwrap();
    header.preparation = preparation;
    checkpoint::write(to, header, blobs).unwrap();
    to.to_path_buf()
}

#[test]
fn eval_and_predict_prepare_images_as_the_run_did() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let best = trained(dir);
    let summary: Value =
        json(&std::fs::read(run_dir(dir, "prepared").join("summary.json")).unwrap());
    let reported = summary["outputs"]["student"]["best_top1"].as_f64().unwrap();

    let recorded = checkpoint::read_header(&best).unwrap().preparation.unwrap();
    assert_eq!(
        recorded,
        InputPreparation {
            format: Some("idx".into()),
            channels: 1,
            image_size: [28, 28],
            input_size: 32,
            mean: vec![0.6],
            std: vec![0.2],
            class_names: None,
        }
    );

    // No format, no normalisation flags: the record decides, and the run's top-1 comes back.
    let out = success(run(dir, &with_data("eval", &best, &subset(), &["--json"])));
    let report = json(&out.stdout);
    assert_eq!(report["count"].as_u64(), Some(2000), "{report}");
    assert_eq!(report["top1"].as_f64(), Some(reported), "{report}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("WARN"), "{stderr}");

    // The same checkpoint without its record (as kd wrote them before) gets the format's
    // standard constants: another accuracy, and a note saying why.
    let old = with_preparation(&best, &dir.join("old.kdc"), None);
    let stderr = failure(
        run(dir, &with_data("eval", &old, &subset(), &["--json"])),
        2,
    );
    assert!(
        stderr.contains("old.kdc does not record its data format: give --format (idx, cifar10"),
        "{stderr}"
    );
    let out = success(run(
        dir,
        &with_data("eval", &old, &subset(), &["--format", "idx", "--json"]),
    ));
    assert_ne!(json(&out.stdout)["top1"].as_f64(), Some(reported));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("old.kdc does not record its input preparation")
            && stderr.contains("mean [0.286], std [0.353]"),
        "{stderr}"
    );
    // Given the run's constants by flag, the old checkpoint scores as the run did.
    let out = success(run(
        dir,
        &with_data(
            "eval",
            &old,
            &subset(),
            &["--format", "idx", "--mean", "0.6", "--std", "0.2", "--json"],
        ),
    ));
    assert_eq!(json(&out.stdout)["top1"].as_f64(), Some(reported));

    // A disagreeing --mean is used, and named in a warning.
    let logits = |checkpoint: &Path, extra: &[&str]| -> (Value, String) {
        let mut flags = vec!["--arch", "resnet8", "--limit", "3", "--json"];
        flags.extend(extra);
        let out = success(run(
            dir,
            &with_data("predict", checkpoint, &subset(), &flags),
        ));
        (
            json(&out.stdout),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (recorded_logits, _) = logits(&best, &[]);
    let (overridden, stderr) = logits(&best, &["--mean", "0.3"]);
    assert!(
        stderr.contains("--mean [0.3] disagrees with the [0.6] recorded in")
            && stderr.contains("best.kdc")
            && stderr.contains("using --mean [0.3]"),
        "{stderr}"
    );
    assert_ne!(overridden, recorded_logits);
    let (by_flags, _) = logits(&old, &["--format", "idx", "--mean", "0.3", "--std", "0.2"]);
    assert_eq!(overridden, by_flags, "the flag's mean is the one used");
    // A disagreeing --format is named too (and then fails on the IDX files, exit 2).
    let stderr = failure(
        run(
            dir,
            &with_data("eval", &best, &subset(), &["--format", "cifar10"]),
        ),
        2,
    );
    assert!(
        stderr.contains("--format cifar10 disagrees with the format `idx` recorded in"),
        "{stderr}"
    );
}

#[test]
fn bad_preparation_from_flags_or_the_checkpoint_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let best = trained(dir);
    let eval = |checkpoint: &Path, extra: &[&str]| {
        failure(
            run(dir, &with_data("eval", checkpoint, &subset(), extra)),
            2,
        )
    };
    let stderr = eval(&best, &["--std", "0"]);
    assert!(
        stderr.contains("--std holds 0: std values must be positive"),
        "{stderr}"
    );
    let stderr = eval(&best, &["--mean", "NaN"]);
    assert!(
        stderr.contains("--mean holds NaN, not a finite number"),
        "{stderr}"
    );
    let stderr = eval(&best, &["--input-size", "16"]);
    assert!(
        stderr.contains("--input-size 16 is smaller than the 28x28 images"),
        "{stderr}"
    );
    let stderr = eval(&best, &["--mean", "0.1,0.2"]);
    assert!(
        stderr.contains("--mean and --std need 1 value(s) each"),
        "{stderr}"
    );

    let recorded = checkpoint::read_header(&best).unwrap().preparation.unwrap();
    // A record that contradicts itself: the file, the byte offset and the field.
    let mut bad = recorded.clone();
    bad.std = vec![0.0];
    let damaged = with_preparation(&best, &dir.join("zero_std.kdc"), Some(bad));
    let stderr = eval(&damaged, &[]);
    assert!(
        stderr.contains(
            "zero_std.kdc: the checkpoint is damaged: the header's input preparation \
                         (at byte 20) is inconsistent: `std` holds 0; every value must be \
                         positive"
        ),
        "{stderr}"
    );
    let mut bad = recorded.clone();
    bad.channels = 3;
    bad.mean = vec![0.5; 3];
    bad.std = vec![0.5; 3];
    let damaged = with_preparation(&best, &dir.join("rgb.kdc"), Some(bad));
    let stderr = eval(&damaged, &["--format", "idx"]);
    assert!(
        stderr.contains("has 3 channel(s), but its network `student` takes 1"),
        "{stderr}"
    );
    // A format this kd does not read, and a recorded input side smaller than the images.
    let mut odd = recorded.clone();
    odd.format = Some("png".into());
    let odd = with_preparation(&best, &dir.join("png.kdc"), Some(odd));
    let stderr = eval(&odd, &[]);
    assert!(
        stderr.contains(
            "png.kdc: its recorded input preparation names unknown data format \
                         `png`"
        ) && stderr.contains("give --format"),
        "{stderr}"
    );
    let mut small = recorded.clone();
    small.image_size = [16, 16];
    small.input_size = 16;
    let small = with_preparation(&best, &dir.join("small.kdc"), Some(small));
    let stderr = eval(&small, &[]);
    assert!(
        stderr.contains("holds 28x28 images, but")
            && stderr.contains("small.kdc was trained on 16x16 images"),
        "{stderr}"
    );
    assert!(
        stderr.contains("the input size 16 recorded in")
            && stderr.contains("is smaller than the 28x28 images"),
        "{stderr}"
    );
}

#[test]
fn an_import_records_what_its_flags_said_and_what_it_assumed() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let data = cifar10(dir, 3);
    let from = pytorch_fixture("resnet8_c10.pth");
    let import = |out: &str, extra: &[&str]| {
        let mut args = vec![
            "import",
            "--arch",
            "resnet8",
            "--from",
            from.to_str().unwrap(),
            "--out",
            out,
        ];
        args.extend(extra);
        kd(dir, &args)
    };
    let out = success(import(
        "t.kdc",
        &[
            "--format",
            "cifar10",
            "--mean",
            "0.5,0.5,0.5",
            "--std",
            "0.25,0.25,0.25",
        ],
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "recorded input preparation: cifar10, 3 channel(s), 32x32 images padded to 32, mean \
             [0.5, 0.5, 0.5], std [0.25, 0.25, 0.25], 10 classes named airplane, automobile, \
             bird, cat, …"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "assumed (no flag given): input size 32, 32x32 images (the cifar10 standard), the \
             cifar10 class names"
        ),
        "{stdout}"
    );
    let recorded = checkpoint::read_header(&dir.join("t.kdc"))
        .unwrap()
        .preparation
        .unwrap();
    assert_eq!(recorded.format.as_deref(), Some("cifar10"));
    assert_eq!(recorded.mean, vec![0.5; 3]);
    assert_eq!(recorded.std, vec![0.25; 3]);
    assert_eq!(recorded.class_names.as_ref().map(Vec::len), Some(10));

    // `kd predict` on the import needs no flag, and gives the logits of the PyTorch file
    // prepared as the import said.
    let predict = |checkpoint: &Path, extra: &[&str]| -> Value {
        let mut flags = vec!["--arch", "resnet8", "--json"];
        flags.extend(extra);
        json(&success(run(dir, &with_data("predict", checkpoint, &data, &flags))).stdout)
    };
    let recorded_logits = predict(&dir.join("t.kdc"), &[]);
    let flagged = predict(
        &from,
        &[
            "--format",
            "cifar10",
            "--mean",
            "0.5,0.5,0.5",
            "--std",
            "0.25,0.25,0.25",
        ],
    );
    assert_eq!(recorded_logits, flagged);
    // Its class names stand in for the CIFAR files' numbers in `kd eval`.
    let out = success(run(dir, &with_data("eval", &dir.join("t.kdc"), &data, &[])));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("class   0 airplane"), "{stdout}");

    // Without preparation flags nothing is recorded, and the report says so.
    let out = success(import("bare.kdc", &[]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("recorded no input preparation (give --format or --mean/--std"),
        "{stdout}"
    );
    assert_eq!(
        checkpoint::read_header(&dir.join("bare.kdc"))
            .unwrap()
            .preparation,
        None
    );
}

#[test]
fn import_preparation_flags_that_do_not_fit_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let from = pytorch_fixture("resnet8_c10.pth");
    let refused = |extra: &[&str]| {
        let mut args = vec![
            "import",
            "--arch",
            "resnet8",
            "--from",
            from.to_str().unwrap(),
            "--out",
            "t.kdc",
        ];
        args.extend(extra);
        let stderr = failure(kd(dir, &args), 2);
        assert!(!dir.join("t.kdc").exists(), "nothing is written");
        stderr
    };
    for (flags, expected) in [
        (
            &["--mean", "0.5,0.5,0.5"][..],
            "--mean needs --std (or --format",
        ),
        (
            &["--input-size", "40"][..],
            "--input-size describes the input preparation: give --format or --mean and --std",
        ),
        (
            &["--format", "idx"][..],
            "--format idx has 1-channel images, but the resnet8 takes 3",
        ),
        (
            &["--format", "cifar10", "--class-names", "a,b"][..],
            "--class-names gives 2 name(s), but the resnet8 has 10 outputs",
        ),
        (
            &["--format", "cifar10", "--input-size", "16"][..],
            "--input-size is 16, smaller than the 32x32 images",
        ),
        (
            &["--mean", "0.5,0.5", "--std", "1,1"][..],
            "--mean has 2 value(s) for 3 channel(s) of the resnet8",
        ),
        (
            &["--format", "cifar10", "--std", "1,-1,1"][..],
            "--std holds -1; every value must be positive",
        ),
    ] {
        let stderr = refused(flags);
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
    }
}

#[test]
fn the_plan_refuses_a_teacher_trained_on_inputs_prepared_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = trained(dir.path());
    let student = |name: &str, mean: f32| {
        let text = kd_tests::tiny_config(
            dir.path(),
            name,
            "resnet8",
            5,
            1,
            &format!(
                "[networks.teacher]\narch = \"resnet8\"\ncheckpoint = \"{}\"\n",
                teacher.display()
            ),
        )
        .replace(
            "batch_size = 16",
            &format!("batch_size = 16\nmean = [{mean}]\nstd = [0.2]"),
        );
        write(
            dir.path(),
            &format!("{name}.toml"),
            &format!("stack = [\"kd\"]\n{text}\n[method.kd]\nkind = \"kd\"\n"),
        )
    };
    let other = student("other", 0.3);
    let stderr = failure(kd(dir.path(), &["plan", other.to_str().unwrap()]), 2);
    assert!(
        stderr.contains("networks.teacher.checkpoint")
            && stderr.contains("was trained on inputs prepared as")
            && stderr.contains("mean [0.6]")
            && stderr.contains("this run feeds it mean [0.3]"),
        "{stderr}"
    );
    let same = student("same", 0.6);
    let out = success(kd(dir.path(), &["plan", same.to_str().unwrap()]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("was trained on inputs prepared as"),
        "{text}"
    );
}

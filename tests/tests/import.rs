//! `kd import`, `kd predict` and PyTorch teachers named in configs, through the binary: the
//! fixtures are the checkpoints PyTorch wrote from the reference models
//! (`crates/kd-core/tests/fixtures/pytorch`, by `scripts/reference/pytorch_fixtures.py`), and
//! files the tests build from them (half precision, NaN weights, `teacher`/`student` entries)
//! with kd-core's test writer.

#[path = "../../crates/kd-core/tests/support/pth.rs"]
mod pth;

use std::path::{Path, PathBuf};
use std::process::Command;

use kd_tests::{cifar10, failure, kd, pytorch_fixture, run_dir, success, write};
use serde_json::Value;

/// `kd import --arch ARCH --from FROM --out OUT` in `dir`.
fn import(dir: &Path, arch: &str, from: &str, out: &str) -> Command {
    kd(
        dir,
        &["import", "--arch", arch, "--from", from, "--out", out],
    )
}

fn json(stdout: &[u8]) -> Value {
    serde_json::from_slice(stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(stdout)))
}

#[test]
fn import_then_predict_gives_the_logits_of_the_pytorch_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar10(dir.path(), 4);
    let from = pytorch_fixture("resnet8_repdistiller.pth");
    let out = success(import(
        dir.path(),
        "resnet8",
        from.to_str().unwrap(),
        "teachers/resnet8.kdc",
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("47 tensors from the state dict under `model`"),
        "{stdout}"
    );
    assert!(
        stdout.contains("(10 classes, 3 input channel(s))"),
        "{stdout}"
    );
    assert!(dir.path().join("teachers/resnet8.kdc").is_file());

    let predict = |checkpoint: &str| {
        let out = success(kd(
            dir.path(),
            &[
                "predict",
                "--arch",
                "resnet8",
                "--checkpoint",
                checkpoint,
                "--data",
                data.to_str().unwrap(),
                "--format",
                "cifar10",
                "--limit",
                "3",
                "--json",
            ],
        ));
        json(&out.stdout)
    };
    let imported = predict("teachers/resnet8.kdc");
    let rows = imported.as_array().unwrap();
    assert_eq!(rows.len(), 3, "--limit 3");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["index"], i);
        assert_eq!(
            row["label"],
            (i * 7 + 5) % 10,
            "labels of test_batch.bin in file order"
        );
        assert_eq!(row["logits"].as_array().unwrap().len(), 10);
    }
    assert_ne!(rows[0]["logits"], rows[1]["logits"]);
    // The .pth read directly gives the very same numbers.
    assert_eq!(predict(from.to_str().unwrap()), imported);
}

#[test]
fn a_failed_import_names_the_keys_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let from = pytorch_fixture("resnet8_missing.pth");
    let stderr = failure(
        import(dir.path(), "resnet8", from.to_str().unwrap(), "new.kdc"),
        2,
    );
    assert!(stderr.contains("resnet8_missing.pth"), "{stderr}");
    assert!(
        stderr.contains("2 missing from the file: fc.bias, layer1.0.bn1.running_var"),
        "{stderr}"
    );
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(entries.is_empty(), "nothing written: {entries:?}");

    // An existing file at --out survives a failed import untouched (even with --force).
    std::fs::write(dir.path().join("kept.kdc"), b"earlier result").unwrap();
    let from = pytorch_fixture("resnet8_misshaped.pth");
    let mut forced = import(dir.path(), "resnet8", from.to_str().unwrap(), "kept.kdc");
    forced.arg("--force");
    let stderr = failure(forced, 2);
    assert!(
        stderr.contains("layer1.0.conv1.weight: file [16, 16, 1, 1], network [16, 16, 3, 3]"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("kept.kdc")).unwrap(),
        b"earlier result"
    );

    let from = pytorch_fixture("resnet8_c10.pth");
    let stderr = failure(
        import(dir.path(), "resnet9", from.to_str().unwrap(), "x.kdc"),
        2,
    );
    assert!(
        stderr.contains("unknown architecture `resnet9`"),
        "{stderr}"
    );
    write(dir.path(), "junk.pth", "not a checkpoint");
    let stderr = failure(import(dir.path(), "resnet8", "junk.pth", "x.kdc"), 2);
    assert!(
        stderr.contains("junk.pth: not a readable PyTorch checkpoint"),
        "{stderr}"
    );
    assert!(!dir.path().join("x.kdc").exists());
}

#[test]
fn predict_checks_the_architecture_and_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar10(dir.path(), 2);
    let from = pytorch_fixture("resnet8_c10.pth");
    success(import(
        dir.path(),
        "resnet8",
        from.to_str().unwrap(),
        "t.kdc",
    ));
    let data = data.to_str().unwrap();
    let stderr = failure(
        kd(
            dir.path(),
            &[
                "predict",
                "--arch",
                "resnet14",
                "--checkpoint",
                "t.kdc",
                "--data",
                data,
                "--format",
                "cifar10",
            ],
        ),
        2,
    );
    assert!(
        stderr.contains("--arch resnet14, but t.kdc holds a resnet8"),
        "{stderr}"
    );
    let stderr = failure(
        kd(
            dir.path(),
            &[
                "predict",
                "--arch",
                "resnet8",
                "--checkpoint",
                "t.kdc",
                "--data",
                data,
                "--format",
                "cifar10",
                "--mean",
                "0.5,0.5",
            ],
        ),
        2,
    );
    assert!(
        stderr.contains("--mean and --std need 3 value(s) each"),
        "{stderr}"
    );
    // A PyTorch file read by `kd eval` needs its architecture.
    let stderr = failure(
        kd(
            dir.path(),
            &[
                "eval",
                "--checkpoint",
                from.to_str().unwrap(),
                "--data",
                data,
                "--format",
                "cifar10",
            ],
        ),
        2,
    );
    assert!(
        stderr.contains("name its architecture with --arch"),
        "{stderr}"
    );
}

fn pth_teacher_config(dir: &Path, data: &Path, teacher_arch: &str) -> PathBuf {
    let text = format!(
        r#"
stack = ["kd"]

[run]
name = "from-pth"
output_dir = "{runs}"
epochs = 1
seed = 3
log_every = 1

[data]
format = "cifar10"
root = "{root}"
batch_size = 8
eval_batch_size = 16

[schedule]
kind = "constant"

[networks.student]
arch = "resnet8"

[networks.teacher]
arch = "{teacher_arch}"
checkpoint = "{teacher}"

[method.kd]
kind = "kd"
"#,
        runs = dir.join("runs").display(),
        root = data.display(),
        teacher = pytorch_fixture("resnet8_dataparallel.pth").display(),
    );
    write(dir, "from-pth.toml", &text)
}

#[test]
fn a_config_can_name_a_pytorch_teacher() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar10(dir.path(), 16);
    let config = pth_teacher_config(dir.path(), &data, "resnet8");
    let config = config.to_str().unwrap();

    // The plan checks the file's keys and imports nothing.
    success(kd(dir.path(), &["plan", config]));
    let imports = dir.path().join("runs/imports");
    assert!(!imports.exists(), "the plan imported");

    // Training imports it once and starts from the file's weights: the teacher's accuracy
    // before training is the one `kd eval` measures on the .pth itself.
    success(kd(dir.path(), &["train", config]));
    let cached: Vec<PathBuf> = std::fs::read_dir(&imports)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    let name = cached[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with("resnet8_dataparallel-resnet8-") && name.ends_with(".kdc"),
        "{name}"
    );
    let stamp = std::fs::metadata(&cached[0]).unwrap().modified().unwrap();
    // A second run of the same teacher imports nothing again.
    success(kd(
        dir.path(),
        &["train", config, "--set", "run.name=again"],
    ));
    assert_eq!(std::fs::read_dir(&imports).unwrap().count(), 1);
    assert_eq!(
        std::fs::metadata(&cached[0]).unwrap().modified().unwrap(),
        stamp
    );
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir(dir.path(), "from-pth").join("summary.json")).unwrap(),
    )
    .unwrap();
    let teacher_top1 = summary["outputs"]["teacher"]["initial_top1"]
        .as_f64()
        .unwrap();
    let out = success(kd(
        dir.path(),
        &[
            "eval",
            "--arch",
            "resnet8",
            "--checkpoint",
            pytorch_fixture("resnet8_dataparallel.pth")
                .to_str()
                .unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--format",
            "cifar10",
            "--json",
        ],
    ));
    let eval = json(&out.stdout);
    assert_eq!(eval["count"], 16);
    assert!(
        (eval["top1"].as_f64().unwrap() - teacher_top1).abs() < 1e-9,
        "{eval} vs {teacher_top1}"
    );
}

#[test]
fn a_pytorch_teacher_of_another_architecture_fails_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar10(dir.path(), 2);
    let config = pth_teacher_config(dir.path(), &data, "resnet14");
    let stderr = failure(kd(dir.path(), &["plan", config.to_str().unwrap()]), 2);
    assert!(stderr.contains("networks.teacher.checkpoint"), "{stderr}");
    assert!(
        stderr.contains("missing from the file: layer1.1.bn1.bias"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("runs/imports").exists()
            || std::fs::read_dir(dir.path().join("runs/imports"))
                .unwrap()
                .count()
                == 0
    );
}

/// A fixture's state dict written again in `precision` to `dir/name`.
fn rewritten(dir: &Path, fixture_name: &str, name: &str, precision: pth::Precision) -> PathBuf {
    let tensors = pth::read_tensors(&pytorch_fixture(fixture_name));
    let path = dir.join(name);
    pth::write_pth(&path, &pth::state_dict(&tensors, precision));
    path
}

#[test]
fn a_half_precision_checkpoint_is_imported_as_float32_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = cifar10(dir.path(), 16);
    let half = rewritten(
        dir.path(),
        "resnet8_c10.pth",
        "half.pth",
        pth::Precision::F16,
    );
    let out = success(import(
        dir.path(),
        "resnet8",
        half.to_str().unwrap(),
        "half.kdc",
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("converted to float32: 47 from float16"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("converted 47 tensor(s) from float16 to float32"),
        "{stderr}"
    );
    // What panicked on a dtype mismatch before: evaluating the import, and the .pth itself.
    let data = data_dir.to_str().unwrap();
    let eval = |checkpoint: &str| {
        let out = success(kd(
            dir.path(),
            &[
                "eval",
                "--arch",
                "resnet8",
                "--checkpoint",
                checkpoint,
                "--data",
                data,
                "--format",
                "cifar10",
                "--json",
            ],
        ));
        let mut report = json(&out.stdout);
        report.as_object_mut().unwrap().remove("checkpoint");
        report
    };
    let imported = eval("half.kdc");
    assert_eq!(imported["count"], 16);
    assert_eq!(eval(half.to_str().unwrap()), imported);

    // A run with a float16 teacher trains.
    let text = std::fs::read_to_string(pth_teacher_config(dir.path(), &data_dir, "resnet8"))
        .unwrap()
        .replace(
            &pytorch_fixture("resnet8_dataparallel.pth")
                .display()
                .to_string(),
            &half.display().to_string(),
        );
    let config = write(dir.path(), "half.toml", &text);
    success(kd(dir.path(), &["train", config.to_str().unwrap()]));
    assert!(
        run_dir(dir.path(), "from-pth")
            .join("summary.json")
            .is_file()
    );
}

#[test]
fn non_finite_weights_in_a_pytorch_file_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar10(dir.path(), 2);
    let mut tensors = pth::read_tensors(&pytorch_fixture("resnet8_c10.pth"));
    tensors.iter_mut().find(|t| t.0 == "fc.bias").unwrap().2[0] = f32::NAN;
    let path = dir.path().join("nan.pth");
    pth::write_pth(&path, &pth::state_dict(&tensors, pth::Precision::F32));
    let stderr = failure(import(dir.path(), "resnet8", "nan.pth", "nan.kdc"), 2);
    assert!(
        stderr.contains("nan.pth: tensor `fc.bias` holds NaN or infinite values"),
        "{stderr}"
    );
    assert!(!dir.path().join("nan.kdc").exists());
    let stderr = failure(
        kd(
            dir.path(),
            &[
                "predict",
                "--arch",
                "resnet8",
                "--checkpoint",
                "nan.pth",
                "--data",
                data.to_str().unwrap(),
                "--format",
                "cifar10",
            ],
        ),
        2,
    );
    assert!(stderr.contains("tensor `fc.bias` holds NaN"), "{stderr}");
}

#[test]
fn a_file_with_teacher_and_student_entries_names_the_one_that_fits() {
    let dir = tempfile::tempdir().unwrap();
    let entry = |name: &str| {
        pth::state_dict(
            &pth::read_tensors(&pytorch_fixture(name)),
            pth::Precision::F32,
        )
    };
    let root = pth::Node::Dict(vec![
        ("student".into(), entry("resnet8_c10.pth")),
        ("teacher".into(), entry("resnet20.pth")),
    ]);
    pth::write_pth(&dir.path().join("both.pth"), &root);
    let out = success(import(dir.path(), "resnet20", "both.pth", "teacher.kdc"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("tensors from the state dict under `teacher` into resnet20 (100 classes"),
        "{stdout}"
    );
    let mut command = import(dir.path(), "resnet20", "both.pth", "x.kdc");
    command.args(["--key", "student"]);
    let stderr = failure(command, 2);
    assert!(
        stderr.contains("compared with the state dict under `student`"),
        "{stderr}"
    );
    assert!(
        stderr
            .contains("the state dict under `teacher` fits resnet20: choose it with --key teacher"),
        "{stderr}"
    );
    assert!(!dir.path().join("x.kdc").exists());
}

#[test]
fn a_directory_given_as_the_pytorch_file_is_named_as_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("teacher.pth")).unwrap();
    let stderr = failure(import(dir.path(), "resnet8", "teacher.pth", "x.kdc"), 2);
    assert!(
        stderr.contains("teacher.pth: not a readable PyTorch checkpoint: it is a directory"),
        "{stderr}"
    );
}

#[test]
fn import_never_overwrites_its_source_and_replaces_an_output_only_with_force() {
    let dir = tempfile::tempdir().unwrap();
    let from = dir.path().join("teacher.pth");
    std::fs::copy(pytorch_fixture("resnet8_repdistiller.pth"), &from).unwrap();
    let source = std::fs::read(&from).unwrap();
    // The source itself, under another spelling too: refused before anything is read.
    for out in ["teacher.pth", "./teacher.pth"] {
        let stderr = failure(import(dir.path(), "resnet8", "teacher.pth", out), 2);
        assert!(stderr.contains("is the --from file itself"), "{stderr}");
        assert_eq!(std::fs::read(&from).unwrap(), source);
    }
    success(import(dir.path(), "resnet8", "teacher.pth", "t.kdc"));
    let written = std::fs::read(dir.path().join("t.kdc")).unwrap();
    let stderr = failure(import(dir.path(), "resnet8", "teacher.pth", "t.kdc"), 2);
    assert!(
        stderr.contains("t.kdc exists") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(dir.path().join("t.kdc")).unwrap(), written);
    let stderr = failure(import(dir.path(), "resnet8", "teacher.pth", "."), 2);
    assert!(stderr.contains("is a directory"), "{stderr}");
    let mut forced = import(dir.path(), "resnet8", "teacher.pth", "t.kdc");
    forced.arg("--force");
    success(forced);
}

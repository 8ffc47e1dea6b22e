//! Bad input found in review, each refused with exit status 2 and a message naming the flag, key
//! or file: out-of-range flags of `kd models`, `kd bench` and `kd time`; sizes that would fail
//! to allocate; runs whose every loss term is 0; floats that break in f32; `nan` in a `KD_`
//! variable; enum keys; unknown keys in a method table; blank names; unusable includes; the
//! `KD_DATA` root; and IDX files whose image shapes cannot be used.

use std::path::{Path, PathBuf};
use std::process::Command;

use kd_tests::{failure, kd, success, tiny_config, write};

/// `kd <command> <config> [--set …]` in `dir`.
fn plan(dir: &Path, config: &Path, sets: &[&str]) -> Command {
    let mut args = vec!["plan", config.to_str().unwrap()];
    for set in sets {
        args.extend(["--set", set]);
    }
    kd(dir, &args)
}

/// A tiny configuration in `dir` (`x.toml`), with `extra` appended.
fn config(dir: &Path, extra: &str) -> PathBuf {
    write(
        dir,
        "x.toml",
        &tiny_config(dir, "r", "resnet8", 5, 1, extra),
    )
}

/// A configuration distilling from a teacher whose checkpoint does not exist yet (planned with
/// `--allow-missing-checkpoints`).
fn kd_config(dir: &Path) -> PathBuf {
    let extra = r#"
[networks.teacher]
arch = "resnet8"
checkpoint = "teacher.kdc"

[method.kd]
kind = "kd"
teacher = "teacher"
student = "student"
temperature = 4.0
"#;
    let text = format!(
        "stack = [\"kd\"]\n{}",
        tiny_config(dir, "r", "resnet8", 5, 1, extra)
    );
    write(dir, "kd.toml", &text)
}

/// `kd plan --allow-missing-checkpoints` of `config` with `sets`.
fn plan_kd(dir: &Path, config: &Path, sets: &[&str]) -> Command {
    let mut args = vec![
        "plan",
        config.to_str().unwrap(),
        "--allow-missing-checkpoints",
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    kd(dir, &args)
}

fn assert_has(stderr: &str, parts: &[&str]) {
    for part in parts {
        assert!(stderr.contains(part), "missing {part:?} in:\n{stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn out_of_range_flags_name_the_flag_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = config(d, "");
    let cfg = cfg.to_str().unwrap();
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["models", "--num-classes", "18446744073709551615"],
            "--num-classes",
            "1..=100000",
        ),
        (
            &["models", "--num-classes", "0"],
            "--num-classes",
            "1..=100000",
        ),
        (&["models", "--in-channels", "0"], "--in-channels", "1..=64"),
        (&["models", "--input-size", "0"], "--input-size", "1..=4096"),
        (
            &["bench", "models", "--models", "resnet8", "--classes", "0"],
            "--classes",
            "1..=100000",
        ),
        (
            &["bench", "models", "--batch", "18446744073709551615"],
            "--batch",
            "1..=4096",
        ),
        (&["bench", "models", "--batch", "0"], "--batch", "1..=4096"),
        (
            &["bench", "models", "--iterations", "0"],
            "--iterations",
            "1..=10000",
        ),
        (
            &["bench", "models", "--iterations", "18446744073709551615"],
            "--iterations",
            "1..=10000",
        ),
        (
            &["bench", "step", cfg, "--warmup", "18446744073709551615"],
            "--warmup",
            "0..=10000",
        ),
        (
            &["time", cfg, "--steps", "18446744073709551615"],
            "--steps",
            "1..=10000",
        ),
        (&["time", cfg, "--steps", "0"], "--steps", "1..=10000"),
        (
            &[
                "bench",
                "data",
                "--data",
                "x",
                "--format",
                "idx",
                "--batch",
                "100000000",
            ],
            "--batch",
            "1..=4096",
        ),
    ];
    for (args, flag, range) in cases {
        let stderr = failure(kd(d, args), 2);
        assert_has(&stderr, &[flag, range]);
    }
}

/// Writes an IDX image file of `n` images of `rows`×`cols` (and its label file) as `prefix`.
fn idx_pair(root: &Path, prefix: &str, n: u32, rows: u32, cols: u32) {
    std::fs::create_dir_all(root).unwrap();
    let mut images = vec![0, 0, 8, 3];
    for d in [n, rows, cols] {
        images.extend(d.to_be_bytes());
    }
    images.resize(images.len() + (n * rows * cols) as usize, 7);
    std::fs::write(root.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
    let mut labels = vec![0, 0, 8, 1];
    labels.extend(n.to_be_bytes());
    labels.extend((0..n).map(|i| (i % 10) as u8));
    std::fs::write(root.join(format!("{prefix}-labels-idx1-ubyte")), labels).unwrap();
}

#[test]
fn a_bench_batch_larger_than_the_dataset_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("idx");
    idx_pair(&root, "train", 20, 4, 4);
    let stderr = failure(
        kd(
            dir.path(),
            &[
                "bench",
                "data",
                "--data",
                root.to_str().unwrap(),
                "--format",
                "idx",
                "--batch",
                "64",
                "--iterations",
                "1",
            ],
        ),
        2,
    );
    assert_has(&stderr, &["--batch 64 exceeds the 20 training images in"]);
}

#[test]
fn sizes_that_would_not_allocate_are_plan_errors_at_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let sets = [
        "data.prefetch=1000000000",
        "data.input_size=5000",
        "data.batch_size=100000",
        "data.eval_batch_size=100000",
    ];
    let stderr = failure(plan(dir.path(), &cfg, &sets), 2);
    assert_has(
        &stderr,
        &[
            "`data.prefetch`: must be at most 64, got 1000000000",
            "`data.input_size`: must be at most 1024, got 5000",
            "`data.batch_size`: must be at most 4096, got 100000",
            "`data.eval_batch_size`: must be at most 4096, got 100000",
        ],
    );
}

#[test]
fn a_run_whose_every_loss_term_is_zero_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = config(d, "");
    let stderr = failure(plan(d, &cfg, &["loss.ce_weight=0"]), 2);
    assert_has(
        &stderr,
        &[
            "`loss.ce_weight`: every weighted term of the loss is 0 (`loss.ce_weight` = 0): the \
             run would train nothing",
        ],
    );
    // The student's own weight overrides the run's: 0 there is as empty, 1 there trains.
    let stderr = failure(plan(d, &cfg, &["networks.student.ce_weight=0"]), 2);
    assert_has(&stderr, &["(`networks.student.ce_weight` = 0)"]);
    success(plan(
        d,
        &cfg,
        &["loss.ce_weight=0", "networks.student.ce_weight=1"],
    ));

    let kd_cfg = kd_config(d);
    let stderr = failure(
        plan_kd(d, &kd_cfg, &["loss.ce_weight=0", "method.kd.weight=0"]),
        2,
    );
    assert_has(
        &stderr,
        &["every weighted term of the loss is 0 (`loss.ce_weight`, `method.kd.weight` = 0)"],
    );
    // Distillation alone trains the student.
    success(plan_kd(d, &kd_cfg, &["loss.ce_weight=0"]));
}

#[test]
fn a_dataset_of_one_class_is_refused_at_data_root() {
    // A valid 4x4 grey PNG.
    const PNG: [u8; 81] = [
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00, 0x8c,
        0x9a, 0xc1, 0xa2, 0x00, 0x00, 0x00, 0x18, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x60,
        0xd0, 0x08, 0xa8, 0x60, 0x10, 0xb1, 0x49, 0xe9, 0x01, 0x31, 0x16, 0x30, 0x00, 0x19, 0x5b,
        0x00, 0x2d, 0x64, 0x05, 0xa1, 0x66, 0x5f, 0xb4, 0x8a, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
        0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
    ];
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("one");
    for name in ["train/ant/0.png", "train/ant/1.png", "test/ant/0.png"] {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, PNG).unwrap();
    }
    let cfg = config(dir.path(), "");
    let root_set = format!("data.root=\"{}\"", root.display());
    let sets = [
        "data.format=\"folder\"",
        root_set.as_str(),
        "data.mean=[0.5]",
        "data.std=[0.5]",
    ];
    let stderr = failure(plan(dir.path(), &cfg, &sets), 2);
    assert_has(
        &stderr,
        &["`data.root`: the dataset has 1 class(es): classification needs at least 2"],
    );
}

#[test]
fn floats_that_break_in_f32_are_refused_at_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let kd_cfg = kd_config(d);
    let stderr = failure(
        plan_kd(
            d,
            &kd_cfg,
            &["method.kd.temperature=1e-300", "method.kd.weight=1e300"],
        ),
        2,
    );
    assert_has(
        &stderr,
        &[
            "`method.kd.temperature`: 1e-300 is below f32's smallest positive value (1e-45)",
            "`method.kd.weight`: 1e300 exceeds f32's largest value",
        ],
    );
    let cfg = config(d, "");
    let stderr = failure(
        plan(
            d,
            &cfg,
            &["data.std=[1e-300]", "data.mean=[1e300]", "optim.lr=1e-300"],
        ),
        2,
    );
    assert_has(
        &stderr,
        &[
            "`data.std[0]`: is 0 in f32 (zero, or below f32's smallest positive value",
            "`data.mean[0]`: inf is not a finite number (or its magnitude exceeds f32's largest",
            "`optim.lr`: 1e-300 is below f32's smallest positive value",
        ],
    );
}

#[test]
fn nan_in_a_variable_is_a_float_and_reported_by_range() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let mut command = plan(dir.path(), &cfg, &[]);
    command.env("KD_OPTIM__LR", "NaN");
    let stderr = failure(command, 2);
    assert_has(
        &stderr,
        &["`optim.lr`: must be a positive number (from environment variable KD_OPTIM__LR)"],
    );
    assert!(!stderr.contains("found string"), "{stderr}");
}

#[test]
fn an_enum_key_names_its_allowed_values() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let stderr = failure(
        plan(
            dir.path(),
            &cfg,
            &["schedule.kind=3", "data.augment.pad_mode=\"wrap\""],
        ),
        2,
    );
    assert_has(
        &stderr,
        &[
            "`schedule.kind`: must be one of `multistep`, `cosine`, `constant`; found",
            "`data.augment.pad_mode`: unknown variant `wrap`: must be one of `zero`, `reflect`",
        ],
    );
    assert!(!stderr.contains("ScheduleKind"), "{stderr}");
}

#[test]
fn an_unknown_key_in_a_method_table_lists_kind_and_weight() {
    let dir = tempfile::tempdir().unwrap();
    let kd_cfg = kd_config(dir.path());
    let stderr = failure(plan_kd(dir.path(), &kd_cfg, &["method.kd.wieght=1"]), 2);
    assert_has(
        &stderr,
        &[
            "`method.kd.wieght`: unknown field `wieght` (did you mean `weight`?); known keys \
             here: `teacher`, `student`, `temperature`, `kind`, `weight`",
        ],
    );
}

#[test]
fn blank_names_are_refused_at_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = config(
        d,
        "[networks.\"\"]\narch = \"resnet8\"\n[networks.\"a b\"]\narch = \"resnet8\"\n\
         [method.\"\"]\nkind = \"kd\"\n",
    );
    let stderr = failure(plan(d, &cfg, &["run.name=\" \""]), 2);
    assert_has(
        &stderr,
        &[
            "`networks.\"\"`: role name is empty",
            "`networks.\"a b\"`: role name `a b` holds ' '",
            "`method.\"\"`: instance name is empty",
            "`run.name`: ` ` is blank (only whitespace)",
        ],
    );
    let stderr = failure(plan(d, &config(d, ""), &["run.name=\"a\\u0007\""]), 2);
    assert_has(&stderr, &["`run.name`", "holds a control character"]);
}

#[test]
fn an_unusable_include_names_the_resolved_path() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("presets")).unwrap();
    let cfg = write(d, "inc.toml", "include = [\"presets\", \"\"]\n");
    let stderr = failure(plan(d, &cfg, &[]), 2);
    assert_has(
        &stderr,
        &[
            "`include`: included file presets: is a directory, not a configuration file",
            "`include`: entry `` is empty: it names no file",
        ],
    );
    assert!(!stderr.contains("included file :"), "{stderr}");
}

#[test]
fn a_root_from_kd_data_is_named_in_data_errors() {
    let dir = tempfile::tempdir().unwrap();
    let text = tiny_config(dir.path(), "r", "resnet8", 5, 1, "")
        .lines()
        .filter(|l| !l.starts_with("root ="))
        .collect::<Vec<_>>()
        .join("\n");
    let cfg = write(dir.path(), "x.toml", &text);
    let mut command = plan(dir.path(), &cfg, &[]);
    command.env("KD_DATA", "/nonexistent");
    let stderr = failure(command, 2);
    assert_has(
        &stderr,
        &[
            "`data.root`: /nonexistent: no train-images-idx3-ubyte[.gz] file",
            "(data.root is not set; the root /nonexistent comes from the KD_DATA variable)",
        ],
    );
}

#[test]
fn idx_images_of_zero_size_or_of_two_shapes_name_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let zero = d.join("zero");
    idx_pair(&zero, "train", 4, 0, 0);
    idx_pair(&zero, "t10k", 4, 4, 4);
    let cfg = config(d, "");
    let root_set = format!("data.root=\"{}\"", zero.display());
    for command in ["plan", "train"] {
        let stderr = failure(
            kd(d, &[command, cfg.to_str().unwrap(), "--set", &root_set]),
            2,
        );
        assert_has(
            &stderr,
            &[
                "`data.root`",
                "zero/train-images-idx3-ubyte: cannot decode image: the header (bytes 8 to 15) \
                 gives 0x0 images",
            ],
        );
    }
    let stderr = failure(
        kd(
            d,
            &[
                "data",
                "stats",
                zero.join("train-images-idx3-ubyte").to_str().unwrap(),
                "--format",
                "idx",
            ],
        ),
        2,
    );
    assert_has(&stderr, &["gives 0x0 images"]);

    let shapes = d.join("shapes");
    idx_pair(&shapes, "train", 10, 4, 4);
    idx_pair(&shapes, "t10k", 10, 5, 6);
    let root_set = format!("data.root=\"{}\"", shapes.display());
    let stderr = failure(plan(d, &cfg, &[&root_set]), 2);
    assert_has(
        &stderr,
        &[
            "`data.root`: train and test images differ in shape: 1x4x4 (channels x height x \
             width) in ",
            "shapes/train-images-idx3-ubyte, 1x5x6 in ",
            "shapes/t10k-images-idx3-ubyte",
        ],
    );
}

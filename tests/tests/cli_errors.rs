//! Every user error ends with exit status 2 and a message naming the key (and its source) or
//! the file (and its offset); a failed run ends with status 1. Nothing already written is lost.

use kd_tests::{all_kinds, failure, kd, run_dir, success, tiny_config, tiny_teacher, write};

#[test]
fn data_stats_on_a_truncated_file_names_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2];
    bytes.extend([1, 2, 3]);
    write(dir.path(), "train-images-idx3-ubyte", "");
    std::fs::write(dir.path().join("train-images-idx3-ubyte"), &bytes).unwrap();
    std::fs::write(
        dir.path().join("train-labels-idx1-ubyte"),
        [0, 0, 8, 1, 0, 0, 0, 2, 1, 2],
    )
    .unwrap();
    let stderr = failure(
        kd(
            dir.path(),
            &[
                "data",
                "stats",
                "train-images-idx3-ubyte",
                "--format",
                "idx",
            ],
        ),
        2,
    );
    assert!(
        stderr.contains("train-images-idx3-ubyte") && stderr.contains("truncated at byte 19"),
        "{stderr}"
    );
}

#[test]
fn data_stats_on_a_bad_cifar_record_size_names_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data_batch_1.bin"), vec![0u8; 3073 + 10]).unwrap();
    let stderr = failure(
        kd(
            dir.path(),
            &["data", "stats", "data_batch_1.bin", "--format", "cifar10"],
        ),
        2,
    );
    assert!(
        stderr.contains("data_batch_1.bin") && stderr.contains("byte 3073"),
        "{stderr}"
    );
}

#[test]
fn print_config_typo_names_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "x.toml", "[run]\nepochz = 3\n");
    let stderr = failure(kd(dir.path(), &["print-config", "x.toml"]), 2);
    assert!(
        stderr.contains("`run.epochz`") && stderr.contains("file x.toml"),
        "{stderr}"
    );
}

#[test]
fn print_config_bad_env_and_bad_set_name_their_source() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = kd(dir.path(), &["print-config"]);
    command.env("KD_DATA__BATCH_SIZE", "many");
    let stderr = failure(command, 2);
    assert!(
        stderr.contains("`data.batch_size`") && stderr.contains("KD_DATA__BATCH_SIZE"),
        "{stderr}"
    );
    let stderr = failure(kd(dir.path(), &["print-config", "--set", "optim.lr"]), 2);
    assert!(
        stderr.contains("--set optim.lr") && stderr.contains("key=value"),
        "{stderr}"
    );
}

fn kd_config(dir: &std::path::Path, method_table: &str, teacher: &str) -> String {
    let extra = format!("[networks.teacher]\narch = \"resnet8\"\n{teacher}\n");
    let mut text = tiny_config(dir, "kd", "resnet8", 5, 1, &extra);
    text.push_str("stack = [\"kd\"]\n");
    text.push_str(method_table);
    // `stack` must come before the tables: move it to the top.
    let stack = "stack = [\"kd\"]\n";
    text = text.replace(stack, "");
    format!("{stack}{text}")
}

#[test]
fn unknown_method_kind_lists_the_known_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let config = kd_config(dir.path(), "[method.kd]\nkind = \"kdd\"\n", "");
    write(dir.path(), "x.toml", &config);
    let stderr = failure(kd(dir.path(), &["plan", "x.toml"]), 2);
    assert!(
        stderr.contains("`method.kd.kind`") && stderr.contains("unknown method kind `kdd`"),
        "{stderr}"
    );
    let known = format!("known kinds: {}", all_kinds().join(", "));
    assert!(
        stderr.contains("did you mean `kd`") && stderr.contains(&known),
        "{stderr}"
    );
}

#[test]
fn method_typo_key_and_wrong_type_name_the_full_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = kd_config(
        dir.path(),
        "[method.kd]\nkind = \"kd\"\ntempreature = 2\n",
        "",
    );
    write(dir.path(), "x.toml", &config);
    let stderr = failure(kd(dir.path(), &["plan", "x.toml"]), 2);
    assert!(
        stderr.contains("`method.kd.tempreature`") && stderr.contains("file x.toml"),
        "{stderr}"
    );
    let config = kd_config(
        dir.path(),
        "[method.kd]\nkind = \"kd\"\ntemperature = \"hot\"\n",
        "",
    );
    write(dir.path(), "y.toml", &config);
    let stderr = failure(kd(dir.path(), &["plan", "y.toml"]), 2);
    assert!(
        stderr.contains("`method.kd.temperature`") && stderr.contains("invalid type"),
        "{stderr}"
    );
    let stderr = failure(
        kd(
            dir.path(),
            &["plan", "x.toml", "--set", "method.kd.weight=heavy"],
        ),
        2,
    );
    assert!(stderr.contains("`method.kd.weight`"), "{stderr}");
}

#[test]
fn missing_teacher_checkpoint_is_a_plan_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = kd_config(dir.path(), "[method.kd]\nkind = \"kd\"\n", "");
    write(dir.path(), "x.toml", &config);
    let stderr = failure(kd(dir.path(), &["plan", "x.toml"]), 2);
    assert!(
        stderr.contains("`networks.teacher.checkpoint`")
            && stderr.contains("must start from a checkpoint"),
        "{stderr}"
    );
    let config = kd_config(
        dir.path(),
        "[method.kd]\nkind = \"kd\"\n",
        "checkpoint = \"nowhere.kdc\"",
    );
    write(dir.path(), "y.toml", &config);
    let stderr = failure(kd(dir.path(), &["plan", "y.toml"]), 2);
    assert!(
        stderr.contains("nowhere.kdc") && stderr.contains("networks.teacher.checkpoint"),
        "{stderr}"
    );
}

#[test]
fn checkpoint_of_the_wrong_architecture_is_a_plan_error() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = tiny_teacher(dir.path(), "t14", "resnet14");
    let config = kd_config(
        dir.path(),
        "[method.kd]\nkind = \"kd\"\n",
        &format!("checkpoint = \"{}\"", checkpoint.display()),
    );
    write(dir.path(), "x.toml", &config);
    let stderr = failure(kd(dir.path(), &["plan", "x.toml"]), 2);
    assert!(
        stderr.contains("holds a resnet14") && stderr.contains("networks.teacher.arch is resnet8"),
        "{stderr}"
    );
    // A file that is not a checkpoint.
    write(dir.path(), "junk.kdc", "not a checkpoint");
    let config = kd_config(
        dir.path(),
        "[method.kd]\nkind = \"kd\"\n",
        "checkpoint = \"junk.kdc\"",
    );
    write(dir.path(), "y.toml", &config);
    let stderr = failure(kd(dir.path(), &["plan", "y.toml"]), 2);
    assert!(
        stderr.contains("junk.kdc") && stderr.contains("not a kd checkpoint"),
        "{stderr}"
    );
}

#[test]
fn unknown_architecture_suggests_the_closest() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "x.toml",
        &tiny_config(dir.path(), "a", "resnet9", 5, 1, ""),
    );
    let stderr = failure(kd(dir.path(), &["plan", "x.toml"]), 2);
    assert!(
        stderr.contains("`networks.student.arch`") && stderr.contains("did you mean `resnet8`"),
        "{stderr}"
    );
}

#[test]
fn nan_loss_stops_naming_step_and_term_and_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let text = tiny_config(dir.path(), "nan", "resnet8", 10, 2, "")
        .replace("seed = 7", "seed = 7\ncheckpoint_every = 1");
    write(dir.path(), "x.toml", &text);
    let stderr = failure(
        kd(dir.path(), &["train", "x.toml", "--set", "optim.lr=1e30"]),
        1,
    );
    assert!(
        stderr.contains("loss term `ce/student` is NaN")
            || stderr.contains("loss term `ce/student` is inf"),
        "{stderr}"
    );
    assert!(
        stderr.contains("step ") && stderr.contains("last good checkpoint"),
        "{stderr}"
    );
    let last = run_dir(dir.path(), "nan")
        .join("checkpoints")
        .join("last.kdc");
    assert!(
        last.is_file(),
        "a checkpoint from before the blow-up is kept"
    );
    // One numbering: the error counts epoch, batch and step from 1 as progress lines and
    // metrics.jsonl do (100 images in batches of 16: 7 per epoch), and its step follows the last
    // row logged.
    let at = stderr
        .split(" at epoch ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .expect("the error names its position");
    let numbers: Vec<usize> = at
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let [epoch, epochs, batch, batches, step] = numbers[..] else {
        panic!("`{at}`: expected `E/N, batch B/M (step S)`")
    };
    assert_eq!((epochs, batches), (2, 7), "{at}");
    assert_eq!(step, (epoch - 1) * batches + batch, "{at}");
    let logged = kd_tests::metrics(&run_dir(dir.path(), "nan"));
    let last_row = logged.iter().rfind(|r| r["kind"] == "step").unwrap();
    assert_eq!(last_row["step"], step - 1, "{at}");
    // The kept checkpoint loads and evaluates.
    let subset = kd_tests::subset();
    success(kd(
        dir.path(),
        &[
            "eval",
            "--checkpoint",
            last.to_str().unwrap(),
            "--data",
            subset.to_str().unwrap(),
            "--format",
            "idx",
        ],
    ));
}

#[test]
fn a_finished_run_is_not_overwritten_and_resume_needs_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "x.toml",
        &tiny_config(dir.path(), "once", "resnet8", 5, 1, ""),
    );
    success(kd(dir.path(), &["train", "x.toml"]));
    let metrics_before = std::fs::read(run_dir(dir.path(), "once").join("metrics.jsonl")).unwrap();
    let stderr = failure(kd(dir.path(), &["train", "x.toml"]), 2);
    assert!(stderr.contains("--resume"), "{stderr}");
    assert_eq!(
        std::fs::read(run_dir(dir.path(), "once").join("metrics.jsonl")).unwrap(),
        metrics_before
    );
    let stderr = failure(
        kd(
            dir.path(),
            &["train", "x.toml", "--resume", "--set", "run.name=never"],
        ),
        2,
    );
    assert!(stderr.contains("nothing to resume"), "{stderr}");
    let stderr = failure(
        kd(
            dir.path(),
            &["train", "x.toml", "--resume", "--set", "optim.lr=0.2"],
        ),
        2,
    );
    assert!(
        stderr.contains("optim.lr"),
        "resuming with another config names the key: {stderr}"
    );
    // Resuming a finished run says so instead of "resuming at epoch 2/1".
    let out = success(kd(dir.path(), &["train", "x.toml", "--resume"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("already finished") && !stdout.contains("resuming"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read(run_dir(dir.path(), "once").join("metrics.jsonl")).unwrap(),
        metrics_before
    );
    // A directory where last.kdc should be is called one.
    let last = run_dir(dir.path(), "once")
        .join("checkpoints")
        .join("last.kdc");
    std::fs::remove_file(&last).unwrap();
    std::fs::create_dir(&last).unwrap();
    let stderr = failure(kd(dir.path(), &["train", "x.toml", "--resume"]), 2);
    assert!(stderr.contains("is a directory"), "{stderr}");
}

#[test]
fn eval_rejects_a_dataset_that_does_not_fit_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = tiny_teacher(dir.path(), "t", "resnet8");
    std::fs::write(dir.path().join("test_batch.bin"), vec![1u8; 3073 * 2]).unwrap();
    let stderr = failure(
        kd(
            dir.path(),
            &[
                "eval",
                "--checkpoint",
                checkpoint.to_str().unwrap(),
                "--data",
                "test_batch.bin",
                "--format",
                "cifar10",
            ],
        ),
        2,
    );
    assert!(
        stderr.contains("1 channel(s)") && stderr.contains("3 channel(s)"),
        "{stderr}"
    );
    let stderr = failure(
        kd(
            dir.path(),
            &[
                "eval",
                "--checkpoint",
                "missing.kdc",
                "--data",
                "test_batch.bin",
                "--format",
                "cifar10",
            ],
        ),
        2,
    );
    assert!(stderr.contains("missing.kdc"), "{stderr}");
}

#[test]
fn a_static_kd_refuses_plugin_libraries_before_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(
        dir.path(),
        "plugged",
        "resnet8",
        5,
        1,
        "\n[plugins]\nload = [\"libkd_method_x.so\"]\n",
    );
    // `[plugins]` after `[networks.student]` in the same file: TOML allows any table order.
    let path = write(dir.path(), "plugged.toml", &config);
    let stderr = failure(kd(dir.path(), &["train", path.to_str().unwrap()]), 2);
    assert!(
        stderr.contains("libkd_method_x.so") && stderr.contains("this kd is a static build"),
        "{stderr}"
    );
    assert!(!run_dir(dir.path(), "plugged").exists());
    let stderr = failure(kd(dir.path(), &["methods", "--load", "libx.so"]), 2);
    assert!(
        stderr.contains("libx.so") && stderr.contains("build-dynamic"),
        "{stderr}"
    );
}

#[test]
fn plugins_load_of_the_wrong_type_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "x.toml", "[plugins]\nload = \"libx.so\"\n");
    let stderr = failure(kd(dir.path(), &["print-config", "x.toml"]), 2);
    assert!(stderr.contains("plugins.load"), "{stderr}");
}

#[test]
fn a_best_checkpoint_that_cannot_be_written_leaves_no_state_naming_it() {
    // `best.kdc` cannot be written (its temporary file's name is taken by a directory, as a full
    // disk would refuse it): the run stops, and `last.kdc` is still the mid-epoch state, which
    // names no best epoch; once the cause is gone, --resume finishes the epoch and writes both.
    let dir = tempfile::tempdir().unwrap();
    let text = tiny_config(dir.path(), "full", "resnet8", 10, 1, "")
        .replace("seed = 7", "seed = 7\ncheckpoint_every = 1");
    write(dir.path(), "x.toml", &text);
    let checkpoints = run_dir(dir.path(), "full").join("checkpoints");
    std::fs::create_dir_all(checkpoints.join("best.tmp")).unwrap();
    let stderr = failure(kd(dir.path(), &["train", "x.toml"]), 2);
    assert!(stderr.contains("best.tmp"), "{stderr}");
    let header = kd_core::checkpoint::read_header(&checkpoints.join("last.kdc")).unwrap();
    assert_eq!(header.state.best, None, "last.kdc names no best epoch");
    assert!(
        header.state.history.is_empty(),
        "the epoch is not recorded as finished"
    );
    assert!(!checkpoints.join("best.kdc").exists());
    std::fs::remove_dir(checkpoints.join("best.tmp")).unwrap();
    success(kd(dir.path(), &["train", "x.toml", "--resume"]));
    let header = kd_core::checkpoint::read_header(&checkpoints.join("best.kdc")).unwrap();
    assert_eq!(header.state.best.map(|b| b.epoch), Some(0));
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir(dir.path(), "full").join("summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["best_epoch"], 1, "summaries count epochs from 1");
}

#[test]
fn an_error_that_names_its_cause_does_not_repeat_it() {
    let dir = tempfile::tempdir().unwrap();
    let subset = kd_tests::subset();
    let stderr = failure(
        kd(
            dir.path(),
            &[
                "eval",
                "--checkpoint",
                "absent.kdc",
                "--data",
                subset.to_str().unwrap(),
                "--format",
                "idx",
            ],
        ),
        2,
    );
    assert!(stderr.contains("absent.kdc"), "{stderr}");
    assert_eq!(
        stderr.matches("No such file").count(),
        1,
        "said once: {stderr}"
    );
}

#[test]
fn eval_and_predict_sizes_out_of_range_name_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = tiny_teacher(dir.path(), "t", "resnet8");
    let subset = kd_tests::subset();
    for command in ["eval", "predict"] {
        for (flag, value) in [("--input-size", "100000"), ("--batch-size", "0")] {
            let mut args = vec![
                command,
                "--checkpoint",
                checkpoint.to_str().unwrap(),
                "--data",
                subset.to_str().unwrap(),
                "--format",
                "idx",
                flag,
                value,
            ];
            if command == "predict" {
                args.extend(["--arch", "resnet8"]);
            }
            let stderr = failure(kd(dir.path(), &args), 2);
            assert!(stderr.contains(flag), "{command} {flag}: {stderr}");
        }
    }
}

//! Configuration errors as the user meets them through `kd`: every mistake of every source in
//! one run, each named by its full key (array elements as `data.mean[1]`) and the file,
//! environment variable or `--set` argument that made it; numbers outside their domain refused
//! before anything is trained; status 2 and nothing written.

use kd_tests::{all_kinds, failure, kd, run_dir, tiny_config, write};

/// Each `needle` must appear in `stderr`.
fn assert_mentions(stderr: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "`{needle}` missing from:\n{stderr}"
        );
    }
}

#[test]
fn seven_mistakes_in_one_file_are_named_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"
[run]
epochs = "many"
seeed = 3
[data]
batch_size = -4
mean = [0.5, "x"]
[optim]
momentun = 0.9
lr = "fast"
[schedule]
kind = "linear"
"#;
    write(dir.path(), "x.toml", text);
    let stderr = failure(kd(dir.path(), &["plan", "x.toml"]), 2);
    assert_mentions(
        &stderr,
        &[
            "[1/7] ",
            "[7/7] ",
            "`run.epochs`: invalid type",
            "`run.seeed`: unknown field",
            "`data.batch_size`: invalid value",
            "`data.mean[1]`: invalid type",
            "`optim.momentun`: unknown field `momentun` (did you mean `momentum`?)",
            "`optim.lr`: invalid type",
            "`schedule.kind`: unknown variant",
            "(from file x.toml)",
        ],
    );
    assert!(!stderr.contains("[8/"), "{stderr}");
}

#[test]
fn a_syntax_error_names_file_line_column_and_byte_and_other_sources_are_still_checked() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "x.toml", "[run]\nseed = 1\nepochs = = 3\n");
    let mut command = kd(dir.path(), &["plan", "x.toml", "--set", "optim.lrr=0.1"]);
    command.env("KD_RUN__SEED", "minus");
    let stderr = failure(command, 2);
    assert_mentions(
        &stderr,
        &[
            "TOML syntax error at line 3, column 10 (byte 24)",
            "(from file x.toml)",
            "`optim.lrr`: unknown field",
            "(from --set optim.lrr=0.1)",
            "`run.seed`: invalid type",
            "(from environment variable KD_RUN__SEED)",
        ],
    );
}

#[test]
fn a_directory_given_as_the_config_is_called_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("configs.d")).unwrap();
    let stderr = failure(kd(dir.path(), &["plan", "configs.d"]), 2);
    assert_mentions(
        &stderr,
        &["config file is a directory, not a configuration file (from file configs.d)"],
    );
    assert!(!stderr.contains("not found"), "{stderr}");
    let stderr = failure(kd(dir.path(), &["print-config", "configs.d"]), 2);
    assert_mentions(&stderr, &["is a directory"]);
}

#[test]
fn array_element_errors_name_the_element_and_the_variable_or_argument_that_set_the_array() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = kd(dir.path(), &["print-config"]);
    command.env("KD_DATA__MEAN", "[0.5, \"x\"]");
    let stderr = failure(command, 2);
    assert_mentions(
        &stderr,
        &[
            "`data.mean[1]`: invalid type",
            "(from environment variable KD_DATA__MEAN)",
        ],
    );
    assert!(!stderr.contains("KD_DATA__MEAN__1"), "{stderr}");
    let stderr = failure(
        kd(
            dir.path(),
            &["print-config", "--set", "data.std=[0.3, true]"],
        ),
        2,
    );
    assert_mentions(
        &stderr,
        &[
            "`data.std[1]`: invalid type",
            "(from --set data.std=[0.3, true])",
        ],
    );
}

#[test]
fn numbers_outside_their_domain_are_refused_before_training_at_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let extra = r#"ce_weight = -1
[optim]
lr = -1
[loss]
ce_weight = nan
"#;
    let text = tiny_config(dir.path(), "bad", "resnet8", 5, 1, extra)
        .replace(
            "[schedule]\nkind = \"constant\"",
            "[schedule]\nmilestones = [5, 3]",
        )
        .replace(
            "batch_size = 16",
            "batch_size = 16\nmean = [nan]\nstd = [inf]",
        );
    let text = format!(
        "stack = [\"kd\"]\n{text}[networks.teacher]\narch = \"resnet8\"\n[method.kd]\nkind = \"kd\"\nweight = -0.5\n"
    );
    write(dir.path(), "x.toml", &text);
    let stderr = failure(kd(dir.path(), &["train", "x.toml"]), 2);
    assert_mentions(
        &stderr,
        &[
            "`optim.lr`: must be a positive number (from file x.toml)",
            "`loss.ce_weight`: must be a non-negative number",
            "`networks.student.ce_weight`: must be a non-negative number",
            "`schedule.milestones`: must be increasing epochs after 0",
            "`data.mean[0]`: NaN is not a finite number",
            "`data.std[0]`: inf is not a finite number",
            "`method.kd.weight`: must be a non-negative number",
        ],
    );
    assert!(
        !run_dir(dir.path(), "bad").exists(),
        "nothing is written for a refused plan"
    );
    // The same keys through `--set` name the argument.
    write(
        dir.path(),
        "ok.toml",
        &tiny_config(dir.path(), "ok", "resnet8", 5, 1, ""),
    );
    let stderr = failure(
        kd(
            dir.path(),
            &[
                "plan",
                "ok.toml",
                "--set",
                "optim.lr=nan",
                "--set",
                "schedule.gamma=0",
            ],
        ),
        2,
    );
    assert_mentions(
        &stderr,
        &[
            "`optim.lr`: must be a positive number (from --set optim.lr=nan)",
            "`schedule.gamma`: must be a positive number (from --set schedule.gamma=0)",
        ],
    );
}

#[test]
fn method_tables_name_a_non_finite_number_and_a_kind_that_is_not_a_string() {
    let dir = tempfile::tempdir().unwrap();
    let text = tiny_config(dir.path(), "m", "resnet8", 5, 1, "");
    let with = |table: &str| {
        format!("stack = [\"kd\"]\n{text}[networks.teacher]\narch = \"resnet8\"\n{table}")
    };
    write(
        dir.path(),
        "nan.toml",
        &with("[method.kd]\nkind = \"kd\"\ntemperature = nan\n"),
    );
    let stderr = failure(kd(dir.path(), &["plan", "nan.toml"]), 2);
    assert_mentions(
        &stderr,
        &["`method.kd.temperature`: NaN is not a finite number (from file nan.toml)"],
    );
    assert!(!stderr.contains("null"), "{stderr}");
    write(dir.path(), "kind.toml", &with("[method.kd]\nkind = 3\n"));
    let stderr = failure(kd(dir.path(), &["plan", "kind.toml"]), 2);
    let known = format!("known kinds: {}", all_kinds().join(", "));
    assert_mentions(
        &stderr,
        &[
            "`method.kd.kind`: must be a string naming a method kind, not `3`",
            &known,
        ],
    );
    assert!(!stderr.contains("missing"), "{stderr}");
}

//! `kd suite` plans every run before any trains: a mistake in a later run is reported (naming the
//! run) before an earlier one spends its time, and a checkpoint no earlier run writes is an error.

use kd_tests::{failure, kd, run_dir, success, tiny_config, write};

/// A suite of a teacher and a KD student distilled from the teacher's `best.kdc`.
fn suite(dir: &std::path::Path) {
    write(
        dir,
        "teacher.toml",
        &tiny_config(dir, "teacher", "resnet8", 5, 1, ""),
    );
    let teacher = run_dir(dir, "teacher").join("checkpoints").join("best.kdc");
    let student = "stack = [\"kd\"]\n".to_string()
        + &tiny_config(
            dir,
            "student",
            "resnet8",
            5,
            1,
            &format!(
                "[networks.teacher]\narch = \"resnet8\"\ncheckpoint = \"{}\"\n",
                teacher.display()
            ),
        )
        + "\n[method.kd]\nkind = \"kd\"\n";
    write(dir, "student.toml", &student);
    write(
        dir,
        "suite.toml",
        "title = \"t\"\n\n[[run]]\nlabel = \"teacher\"\nconfig = \"teacher.toml\"\n\n\
         [[run]]\nlabel = \"student\"\nconfig = \"student.toml\"\n",
    );
}

#[test]
fn a_mistake_in_a_later_run_stops_the_suite_before_the_first_trains() {
    let dir = tempfile::tempdir().unwrap();
    suite(dir.path());
    let text = std::fs::read_to_string(dir.path().join("student.toml")).unwrap();
    write(
        dir.path(),
        "student.toml",
        &text.replace("batch_size = 16", "batch_size = 0"),
    );
    let stderr = failure(kd(dir.path(), &["suite", "suite.toml"]), 2);
    assert!(
        stderr.contains("`data.batch_size`") && stderr.contains("suite run `student`"),
        "{stderr}"
    );
    assert!(
        !run_dir(dir.path(), "teacher").exists(),
        "the teacher did not train"
    );
}

#[test]
fn a_checkpoint_no_earlier_run_writes_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    suite(dir.path());
    let text = std::fs::read_to_string(dir.path().join("student.toml")).unwrap();
    let elsewhere = dir.path().join("elsewhere").join("best.kdc");
    let teacher = run_dir(dir.path(), "teacher")
        .join("checkpoints")
        .join("best.kdc");
    write(
        dir.path(),
        "student.toml",
        &text.replace(
            &teacher.display().to_string(),
            &elsewhere.display().to_string(),
        ),
    );
    let stderr = failure(kd(dir.path(), &["suite", "suite.toml"]), 2);
    assert!(
        stderr.contains("`networks.teacher.checkpoint`")
            && stderr.contains("no earlier run of the suite writes it")
            && stderr.contains("suite run `student`"),
        "{stderr}"
    );
    assert!(!run_dir(dir.path(), "teacher").exists());
}

#[test]
fn a_teacher_then_student_suite_runs_in_order() {
    let dir = tempfile::tempdir().unwrap();
    suite(dir.path());
    let out = success(kd(dir.path(), &["suite", "suite.toml"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.find("== teacher").unwrap() < stdout.find("== student").unwrap(),
        "{stdout}"
    );
    assert!(
        run_dir(dir.path(), "student")
            .join("summary.json")
            .is_file()
    );
}

#[test]
fn a_finished_run_with_a_damaged_summary_is_named() {
    let dir = tempfile::tempdir().unwrap();
    suite(dir.path());
    success(kd(dir.path(), &["suite", "suite.toml"]));
    let summary = run_dir(dir.path(), "teacher").join("summary.json");
    std::fs::write(&summary, "{\"outputs\": ").unwrap();
    let stderr = failure(kd(dir.path(), &["suite", "suite.toml"]), 2);
    assert!(
        stderr.contains("summary.json") && stderr.contains("cannot be read"),
        "{stderr}"
    );
}

#[test]
fn a_bad_set_entry_of_the_suite_file_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    suite(dir.path());
    let text = std::fs::read_to_string(dir.path().join("suite.toml")).unwrap();
    write(
        dir.path(),
        "suite.toml",
        &text.replace(
            "config = \"student.toml\"\n",
            "config = \"student.toml\"\nset = [\"optim.lr=fast\"]\n",
        ),
    );
    let stderr = failure(kd(dir.path(), &["suite", "suite.toml"]), 2);
    assert!(
        stderr.contains("`optim.lr`")
            && stderr.contains("suite.toml (run `student`), set optim.lr=fast")
            && !stderr.contains("--set"),
        "{stderr}"
    );
    // A `--set` of the command line is still called one.
    let stderr = failure(
        kd(
            dir.path(),
            &["suite", "suite.toml", "--set", "optim.momentum=x"],
        ),
        2,
    );
    assert!(stderr.contains("--set optim.momentum=x"), "{stderr}");
}

#[test]
fn a_finished_run_planned_differently_is_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    suite(dir.path());
    success(kd(dir.path(), &["suite", "suite.toml"]));
    let text = std::fs::read_to_string(dir.path().join("teacher.toml")).unwrap();
    write(
        dir.path(),
        "teacher.toml",
        &text.replace("seed = 7", "seed = 8"),
    );
    let stderr = failure(kd(dir.path(), &["suite", "suite.toml"]), 2);
    assert!(
        stderr.contains("another configuration")
            && stderr.contains("run.seed")
            && stderr.contains("suite run `teacher`"),
        "{stderr}"
    );
}

#[test]
fn two_runs_sharing_a_run_directory_are_refused_before_either_trains() {
    let dir = tempfile::tempdir().unwrap();
    suite(dir.path());
    let text = std::fs::read_to_string(dir.path().join("suite.toml")).unwrap();
    write(
        dir.path(),
        "suite.toml",
        &format!(
            "{text}\n[[run]]\nlabel = \"again\"\nconfig = \"teacher.toml\"\nset = [\"optim.lr=0.01\"]\n"
        ),
    );
    let stderr = failure(kd(dir.path(), &["suite", "suite.toml"]), 2);
    assert!(
        stderr.contains("`run.name`")
            && stderr.contains("also the run directory of suite run `teacher`")
            && stderr.contains("suite run `again`"),
        "{stderr}"
    );
    assert!(!run_dir(dir.path(), "teacher").exists());
}

//! `cargo xtask reproduce` end to end on a tiny manifest: an interrupted sweep resumes where it
//! stopped, the aggregation is exact on known numbers, and a failing cell names its log.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn manifest(dir: &Path, rows: &str, epochs: u32) -> PathBuf {
    let text = format!(
        r#"
title = "tiny"
description = "a test table"
output_dir = "{runs}"
seeds = 2
sets = [
    "data.format=idx",
    "data.root={data}",
    "data.train_per_class=10",
    "data.test_per_class=10",
    "data.batch_size=16",
    "run.epochs={epochs}",
    "schedule.kind=constant",
]

[[column]]
name = "r14-r8"
label = "resnet14 → resnet8"
teacher = "resnet14"
student = "resnet8"
{rows}
[[claim]]
text = "KD beats the teacher"
better = ["kd", "teacher"]
"#,
        runs = dir.join("runs").display(),
        data = repo().join("data/fashion-mnist-subset").display(),
    );
    let path = dir.join("tiny.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const ROWS: &str = r#"
[[row]]
name = "teacher"
label = "Teacher"
config = "configs/reproduce/cells/fashion/supervised.toml"
key = "{teacher}"
sets = ["networks.student.arch={teacher}"]
paper_unknown = "test"

[[row]]
name = "kd"
label = "KD"
config = "configs/reproduce/cells/fashion/kd.toml"
sets = ["networks.student.arch={student}", "networks.teacher.arch={teacher}", "networks.teacher.checkpoint={run:teacher}/checkpoints/last.kdc"]
paper = { r14-r8 = { value = 50.0, source = "made up for the test" } }
"#;

fn xtask(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.current_dir(repo()).arg("reproduce").args(args);
    command
}

#[test]
fn an_interrupted_sweep_resumes_and_aggregates() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest(dir.path(), ROWS, 1);
    let results = dir.path().join("results");
    let args = [
        "tiny",
        "--manifest",
        manifest.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
    ];
    // Interrupt after the first cell (the seed-0 teacher) has finished.
    let first = dir.path().join("runs/teacher/resnet14/seed0/summary.json");
    let mut child = xtask(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !first.is_file() {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "the first cell never finished"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The cell that was running ends with the sweep; its lock is free once it has.
    wait_until_unlocked(&dir.path().join("runs/teacher/resnet14/seed1"));
    let out = xtask(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let finished: usize = stderr
        .lines()
        .find_map(|l| {
            l.strip_suffix(" of 4 cells already finished")
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(finished >= 1, "the rerun kept the finished cell: {stderr}");
    assert!(
        !stderr.contains("running teacher/resnet14/seed0"),
        "{stderr}"
    );
    let csv = std::fs::read_to_string(results.join("tiny.csv")).unwrap();
    assert!(
        csv.lines().any(|l| l.starts_with("teacher,r14-r8,2,2,")),
        "{csv}"
    );
    assert!(
        csv.lines()
            .any(|l| l.starts_with("kd,r14-r8,2,2,") && l.contains(",50.0000,")),
        "{csv}"
    );
    let md = std::fs::read_to_string(results.join("tiny.md")).unwrap();
    assert!(
        md.contains("| KD | 2/2 |")
            && md.contains("made up for the test")
            && md.contains("KD beats the teacher"),
        "{md}"
    );
    assert!(results.join("tiny.png").is_file());
}

/// A finished cell is reused only under the configuration it ran with: a changed protocol
/// reruns every cell, a changed teacher row reruns the teachers and the cells that distil from
/// them, and the earlier runs are kept beside; `--aggregate-only` refuses stale cells.
#[test]
fn a_cell_whose_configuration_changed_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest(dir.path(), ROWS, 1);
    let results = dir.path().join("results");
    let sweep = |extra: &[&str]| {
        let mut args = vec![
            "tiny",
            "--manifest",
            manifest.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = xtask(&args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = sweep(&[]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = sweep(&[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("4 of 4 cells already finished"), "{stderr}");
    assert!(!stderr.contains("runs again"), "{stderr}");

    // The teacher row changes: both teachers and both KD cells run again.
    let text = std::fs::read_to_string(&manifest).unwrap();
    let changed = text.replace(
        r#"sets = ["networks.student.arch={teacher}"]"#,
        r#"sets = ["networks.student.arch={teacher}", "optim.weight_decay=0.001"]"#,
    );
    assert_ne!(text, changed);
    std::fs::write(&manifest, &changed).unwrap();
    let (code, stderr) = sweep(&["--aggregate-only"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("teacher/resnet14/seed0: its configuration changed at optim.weight_decay")
            && stderr
                .contains("kd/r14-r8/seed1: teacher/resnet14/seed1, which it needs, runs again"),
        "{stderr}"
    );
    let (code, stderr) = sweep(&[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("0 of 4 cells already finished"), "{stderr}");
    assert_eq!(stderr.matches(" runs again: ").count(), 4, "{stderr}");
    let kept = dir.path().join("runs/teacher/resnet14/seed0.replaced-1");
    assert!(kept.join("summary.json").is_file());
    assert!(
        dir.path()
            .join("runs/teacher/resnet14/seed0.replaced-1.log")
            .is_file()
    );
    let saved = std::fs::read_to_string(dir.path().join("runs/teacher/resnet14/seed0/config.toml"));
    assert!(saved.unwrap().contains("weight_decay = 0.001"));

    // The protocol changes for the KD row only: the teachers are kept.
    std::fs::write(
        &manifest,
        changed.replace(
            r#""networks.teacher.checkpoint={run:teacher}/checkpoints/last.kdc"]"#,
            r#""networks.teacher.checkpoint={run:teacher}/checkpoints/last.kdc", "data.batch_size=8"]"#,
        ),
    )
    .unwrap();
    let (code, stderr) = sweep(&[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("2 of 4 cells already finished"), "{stderr}");
    assert!(
        stderr.contains(
            "cell kd/r14-r8/seed0 runs again: its configuration changed at data.batch_size"
        ),
        "{stderr}"
    );

    // Bookkeeping keys (logging, checkpoint frequency) do not rerun a finished cell.
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace(
            r#""run.epochs=1","#,
            r#""run.epochs=1", "run.log_every=3","#,
        ),
    )
    .unwrap();
    let (code, stderr) = sweep(&[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("4 of 4 cells already finished"), "{stderr}");

    // An unreadable config.toml is said to be one, and the cell runs again.
    let student = dir.path().join("runs/kd/r14-r8/seed1/config.toml");
    std::fs::write(&student, "this is [ not toml").unwrap();
    let (code, stderr) = sweep(&[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("cell kd/r14-r8/seed1 runs again: its config.toml is not valid TOML"),
        "{stderr}"
    );

    // Aggregating results where a teacher is absent (not copied back) is no refusal.
    std::fs::rename(
        dir.path().join("runs/teacher/resnet14/seed1"),
        dir.path().join("elsewhere"),
    )
    .unwrap();
    let (code, stderr) = sweep(&["--aggregate-only"]);
    assert_eq!(code, Some(0), "{stderr}");
}

/// A sweep never moves or starts a cell another kd run is training, whether or not that run has
/// written a checkpoint yet: it stops with status 2, naming the directory and the process.
#[test]
fn a_cell_in_use_is_never_moved() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest(dir.path(), ROWS, 5000);
    let results = dir.path().join("results");
    let args = |manifest: &Path| {
        vec![
            "tiny".to_string(),
            "--manifest".into(),
            manifest.to_str().unwrap().into(),
            "--results".into(),
            results.to_str().unwrap().into(),
        ]
    };
    let mut first = xtask(
        &args(&manifest)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let cell = dir.path().join("runs/teacher/resnet14/seed0");
    wait_until_locked(&cell);
    // The same table with another protocol: the running cell would have to run again.
    let other = dir.path().join("other.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&other, text.replace("run.epochs=5000", "run.epochs=4000")).unwrap();
    let out = xtask(&args(&other).iter().map(String::as_str).collect::<Vec<_>>())
        .output()
        .unwrap();
    first.kill().unwrap();
    first.wait().unwrap();
    wait_until_unlocked(&cell);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("in use by another kd run; nothing was started or moved")
            && stderr.contains(&format!("{} (process ", cell.display())),
        "{stderr}"
    );
    assert!(
        !dir.path()
            .join("runs/teacher/resnet14/seed0.replaced-1")
            .exists()
    );
}

/// A cell whose directory holds nothing yet but another process's lock (a sweep that has just
/// started it) stops the sweep before anything starts.
#[test]
fn a_locked_cell_with_nothing_on_disk_stops_the_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest(dir.path(), ROWS, 1);
    let cell = dir.path().join("runs/teacher/resnet14/seed1");
    std::fs::create_dir_all(&cell).unwrap();
    let lock = std::fs::File::create(cell.join(".lock")).unwrap();
    lock.lock().unwrap();
    std::fs::write(cell.join(".lock"), "4242").unwrap();
    let out = xtask(&["tiny", "--manifest", manifest.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{} (process 4242)", cell.display()))
            && !stderr.contains("running teacher"),
        "{stderr}"
    );
    drop(lock);
}

/// A manifest the sweep cannot expand is bad input: exit status 2, naming the problem.
#[test]
fn a_manifest_that_does_not_expand_exits_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let rows = ROWS.replace(
        "[[row]]\nname = \"kd\"",
        "[[row]]\nname = \"kd\"\nseeds = 3",
    );
    assert_ne!(rows, ROWS);
    let manifest = manifest(dir.path(), &rows, 1);
    let out = xtask(&["tiny", "--manifest", manifest.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("give row `teacher` `seeds = 3` too"),
        "{stderr}"
    );
    let out = xtask(&[
        "tiny",
        "--manifest",
        manifest.to_str().unwrap(),
        "--seeds",
        "0",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Waits (up to ten minutes) until a `kd` holds the lock of the run directory `dir`: it writes
/// its process id into the lock file once it does (taking the lock here to look would race with
/// it).
fn wait_until_locked(dir: &Path) {
    let start = Instant::now();
    while std::fs::read_to_string(dir.join(".lock"))
        .map_or(true, |text| text.trim().parse::<u32>().is_err())
    {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "{} was never started",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (up to a minute) until no process holds the lock of the run directory `dir`.
fn wait_until_unlocked(dir: &Path) {
    let start = Instant::now();
    loop {
        let free = match std::fs::File::open(dir.join(".lock")) {
            Ok(file) => file.try_lock().is_ok(),
            Err(_) => true,
        };
        if free {
            return;
        }
        if start.elapsed() > Duration::from_secs(60) {
            // Stop the stray cell (its id is in the lock file) before failing.
            let holder = std::fs::read_to_string(dir.join(".lock")).unwrap_or_default();
            let _ = Command::new("kill").arg(holder.trim()).status();
            panic!(
                "{} is still locked (by process {}) a minute after its sweep was stopped",
                dir.display(),
                holder.trim()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stopping the sweep alone (not its process group, as Ctrl-C would) stops the cell it was
/// running: the cell's lock is released within the minute and the cell never finishes, so the
/// next sweep can resume it.
#[test]
fn a_stopped_sweep_stops_the_cell_it_was_running() {
    let dir = tempfile::tempdir().unwrap();
    // A cell that would train for many minutes.
    let manifest = manifest(dir.path(), ROWS, 5000);
    let results = dir.path().join("results");
    let mut child = xtask(&[
        "tiny",
        "--manifest",
        manifest.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let cell = dir.path().join("runs/teacher/resnet14/seed0");
    wait_until_locked(&cell);
    child.kill().unwrap();
    child.wait().unwrap();
    wait_until_unlocked(&cell);
    assert!(!cell.join("summary.json").exists());
}

fn fake_summary(dir: &Path, last: f64, best: f64) {
    std::fs::create_dir_all(dir).unwrap();
    let text = format!(
        r#"{{"outputs": {{"student": {{"best_top1": {best}, "best_epoch": 0, "last_top1": {last}, "last_top5": 99.0, "initial_top1": 10.0}}}}}}"#
    );
    std::fs::write(dir.join("summary.json"), text).unwrap();
}

#[test]
fn aggregation_is_exact_on_known_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest(dir.path(), ROWS, 1);
    let runs = dir.path().join("runs");
    fake_summary(&runs.join("teacher/resnet14/seed0"), 60.0, 61.0);
    fake_summary(&runs.join("teacher/resnet14/seed1"), 64.0, 65.0);
    fake_summary(&runs.join("kd/r14-r8/seed0"), 70.0, 72.0);
    fake_summary(&runs.join("kd/r14-r8/seed1"), 71.0, 72.0);
    let results = dir.path().join("results");
    let out = xtask(&[
        "tiny",
        "--manifest",
        manifest.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
        "--aggregate-only",
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(results.join("tiny.csv")).unwrap();
    // Teacher: mean 62, sample std sqrt(((-2)² + 2²)/1) = 2.8284.
    assert!(
        csv.contains("teacher,r14-r8,2,2,62.0000,2.8284,63.0000,2.8284,,,"),
        "{csv}"
    );
    // KD: mean 70.5, std 0.7071; paper 50 → difference +20.5.
    assert!(
        csv.contains("kd,r14-r8,2,2,70.5000,0.7071,72.0000,0.0000,50.0000,20.5000,"),
        "{csv}"
    );
    let md = std::fs::read_to_string(results.join("tiny.md")).unwrap();
    // KD − teacher = 8.5; standard error sqrt(0.7071²/2 + 2.8284²/2) = 2.06; 8.5 > 2·2.06.
    assert!(
        md.contains("supported: kd 70.50 vs teacher 62.00 (Δ +8.50)"),
        "{md}"
    );
}

#[test]
fn a_failing_cell_fails_the_command_and_names_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let rows = ROWS.replace(
        "networks.student.arch={teacher}",
        "networks.student.arch=resnet9",
    );
    let manifest = manifest(dir.path(), &rows, 1);
    let results = dir.path().join("results");
    let out = xtask(&[
        "tiny",
        "--manifest",
        manifest.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let log = dir.path().join("runs/teacher/resnet14/seed0.log");
    assert!(
        stderr.contains("cell teacher/resnet14/seed0 failed")
            && stderr.contains(&log.display().to_string()),
        "{stderr}"
    );
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("unknown architecture `resnet9`")
    );
}

#[test]
fn every_shipped_table_plans() {
    // Every cell of every manifest in configs/reproduce resolves: configs, roles, taps, shapes
    // (CIFAR-100 data and teacher checkpoints may be absent here; `kd plan` is told so).
    let mut tables: Vec<String> = std::fs::read_dir(repo().join("configs/reproduce"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
        .map(|e| e.path().file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    tables.sort();
    assert!(tables.len() >= 7, "{tables:?}");
    for table in tables {
        let out = xtask(&[&table, "--plan-only"]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("cells plan"),
            "{table}:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

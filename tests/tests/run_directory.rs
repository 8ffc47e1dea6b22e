//! The run directory is one run's alone and stays whole: a second run on a locked directory,
//! a resume over deleted or shortened metrics files, a `run.name` that is not one folder name
//! and a `run.output_dir` that cannot hold runs all end with exit status 2 and a message naming
//! the key or the file, and leave every file already written as it was.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use kd_tests::{failure, kd, run_dir, success, tiny_config, write};

/// A one-epoch run of `name` under `dir/runs`; returns its config file.
fn tiny_run(dir: &Path, name: &str, extra: &str) -> PathBuf {
    write(
        dir,
        &format!("{name}.toml"),
        &tiny_config(dir, name, "resnet8", 5, 1, extra),
    )
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Every file under `dir` with its bytes, but the lock file (which every run that takes the
/// lock rewrites with its process id).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name() != Some(".lock".as_ref()) {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// Saved lengths of `metrics.jsonl` and `metrics.csv` in a run's last checkpoint.
fn saved_lengths(run: &Path) -> (u64, u64) {
    kd_core::checkpoint::read_header(&run.join("checkpoints").join("last.kdc"))
        .unwrap()
        .state
        .metrics_len
}

#[test]
fn a_run_on_a_locked_directory_is_refused_naming_it_and_the_holder_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_run(dir.path(), "locked", "");
    success(kd(dir.path(), &["train", arg(&config)]));
    let run = run_dir(dir.path(), "locked");
    let before = snapshot(&run);

    // Another process's lock, as a running `kd train` holds it.
    let mut lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(run.join(".lock"))
        .unwrap();
    lock.try_lock().unwrap();
    lock.set_len(0).unwrap();
    writeln!(lock, "4242").unwrap();

    for args in [
        vec!["train", arg(&config)],
        vec!["train", arg(&config), "--resume"],
    ] {
        let stderr = failure(kd(dir.path(), &args), 2);
        assert!(
            stderr.contains(&format!("{} is in use by another kd run", run.display())),
            "{stderr}"
        );
        assert!(stderr.contains("(process 4242)"), "{stderr}");
        assert_eq!(snapshot(&run), before, "{args:?} touched the run directory");
        let holder = std::fs::read_to_string(run.join(".lock")).unwrap();
        assert_eq!(holder, "4242\n", "{args:?} rewrote the lock file");
    }
    drop(lock);
    // Released, the directory is usable again: the finished run resumes to its end.
    success(kd(dir.path(), &["train", arg(&config), "--resume"]));
}

#[test]
fn a_second_kd_train_while_the_first_runs_is_refused_with_the_first_one_s_pid() {
    let dir = tempfile::tempdir().unwrap();
    // Long enough that it is still running when the second one starts.
    let config = write(
        dir.path(),
        "long.toml",
        &tiny_config(dir.path(), "long", "resnet8", 10, 200, ""),
    );
    let mut first = kd(dir.path(), &["train", arg(&config)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lock = run_dir(dir.path(), "long").join(".lock");
    let pid = format!("{}\n", first.id());
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&lock).ok().as_deref() != Some(pid.as_str()) {
        assert!(
            started.elapsed().as_secs() < 120,
            "the first run never took its lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = failure(kd(dir.path(), &["train", arg(&config)]), 2);
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(
        second.contains("is in use by another kd run")
            && second.contains(&format!("(process {})", first.id())),
        "{second}"
    );
}

#[test]
fn resume_refuses_a_deleted_metrics_file_naming_it_and_its_saved_length() {
    for name in ["metrics.csv", "metrics.jsonl"] {
        let dir = tempfile::tempdir().unwrap();
        let config = tiny_run(dir.path(), "deleted", "");
        success(kd(dir.path(), &["train", arg(&config)]));
        let run = run_dir(dir.path(), "deleted");
        let (jsonl, csv) = saved_lengths(&run);
        let saved = if name == "metrics.csv" { csv } else { jsonl };
        std::fs::remove_file(run.join(name)).unwrap();
        let before = snapshot(&run);
        let stderr = failure(kd(dir.path(), &["train", arg(&config), "--resume"]), 2);
        assert!(
            stderr.contains(&format!(
                "cannot resume: {} was {saved} bytes when the last checkpoint was saved, but it is missing",
                run.join(name).display()
            )),
            "{stderr}"
        );
        // Not recreated (padded with NUL bytes), and the other file not cut.
        assert!(!run.join(name).exists(), "{name} was recreated");
        assert_eq!(snapshot(&run), before);
    }
}

#[test]
fn resume_refuses_a_shortened_metrics_file_with_both_lengths_before_cutting_anything() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_run(dir.path(), "short", "");
    success(kd(dir.path(), &["train", arg(&config)]));
    let run = run_dir(dir.path(), "short");
    let (jsonl, _) = saved_lengths(&run);
    let path = run.join("metrics.jsonl");
    let text = std::fs::read(&path).unwrap();
    std::fs::write(&path, &text[..10]).unwrap();
    let before = snapshot(&run);
    let stderr = failure(kd(dir.path(), &["train", arg(&config), "--resume"]), 2);
    assert!(
        stderr.contains(&format!(
            "{} was {jsonl} bytes when the last checkpoint was saved, but it is 10 bytes, shorter than that",
            path.display()
        )),
        "{stderr}"
    );
    assert_eq!(snapshot(&run), before);
}

#[test]
fn resume_without_the_saved_configuration_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_run(dir.path(), "noconfig", "");
    success(kd(dir.path(), &["train", arg(&config)]));
    let run = run_dir(dir.path(), "noconfig");
    std::fs::remove_file(run.join("config.toml")).unwrap();
    let stderr = failure(kd(dir.path(), &["train", arg(&config), "--resume"]), 2);
    assert!(
        stderr.contains(&format!(
            "cannot resume: {}",
            run.join("config.toml").display()
        )),
        "{stderr}"
    );
    assert!(!run.join("config.toml").exists());
}

#[test]
fn run_names_that_are_not_one_folder_name_fail_the_plan_at_run_name_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    for name in [
        "../escaped",
        outside.to_str().unwrap(),
        "",
        ".",
        "..",
        "a/b",
    ] {
        let config = write(
            dir.path(),
            "bad-name.toml",
            &tiny_config(dir.path(), name, "resnet8", 5, 1, ""),
        );
        for command in ["plan", "train"] {
            let stderr = failure(kd(dir.path(), &[command, arg(&config)]), 2);
            assert!(
                stderr.contains("`run.name`"),
                "{name:?} {command}: {stderr}"
            );
            assert!(
                stderr.contains("must be one folder name"),
                "{name:?} {command}: {stderr}"
            );
        }
    }
    assert!(!dir.path().join("escaped").exists());
    assert!(!outside.exists());
    assert!(!dir.path().join("runs").exists(), "something was written");
}

#[test]
fn an_output_dir_that_is_a_file_fails_the_plan_at_run_output_dir() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_run(dir.path(), "x", "");
    // tiny_config puts runs under dir/runs: make that a file.
    std::fs::write(dir.path().join("runs"), "not a folder").unwrap();
    for command in ["plan", "train"] {
        let stderr = failure(kd(dir.path(), &[command, arg(&config)]), 2);
        assert!(
            stderr.contains("`run.output_dir`")
                && stderr.contains(&format!(
                    "{} is a file, not a directory",
                    dir.path().join("runs").display()
                )),
            "{command}: {stderr}"
        );
    }
    assert_eq!(
        std::fs::read(dir.path().join("runs")).unwrap(),
        b"not a folder"
    );
}

#[test]
fn a_run_directory_that_is_a_file_fails_the_plan_at_run_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_run(dir.path(), "x", "");
    write(dir.path(), "runs/x", "not a folder");
    let stderr = failure(kd(dir.path(), &["plan", arg(&config)]), 2);
    assert!(
        stderr.contains("`run.name`") && stderr.contains("is a file, not a directory"),
        "{stderr}"
    );
}

#[test]
fn a_run_directory_that_cannot_be_written_at_train_time_is_a_user_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_run(dir.path(), "x", "");
    // The plan sees a writable run directory; its `checkpoints` folder cannot be made.
    let blocker = write(dir.path(), "runs/x/checkpoints", "not a folder");
    let stderr = failure(kd(dir.path(), &["train", arg(&config)]), 2);
    assert!(
        stderr.contains(&format!(
            "run.output_dir: cannot write the run directory {}: {}",
            run_dir(dir.path(), "x").display(),
            blocker.display()
        )),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&blocker).unwrap(), b"not a folder");
}

/// Permission bits only stop unprivileged users: as root this checks nothing (the "is a file"
/// tests above cover the same check).
#[cfg(unix)]
#[test]
fn a_read_only_output_dir_fails_the_plan_at_run_output_dir_for_unprivileged_users() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_run(dir.path(), "x", "");
    let runs = dir.path().join("runs");
    std::fs::create_dir(&runs).unwrap();
    std::fs::set_permissions(&runs, std::fs::Permissions::from_mode(0o555)).unwrap();
    let privileged = std::fs::write(runs.join("probe"), "").is_ok();
    let out = kd_tests::output(kd(dir.path(), &["plan", arg(&config)]));
    std::fs::set_permissions(&runs, std::fs::Permissions::from_mode(0o755)).unwrap();
    if privileged {
        return;
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`run.output_dir`") && stderr.contains("cannot create files in"),
        "{stderr}"
    );
}

#[test]
fn names_with_commas_keep_metrics_csv_one_column_per_header_cell() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "[networks.\"peer,b\"]\narch = \"resnet8\"\n\
                 [method.\"dml,x\"]\nkind = \"dml\"\npeers = [\"student\", \"peer,b\"]\n";
    let config = write(
        dir.path(),
        "commas.toml",
        &format!(
            "stack = [\"dml,x\"]\n{}",
            tiny_config(dir.path(), "commas", "resnet8", 5, 1, extra)
        ),
    );
    success(kd(dir.path(), &["train", arg(&config)]));
    let text = std::fs::read_to_string(run_dir(dir.path(), "commas").join("metrics.csv")).unwrap();
    let header_line = text.lines().next().unwrap();
    assert!(
        header_line.contains("\"ce/peer,b\"") && header_line.contains("\"dml,x/kl/peer,b\""),
        "{header_line}"
    );
    let rows = parse_csv(&text);
    let width = rows[0].len();
    assert!(
        rows[0].contains(&"peer,b/top1".to_string()),
        "{:?}",
        rows[0]
    );
    assert!(rows.len() > 2);
    for row in &rows {
        assert_eq!(row.len(), width, "{row:?}");
    }
}

/// A minimal RFC 4180 reader (quoted cells, doubled quotes), enough to count cells.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut cell, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut cell)),
            ('\n', false) => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (c, _) => cell.push(c),
        }
    }
    rows
}

#[test]
fn a_fresh_run_refuses_a_directory_holding_a_best_checkpoint_or_summary_of_an_earlier_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_run(dir.path(), "earlier", "");
    success(kd(dir.path(), &["train", arg(&config)]));
    let run = run_dir(dir.path(), "earlier");
    std::fs::remove_file(run.join("checkpoints").join("last.kdc")).unwrap();
    for found in ["checkpoints/best.kdc", "summary.json"] {
        let before = snapshot(&run);
        let stderr = failure(kd(dir.path(), &["train", arg(&config)]), 2);
        assert!(
            stderr.contains(&format!(
                "{} already holds a run ({found} exists)",
                run.display()
            )),
            "{stderr}"
        );
        assert_eq!(snapshot(&run), before, "the earlier run was touched");
        std::fs::remove_file(run.join(found)).unwrap();
    }
}

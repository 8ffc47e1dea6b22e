//! `cargo xtask new-method` refusals as the user meets them: the message on stderr and exit
//! status 2, with nothing written (the successful paths are tested inside `new_method.rs`, on a
//! copy of the files `--in-tree` edits).

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs `xtask new-method ARGS…` from the repository root; returns its stderr after requiring
/// exit status 2.
fn refused(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(repo())
        .arg("new-method")
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    stderr
}

#[test]
fn a_bad_name_exits_2_with_the_rule() {
    for args in [
        ["Logit_Match", "--in-tree"],
        ["Logit_Match", "--out=/nonexistent"],
    ] {
        let stderr = refused(&args);
        assert!(stderr.contains("NAME `Logit_Match`"), "{stderr}");
        assert!(stderr.contains("lowercase letters"), "{stderr}");
    }
    assert!(!repo().join("plugins/Logit_Match").exists());
}

#[test]
fn a_shipped_kind_exits_2_naming_the_shipped_ones() {
    let stderr = refused(&["sokd", "--in-tree"]);
    assert!(
        stderr.contains("already ships") && stderr.contains("ctsl-mkt"),
        "{stderr}"
    );
}

#[test]
fn an_existing_out_folder_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = format!("--out={}", dir.path().display());
    let stderr = refused(&["logit-match", &out]);
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn in_tree_and_out_are_exclusive() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["new-method", "sp", "--in-tree", "--out", "/tmp/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
}

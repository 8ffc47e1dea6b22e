//! `cargo xtask reproduce <table> --recipe`: every CIFAR-100 cell's effective settings equal its
//! table's recipe sheet (`configs/reproduce/recipes/<table>.toml`, written from the official
//! code), docs/reproduce.md carries the sheets the command prints, and a drifted cell or a bad
//! sheet is named.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(repo())
        .arg("reproduce")
        .args(args)
        .output()
        .unwrap()
}

fn cifar100_tables() -> Vec<String> {
    let mut tables: Vec<String> = std::fs::read_dir(repo().join("configs/reproduce"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix("-cifar100.toml")
                .map(|stem| format!("{stem}-cifar100"))
        })
        .collect();
    tables.sort();
    assert!(tables.len() >= 6, "{tables:?}");
    tables
}

#[test]
fn every_cifar100_cell_matches_its_recipe_sheet() {
    for table in cifar100_tables() {
        let out = xtask(&[&table, "--recipe", "--check"]);
        assert!(
            out.status.success(),
            "{table}: a cell's effective setting differs from its recipe sheet:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn docs_carry_the_sheets_the_command_prints() {
    let docs = std::fs::read_to_string(repo().join("docs/reproduce.md")).unwrap();
    for table in cifar100_tables() {
        let out = xtask(&[&table, "--recipe", "--markdown"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sheet = String::from_utf8(out.stdout).unwrap();
        assert!(
            docs.contains(&sheet),
            "docs/reproduce.md's sheet of `{table}` is stale: run `cargo xtask reproduce \
             {table} --recipe --update-docs`\nthe command prints:\n{sheet}"
        );
    }
}

/// A one-row table whose cell trains 10 epochs, and a sheet that says 240.
fn drifted(dir: &Path) -> (PathBuf, PathBuf) {
    let manifest = dir.join("drift.toml");
    std::fs::write(
        &manifest,
        r#"
title = "drift"
description = "a test table"
output_dir = "runs/drift"
seeds = 1
sets = ["run.epochs=10"]
[[column]]
name = "resnet56-resnet20"
label = "resnet56 → resnet20"
teacher = "resnet56"
student = "resnet20"
[[row]]
name = "student"
label = "Student"
config = "configs/reproduce/cells/cifar100/supervised-repdistiller.toml"
key = "{student}"
sets = ["networks.student.arch={student}"]
paper_unknown = "test"
"#,
    )
    .unwrap();
    let sheet = dir.join("sheet.toml");
    std::fs::write(
        &sheet,
        r#"
table = "drift"
code = "a test"
[[setting]]
name = "epochs"
value = 240
source = "train_student.py: `--epochs` default 240"
"#,
    )
    .unwrap();
    (manifest, sheet)
}

#[test]
fn a_drifted_cell_is_named_with_table_setting_and_both_values() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, sheet) = drifted(dir.path());
    let args = [
        "drift",
        "--manifest",
        manifest.to_str().unwrap(),
        "--recipe",
        "--sheet",
        sheet.to_str().unwrap(),
    ];
    // Without --check the sheet is printed, the difference marked.
    let out = xtask(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find(|l| l.starts_with("epochs")).unwrap();
    assert!(
        line.contains("10") && line.contains("240") && line.contains('✗'),
        "{line}"
    );
    // With --check it fails, naming table, cell, setting, both values and their sources.
    let out = xtask(&[&args[..], &["--check"]].concat());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "table `drift`, cell `student/resnet20`, setting `epochs`: kd has 10 \
             (--set run.epochs=10), official 240 (train_student.py: `--epochs` default 240)"
        ),
        "{stderr}"
    );
    // Settings the sheet does not describe are differences too.
    assert!(
        stderr.contains("setting `batch_size`: kd has 64") && stderr.contains("not in the sheet"),
        "{stderr}"
    );
}

#[test]
fn a_missing_or_malformed_sheet_is_bad_input_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, sheet) = drifted(dir.path());
    let missing = dir.path().join("none.toml");
    for (path, expected) in [
        (missing.clone(), "no recipe sheet".to_string()),
        (sheet.clone(), "exactly one of `source`".to_string()),
    ] {
        if path == sheet {
            let text = std::fs::read_to_string(&sheet).unwrap();
            std::fs::write(&sheet, text.replace("source = ", "# source = ")).unwrap();
        }
        let out = xtask(&[
            "drift",
            "--manifest",
            manifest.to_str().unwrap(),
            "--recipe",
            "--sheet",
            path.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&path.display().to_string()) && stderr.contains(&expected),
            "{stderr}"
        );
    }
    // A table without a sheet names the file it looked for.
    let out = xtask(&["fashion", "--recipe"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("configs/reproduce/recipes/fashion.toml")
    );
}

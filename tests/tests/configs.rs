//! Every experiment config the repository ships plans cleanly (CIFAR ones against a synthetic
//! CIFAR-100 folder, checkpoints from earlier runs allowed to be missing, the full
//! Fashion-MNIST planned by its geometry where it is not installed), and every method preset
//! names a registered kind.

use std::path::{Path, PathBuf};

use kd_tests::{kd, repo_root, success};

fn experiment_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            experiment_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "toml")
            && path.file_name().is_some_and(|n| n != "suite.toml")
        {
            out.push(path);
        }
    }
}

#[test]
fn every_shipped_experiment_plans() {
    let fake = tempfile::tempdir().unwrap();
    let record = |fine: u8| -> Vec<u8> {
        let mut r = vec![0u8, fine];
        r.extend(vec![128u8; 3072]);
        r
    };
    std::fs::write(
        fake.path().join("train.bin"),
        [record(1), record(2)].concat(),
    )
    .unwrap();
    std::fs::write(fake.path().join("test.bin"), record(3)).unwrap();
    let mut files = Vec::new();
    experiment_files(&repo_root().join("configs").join("experiments"), &mut files);
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    for file in files {
        let mut command = kd(
            &repo_root(),
            &[
                "plan",
                file.to_str().unwrap(),
                "--allow-missing-checkpoints",
                // The full Fashion-MNIST is a Debian package a machine may not have; the
                // shipped subset and the fake CIFAR folder are read either way.
                "--allow-missing-data",
            ],
        );
        command.env("KD_DATA", fake.path());
        let out = success(command);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("phase `main`"), "{}: {text}", file.display());
    }
}

#[test]
fn every_suite_names_existing_configs() {
    let mut files = Vec::new();
    experiment_files(&repo_root().join("configs").join("experiments"), &mut files);
    let suites: Vec<PathBuf> = walk_suites(&repo_root().join("configs"));
    assert!(!suites.is_empty());
    for suite in suites {
        let text = std::fs::read_to_string(&suite).unwrap();
        let table: toml::Table = text.parse().unwrap();
        for run in table["run"].as_array().unwrap() {
            let config = suite
                .parent()
                .unwrap()
                .join(run["config"].as_str().unwrap());
            assert!(
                config.is_file(),
                "{} names {}",
                suite.display(),
                config.display()
            );
        }
    }
}

fn walk_suites(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk_suites(&path));
        } else if path.file_name().is_some_and(|n| n == "suite.toml") {
            out.push(path);
        }
    }
    out
}

#[test]
fn method_presets_print_with_their_sources() {
    for preset in ["kd", "dml", "sokd"] {
        let path = repo_root()
            .join("configs")
            .join("methods")
            .join(format!("{preset}.toml"));
        let out = success(kd(&repo_root(), &["print-config", path.to_str().unwrap()]));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("method.{preset}.kind = \"{preset}\"")),
            "{text}"
        );
    }
}

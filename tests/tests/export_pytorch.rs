//! `kd export` against PyTorch's own verdict, without PyTorch: a resnet8 student distilled by
//! the quickstart (KD from its resnet20 teacher, on the shipped Fashion-MNIST subset) is committed
//! with what `scripts/reference/export_check.py` measured when PyTorch 2.15 loaded its exports
//! into RepDistiller's definition with `strict=True` (`expected_export.json`, in
//! `crates/kd-core/tests/fixtures/export/`). These tests export the same checkpoint and require
//! the very files PyTorch loaded (same sha256), and require `kd predict`'s logits on the same
//! images to be PyTorch's within the fixture's tolerance (1e-4).

use std::path::{Path, PathBuf};

use kd_tests::{kd, repo_root, subset, success};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn fixture_dir() -> PathBuf {
    repo_root().join("crates/kd-core/tests/fixtures/export")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixture_dir().join("expected_export.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn sha256(path: &Path) -> String {
    let digest = Sha256::digest(std::fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The committed checkpoint the fixture describes.
fn checkpoint(expected: &Value) -> PathBuf {
    let path = fixture_dir().join(expected["checkpoint"].as_str().unwrap());
    assert_eq!(
        sha256(&path),
        expected["checkpoint_sha256"].as_str().unwrap(),
        "{} is not the checkpoint PyTorch checked",
        path.display()
    );
    path
}

/// PyTorch's logits from the fixture, one row per image.
fn torch_logits(expected: &Value) -> Vec<Vec<f64>> {
    expected["torch_logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect()
}

/// `kd predict --json` run in `dir` with `args`; (index, label, logits) per image.
fn predict(dir: &Path, args: &[&str]) -> Vec<(u64, u64, Vec<f64>)> {
    let mut all = vec!["predict"];
    all.extend(args);
    let out = success(kd(dir, &all));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let logits = p["logits"].as_array().unwrap();
            (
                p["index"].as_u64().unwrap(),
                p["label"].as_u64().unwrap(),
                logits.iter().map(|v| v.as_f64().unwrap()).collect(),
            )
        })
        .collect()
}

/// The largest |kd − torch| over every logit, after checking the images are the fixture's.
fn max_difference(expected: &Value, predicted: &[(u64, u64, Vec<f64>)]) -> f64 {
    let torch = torch_logits(expected);
    let images: Vec<u64> = expected["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let labels: Vec<u64> = expected["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(predicted.len(), torch.len());
    assert_eq!(
        predicted.iter().map(|p| p.0).collect::<Vec<_>>(),
        images,
        "image indices"
    );
    assert_eq!(
        predicted.iter().map(|p| p.1).collect::<Vec<_>>(),
        labels,
        "labels"
    );
    let classes = expected["num_classes"].as_u64().unwrap() as usize;
    predicted
        .iter()
        .zip(&torch)
        .flat_map(|((_, _, kd), torch)| {
            assert_eq!((kd.len(), torch.len()), (classes, classes));
            kd.iter().zip(torch).map(|(a, b)| (a - b).abs())
        })
        .fold(0.0, f64::max)
}

#[test]
fn the_fixture_records_a_strict_load_within_tolerance() {
    let expected = expected();
    assert_eq!(expected["architecture"], "resnet8");
    assert_eq!(expected["in_channels"], 1);
    assert_eq!(expected["tolerance"].as_f64().unwrap(), 1e-4);
    assert!(expected["torch"].as_str().unwrap().starts_with("2."));
    for format in ["safetensors", "pth"] {
        let export = &expected["exports"][format];
        let difference = export["max_abs_difference"].as_f64().unwrap();
        assert!(difference < 1e-4, "{format}: PyTorch measured {difference}");
        assert_eq!(export["entries"], 56, "{format}: resnet8's state dict");
    }
}

#[test]
fn exports_of_the_committed_student_are_the_files_pytorch_loaded() {
    let expected = expected();
    let source = checkpoint(&expected);
    // The safetensors metadata names the checkpoint as given: the script exported
    // `student.kdc` from its own folder, so this does the same.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&source, dir.path().join("student.kdc")).unwrap();
    for format in ["safetensors", "pth"] {
        let export = &expected["exports"][format];
        let file = export["file"].as_str().unwrap();
        success(kd(
            dir.path(),
            &[
                "export",
                "--checkpoint",
                "student.kdc",
                "--out",
                file,
                "--format",
                format,
            ],
        ));
        let out = dir.path().join(file);
        assert_eq!(
            sha256(&out),
            export["sha256"].as_str().unwrap(),
            "{format}: the export is not the file PyTorch loaded"
        );
        if format == "safetensors" {
            let bytes = std::fs::read(&out).unwrap();
            let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
            assert_eq!(tensors.len() as u64, export["entries"].as_u64().unwrap());
            let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
            let meta = header.metadata().clone().unwrap();
            assert_eq!(meta["architecture"], "resnet8");
            assert_eq!(meta["num_classes"], "10");
            assert_eq!(meta["in_channels"], "1");
            assert_eq!(meta["source_checkpoint"], "student.kdc");
            // The checkpoint's input preparation travels with the export.
            let recorded = kd_core::checkpoint::read_header(&fixture_dir().join("student.kdc"))
                .unwrap()
                .preparation
                .expect("the fixture records its input preparation");
            let carried: kd_core::checkpoint::InputPreparation =
                serde_json::from_str(&meta["input_preparation"]).unwrap();
            assert_eq!(carried, recorded);
            assert_eq!(meta["source_role"], "student");
        }
    }
}

#[test]
fn kd_predict_gives_pytorchs_logits_on_the_same_images() {
    let expected = expected();
    let source = checkpoint(&expected);
    let limit = expected["images"].as_array().unwrap().len().to_string();
    let data = subset();
    let predicted = predict(
        &repo_root(),
        &[
            "--arch",
            "resnet8",
            "--checkpoint",
            source.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--limit",
            &limit,
            "--json",
        ],
    );
    let difference = max_difference(&expected, &predicted);
    assert!(
        difference < expected["tolerance"].as_f64().unwrap(),
        "kd predict differs from PyTorch by {difference}"
    );
}

#[test]
fn the_exported_pth_read_back_by_kd_predict_gives_pytorchs_logits() {
    // The round trip: kd's own PyTorch reader on the export PyTorch loaded. A .pth carries no
    // input preparation, so the checkpoint's recorded one is passed as flags.
    let expected = expected();
    let source = checkpoint(&expected);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("student.pth");
    success(kd(
        dir.path(),
        &[
            "export",
            "--checkpoint",
            source.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    ));
    let preparation = &expected["preparation"];
    let (mean, std) = (
        preparation["mean"][0].as_f64().unwrap().to_string(),
        preparation["std"][0].as_f64().unwrap().to_string(),
    );
    let size = preparation["input_size"].as_u64().unwrap().to_string();
    let limit = expected["images"].as_array().unwrap().len().to_string();
    let data = subset();
    let predicted = predict(
        dir.path(),
        &[
            "--arch",
            "resnet8",
            "--checkpoint",
            "student.pth",
            "--data",
            data.to_str().unwrap(),
            "--format",
            "idx",
            "--input-size",
            &size,
            "--mean",
            &mean,
            "--std",
            &std,
            "--limit",
            &limit,
            "--json",
        ],
    );
    let difference = max_difference(&expected, &predicted);
    assert!(
        difference < expected["tolerance"].as_f64().unwrap(),
        "the exported .pth read by kd differs from PyTorch by {difference}"
    );
}

//! PyTorch checkpoints written by the reference model definitions (RepDistiller `models/`,
//! fixtures by `scripts/reference/pytorch_fixtures.py`) imported into the zoo: every
//! architecture must give PyTorch's eval-mode logits to 1e-4; wrappers are found; every kind of
//! mismatch is an error that lists the keys.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use kd_core::import::{ImportError, ImportOptions, Imported, import_pytorch, write_imported};
use kd_core::runtime::load_network;
use kd_core::zoo::{self, Staged};
use serde_json::Value;

const TOLERANCE: f32 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pytorch")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The reference batch: the formula `pytorch_fixtures.py` evaluates in float64.
fn inputs(device: &Device) -> Tensor<4> {
    let mut values = Vec::with_capacity(2 * 3 * 32 * 32);
    for n in 0..2 {
        for c in 0..3 {
            for h in 0..32 {
                for w in 0..32 {
                    let (n, c, h, w) = (n as f64, c as f64, h as f64, w as f64);
                    let x = (0.21 * h + 0.37 * w + 1.3 * c + 2.9 * n).sin()
                        + 0.5 * (0.013 * h * w + 0.7 * c - 1.1 * n).cos();
                    values.push(x as f32);
                }
            }
        }
    }
    Tensor::from_data(TensorData::new(values, [2, 3, 32, 32]), device)
}

fn logits(network: &zoo::Network, device: &Device) -> Vec<Vec<f32>> {
    let out = network.forward(inputs(device));
    let [_, classes] = out.dims();
    let values = out.into_data().try_to_vec::<f32>().unwrap();
    values.chunks(classes).map(<[f32]>::to_vec).collect()
}

fn reference(name: &str) -> Vec<Vec<f32>> {
    expected()["models"][name]["logits"]
        .as_array()
        .unwrap_or_else(|| panic!("no reference logits for {name}"))
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

fn max_difference(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}

fn import(file: &str, arch: &str, options: &ImportOptions) -> Result<Imported, ImportError> {
    import_pytorch(&fixtures().join(file), arch, options, &Device::flex())
}

#[test]
fn every_zoo_architecture_gives_pytorchs_logits() {
    let device = Device::flex();
    let names = zoo::names();
    assert_eq!(names.len(), 24);
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for name in names {
        let imported = import(&format!("{name}.pth"), name, &ImportOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            imported.entry.num_classes, 100,
            "{name}: classes read from the file"
        );
        assert_eq!(
            imported.entry.in_channels, 3,
            "{name}: channels read from the file"
        );
        assert_eq!(imported.wrapper, None, "{name}");
        let ours = logits(&imported.network, &device);
        let theirs = reference(name);
        // The two images must give different logits, or the comparison would prove little.
        assert!(max_difference(&theirs[..1], &theirs[1..]) > 0.3, "{name}");
        let difference = max_difference(&ours, &theirs);
        report.push(format!("{name} {difference:.2e}"));
        failures.extend((difference >= TOLERANCE).then(|| format!("{name} {difference:.2e}")));
    }
    eprintln!(
        "max |ours - PyTorch| per architecture: {}",
        report.join(", ")
    );
    assert!(
        failures.is_empty(),
        "logits differ from PyTorch's by 1e-4 or more: {failures:?}"
    );
}

#[test]
fn wrappers_and_data_parallel_prefixes_are_found() {
    let device = Device::flex();
    let theirs = reference("resnet8_c10");
    for (file, wrapper, data_parallel) in [
        ("resnet8_c10.pth", None, false),
        ("resnet8_repdistiller.pth", Some("model"), false),
        ("resnet8_state_dict.pth", Some("state_dict"), false),
        ("resnet8_dataparallel.pth", Some("model"), true),
    ] {
        let imported = import(file, "resnet8", &ImportOptions::default())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(imported.wrapper.as_deref(), wrapper, "{file}");
        assert_eq!(imported.data_parallel, data_parallel, "{file}");
        assert_eq!(imported.entry.num_classes, 10, "{file}");
        assert_eq!(
            imported.tensors, 47,
            "{file}: resnet8's state dict without counters"
        );
        let difference = max_difference(&logits(&imported.network, &device), &theirs);
        assert!(difference < TOLERANCE, "{file}: {difference}");
    }
    // A key given by hand is used as it is.
    let options = ImportOptions {
        key: Some("model".into()),
        ..ImportOptions::default()
    };
    assert!(import("resnet8_repdistiller.pth", "resnet8", &options).is_ok());
}

#[test]
fn an_imported_checkpoint_loads_back_as_a_network() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("teachers/resnet8.kdc");
    let source = fixtures().join("resnet8_repdistiller.pth");
    let imported = import_pytorch(&source, "resnet8", &ImportOptions::default(), &device).unwrap();
    write_imported(&out, &imported, &source).unwrap();
    let (network, entry) = load_network(&out, "student", &device).unwrap();
    assert_eq!(entry, imported.entry);
    assert_eq!(entry.arch, "resnet8");
    let difference = max_difference(&logits(&network, &device), &reference("resnet8_c10"));
    assert!(difference < TOLERANCE, "{difference}");
    let leftovers: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("resnet8.kdc")]);
}

fn keys_error(result: Result<Imported, ImportError>) -> (Vec<String>, Vec<String>, Vec<String>) {
    match result {
        Err(ImportError::Keys { mismatch, .. }) => {
            (mismatch.missing, mismatch.unexpected, mismatch.misshaped)
        }
        other => panic!("expected a key error, got {other:?}"),
    }
}

#[test]
fn missing_keys_are_listed() {
    let result = import("resnet8_missing.pth", "resnet8", &ImportOptions::default());
    let message = result.as_ref().unwrap_err().to_string();
    let (missing, unexpected, misshaped) = keys_error(result);
    assert_eq!(missing, ["fc.bias", "layer1.0.bn1.running_var"]);
    assert!(unexpected.is_empty() && misshaped.is_empty());
    assert!(message.contains("resnet8_missing.pth"), "{message}");
    assert!(
        message.contains("2 missing from the file: fc.bias, layer1.0.bn1.running_var"),
        "{message}"
    );
}

#[test]
fn unexpected_keys_are_listed() {
    let result = import(
        "resnet8_unexpected.pth",
        "resnet8",
        &ImportOptions::default(),
    );
    let (missing, unexpected, misshaped) = keys_error(result);
    assert_eq!(unexpected, ["fc2.weight", "layer9.0.conv1.weight"]);
    assert!(missing.is_empty() && misshaped.is_empty());
}

#[test]
fn wrongly_shaped_keys_are_listed_with_both_shapes() {
    let result = import(
        "resnet8_misshaped.pth",
        "resnet8",
        &ImportOptions::default(),
    );
    let (missing, unexpected, misshaped) = keys_error(result);
    assert_eq!(
        misshaped,
        ["layer1.0.conv1.weight: file [16, 16, 1, 1], network [16, 16, 3, 3]"]
    );
    assert!(missing.is_empty() && unexpected.is_empty());

    // Asking for another classifier width than the file's.
    let options = ImportOptions {
        num_classes: Some(100),
        ..ImportOptions::default()
    };
    let result = import("resnet8_c10.pth", "resnet8", &options);
    let message = result.as_ref().unwrap_err().to_string();
    let (_, _, misshaped) = keys_error(result);
    assert_eq!(
        misshaped,
        [
            "fc.bias: file [10], network [100]",
            "fc.weight: file [10, 64], network [100, 64]"
        ]
    );
    assert!(
        message.contains("resnet8 (100 classes, 3 input channel(s))"),
        "{message}"
    );
}

#[test]
fn another_architectures_checkpoint_is_refused_by_its_keys() {
    let (missing, unexpected, _) = keys_error(import(
        "resnet8_c10.pth",
        "resnet14",
        &ImportOptions::default(),
    ));
    assert!(
        missing.contains(&"layer1.1.conv1.weight".to_string()),
        "{missing:?}"
    );
    assert!(unexpected.is_empty());
    let error = import("resnet8_c10.pth", "wrn_16_1", &ImportOptions::default()).unwrap_err();
    assert!(matches!(error, ImportError::Keys { .. }), "{error}");
}

#[test]
fn files_without_a_state_dict_are_refused() {
    let error = import("no_tensors.pth", "resnet8", &ImportOptions::default()).unwrap_err();
    assert!(matches!(error, ImportError::NoStateDict { .. }), "{error}");
    assert!(error.to_string().contains("no tensors at all"), "{error}");

    let options = ImportOptions {
        key: Some("optimizer".into()),
        ..ImportOptions::default()
    };
    let error = import("resnet8_repdistiller.pth", "resnet8", &options).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("nothing under `optimizer`"), "{message}");
    assert!(
        message.contains("best_acc") && message.contains("model"),
        "{message}"
    );
}

#[test]
fn a_file_that_is_not_a_checkpoint_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("teacher.pth");
    std::fs::write(&path, b"this is not a checkpoint").unwrap();
    let error =
        import_pytorch(&path, "resnet8", &ImportOptions::default(), &Device::flex()).unwrap_err();
    assert!(matches!(error, ImportError::Read { .. }), "{error}");
    assert!(error.to_string().contains("teacher.pth"), "{error}");

    let missing = dir.path().join("absent.pth");
    let error = import_pytorch(
        &missing,
        "resnet8",
        &ImportOptions::default(),
        &Device::flex(),
    )
    .unwrap_err();
    assert!(error.to_string().contains("absent.pth"), "{error}");
}

#[test]
fn unknown_architectures_list_the_zoo() {
    let error = import("resnet8_c10.pth", "resnet9", &ImportOptions::default()).unwrap_err();
    assert!(matches!(error, ImportError::UnknownArch { .. }), "{error}");
    assert!(error.to_string().contains("resnet8, resnet14"), "{error}");
}

//! PyTorch checkpoints written by the reference model definitions (RepDistiller `models/`,
//! fixtures by `scripts/reference/pytorch_fixtures.py`) imported into the zoo: every
//! architecture must give PyTorch's eval-mode logits to 1e-4; wrappers are found; every kind of
//! mismatch is an error that lists the keys. Files PyTorch could have written but the fixtures
//! do not cover (half precision, NaN weights, `teacher`/`student` entries) are built by the
//! tests themselves (`support/pth.rs`).

#[path = "support/pth.rs"]
mod pth;

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use kd_core::import::{
    ImportError, ImportOptions, Imported, check_pytorch, import_pytorch, import_pytorch_noted,
    write_imported,
};
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

/// Every float tensor of a module: dotted burn name, dtype and values.
fn float_tensors<M: burn::module::Module>(
    module: &M,
) -> Vec<(String, burn::tensor::DType, Vec<f32>)> {
    use burn::module::{ModuleVisitor, Param};
    struct Collect(Vec<String>, Vec<(String, burn::tensor::DType, Vec<f32>)>);
    impl ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, container: &str) {
            if !container.starts_with("Enum:") {
                self.0.push(name.to_string());
            }
        }
        fn exit_module(&mut self, _name: &str, container: &str) {
            if !container.starts_with("Enum:") {
                self.0.pop();
            }
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let data = param.val().into_data();
            let dtype = data.dtype();
            let values = data.convert::<f32>().try_to_vec::<f32>().unwrap();
            self.1.push((self.0.join("."), dtype, values));
        }
    }
    let mut collect = Collect(Vec::new(), Vec::new());
    module.visit(&mut collect);
    collect.1
}

fn float_dtypes<M: burn::module::Module>(module: &M) -> Vec<(String, burn::tensor::DType)> {
    float_tensors(module)
        .into_iter()
        .map(|(n, d, _)| (n, d))
        .collect()
}

fn tensor_values<M: burn::module::Module>(module: &M, name: &str) -> Vec<f32> {
    float_tensors(module)
        .into_iter()
        .find(|(n, _, _)| n == name)
        .unwrap_or_else(|| panic!("no tensor {name}"))
        .2
}

/// The tensors of a fixture, for files built from them.
fn fixture_tensors(name: &str) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    pth::read_tensors(&fixtures().join(name))
}

#[test]
fn half_bfloat_and_double_precision_weights_are_converted_to_f32() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let tensors = fixture_tensors("resnet8_c10.pth");
    let theirs = reference("resnet8_c10");
    for (precision, name, tolerance) in [
        (pth::Precision::F16, "float16", 0.05),
        (pth::Precision::BF16, "bfloat16", 0.5),
        (pth::Precision::F64, "float64", TOLERANCE),
    ] {
        let path = dir.path().join(format!("resnet8_{name}.pth"));
        pth::write_pth(&path, &pth::state_dict(&tensors, precision));
        let (imported, notes) =
            import_pytorch_noted(&path, "resnet8", &ImportOptions::default(), &device)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            notes.converted.iter().collect::<Vec<_>>(),
            [(&name.to_string(), &47)],
            "{name}"
        );
        assert_eq!(
            notes.describe().as_deref(),
            Some(format!("converted to float32: 47 from {name}").as_str())
        );
        // Every tensor is float32 now, holding the file's values exactly.
        let fc_bias = &tensors.iter().find(|t| t.0 == "fc.bias").unwrap().2;
        let dtypes = float_dtypes(&imported.network);
        assert!(
            dtypes.iter().all(|(_, d)| *d == burn::tensor::DType::F32),
            "{name}: {dtypes:?}"
        );
        let ours_bias = tensor_values(&imported.network, "fc.bias");
        let expected: Vec<f32> = fc_bias.iter().map(|&v| precision.round(v)).collect();
        assert_eq!(ours_bias, expected, "{name}");
        // The network runs in float32 (it panicked on a dtype mismatch before), and so does
        // the kd checkpoint written from it.
        let difference = max_difference(&logits(&imported.network, &device), &theirs);
        assert!(difference < tolerance, "{name}: {difference}");
        let out = dir.path().join(format!("{name}.kdc"));
        write_imported(&out, &imported, &path).unwrap();
        let (network, _) = load_network(&out, "student", &device).unwrap();
        let again = max_difference(&logits(&network, &device), &theirs);
        assert!(again < tolerance, "{name}: {again}");
    }
    // A float32 file converts nothing and says nothing about it.
    let source = fixtures().join("resnet8_c10.pth");
    let (_, notes) =
        import_pytorch_noted(&source, "resnet8", &ImportOptions::default(), &device).unwrap();
    assert_eq!(notes, Default::default());
    assert_eq!(notes.describe(), None);
}

#[test]
fn non_finite_weights_are_refused_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let tensors = fixture_tensors("resnet8_c10.pth");
    for (key, value, precision) in [
        ("layer1.0.bn1.running_var", f32::NAN, pth::Precision::F32),
        ("fc.weight", f32::INFINITY, pth::Precision::F32),
        // 70000 is beyond float16's range: stored as infinity.
        ("conv1.weight", 70000.0, pth::Precision::F16),
    ] {
        let mut poisoned = tensors.clone();
        poisoned.iter_mut().find(|t| t.0 == key).unwrap().2[3] = value;
        let path = dir.path().join("poisoned.pth");
        pth::write_pth(&path, &pth::state_dict(&poisoned, precision));
        // The plan reads no tensor: the keys fit.
        assert!(check_pytorch(&path, "resnet8", &ImportOptions::default()).is_ok());
        let error = import_pytorch(&path, "resnet8", &ImportOptions::default(), &Device::flex())
            .unwrap_err();
        assert!(matches!(error, ImportError::NonFinite { .. }), "{error}");
        let message = error.to_string();
        assert!(
            message.contains("poisoned.pth")
                && message.contains(&format!("tensor `{key}` holds NaN or infinite values")),
            "{message}"
        );
    }
}

/// `{"teacher": <teacher_file's state dict>, "student": <student_file's>}`, as training scripts
/// save both networks.
fn teacher_and_student(dir: &Path, teacher_file: &str, student_file: &str) -> PathBuf {
    let path = dir.join("both.pth");
    let root = pth::Node::Dict(vec![
        (
            "student".into(),
            pth::state_dict(&fixture_tensors(student_file), pth::Precision::F32),
        ),
        (
            "teacher".into(),
            pth::state_dict(&fixture_tensors(teacher_file), pth::Precision::F32),
        ),
    ]);
    pth::write_pth(&path, &root);
    path
}

#[test]
fn every_top_level_entry_is_tried_and_the_fitting_one_named() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let path = teacher_and_student(dir.path(), "resnet20.pth", "resnet8_c10.pth");
    // `student` is a usual wrapper and shares many names with resnet20, but only `teacher` fits.
    let (imported, notes) =
        import_pytorch_noted(&path, "resnet20", &ImportOptions::default(), &device).unwrap();
    assert_eq!(imported.wrapper.as_deref(), Some("teacher"));
    assert_eq!(imported.entry.num_classes, 100);
    assert!(notes.also_fitting.is_empty());
    let difference = max_difference(&logits(&imported.network, &device), &reference("resnet20"));
    assert!(difference < TOLERANCE, "{difference}");
    let imported = import_pytorch(&path, "resnet8", &ImportOptions::default(), &device).unwrap();
    assert_eq!(imported.wrapper.as_deref(), Some("student"));
    assert_eq!(imported.entry.num_classes, 10);

    // Forcing the entry that does not fit names the one that does.
    let options = ImportOptions {
        key: Some("student".into()),
        ..ImportOptions::default()
    };
    let error = import_pytorch(&path, "resnet20", &options, &device).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("compared with the state dict under `student`"),
        "{message}"
    );
    assert!(
        message
            .contains("the state dict under `teacher` fits resnet20: choose it with --key teacher"),
        "{message}"
    );
    match error {
        ImportError::Keys { mismatch, .. } => {
            assert_eq!(mismatch.fitting, [Some("teacher".to_string())]);
            assert_eq!(mismatch.entry.as_deref(), Some("student"));
        }
        other => panic!("{other:?}"),
    }
    // A forced key naming nothing of the architecture names the fitting entry too.
    let options = ImportOptions {
        key: Some("nothing".into()),
        ..ImportOptions::default()
    };
    let message = import_pytorch(&path, "resnet20", &options, &device)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("nothing under `nothing`")
            && message.contains("choose it with --key teacher"),
        "{message}"
    );
}

#[test]
fn two_fitting_entries_import_the_first_and_name_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let path = teacher_and_student(dir.path(), "resnet8_c10.pth", "resnet8_c10.pth");
    let device = Device::flex();
    let (imported, notes) =
        import_pytorch_noted(&path, "resnet8", &ImportOptions::default(), &device).unwrap();
    assert_eq!(imported.wrapper.as_deref(), Some("student"));
    assert_eq!(notes.also_fitting, ["teacher"]);
    assert_eq!(
        notes.describe().as_deref(),
        Some("`teacher` fit(s) too (choose with --key)")
    );
    // DataParallel's `module` entry is the same state dict, not a second one.
    let source = fixtures().join("resnet8_dataparallel.pth");
    let (_, notes) =
        import_pytorch_noted(&source, "resnet8", &ImportOptions::default(), &device).unwrap();
    assert!(notes.also_fitting.is_empty(), "{:?}", notes.also_fitting);
}

#[test]
fn a_directory_is_named_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("teacher.pth");
    std::fs::create_dir(&folder).unwrap();
    let error = import_pytorch(
        &folder,
        "resnet8",
        &ImportOptions::default(),
        &Device::flex(),
    )
    .unwrap_err();
    assert!(matches!(error, ImportError::Read { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("teacher.pth: not a readable PyTorch checkpoint: it is a directory"),
        "{error}"
    );
}

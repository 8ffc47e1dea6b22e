//! `kd export` through the binary: freshly initialised zoo networks saved as kd checkpoints,
//! exported, and read back with the `safetensors` crate directly (not kd's writer): PyTorch's
//! keys and layouts, values bit-equal to the checkpoint's; a `.pth` export imported back with
//! `kd import`; and every refusal (unknown role, damaged or foreign checkpoint, an output that
//! cannot be written or is the checkpoint itself) exits with status 2 naming the file, leaving
//! an earlier output as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use kd_core::checkpoint::NetworkEntry;
use kd_core::import::{IMPORTED_ROLE, Imported, write_imported};
use kd_core::zoo::{self, ModelSpec, Network, param_inventory};
use kd_tests::{failure, kd, success};

/// Every float tensor of a network, in visiting order.
struct Values(Vec<Vec<f32>>);

impl ModuleVisitor for Values {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0
            .push(param.val().into_data().try_into_vec::<f32>().unwrap());
    }
}

/// A freshly initialised `arch` saved as a kd checkpoint (role `student`) at `path`; returns
/// its tensors by burn name with burn's shapes.
fn fresh_checkpoint(
    path: &Path,
    arch: &str,
    spec: ModelSpec,
) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let network: Network = (zoo::find(arch).unwrap().arch)(spec).init(&Device::flex());
    let inventory = param_inventory(&network);
    let mut values = Values(Vec::new());
    network.visit(&mut values);
    let tensors = inventory
        .iter()
        .zip(values.0)
        .map(|(p, v)| (p.name.clone(), (p.shape.clone(), v)))
        .collect();
    let imported = Imported {
        network,
        entry: NetworkEntry {
            role: IMPORTED_ROLE.into(),
            arch: arch.into(),
            num_classes: spec.num_classes,
            in_channels: spec.in_channels,
        },
        tensors: inventory.len(),
        wrapper: None,
        data_parallel: false,
    };
    write_imported(path, &imported, Path::new("fresh")).unwrap();
    tensors
}

fn export(dir: &Path, checkpoint: &Path, out: &str, extra: &[&str]) -> std::process::Command {
    let checkpoint = checkpoint.to_str().unwrap();
    let mut args = vec!["export", "--checkpoint", checkpoint, "--out", out];
    args.extend(extra);
    kd(dir, &args)
}

/// The PyTorch key of a burn name (BatchNorm's gamma/beta are weight/bias), written out here
/// rather than taken from kd.
fn pytorch_key(name: &str) -> String {
    if let Some(p) = name.strip_suffix(".gamma") {
        format!("{p}.weight")
    } else if let Some(p) = name.strip_suffix(".beta") {
        format!("{p}.bias")
    } else {
        name.to_string()
    }
}

#[test]
fn exported_safetensors_hold_the_checkpoints_tensors_in_pytorch_layout() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ModelSpec {
        num_classes: 10,
        in_channels: 1,
    };
    for arch in [
        "resnet8",
        "wrn_16_1",
        "vgg8",
        "MobileNetV2",
        "ShuffleV1",
        "ShuffleV2",
    ] {
        let checkpoint = dir.path().join(format!("{arch}.kdc"));
        let original = fresh_checkpoint(&checkpoint, arch, spec);
        let out = format!("{arch}.safetensors");
        let stdout = success(export(dir.path(), &checkpoint, &out, &[])).stdout;
        let stdout = String::from_utf8(stdout).unwrap();
        assert!(stdout.contains(&format!("exported {arch} (10 classes, 1 input channel(s))")));

        let bytes = std::fs::read(dir.path().join(&out)).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut expected: Vec<String> = original.keys().map(|k| pytorch_key(k)).collect();
        expected.extend(
            original
                .keys()
                .filter_map(|k| k.strip_suffix(".running_var"))
                .map(|p| format!("{p}.num_batches_tracked")),
        );
        expected.sort();
        let mut names: Vec<String> = file.names().into_iter().map(String::from).collect();
        names.sort();
        assert_eq!(names, expected, "{arch}");

        for (name, (shape, values)) in &original {
            let view = file.tensor(&pytorch_key(name)).unwrap();
            assert_eq!(view.dtype(), safetensors::Dtype::F32, "{arch} {name}");
            let stored: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            let wanted: Vec<f32> = match shape[..] {
                // burn's Linear weight [in, out]; PyTorch's [out, in].
                [inputs, outputs] => {
                    assert_eq!(view.shape(), [outputs, inputs], "{arch} {name}");
                    (0..outputs * inputs)
                        .map(|k| values[(k % inputs) * outputs + k / inputs])
                        .collect()
                }
                _ => {
                    assert_eq!(view.shape(), &shape[..], "{arch} {name}");
                    values.clone()
                }
            };
            let same = stored
                .iter()
                .zip(&wanted)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(
                same && stored.len() == wanted.len(),
                "{arch} {name}: values differ"
            );
        }
        for name in names.iter().filter(|n| n.ends_with("num_batches_tracked")) {
            let view = file.tensor(name).unwrap();
            assert_eq!(view.dtype(), safetensors::Dtype::I64);
            assert!(view.shape().is_empty());
            assert_eq!(view.data(), 0i64.to_le_bytes());
        }
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = header.metadata().clone().unwrap();
        assert_eq!(meta["architecture"], arch);
        assert_eq!(meta["num_classes"], "10");
        assert_eq!(meta["in_channels"], "1");
        assert_eq!(meta["source_role"], "student");
        assert_eq!(meta["source_checkpoint"], checkpoint.display().to_string());
        assert!(!meta["kd_version"].is_empty());
    }
}

#[test]
fn a_pth_export_imports_back_with_kd_import() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ModelSpec {
        num_classes: 7,
        in_channels: 3,
    };
    let checkpoint = dir.path().join("student.kdc");
    let original = fresh_checkpoint(&checkpoint, "wrn_16_1", spec);
    // The format follows the extension unless --format says otherwise.
    success(export(dir.path(), &checkpoint, "student.pth", &[]));
    success(export(
        dir.path(),
        &checkpoint,
        "student.bin",
        &["--format", "pth"],
    ));
    for name in ["student.pth", "student.bin"] {
        let bytes = std::fs::read(dir.path().join(name)).unwrap();
        assert_eq!(
            &bytes[..4],
            b"PK\x03\x04",
            "{name}: a zip archive, as torch.save writes"
        );
    }
    let stdout = success(kd(
        dir.path(),
        &[
            "import",
            "--arch",
            "wrn_16_1",
            "--from",
            "student.pth",
            "--out",
            "back.kdc",
        ],
    ))
    .stdout;
    let stdout = String::from_utf8(stdout).unwrap();
    assert!(
        stdout.contains(&format!(
            "{} tensors from a bare state dict into wrn_16_1 (7 classes, 3 input channel(s))",
            original.len()
        )),
        "{stdout}"
    );
}

/// A small checkpoint in `dir` and an earlier export at `out` that no failure may touch.
fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let checkpoint = dir.join("student.kdc");
    fresh_checkpoint(
        &checkpoint,
        "resnet8",
        ModelSpec {
            num_classes: 10,
            in_channels: 1,
        },
    );
    let out = dir.join("student.safetensors");
    std::fs::write(&out, b"an earlier export").unwrap();
    (checkpoint, out)
}

fn unchanged(out: &Path) {
    assert_eq!(std::fs::read(out).unwrap(), b"an earlier export");
}

#[test]
fn an_unknown_role_is_refused_naming_the_roles_held() {
    let dir = tempfile::tempdir().unwrap();
    let (checkpoint, out) = setup(dir.path());
    let stderr = failure(
        export(
            dir.path(),
            &checkpoint,
            "student.safetensors",
            &["--role", "teacher"],
        ),
        2,
    );
    assert!(stderr.contains("student.kdc"), "{stderr}");
    assert!(
        stderr.contains("holds no role `teacher` (it holds student)"),
        "{stderr}"
    );
    unchanged(&out);
}

#[test]
fn a_damaged_or_foreign_checkpoint_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (checkpoint, out) = setup(dir.path());
    let mut bytes = std::fs::read(&checkpoint).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&checkpoint, &bytes).unwrap();
    let stderr = failure(
        export(dir.path(), &checkpoint, "student.safetensors", &[]),
        2,
    );
    assert!(
        stderr.contains("student.kdc: the checkpoint is damaged: checksum mismatch"),
        "{stderr}"
    );
    unchanged(&out);

    std::fs::write(&checkpoint, &bytes[..bytes.len() / 2]).unwrap();
    let stderr = failure(
        export(dir.path(), &checkpoint, "student.safetensors", &[]),
        2,
    );
    assert!(
        stderr.contains("student.kdc: the checkpoint is damaged"),
        "{stderr}"
    );
    unchanged(&out);

    let foreign = dir.path().join("notes.kdc");
    std::fs::write(&foreign, "not a checkpoint at all").unwrap();
    let stderr = failure(export(dir.path(), &foreign, "student.safetensors", &[]), 2);
    assert!(
        stderr.contains("notes.kdc: not a kd checkpoint"),
        "{stderr}"
    );
    unchanged(&out);

    let stderr = failure(
        export(
            dir.path(),
            &dir.path().join("absent.kdc"),
            "student.safetensors",
            &[],
        ),
        2,
    );
    assert!(stderr.contains("absent.kdc"), "{stderr}");
    unchanged(&out);
}

#[test]
fn an_output_that_cannot_be_written_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (checkpoint, out) = setup(dir.path());

    let stderr = failure(
        export(dir.path(), &checkpoint, "no/such/folder/student.pth", &[]),
        2,
    );
    assert!(
        stderr.contains(
            "no/such/folder/student.pth: cannot write the export: its folder no/such/folder \
             does not exist"
        ),
        "{stderr}"
    );
    assert!(!dir.path().join("no").exists());

    std::fs::create_dir(dir.path().join("exports")).unwrap();
    let stderr = failure(export(dir.path(), &checkpoint, "exports", &[]), 2);
    assert!(
        stderr.contains("exports: cannot write the export: it is a directory"),
        "{stderr}"
    );

    let stderr = failure(
        export(dir.path(), &checkpoint, checkpoint.to_str().unwrap(), &[]),
        2,
    );
    assert!(
        stderr.contains("student.kdc: is the checkpoint being exported"),
        "{stderr}"
    );
    assert!(
        std::fs::read(&checkpoint).unwrap().starts_with(b"KDCKPT"),
        "the checkpoint is intact"
    );

    let stderr = failure(
        export(
            dir.path(),
            &checkpoint,
            "student.safetensors",
            &["--format", "onnx"],
        ),
        2,
    );
    assert!(stderr.contains("onnx"), "{stderr}");
    unchanged(&out);
    // Nothing was left behind by the failures: the checkpoint, the earlier export, the folder.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
}

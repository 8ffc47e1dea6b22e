//! Exports checked against the files PyTorch itself wrote from the reference definitions
//! (`tests/fixtures/pytorch/<arch>.pth`, one per zoo architecture): the keys, shapes and dtypes
//! of an export are those of PyTorch's own state dict, `num_batches_tracked` included, and its
//! values are PyTorch's bit for bit. The safetensors files are read back with the `safetensors`
//! crate directly, the `.pth` files with burn's PyTorch reader and `kd import`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burn::store::pytorch::PytorchReader;
use burn::tensor::Device;

use super::*;
use crate::import::{ImportOptions, import_pytorch};
use crate::zoo::ZOO;

fn fixture(arch: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/pytorch/{arch}.pth"))
}

/// A tensor as a reader gives it: dtype name, shape, little-endian bytes.
type Read = (String, Vec<usize>, Vec<u8>);

/// Every tensor of a PyTorch file, read by burn's PyTorch reader.
fn read_pth(path: &Path) -> BTreeMap<String, Read> {
    let reader = PytorchReader::new(path).unwrap();
    reader
        .tensors()
        .iter()
        .map(|(k, t)| {
            let dtype = format!("{:?}", t.dtype()).to_ascii_lowercase();
            (k.clone(), (dtype, t.shape().to_vec(), t.read().unwrap()))
        })
        .collect()
}

/// Every tensor of a safetensors file, read by the `safetensors` crate, and its metadata.
fn read_safetensors(path: &Path) -> (BTreeMap<String, Read>, HashMap<String, String>) {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensors = file
        .tensors()
        .into_iter()
        .map(|(k, view)| {
            let dtype = format!("{:?}", view.dtype()).to_ascii_lowercase();
            (k, (dtype, view.shape().to_vec(), view.data().to_vec()))
        })
        .collect();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    (tensors, header.metadata().clone().unwrap_or_default())
}

fn imported(arch: &str) -> (Network, NetworkEntry) {
    let imported = import_pytorch(
        &fixture(arch),
        arch,
        &ImportOptions::default(),
        &Device::flex(),
    )
    .unwrap();
    (imported.network, imported.entry)
}

#[test]
fn every_architecture_exports_pytorchs_own_state_dict() {
    let dir = tempfile::tempdir().unwrap();
    for zoo_entry in ZOO {
        let arch = zoo_entry.name;
        let source = fixture(arch);
        let reference = read_pth(&source);
        let (network, entry) = imported(arch);

        let out = dir.path().join(format!("{arch}.safetensors"));
        let written = export_network(
            &network,
            &entry,
            &source,
            &out,
            ExportFormat::Safetensors,
            None,
        )
        .unwrap();
        assert_eq!(written.bytes, std::fs::metadata(&out).unwrap().len());
        let (exported, meta) = read_safetensors(&out);
        assert_eq!(written.tensors, exported.len(), "{arch}");
        assert_eq!(
            exported.keys().collect::<Vec<_>>(),
            reference.keys().collect::<Vec<_>>(),
            "{arch}: the keys of PyTorch's state dict"
        );
        for (key, (dtype, shape, bytes)) in &exported {
            let (ref_dtype, ref_shape, ref_bytes) = &reference[key];
            assert_eq!(shape, ref_shape, "{arch} {key}");
            if key.ends_with("num_batches_tracked") {
                assert_eq!(
                    (dtype.as_str(), ref_dtype.as_str()),
                    ("i64", "i64"),
                    "{key}"
                );
                assert_eq!(bytes, &0i64.to_le_bytes().to_vec(), "{arch} {key}");
            } else {
                assert_eq!(
                    (dtype.as_str(), ref_dtype.as_str()),
                    ("f32", "f32"),
                    "{key}"
                );
                assert!(
                    bytes == ref_bytes,
                    "{arch} {key}: values differ from PyTorch's"
                );
            }
        }
        assert_eq!(meta["architecture"], arch);
        assert_eq!(meta["num_classes"], "100");
        assert_eq!(meta["in_channels"], "3");
        assert_eq!(meta["kd_version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(meta["source_checkpoint"], source.display().to_string());
        assert_eq!(meta["source_role"], crate::import::IMPORTED_ROLE);
        std::fs::remove_file(&out).unwrap();
    }
}

#[test]
fn every_architecture_round_trips_through_pth_and_kd_import() {
    let dir = tempfile::tempdir().unwrap();
    for zoo_entry in ZOO {
        let arch = zoo_entry.name;
        let source = fixture(arch);
        let reference = read_pth(&source);
        let (network, entry) = imported(arch);
        let out = dir.path().join(format!("{arch}.pth"));
        export_network(&network, &entry, &source, &out, ExportFormat::Pth, None).unwrap();

        // Read as a PyTorch file: PyTorch's keys, shapes, dtypes and values.
        let exported = read_pth(&out);
        assert_eq!(
            exported.keys().collect::<Vec<_>>(),
            reference.keys().collect::<Vec<_>>(),
            "{arch}"
        );
        for (key, (dtype, shape, bytes)) in &exported {
            let (ref_dtype, ref_shape, ref_bytes) = &reference[key];
            assert_eq!((dtype, shape), (ref_dtype, ref_shape), "{arch} {key}");
            if !key.ends_with("num_batches_tracked") {
                assert!(bytes == ref_bytes, "{arch} {key}: values differ");
            }
        }

        // Imported back: the same network, tensor for tensor.
        let (again, again_entry) = {
            let back =
                import_pytorch(&out, arch, &ImportOptions::default(), &Device::flex()).unwrap();
            (back.network, back.entry)
        };
        assert_eq!(again_entry, entry, "{arch}");
        assert!(
            torch_state_dict(&again) == torch_state_dict(&network),
            "{arch}: a tensor changed on the way through .pth"
        );
        std::fs::remove_file(&out).unwrap();
    }
}

#[test]
fn a_failed_export_leaves_the_target_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixture("resnet8");
    let (network, entry) = imported("resnet8");

    // A missing folder: named, nothing written.
    let out = dir.path().join("missing/resnet8.safetensors");
    let error = export_network(
        &network,
        &entry,
        &source,
        &out,
        ExportFormat::Safetensors,
        None,
    )
    .unwrap_err();
    assert!(error.is_user_error());
    let message = error.to_string();
    assert!(message.contains("missing/resnet8.safetensors"), "{message}");
    assert!(message.contains("does not exist"), "{message}");

    // A directory as the target.
    let error = export_network(
        &network,
        &entry,
        &source,
        dir.path(),
        ExportFormat::Pth,
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("it is a directory"), "{error}");

    // The source itself.
    let copy = dir.path().join("resnet8.pth");
    std::fs::copy(&source, &copy).unwrap();
    let error =
        export_network(&network, &entry, &copy, &copy, ExportFormat::Pth, None).unwrap_err();
    assert!(matches!(error, ExportError::SameFile { .. }), "{error}");
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        std::fs::read(&source).unwrap()
    );

    // An existing file in a folder that cannot be written: kept byte for byte, no leftovers.
    #[cfg(unix)]
    if !is_root() {
        use std::os::unix::fs::PermissionsExt;
        let locked = dir.path().join("locked");
        std::fs::create_dir(&locked).unwrap();
        let out = locked.join("old.safetensors");
        std::fs::write(&out, b"earlier export").unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
        let error = export_network(
            &network,
            &entry,
            &source,
            &out,
            ExportFormat::Safetensors,
            None,
        )
        .unwrap_err()
        .to_string();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(error.contains("cannot create a file in"), "{error}");
        assert_eq!(std::fs::read(&out).unwrap(), b"earlier export");
        assert_eq!(std::fs::read_dir(&locked).unwrap().count(), 1);
    }
}

#[cfg(unix)]
fn is_root() -> bool {
    // Root writes into read-only folders; the check is then meaningless.
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(true)
}

#[test]
fn a_successful_export_replaces_the_target_whole() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixture("resnet8");
    let (network, entry) = imported("resnet8");
    let out = dir.path().join("resnet8.safetensors");
    std::fs::write(&out, b"an older file").unwrap();
    export_network(
        &network,
        &entry,
        &source,
        &out,
        ExportFormat::Safetensors,
        None,
    )
    .unwrap();
    let (tensors, _) = read_safetensors(&out);
    assert!(tensors.contains_key("fc.weight"));
    // Only the target is left in the folder: no temporary file.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn the_format_follows_the_extension() {
    assert_eq!(
        ExportFormat::for_path(Path::new("a.pth")),
        ExportFormat::Pth
    );
    assert_eq!(ExportFormat::for_path(Path::new("a.PT")), ExportFormat::Pth);
    assert_eq!(
        ExportFormat::for_path(Path::new("a.safetensors")),
        ExportFormat::Safetensors
    );
    assert_eq!(
        ExportFormat::for_path(Path::new("student")),
        ExportFormat::Safetensors
    );
}

#[test]
fn the_same_network_always_exports_the_same_bytes() {
    // safetensors' own encoder writes metadata in a HashMap's order, which changes from one
    // map to the next: the bytes of an export must not.
    let dir = tempfile::tempdir().unwrap();
    let source = fixture("resnet8");
    let (network, entry) = imported("resnet8");
    for format in [ExportFormat::Safetensors, ExportFormat::Pth] {
        let files: Vec<Vec<u8>> = (0..4)
            .map(|i| {
                let out = dir.path().join(format!("{i}.{}", format.name()));
                export_network(&network, &entry, &source, &out, format, None).unwrap();
                std::fs::read(&out).unwrap()
            })
            .collect();
        assert!(
            files.windows(2).all(|w| w[0] == w[1]),
            "{}: exports differ",
            format.name()
        );
    }

    // The metadata comes first in the header, keys in order, and the header stays valid
    // safetensors (8-byte aligned, read back by the crate with every tensor).
    let bytes = std::fs::read(dir.path().join("0.safetensors")).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(len % 8, 0);
    let header = std::str::from_utf8(&bytes[8..8 + len]).unwrap();
    let keys = [
        "architecture",
        "format",
        "in_channels",
        "kd_version",
        "num_classes",
        "source_checkpoint",
        "source_role",
    ];
    let at: Vec<usize> = keys
        .iter()
        .map(|k| header.find(&format!("\"{k}\"")).unwrap())
        .collect();
    assert!(
        header.starts_with("{\"__metadata__\":{\"architecture\":"),
        "{header}"
    );
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{header}");
    let (tensors, meta) = read_safetensors(&dir.path().join("0.safetensors"));
    assert_eq!(tensors.len(), torch_state_dict(&network).len());
    assert_eq!(meta.len(), keys.len());
    assert_eq!(meta["num_classes"], "100");
}

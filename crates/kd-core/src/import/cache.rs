//! PyTorch teachers named directly in a config (`networks.teacher.checkpoint = "resnet56.pth"`):
//! checked by the plan from the file's keys, imported once when the run builds its roles, and
//! kept as kd checkpoints.
//!
//! The cache file is `<dir>/<stem>-<arch>-<key>.kdc`, where the key hashes the file's bytes,
//! the architecture, classes, channels, the checkpoint format and the input preparation the
//! import records (the one the config declares with `networks.<role>.trained_on`, if any), so
//! an edited `.pth`, another architecture or another declaration never reuses a stale import. A cache file that cannot be read, or fails
//! its checksums (a damaged disk, a file edited by hand), is imported again: the cache is
//! rebuilt from its source rather than trusted. `dir` is `<run.output_dir>/imports` in the
//! runtime.

use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};

use burn::tensor::Device;

use super::error::ImportError;
use super::pytorch::{ImportOptions, import_pytorch, write_imported_prepared};
use crate::checkpoint::{self, InputPreparation};
use crate::zoo::ModelSpec;

/// File extensions read as PyTorch checkpoints where a kd checkpoint could be named.
pub const PYTORCH_EXTENSIONS: &[&str] = &["pth", "pt", "ckpt", "tar"];

/// Whether `path` names a PyTorch checkpoint (by its extension).
pub fn is_pytorch_checkpoint(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| PYTORCH_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn content_key(
    path: &Path,
    arch: &str,
    spec: ModelSpec,
    preparation: Option<&InputPreparation>,
) -> Result<u64, ImportError> {
    let read = |e: std::io::Error| ImportError::Read {
        path: path.into(),
        message: e.to_string(),
    };
    // Fixed keys: stable for a given build of kd, which is all a cache needs.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut file = std::fs::File::open(path).map_err(read)?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(read)?;
        if n == 0 {
            break;
        }
        buffer[..n].hash(&mut hasher);
    }
    (
        arch,
        spec.num_classes,
        spec.in_channels,
        checkpoint::FORMAT_VERSION,
    )
        .hash(&mut hasher);
    // Hashed only when there is one, so the keys of imports without a record stay as they were.
    if let Some(preparation) = preparation {
        serde_json::to_string(preparation)
            .expect("a preparation serialises")
            .hash(&mut hasher);
    }
    Ok(hasher.finish())
}

/// Where the kd checkpoint imported from a PyTorch file lives in `dir` (whether or not it has
/// been imported yet): `<dir>/<stem>-<arch>-<key>.kdc`.
///
/// # Errors
/// [`ImportError::Read`] when the file cannot be read (its bytes are hashed).
pub fn cache_path(
    path: &Path,
    arch: &str,
    spec: ModelSpec,
    dir: &Path,
) -> Result<PathBuf, ImportError> {
    cache_path_prepared(path, arch, spec, dir, None)
}

/// [`cache_path`] of an import that records `preparation`.
///
/// # Errors
/// As [`cache_path`].
pub fn cache_path_prepared(
    path: &Path,
    arch: &str,
    spec: ModelSpec,
    dir: &Path,
    preparation: Option<&InputPreparation>,
) -> Result<PathBuf, ImportError> {
    let key = content_key(path, arch, spec, preparation)?;
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    Ok(dir.join(format!("{stem}-{arch}-{key:016x}.kdc")))
}

/// Imports a PyTorch file into `cached` (its [`cache_path`], which the plan computed) unless an
/// import that reads back whole (checksums verified) is already there.
///
/// # Errors
/// As [`import_pytorch`] and [`write_imported_prepared`].
pub fn import_cached(
    path: &Path,
    arch: &str,
    spec: ModelSpec,
    cached: &Path,
    device: &Device,
) -> Result<(), ImportError> {
    import_cached_prepared(path, arch, spec, cached, device, None)
}

/// [`import_cached`] into `cached` (its [`cache_path_prepared`]), recording `preparation`: what
/// the config declares the weights were trained on, never what the run's data happens to be.
///
/// # Errors
/// As [`import_pytorch`] and [`write_imported_prepared`].
pub fn import_cached_prepared(
    path: &Path,
    arch: &str,
    spec: ModelSpec,
    cached: &Path,
    device: &Device,
    preparation: Option<&InputPreparation>,
) -> Result<(), ImportError> {
    if let Ok((header, _)) = checkpoint::read(cached)
        && header.networks.len() == 1
    {
        tracing::debug!(
            "{} already imported as {}",
            path.display(),
            cached.display()
        );
        return Ok(());
    }
    let options = ImportOptions {
        num_classes: Some(spec.num_classes),
        in_channels: Some(spec.in_channels),
        key: None,
    };
    let imported = import_pytorch(path, arch, &options, device)?;
    write_imported_prepared(cached, &imported, path, preparation)?;
    tracing::info!(
        "imported {}: {} -> {}",
        path.display(),
        imported.describe(),
        cached.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The resnet8 CIFAR-10 fixture and the network it fits.
    fn fixture() -> (PathBuf, ModelSpec) {
        let source =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pytorch/resnet8_c10.pth");
        let spec = ModelSpec {
            num_classes: 10,
            in_channels: 3,
        };
        (source, spec)
    }

    #[test]
    fn a_damaged_cache_file_is_imported_again() {
        let (source, spec) = fixture();
        let dir = tempfile::tempdir().unwrap();
        let cached = cache_path(&source, "resnet8", spec, dir.path()).unwrap();
        let device = Device::flex();
        import_cached(&source, "resnet8", spec, &cached, &device).unwrap();
        let mut bytes = std::fs::read(&cached).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&cached, &bytes).unwrap();
        assert!(checkpoint::read(&cached).is_err());
        import_cached(&source, "resnet8", spec, &cached, &device).unwrap();
        let (header, blobs) = checkpoint::read(&cached).unwrap();
        assert_eq!(header.networks[0].arch, "resnet8");
        assert_eq!(blobs.len(), 1);
    }

    #[test]
    fn a_declared_preparation_is_recorded_and_keys_its_own_cache_file() {
        let (source, spec) = fixture();
        let dir = tempfile::tempdir().unwrap();
        let cifar10 = InputPreparation {
            format: Some("cifar10".into()),
            channels: 3,
            image_size: [32, 32],
            input_size: 32,
            mean: vec![0.4914, 0.4822, 0.4465],
            std: vec![0.2470, 0.2435, 0.2616],
            class_names: None,
        };
        let bare = cache_path(&source, "resnet8", spec, dir.path()).unwrap();
        assert_eq!(
            cache_path_prepared(&source, "resnet8", spec, dir.path(), None).unwrap(),
            bare,
            "no record: the key of every earlier import"
        );
        let prepared =
            cache_path_prepared(&source, "resnet8", spec, dir.path(), Some(&cifar10)).unwrap();
        assert_ne!(prepared, bare, "a declaration gets its own import");
        let mut other = cifar10.clone();
        other.mean[0] = 0.5071;
        assert_ne!(
            cache_path_prepared(&source, "resnet8", spec, dir.path(), Some(&other)).unwrap(),
            prepared
        );
        let device = Device::flex();
        import_cached_prepared(&source, "resnet8", spec, &prepared, &device, Some(&cifar10))
            .unwrap();
        import_cached(&source, "resnet8", spec, &bare, &device).unwrap();
        let (header, _) = checkpoint::read(&prepared).unwrap();
        assert_eq!(header.preparation, Some(cifar10));
        let (header, _) = checkpoint::read(&bare).unwrap();
        assert_eq!(header.preparation, None);
    }
}

//! PyTorch teachers named directly in a config (`networks.teacher.checkpoint = "resnet56.pth"`):
//! checked by the plan from the file's keys, imported once when the run builds its roles, and
//! kept as kd checkpoints.
//!
//! The cache file is `<dir>/<stem>-<arch>-<key>.kdc`, where the key hashes the file's bytes,
//! the architecture, classes, channels and the checkpoint format, so an edited `.pth` or
//! another architecture never reuses a stale import. A cache file that cannot be read, or fails
//! its checksums (a damaged disk, a file edited by hand), is imported again: the cache is
//! rebuilt from its source rather than trusted. `dir` is `<run.output_dir>/imports` in the
//! runtime.

use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};

use burn::tensor::Device;

use super::error::ImportError;
use super::pytorch::{ImportOptions, import_pytorch, write_imported};
use crate::checkpoint;
use crate::zoo::ModelSpec;

/// File extensions read as PyTorch checkpoints where a kd checkpoint could be named.
pub const PYTORCH_EXTENSIONS: &[&str] = &["pth", "pt", "ckpt", "tar"];

/// Whether `path` names a PyTorch checkpoint (by its extension).
pub fn is_pytorch_checkpoint(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| PYTORCH_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn content_key(path: &Path, arch: &str, spec: ModelSpec) -> Result<u64, ImportError> {
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
    let key = content_key(path, arch, spec)?;
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    Ok(dir.join(format!("{stem}-{arch}-{key:016x}.kdc")))
}

/// Imports a PyTorch file into `cached` (its [`cache_path`], which the plan computed) unless an
/// import that reads back whole (checksums verified) is already there.
///
/// # Errors
/// As [`import_pytorch`] and [`write_imported`].
pub fn import_cached(
    path: &Path,
    arch: &str,
    spec: ModelSpec,
    cached: &Path,
    device: &Device,
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
    write_imported(cached, &imported, path)?;
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

    #[test]
    fn a_damaged_cache_file_is_imported_again() {
        let source =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pytorch/resnet8_c10.pth");
        let dir = tempfile::tempdir().unwrap();
        let spec = ModelSpec {
            num_classes: 10,
            in_channels: 3,
        };
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
}

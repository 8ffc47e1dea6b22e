//! The one place that names a burn backend.
//!
//! Training runs on an autodiff device; frozen networks run on the plain device underneath
//! (`Module::valid`). The default build uses burn's pure-Rust `flex` CPU backend; the `cuda`
//! feature adds burn-cuda. burn-cuda panics inside a device thread when no driver is present, so
//! [`check`] probes for one first (the plan calls it) and [`device`] refuses to open a CUDA
//! device without it: the user gets an error naming the missing piece instead of a panic.

use std::path::Path;

use burn::tensor::Device;

/// Which device family to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// burn-flex on the CPU (always available).
    Flex,
    /// burn-cuda (needs the `cuda` feature and an NVIDIA driver).
    Cuda,
}

/// Why a device could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The binary was built without the `cuda` feature.
    #[error(
        "backend `cuda` is not compiled in: build with `--features cuda` (burn-cuda's build \
         downloads LLVM, so it needs network access at build time)"
    )]
    CudaNotCompiled,
    /// No CUDA driver was found.
    #[error("backend `cuda` needs an NVIDIA driver, but {0}")]
    NoCudaDriver(String),
}

/// Checks that a device of this kind can be opened, without opening it.
pub fn check(kind: BackendKind) -> Result<(), BackendError> {
    match kind {
        BackendKind::Flex => Ok(()),
        BackendKind::Cuda if cfg!(feature = "cuda") => {
            probe_cuda_driver().map_err(BackendError::NoCudaDriver)
        }
        BackendKind::Cuda => Err(BackendError::CudaNotCompiled),
    }
}

/// The plain (inference) device of the given kind.
pub fn device(kind: BackendKind) -> Result<Device, BackendError> {
    check(kind)?;
    match kind {
        BackendKind::Flex => Ok(Device::flex()),
        BackendKind::Cuda => cuda_device(),
    }
}

/// The autodiff (training) device of the given kind.
pub fn train_device(kind: BackendKind) -> Result<Device, BackendError> {
    Ok(device(kind)?.autodiff())
}

#[cfg(not(feature = "cuda"))]
fn cuda_device() -> Result<Device, BackendError> {
    Err(BackendError::CudaNotCompiled)
}

#[cfg(feature = "cuda")]
fn cuda_device() -> Result<Device, BackendError> {
    Ok(Device::cuda(0))
}

const DRIVER_DIRS: [&str; 5] = [
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/cuda/lib64",
    "/usr/lib/wsl/lib",
];

/// Looks for what the CUDA runtime needs, without loading anything: a device node and the
/// driver library `libcuda.so.1`.
pub fn probe_cuda_driver() -> Result<(), String> {
    let nodes = ["/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg"];
    if !nodes.iter().any(|n| Path::new(n).exists()) {
        return Err(format!(
            "no NVIDIA device node exists ({})",
            nodes.join(", ")
        ));
    }
    let from_env = std::env::var("LD_LIBRARY_PATH").unwrap_or_default();
    let found = from_env
        .split(':')
        .filter(|d| !d.is_empty())
        .chain(DRIVER_DIRS)
        .any(|dir| Path::new(dir).join("libcuda.so.1").exists());
    if found {
        Ok(())
    } else {
        Err("the driver library libcuda.so.1 is not in LD_LIBRARY_PATH or the usual folders".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flex_is_always_available() {
        assert_eq!(check(BackendKind::Flex), Ok(()));
        assert!(device(BackendKind::Flex).is_ok());
    }

    #[test]
    fn cuda_without_the_feature_is_a_clear_error() {
        if cfg!(feature = "cuda") {
            return;
        }
        let err = check(BackendKind::Cuda).unwrap_err();
        assert_eq!(err, BackendError::CudaNotCompiled);
        assert!(err.to_string().contains("--features cuda"));
        assert!(device(BackendKind::Cuda).is_err());
    }

    #[test]
    fn the_driver_probe_agrees_with_the_machine() {
        // On a machine without a GPU the probe must say what is missing; with one it passes.
        let has_node = Path::new("/dev/nvidiactl").exists() || Path::new("/dev/nvidia0").exists();
        match probe_cuda_driver() {
            Ok(()) => assert!(has_node || Path::new("/dev/dxg").exists()),
            Err(message) => {
                assert!(message.contains("NVIDIA device node") || message.contains("libcuda"))
            }
        }
    }
}

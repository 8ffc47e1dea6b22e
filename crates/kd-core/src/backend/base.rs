//! The device kinds and how to open one.
//!
//! Training runs on an autodiff device; frozen networks run on the plain device underneath
//! (`Module::valid`). The default build uses burn's pure-Rust `flex` CPU backend; the `cuda`
//! feature adds burn-cuda. burn-cuda panics inside a device thread when no driver is present, so
//! [`check`] probes for one first (the plan calls it, `probe.rs`) and [`device`] refuses to open
//! a CUDA device without it: the user gets an error naming the missing piece instead of a panic.

use burn::tensor::Device;

use super::probe::probe_cuda_driver;

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
}

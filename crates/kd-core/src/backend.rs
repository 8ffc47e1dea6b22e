//! The one place that names a burn backend.
//!
//! Training runs on an autodiff device; frozen networks run on the plain device underneath
//! (`Module::valid`). The default build uses burn's pure-Rust `flex` CPU backend; the `cuda`
//! feature adds burn-cuda, probed for a driver before use so a machine without one gets an
//! error instead of a panic in a device thread.

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
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The binary was built without the `cuda` feature.
    #[error("backend `cuda` is not compiled in: rebuild with `--features cuda`")]
    CudaNotCompiled,
    /// No CUDA driver library could be loaded.
    #[error("backend `cuda` needs an NVIDIA driver, but {0}")]
    NoCudaDriver(String),
}

/// The plain (inference) device of the given kind.
pub fn device(kind: BackendKind) -> Result<Device, BackendError> {
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
    probe_cuda_driver().map_err(BackendError::NoCudaDriver)?;
    Ok(Device::cuda(0))
}

/// Looks for the CUDA driver library the way the CUDA runtime would, without loading it.
#[cfg(feature = "cuda")]
fn probe_cuda_driver() -> Result<(), String> {
    if std::path::Path::new("/dev/nvidiactl").exists()
        || std::path::Path::new("/dev/nvidia0").exists()
    {
        return Ok(());
    }
    Err("no /dev/nvidia* device node exists on this machine".to_string())
}

//! What this binary can run on, for `kd backends` and the device line of `kd plan`: the backends
//! compiled in, whether each can open a device now (with the probe's reason when not), and the
//! CPU the flex backend's kernels use.

use serde::Serialize;

use super::base::{BackendKind, check};
use super::cpu::CpuInfo;

/// One backend and whether it can open a device here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendStatus {
    /// `flex` or `cuda`.
    pub kind: BackendKind,
    /// Whether this binary was built with it.
    pub compiled: bool,
    /// Whether a device of this kind can be opened now.
    pub available: bool,
    /// Why not, when it cannot (the probe's words); the device it opens, when it can.
    pub detail: String,
}

/// Every backend's status and the CPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendReport {
    /// `flex`, then `cuda`.
    pub backends: Vec<BackendStatus>,
    /// The CPU the flex kernels run on.
    pub cpu: CpuInfo,
}

impl BackendReport {
    /// Probes this machine (nothing is opened or loaded).
    pub fn detect() -> Self {
        let cpu = CpuInfo::detect();
        let backends = [BackendKind::Flex, BackendKind::Cuda]
            .into_iter()
            .map(|kind| status(kind, &cpu))
            .collect();
        BackendReport { backends, cpu }
    }
}

fn status(kind: BackendKind, cpu: &CpuInfo) -> BackendStatus {
    let compiled = match kind {
        BackendKind::Flex => true,
        BackendKind::Cuda => cfg!(feature = "cuda"),
    };
    let (available, detail) = match check(kind) {
        Ok(()) => (true, device_line(kind, cpu)),
        Err(e) => (false, e.to_string()),
    };
    BackendStatus {
        kind,
        compiled,
        available,
        detail,
    }
}

/// The device a run of this kind uses, in one line: `flex on AMD EPYC 9R14 (2 threads,
/// avx2+fma matrix kernels)` or `cuda device 0`.
pub fn device_line(kind: BackendKind, cpu: &CpuInfo) -> String {
    match kind {
        BackendKind::Flex => format!(
            "flex on {} ({} thread{}, {} matrix kernels)",
            cpu.model,
            cpu.threads,
            if cpu.threads == 1 { "" } else { "s" },
            cpu.matrix_kernels
        ),
        BackendKind::Cuda => "cuda device 0".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flex_is_compiled_and_available_and_cuda_says_why_not() {
        let report = BackendReport::detect();
        let flex = &report.backends[0];
        assert_eq!(
            (flex.kind, flex.compiled, flex.available),
            (BackendKind::Flex, true, true)
        );
        assert!(flex.detail.starts_with("flex on "), "{}", flex.detail);
        let cuda = &report.backends[1];
        assert_eq!(cuda.kind, BackendKind::Cuda);
        assert_eq!(cuda.compiled, cfg!(feature = "cuda"));
        if !cuda.available {
            assert!(
                cuda.detail.contains("--features cuda") || cuda.detail.contains("NVIDIA"),
                "{}",
                cuda.detail
            );
        }
    }
}

//! The one place that names a burn backend: the device kinds and how to open one (`base.rs`),
//! the CUDA driver probe (`probe.rs`), the CPU the flex kernels run on (`cpu.rs`) and the report
//! `kd backends` prints (`report.rs`).

mod base;
mod cpu;
mod probe;
mod report;

pub use base::{BackendError, BackendKind, check, device, train_device};
pub use cpu::{CpuInfo, EXTENSIONS};
pub use probe::probe_cuda_driver;
pub use report::{BackendReport, BackendStatus, device_line};

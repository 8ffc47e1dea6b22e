//! The one place that names a burn backend: the device kinds and how to open one (`base.rs`),
//! the CUDA driver probe (`probe.rs`), the CPU the flex kernels run on (`cpu.rs`), the C
//! allocator's settings for CPU training (`allocator.rs`) and the report `kd backends` prints
//! (`report.rs`).

mod allocator;
mod base;
mod cpu;
mod probe;
mod report;

pub use allocator::{MMAP_THRESHOLD, TRIM_THRESHOLD, keep_freed_memory};
pub use base::{BackendError, BackendKind, check, device, train_device};
pub use cpu::{CpuInfo, EXTENSIONS};
pub use probe::probe_cuda_driver;
pub use report::{BackendReport, BackendStatus, device_line};

//! The C allocator's settings for training on the CPU.
//!
//! A training step allocates and frees the same large buffers every step (activations, im2col
//! matrices, gradients: hundreds of KB to tens of MB each). glibc's `malloc` serves blocks above
//! its mmap threshold with fresh `mmap`s and returns free memory at the top of a heap to the
//! system once it exceeds the trim threshold, so the next step takes the pages back one page
//! fault at a time, and every `munmap` interrupts the other cores to flush their TLBs. In a
//! runtime step, whose buffers come and go on several threads, that was most of the gap between
//! a `kd bench step` of resnet20 alone and the bare training step it contains (383 against 650
//! images per second on a 2-core AMD EPYC; with the settings below, 640: docs/results/bench.md).
//! [`keep_freed_memory`] raises both thresholds, so freed buffers are reused instead; the
//! process keeps its peak footprint rather than shrinking between steps. Other platforms'
//! allocators are left alone.
#![allow(unsafe_code)]

/// Blocks up to this size are served from glibc's heaps: 32 MiB, the ceiling glibc's own
/// dynamic threshold grows to on 64-bit targets (`DEFAULT_MMAP_THRESHOLD_MAX`).
pub const MMAP_THRESHOLD: usize = 32 << 20;

/// Free memory glibc keeps at the top of a heap before returning it to the system: 1 GiB.
pub const TRIM_THRESHOLD: usize = 1 << 30;

/// Sets glibc's mmap and trim thresholds to [`MMAP_THRESHOLD`] and [`TRIM_THRESHOLD`] for
/// this process (`mallopt`, as `GLIBC_TUNABLES=glibc.malloc.mmap_threshold=…:glibc.malloc.
/// trim_threshold=…` would). Call it once, at start-up; the `kd` binary does. Returns whether
/// the allocator accepted both (always `false` off glibc, where nothing is changed).
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only changes malloc's tuning parameters under malloc's own lock;
        // both values are within the ranges glibc documents (it returns 0 for a value it
        // refuses, which is reported, not undefined behaviour).
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// glibc accepts both values.
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_accepts_the_thresholds() {
        assert!(keep_freed_memory());
    }
}

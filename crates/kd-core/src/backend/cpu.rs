//! What the CPU kernels run on: the processor's model, the vector extensions it has (detected at
//! run time), the matrix-multiply path the `gemm` crate picks from them, and the thread count.
//!
//! `gemm` (under kd's convolution kernels and burn-flex alike) chooses its kernels by run-time
//! detection among the ones compiled in: AVX-512 only when built with its `x86-v4` feature
//! (kd-core's `x86-v4` feature turns it on), else AVX2 with FMA, else the SSE2 baseline. Every
//! speed a benchmark reports depends on this, so `kd backends` prints it and benchmarks record it.

use serde::Serialize;

/// This machine's CPU as the kernels see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CpuInfo {
    /// `model name` from `/proc/cpuinfo` (`unknown` where there is none).
    pub model: String,
    /// The target architecture (`x86_64`, `aarch64`).
    pub architecture: &'static str,
    /// Vector extensions detected at run time, in the order of [`EXTENSIONS`].
    pub extensions: Vec<&'static str>,
    /// The matrix-multiply path `gemm` takes here: `avx512f`, `avx2+fma` or `baseline`.
    pub matrix_kernels: &'static str,
    /// Extensions this CPU has that the build does not use, with the switch that would.
    pub unused: Option<String>,
    /// Threads of the pool the kernels run on (rayon's global pool; `RAYON_NUM_THREADS`).
    pub threads: usize,
}

/// The x86 extensions reported, from SSE4.2 to the AVX-512 subsets `gemm` and burn care about.
pub const EXTENSIONS: [&str; 12] = [
    "sse4.2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512cd",
    "avx512dq",
    "avx512vl",
    "avx512vnni",
    "avx512bf16",
];

impl CpuInfo {
    /// Reads this machine.
    pub fn detect() -> Self {
        let model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| model_name(&text))
            .unwrap_or_else(|| "unknown".into());
        let extensions = detected_extensions();
        let has = |name: &str| extensions.contains(&name);
        let (matrix_kernels, unused) = matrix_path(cfg!(feature = "x86-v4"), has("avx512f"), {
            has("avx2") && has("fma")
        });
        CpuInfo {
            model,
            architecture: std::env::consts::ARCH,
            extensions,
            matrix_kernels,
            unused,
            threads: rayon::current_num_threads(),
        }
    }
}

/// The `model name` line of a `/proc/cpuinfo` text.
fn model_name(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map(|(_, name)| name.trim().to_string())
}

/// `gemm`'s choice (see the module docs) and what the build leaves unused.
fn matrix_path(v4_compiled: bool, avx512f: bool, avx2_fma: bool) -> (&'static str, Option<String>) {
    if avx512f && v4_compiled {
        ("avx512f", None)
    } else if avx2_fma {
        let unused = avx512f.then(|| {
            "avx512f: present but not compiled in (build with `--features kd-core/x86-v4`)".into()
        });
        ("avx2+fma", unused)
    } else {
        ("baseline", None)
    }
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
fn detected_extensions() -> Vec<&'static str> {
    let detected = [
        std::arch::is_x86_feature_detected!("sse4.2"),
        std::arch::is_x86_feature_detected!("avx"),
        std::arch::is_x86_feature_detected!("avx2"),
        std::arch::is_x86_feature_detected!("fma"),
        std::arch::is_x86_feature_detected!("f16c"),
        std::arch::is_x86_feature_detected!("avx512f"),
        std::arch::is_x86_feature_detected!("avx512bw"),
        std::arch::is_x86_feature_detected!("avx512cd"),
        std::arch::is_x86_feature_detected!("avx512dq"),
        std::arch::is_x86_feature_detected!("avx512vl"),
        std::arch::is_x86_feature_detected!("avx512vnni"),
        std::arch::is_x86_feature_detected!("avx512bf16"),
    ];
    EXTENSIONS
        .iter()
        .zip(detected)
        .filter(|(_, on)| *on)
        .map(|(name, _)| *name)
        .collect()
}

#[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
fn detected_extensions() -> Vec<&'static str> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_name_is_read_from_cpuinfo() {
        let text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R14\nflags\t: fpu\n";
        assert_eq!(model_name(text).as_deref(), Some("AMD EPYC 9R14"));
        assert_eq!(model_name("processor\t: 0\n"), None);
    }

    #[test]
    fn gemm_takes_avx512_only_when_compiled_in() {
        assert_eq!(matrix_path(true, true, true), ("avx512f", None));
        let (path, unused) = matrix_path(false, true, true);
        assert_eq!(path, "avx2+fma");
        assert!(unused.unwrap().contains("x86-v4"));
        assert_eq!(matrix_path(false, false, true), ("avx2+fma", None));
        assert_eq!(matrix_path(true, false, false), ("baseline", None));
    }

    #[test]
    fn detection_agrees_with_proc_cpuinfo() {
        let info = CpuInfo::detect();
        assert!(info.threads >= 1);
        let Ok(text) = std::fs::read_to_string("/proc/cpuinfo") else {
            return;
        };
        let flags: Vec<&str> = text
            .lines()
            .find(|l| l.starts_with("flags"))
            .map(|l| {
                l.split(':')
                    .nth(1)
                    .unwrap_or("")
                    .split_whitespace()
                    .collect()
            })
            .unwrap_or_default();
        // The kernel's names for the two that matter most for `gemm`.
        for (ours, kernel) in [("avx2", "avx2"), ("avx512f", "avx512f"), ("fma", "fma")] {
            assert_eq!(
                info.extensions.contains(&ours),
                flags.contains(&kernel),
                "{ours}"
            );
        }
    }
}

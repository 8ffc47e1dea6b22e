//! Throughput measurements for `kd bench` (driven by `cargo xtask bench`): zoo models' bare
//! training and inference steps written the plain burn way, the batch pipeline, and (through
//! `runtime::time_plan_steps`) whole runtime steps of a planned run, so that the runtime's own
//! overhead is the difference between the two.
//!
//! Every measurement runs warm-up iterations, then times each iteration on its own and reports
//! the median with the minimum and maximum, in images per second. Results are synchronised
//! (`into_data`/`into_scalar`) inside the timed region, so asynchronous backends are timed
//! honestly too.

mod data;
mod model;

use std::time::Instant;

use serde::Serialize;

pub use data::pipeline_throughput;
pub use model::{inference_throughput, train_throughput};

/// Images per second over timed iterations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Throughput {
    /// Median over the timed iterations.
    pub median: f64,
    /// Slowest iteration.
    pub min: f64,
    /// Fastest iteration.
    pub max: f64,
    /// Iterations timed.
    pub iterations: usize,
}

impl Throughput {
    /// From per-iteration seconds, each iteration handling `images` images.
    pub fn from_seconds(seconds: &[f64], images: usize) -> Throughput {
        let mut rates: Vec<f64> = seconds.iter().map(|s| images as f64 / s).collect();
        rates.sort_by(f64::total_cmp);
        let n = rates.len();
        let median = if n == 0 {
            0.0
        } else if n % 2 == 1 {
            rates[n / 2]
        } else {
            (rates[n / 2 - 1] + rates[n / 2]) / 2.0
        };
        Throughput {
            median,
            min: rates.first().copied().unwrap_or(0.0),
            max: rates.last().copied().unwrap_or(0.0),
            iterations: n,
        }
    }
}

/// Runs `warmup` untimed then `iterations` timed calls of `step`; seconds per timed call.
pub fn time_iterations(warmup: usize, iterations: usize, mut step: impl FnMut()) -> Vec<f64> {
    for _ in 0..warmup {
        step();
    }
    (0..iterations.max(1))
        .map(|_| {
            let start = Instant::now();
            step();
            start.elapsed().as_secs_f64()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_takes_the_median_rate() {
        // 64 images in 0.5 s, 1 s, 2 s: 128, 64 and 32 images/s.
        let t = Throughput::from_seconds(&[1.0, 0.5, 2.0], 64);
        assert_eq!(
            (t.median, t.min, t.max, t.iterations),
            (64.0, 32.0, 128.0, 3)
        );
        let even = Throughput::from_seconds(&[1.0, 0.5], 64);
        assert_eq!(even.median, 96.0);
    }

    #[test]
    fn warm_up_iterations_are_not_timed() {
        let mut calls = 0;
        let seconds = time_iterations(2, 3, || calls += 1);
        assert_eq!((calls, seconds.len()), (5, 3));
    }
}

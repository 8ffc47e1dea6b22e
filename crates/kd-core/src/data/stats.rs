//! Summary statistics of an [`ImageSet`]: count, class histogram, per-channel mean and standard
//! deviation of pixel values scaled to [0, 1] (population std, as `numpy.std`). Sums are kept
//! in integers, so the result does not depend on summation order. `kd data stats` prints this.

use serde::Serialize;

use super::base::ImageSet;

/// What `kd data stats` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// Number of images.
    pub count: usize,
    /// Images per class, indexed by label.
    pub classes: Vec<usize>,
    /// Per-channel mean of pixel/255.
    pub mean: Vec<f64>,
    /// Per-channel population standard deviation of pixel/255.
    pub std: Vec<f64>,
}

/// Computes [`Stats`] for a set.
pub fn stats(set: &ImageSet) -> Stats {
    let plane = set.height * set.width;
    let mut sum = vec![0u64; set.channels];
    let mut sum_sq = vec![0u128; set.channels];
    for image in set.pixels.chunks_exact(set.image_len().max(1)) {
        for (c, values) in image.chunks_exact(plane).enumerate() {
            for &v in values {
                sum[c] += v as u64;
                sum_sq[c] += (v as u128) * (v as u128);
            }
        }
    }
    let n = (set.len() * plane) as f64;
    let mean: Vec<f64> = sum.iter().map(|&s| s as f64 / n / 255.0).collect();
    let std = sum_sq
        .iter()
        .zip(&mean)
        .map(|(&sq, &m)| (sq as f64 / n / (255.0 * 255.0) - m * m).max(0.0).sqrt())
        .collect();
    Stats {
        count: set.len(),
        classes: set.class_histogram(),
        mean,
        std,
    }
}

//! Training-mode batch normalisation over NCHW `f32` slices: batch statistics, the normalised
//! output, and the gradients of input, scale and shift, each in one or two passes.
//!
//! burn's generic `batch_norm_train` and its backward (what flex runs) transpose the activation
//! to `[C, N·H·W]` with a full copy for every reduction and spend a pass per elementwise step;
//! these kernels read each plane in place. Statistics are the biased batch mean and variance, as
//! burn computes them (the running estimates are updated from them by the caller). Each plane is
//! reduced in 32 `f32` lanes ([`super::reduce`]) and the planes' sums are added in `f64`.

use rayon::prelude::*;

use super::{epilogue, reduce, uninit};

/// The sizes of a `[batch, channels, height·width]` activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planes {
    /// Images.
    pub batch: usize,
    /// Channels.
    pub channels: usize,
    /// Elements per channel plane (height · width).
    pub plane: usize,
}

impl Planes {
    fn count(&self) -> f64 {
        (self.batch * self.plane) as f64
    }

    /// The planes of channel `c`, one per image.
    fn channel<'a>(&self, x: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> {
        (0..self.batch).map(move |n| {
            let at = (n * self.channels + c) * self.plane;
            &x[at..at + self.plane]
        })
    }
}

/// Per-channel batch mean and biased variance, as `[mean_0 … mean_C-1, var_0 … var_C-1]`.
pub fn stats(p: Planes, x: &[f32]) -> Vec<f32> {
    let per_channel: Vec<(f32, f32)> = (0..p.channels)
        .into_par_iter()
        .map(|c| {
            let sum: f64 = p.channel(x, c).map(|plane| reduce::sum(plane) as f64).sum();
            let mean = sum / p.count();
            let squares: f64 = p
                .channel(x, c)
                .map(|plane| reduce::squared_deviation(plane, mean as f32) as f64)
                .sum();
            (mean as f32, (squares / p.count()) as f32)
        })
        .collect();
    let mut out: Vec<f32> = per_channel.iter().map(|s| s.0).collect();
    out.extend(per_channel.iter().map(|s| s.1));
    out
}

fn inv_std(var: f32, epsilon: f64) -> f32 {
    (1.0 / (var as f64 + epsilon).sqrt()) as f32
}

/// Channel `c`'s `(scale, shift)` with `y = x · scale + shift` the normalised output: the one
/// expression [`forward`] computes `y` with and [`backward`] recomputes a ReLU's mask with.
fn coefficients(
    (gamma, beta): (&[f32], &[f32]),
    (mean, var): (&[f32], &[f32]),
    epsilon: f64,
    c: usize,
) -> (f32, f32) {
    let scale = gamma[c] * inv_std(var[c], epsilon);
    (scale, beta[c] - mean[c] * scale)
}

/// `(x − mean) / √(var + ε) · gamma + beta`, with `stats` as [`stats`] returns them, clamped at
/// zero when `relu` (the ReLU after the batch norm, in the same pass).
pub fn forward(
    p: Planes,
    x: &[f32],
    (gamma, beta): (&[f32], &[f32]),
    stats: &[f32],
    epsilon: f64,
    relu: bool,
) -> Vec<f32> {
    let (mean, var) = stats.split_at(p.channels);
    affine(
        p,
        x,
        |c| coefficients((gamma, beta), (mean, var), epsilon, c),
        relu,
    )
}

/// `x · scale + shift` per channel (clamped at zero when `relu`), with `coefficients(c)` giving
/// channel `c`'s `(scale, shift)`, planes spread over rayon's workers.
fn affine(
    p: Planes,
    x: &[f32],
    coefficients: impl Fn(usize) -> (f32, f32) + Sync,
    relu: bool,
) -> Vec<f32> {
    let per_plane = |i: usize| coefficients(i % p.channels);
    if relu {
        uninit::map_chunks(p.plane, x, |i| {
            let (scale, shift) = per_plane(i);
            move |x| epilogue::relu(x * scale + shift)
        })
    } else {
        uninit::map_chunks(p.plane, x, |i| {
            let (scale, shift) = per_plane(i);
            move |x| x * scale + shift
        })
    }
}

/// `max(x · scale + shift, 0)` per channel, planes spread over rayon's workers: an inference
/// batch norm (`scale = γ / √(running_var + ε)`, `shift = β − running_mean · scale`) and the ReLU
/// after it in one pass, as pre-activation blocks (WRN) apply them to their input.
///
/// # Panics
/// If `x` is not `p`'s size or `scale`, `shift` have fewer than `p.channels` values.
pub fn scale_shift_relu(p: Planes, x: &[f32], scale: &[f32], shift: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), p.batch * p.channels * p.plane);
    affine(p, x, |c| (scale[c], shift[c]), true)
}

/// The gradients `(dx, dgamma, dbeta)` of [`forward`] (with the same `relu`) given the output
/// gradient `dy`, with the batch statistics' own dependence on `x` included. With `relu`, `dy`
/// counts only where the ReLU passes it, as ReLU's own backward does (the normalised output
/// positive or NaN, `super::epilogue::relu_passes`); the mask is recomputed from `x` with
/// [`forward`]'s expression, so it is the forward's exactly.
pub fn backward(
    p: Planes,
    x: &[f32],
    (gamma, beta): (&[f32], &[f32]),
    stats: &[f32],
    epsilon: f64,
    dy: &[f32],
    relu: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (mean, var) = stats.split_at(p.channels);
    let per_channel = |c| coefficients((gamma, beta), (mean, var), epsilon, c);
    // Per channel: Σ dy and Σ dy · x̂ (where the ReLU passes the gradient, with `relu`).
    let sums: Vec<(f32, f32)> = (0..p.channels)
        .into_par_iter()
        .map(|c| {
            let (m, s) = (mean[c], inv_std(var[c], epsilon));
            let (mut sum_dy, mut sum_dy_centered) = (0.0f64, 0.0f64);
            for (xs, ds) in p.channel(x, c).zip(p.channel(dy, c)) {
                let (sum, centered) = if relu {
                    reduce::sum_and_dot_centered_relu(ds, xs, m, per_channel(c))
                } else {
                    reduce::sum_and_dot_centered(ds, xs, m)
                };
                sum_dy += sum as f64;
                sum_dy_centered += centered as f64;
            }
            (sum_dy as f32, (sum_dy_centered * s as f64) as f32)
        })
        .collect();
    let count = p.count() as f32;
    // Channel `c`'s `dx = g · (dy − mean_dy − (x − m) · s · mean_dy_xhat)`.
    let terms = |i: usize| {
        let c = i % p.channels;
        let (m, s) = (mean[c], inv_std(var[c], epsilon));
        let (sum_dy, sum_dy_xhat) = sums[c];
        let (mean_dy, mean_dy_xhat) = (sum_dy / count, sum_dy_xhat / count);
        (gamma[c] * s, mean_dy, m, s, mean_dy_xhat, per_channel(c))
    };
    let dx = if relu {
        uninit::zip_map_chunks(p.plane, x, dy, |i| {
            let (g, mean_dy, m, s, mean_dy_xhat, (scale, shift)) = terms(i);
            move |x, dy| {
                let dy = if epilogue::relu_passes(x * scale + shift) {
                    dy
                } else {
                    0.0
                };
                g * (dy - mean_dy - (x - m) * s * mean_dy_xhat)
            }
        })
    } else {
        uninit::zip_map_chunks(p.plane, x, dy, |i| {
            let (g, mean_dy, m, s, mean_dy_xhat, _) = terms(i);
            move |x, dy| g * (dy - mean_dy - (x - m) * s * mean_dy_xhat)
        })
    };
    let dgamma = sums.iter().map(|s| s.1).collect();
    let dbeta = sums.iter().map(|s| s.0).collect();
    (dx, dgamma, dbeta)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-worked: one channel, values 1, 2, 3, 6 → mean 3, variance (4+1+0+9)/4 = 3.5.
    #[test]
    fn statistics_and_output_of_a_small_batch() {
        let p = Planes {
            batch: 2,
            channels: 1,
            plane: 2,
        };
        let x = [1.0, 2.0, 3.0, 6.0];
        let s = stats(p, &x);
        assert_eq!(s, vec![3.0, 3.5]);
        let y = forward(p, &x, (&[2.0], &[1.0]), &s, 0.0, false);
        let inv = 1.0 / 3.5f32.sqrt();
        for (y, x) in y.iter().zip(x) {
            assert!((y - ((x - 3.0) * inv * 2.0 + 1.0)).abs() < 1e-6);
        }
    }

    /// A fused ReLU keeps NaN (a diverged scale shows as NaN, not zeros), and its backward
    /// passes the gradient where the output is NaN, as burn's ReLU does: channel 0's shift
    /// gradient counts both outputs, channel 1's only its positive one.
    #[test]
    fn fused_relu_keeps_nan() {
        let p = Planes {
            batch: 1,
            channels: 2,
            plane: 2,
        };
        let x = [0.5, 1.0, -1.0, 1.0];
        let (gamma, beta) = ([f32::NAN, 1.0], [0.0, 0.0]);
        let s = stats(p, &x);
        let y = forward(p, &x, (&gamma, &beta), &s, 1e-5, true);
        assert!(y[0].is_nan() && y[1].is_nan(), "{y:?}");
        assert_eq!(y[2], 0.0);
        assert!(y[3] > 0.9);
        let (_, _, dbeta) = backward(p, &x, (&gamma, &beta), &s, 1e-5, &[1.0; 4], true);
        assert_eq!(dbeta, vec![2.0, 1.0]);
    }

    /// The gradient of `Σ r · bn(x)`, and of `Σ r · relu(bn(x))`, against central differences
    /// (no output of the ReLU case lies within the step of zero).
    #[test]
    fn gradients_match_finite_differences() {
        let p = Planes {
            batch: 2,
            channels: 2,
            plane: 3,
        };
        let x: Vec<f32> = (0..12).map(|i| ((i * 7 % 5) as f32) * 0.6 - 1.0).collect();
        let r: Vec<f32> = (0..12).map(|i| ((i * 3 % 7) as f32) * 0.3 - 0.8).collect();
        let (gamma, beta) = ([1.5f32, -0.7], [0.35f32, 0.1]);
        for relu in [false, true] {
            let loss = |x: &[f32], gamma: &[f32], beta: &[f32]| -> f64 {
                let s = stats(p, x);
                forward(p, x, (gamma, beta), &s, 1e-5, relu)
                    .iter()
                    .zip(&r)
                    .map(|(y, r)| (y * r) as f64)
                    .sum()
            };
            let s = stats(p, &x);
            let (dx, dgamma, dbeta) = backward(p, &x, (&gamma, &beta), &s, 1e-5, &r, relu);
            let y = forward(p, &x, (&gamma, &beta), &s, 1e-5, false);
            assert!(y.iter().all(|y| y.abs() > 0.1), "{y:?}");
            if relu {
                assert!(y.iter().any(|&y| y < 0.0) && y.iter().any(|&y| y > 0.0));
            }
            let h = 1e-2f32;
            for i in 0..x.len() {
                let (mut up, mut down) = (x.clone(), x.clone());
                up[i] += h;
                down[i] -= h;
                let numeric =
                    (loss(&up, &gamma, &beta) - loss(&down, &gamma, &beta)) / (2.0 * h as f64);
                assert!(
                    (dx[i] as f64 - numeric).abs() < 2e-3,
                    "relu {relu} dx[{i}]: {} vs {numeric}",
                    dx[i]
                );
            }
            for c in 0..2 {
                let (mut up, mut down) = (gamma, gamma);
                up[c] += h;
                down[c] -= h;
                let numeric = (loss(&x, &up, &beta) - loss(&x, &down, &beta)) / (2.0 * h as f64);
                assert!((dgamma[c] as f64 - numeric).abs() < 2e-3, "relu {relu}");
                let (mut up, mut down) = (beta, beta);
                up[c] += h;
                down[c] -= h;
                let numeric = (loss(&x, &gamma, &up) - loss(&x, &gamma, &down)) / (2.0 * h as f64);
                assert!((dbeta[c] as f64 - numeric).abs() < 2e-3, "relu {relu}");
            }
        }
    }
}

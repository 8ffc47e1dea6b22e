//! What an inference convolution does to its output before returning it: add a per-channel
//! bias, add a residual, clamp at zero (ReLU), each optional, in one pass over each image's
//! output while it is still in cache ([`Epilogue::apply`], after `super::dense`'s products), or
//! in the direct convolution's tiles before their last store (`super::direct`), so that its
//! output is written once.
//!
//! A frozen network (a teacher in a distillation step, `kd eval`, `kd predict`) runs every
//! conv → bn (→ ReLU) of the zoo as one convolution with the batch norm folded in
//! (`zoo::layers::conv_norm`); burn would then add the bias, the residual and the ReLU as three
//! elementwise passes over the whole batch, each reading and writing it from memory.

/// `max(v, 0)` as burn-flex's (and PyTorch's) ReLU computes it: a NaN stays NaN, so a diverging
/// network shows NaN rather than zeros. Every ReLU kd fuses into a kernel clamps this way; the
/// vector kernels use `max(0, v)`, whose instruction returns its second operand `v` when either
/// is NaN (and when both are zero, so a `-0.0` would stay `-0.0` there; the kernels' sums start
/// at `+0.0`, and adding to `+0.0` never gives `-0.0`, so they are never `-0.0`).
pub(super) fn relu(v: f32) -> f32 {
    if v.is_nan() || v > 0.0 { v } else { 0.0 }
}

/// Whether a ReLU's backward passes the gradient at output (or input) `v`: where `v > 0`, and
/// where it is NaN, as burn-flex's `relu_backward` does.
pub(super) fn relu_passes(v: f32) -> bool {
    v.is_nan() || v > 0.0
}

/// The optional steps after a convolution, in the order they apply: `y + bias[c] + residual`,
/// then `max(·, 0)` when `relu`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Epilogue<'a> {
    /// One value per output channel.
    pub bias: Option<&'a [f32]>,
    /// A tensor of the output's shape (`[batch, channels, h, w]`, contiguous).
    pub residual: Option<&'a [f32]>,
    /// Clamp at zero last.
    pub relu: bool,
}

impl Epilogue<'_> {
    /// No step at all: the convolution's output as it is.
    pub const NONE: Epilogue<'static> = Epilogue {
        bias: None,
        residual: None,
        relu: false,
    };

    /// Applies the steps to image `image`'s output `y` (`[channels, plane]`).
    ///
    /// # Panics
    /// If `y`, the bias or the residual is shorter than the shape says.
    pub fn apply(&self, image: usize, channels: usize, plane: usize, y: &mut [f32]) {
        if self.bias.is_none() && self.residual.is_none() && !self.relu {
            return;
        }
        let y = &mut y[..channels * plane];
        let residual = self
            .residual
            .map(|r| &r[image * channels * plane..(image + 1) * channels * plane]);
        for (c, row) in y.chunks_exact_mut(plane).enumerate() {
            let b = self.bias.map_or(0.0, |b| b[c]);
            match residual {
                Some(r) => {
                    let r = &r[c * plane..(c + 1) * plane];
                    row.iter_mut().zip(r).for_each(|(v, r)| *v = *v + b + r);
                }
                // A bias of 0 is still added: `-0.0 + 0.0` is `+0.0`, as in the unfused ops.
                None if self.bias.is_some() => row.iter_mut().for_each(|v| *v += b),
                None => {}
            }
            if self.relu {
                row.iter_mut().for_each(|v| *v = relu(*v));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ReLU clamps negatives and zeros to `+0.0` and keeps NaN, as burn-flex's does.
    #[test]
    fn relu_keeps_nan() {
        assert_eq!(relu(2.5), 2.5);
        assert_eq!(relu(-1.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(relu(-0.0).to_bits(), 0.0f32.to_bits());
        assert!(relu(f32::NAN).is_nan());
        assert_eq!(relu(f32::NEG_INFINITY), 0.0);
        assert!(relu_passes(1e-30) && relu_passes(f32::NAN));
        assert!(!relu_passes(0.0) && !relu_passes(-0.0) && !relu_passes(-3.0));
        let mut y = [f32::NAN, -2.0, 3.0];
        let relu_only = Epilogue {
            relu: true,
            ..Epilogue::NONE
        };
        relu_only.apply(0, 1, 3, &mut y);
        assert!(y[0].is_nan() && y[1..] == [0.0, 3.0]);
    }

    #[test]
    fn bias_then_residual_then_relu_per_channel_and_image() {
        // 2 images, 2 channels, planes of 3.
        let bias = [1.0, -10.0];
        let residual: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 2.0).collect();
        let y0: Vec<f32> = (0..12).map(|i| (i as f32 - 6.0) * 0.25).collect();
        let want = |relu: bool| -> Vec<f32> {
            (0..12)
                .map(|i| {
                    let c = (i / 3) % 2;
                    let v = y0[i] + bias[c] + residual[i];
                    if relu { v.max(0.0) } else { v }
                })
                .collect()
        };
        for relu in [false, true] {
            let epilogue = Epilogue {
                bias: Some(&bias),
                residual: Some(&residual),
                relu,
            };
            let mut y = y0.clone();
            for (image, y) in y.chunks_exact_mut(6).enumerate() {
                epilogue.apply(image, 2, 3, y);
            }
            assert_eq!(y, want(relu));
        }
        // Nothing to do leaves the output alone; ReLU alone clamps.
        let mut y = y0.clone();
        Epilogue::NONE.apply(0, 2, 3, &mut y[..6]);
        assert_eq!(y, y0);
        let relu_only = Epilogue {
            relu: true,
            ..Epilogue::NONE
        };
        relu_only.apply(1, 2, 3, &mut y[6..]);
        assert_eq!(&y[..6], &y0[..6]);
        assert!(y[6..].iter().zip(&y0[6..]).all(|(a, b)| *a == b.max(0.0)));
        // A zero bias is added like any other: `-0.0 + 0.0` is `+0.0`, as burn's add gives.
        let mut y = [-0.0f32];
        let zero = Epilogue {
            bias: Some(&[0.0]),
            ..Epilogue::NONE
        };
        zero.apply(0, 1, 1, &mut y);
        assert_eq!(y[0].to_bits(), 0.0f32.to_bits());
    }
}

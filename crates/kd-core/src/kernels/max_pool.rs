//! Max pooling without padding or dilation (VGG's `nn.MaxPool2d(2)`), forward and backward, on
//! contiguous NCHW `f32` slices, planes spread over rayon's workers.
//!
//! burn-flex 0.22.1 runs every max pooling through its generic 3-D pooling with indices, even
//! for inference, and that was a seventh of a VGG-13 forward (docs/results/bench.md). Here each
//! window is a plain maximum. The backward routes each output gradient to the position the
//! forward picked, found again from `x` instead of kept as an index tensor: the first maximum
//! in row-major window order, a NaN counting as larger than any number, so that a NaN
//! propagates instead of being skipped, as in PyTorch (whose backward routes to the last NaN of a
//! window, this one to the first).

use rayon::prelude::*;

/// Sizes of one max pooling: input `[batch, channels, in_h, in_w]`, output `[batch, channels,
/// out_h, out_w]` with `out = (in − kernel) / stride + 1`. Built by [`Pool::new`], which keeps
/// every window inside the plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    /// `batch · channels`.
    planes: usize,
    in_h: usize,
    in_w: usize,
    /// Window (height, width).
    kernel: [usize; 2],
    /// Step between windows (height, width).
    stride: [usize; 2],
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
}

impl Pool {
    /// The pooling of `[batch, channels, in_h, in_w]` by `kernel` and `stride`, or `None` when
    /// the window is larger than the plane or a window or stride size is zero.
    pub fn new(x: [usize; 4], kernel: [usize; 2], stride: [usize; 2]) -> Option<Self> {
        let [batch, channels, in_h, in_w] = x;
        if kernel.contains(&0) || stride.contains(&0) || in_h < kernel[0] || in_w < kernel[1] {
            return None;
        }
        Some(Self {
            planes: batch * channels,
            in_h,
            in_w,
            kernel,
            stride,
            out_h: (in_h - kernel[0]) / stride[0] + 1,
            out_w: (in_w - kernel[1]) / stride[1] + 1,
        })
    }

    fn in_plane(&self) -> usize {
        self.in_h * self.in_w
    }

    fn out_plane(&self) -> usize {
        self.out_h * self.out_w
    }

    /// The flat index in its plane of the maximum of output `(oh, ow)`'s window.
    fn argmax(&self, x: &[f32], oh: usize, ow: usize) -> usize {
        let (top, left) = (oh * self.stride[0], ow * self.stride[1]);
        let mut best = top * self.in_w + left;
        for r in top..top + self.kernel[0] {
            for c in left..left + self.kernel[1] {
                let at = r * self.in_w + c;
                if larger(x[at], x[best]) {
                    best = at;
                }
            }
        }
        best
    }
}

/// Whether `v` replaces `best` as the maximum: larger, or NaN where `best` is not. Written
/// without short-circuits, so that the compiler turns it into vector compares and a blend.
#[inline(always)]
fn larger(v: f32, best: f32) -> bool {
    (v > best) | (v.is_nan() & !best.is_nan())
}

/// `max(a, b)` under [`larger`]'s rule, `a` first.
#[inline(always)]
fn max(a: f32, b: f32) -> f32 {
    if larger(b, a) { b } else { a }
}

/// The max pooling of `x`: `[batch, channels, out_h, out_w]`.
///
/// # Panics
/// If `x` is shorter than `p` says.
pub fn forward(p: &Pool, x: &[f32]) -> Vec<f32> {
    assert!(x.len() >= p.planes * p.in_plane());
    let mut y = vec![0.0; p.planes * p.out_plane()];
    y.par_chunks_mut(p.out_plane())
        .zip(x.par_chunks(p.in_plane()))
        .for_each(|(y, x)| {
            if p.kernel == [2, 2] && p.stride == [2, 2] {
                // The common case, in a form the compiler vectorises: two rows, pairs of columns.
                for (oh, y) in y.chunks_exact_mut(p.out_w).enumerate() {
                    let r0 = x[2 * oh * p.in_w..].chunks_exact(2);
                    let r1 = x[(2 * oh + 1) * p.in_w..].chunks_exact(2);
                    for ((y, a), b) in y.iter_mut().zip(r0).zip(r1) {
                        *y = max(max(a[0], a[1]), max(b[0], b[1]));
                    }
                }
                return;
            }
            for oh in 0..p.out_h {
                for ow in 0..p.out_w {
                    y[oh * p.out_w + ow] = x[p.argmax(x, oh, ow)];
                }
            }
        });
    y
}

/// The gradient of [`forward`] with respect to `x`: each output's gradient added at the position
/// its window's maximum came from.
///
/// # Panics
/// If `x` or `dy` is shorter than `p` says.
pub fn backward(p: &Pool, x: &[f32], dy: &[f32]) -> Vec<f32> {
    assert!(x.len() >= p.planes * p.in_plane() && dy.len() >= p.planes * p.out_plane());
    let mut dx = vec![0.0; p.planes * p.in_plane()];
    dx.par_chunks_mut(p.in_plane())
        .zip(x.par_chunks(p.in_plane()))
        .zip(dy.par_chunks(p.out_plane()))
        .for_each(|((dx, x), dy)| {
            for oh in 0..p.out_h {
                for ow in 0..p.out_w {
                    dx[p.argmax(x, oh, ow)] += dy[oh * p.out_w + ow];
                }
            }
        });
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 2×2 fast path and the general window agree with a hand-worked plane, ties go to the
    /// first maximum, NaN wins, and the backward routes to the picked positions.
    #[test]
    fn windows_ties_nan_and_routing() {
        // One 4×4 plane.
        let x = [
            1.0,
            5.0,
            2.0,
            2.0, //
            3.0,
            4.0,
            2.0,
            1.0, //
            0.0,
            f32::NAN,
            7.0,
            8.0, //
            -1.0,
            6.0,
            8.0,
            3.0,
        ];
        let p = Pool::new([1, 1, 4, 4], [2, 2], [2, 2]).unwrap();
        let y = forward(&p, &x);
        assert_eq!(&y[..2], &[5.0, 2.0]);
        assert!(y[2].is_nan());
        assert_eq!(y[3], 8.0);
        let dx = backward(&p, &x, &[1.0, 2.0, 3.0, 4.0]);
        let mut want = [0.0; 16];
        want[1] = 1.0; // 5
        want[2] = 2.0; // the first 2 of the tie
        want[9] = 3.0; // NaN
        want[11] = 4.0; // the first 8 (row-major)
        assert_eq!(dx, want);
        // 3×3 windows with stride 2 (general path): 4×4 → 1×1.
        let q = Pool::new([1, 1, 4, 4], [3, 3], [2, 2]).unwrap();
        assert_eq!((q.out_h, q.out_w), (1, 1));
        assert!(forward(&q, &x)[0].is_nan());
        let finite: Vec<f32> = x
            .iter()
            .map(|v| if v.is_nan() { 0.0 } else { *v })
            .collect();
        assert_eq!(forward(&q, &finite), [7.0]);
        assert_eq!(backward(&q, &finite, &[1.5])[10], 1.5);
        assert!(Pool::new([1, 1, 1, 4], [2, 2], [2, 2]).is_none());
    }
}

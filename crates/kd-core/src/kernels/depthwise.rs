//! Depthwise convolution (`groups = in_channels = out_channels`), forward and both gradients, as
//! direct loops over each channel's plane on contiguous NCHW `f32` slices.
//!
//! Each channel sees only its own input plane and its own `kernel_h × kernel_w` filter, so there is
//! no matrix product to hand to a GEMM. With stride 1 (most layers) each plane is copied into a
//! zero-bordered buffer and every kernel offset becomes one contiguous multiply-add over the plane
//! (see `Padded`); other strides walk, for each kernel offset, the output rows that read inside
//! the input, within a row over the range [`valid_outputs`] gives. Planes are
//! spread over rayon's workers (images × channels for the forward and input gradient, channels for
//! the weight gradient, whose sum runs over the batch). These are MobileNetV2's and the
//! ShuffleNets' 3×3 layers, whose backward burn-flex otherwise runs as a generic grouped
//! transposed convolution.

use rayon::prelude::*;

use super::geometry::{Geometry, valid_outputs};

/// Calls `f(oh, ow_lo, ow_hi, ih, iw_first)` for every output row `oh` of one plane that reads
/// inside the input at kernel offset `(kh, kw)`: outputs `ow_lo..ow_hi` of that row read input row
/// `ih` from column `iw_first` on, one stride apart.
fn for_each_segment(
    g: &Geometry,
    kh: usize,
    kw: usize,
    mut f: impl FnMut(usize, usize, usize, usize, usize),
) {
    let [stride_h, stride_w] = g.stride;
    let [pad_h, pad_w] = g.padding;
    let (oh_lo, oh_hi) = valid_outputs(kh, pad_h, stride_h, g.in_h, g.out_h);
    let (ow_lo, ow_hi) = valid_outputs(kw, pad_w, stride_w, g.in_w, g.out_w);
    if ow_lo >= ow_hi {
        return;
    }
    let first = ow_lo * stride_w + kw - pad_w;
    for oh in oh_lo..oh_hi {
        let ih = oh * stride_h + kh - pad_h;
        f(oh, ow_lo, ow_hi, ih, first);
    }
}

/// `y += k · x` over one plane at one kernel offset.
fn plane_forward(g: &Geometry, x: &[f32], kernel: &[f32], y: &mut [f32]) {
    let stride_w = g.stride[1];
    for kh in 0..g.kernel_h {
        for kw in 0..g.kernel_w {
            let k = kernel[kh * g.kernel_w + kw];
            for_each_segment(g, kh, kw, |oh, lo, hi, ih, first| {
                let dst = &mut y[oh * g.out_w + lo..oh * g.out_w + hi];
                let src = &x[ih * g.in_w + first..(ih + 1) * g.in_w];
                if stride_w == 1 {
                    for (d, s) in dst.iter_mut().zip(src) {
                        *d += k * s;
                    }
                } else {
                    for (d, s) in dst.iter_mut().zip(src.iter().step_by(stride_w)) {
                        *d += k * s;
                    }
                }
            });
        }
    }
}

/// `dx += k · dy` over one plane, scattered back to the input positions each output read.
fn plane_input_grad(g: &Geometry, dy: &[f32], kernel: &[f32], dx: &mut [f32]) {
    let stride_w = g.stride[1];
    for kh in 0..g.kernel_h {
        for kw in 0..g.kernel_w {
            let k = kernel[kh * g.kernel_w + kw];
            for_each_segment(g, kh, kw, |oh, lo, hi, ih, first| {
                let src = &dy[oh * g.out_w + lo..oh * g.out_w + hi];
                let dst = &mut dx[ih * g.in_w + first..(ih + 1) * g.in_w];
                if stride_w == 1 {
                    for (d, s) in dst.iter_mut().zip(src) {
                        *d += k * s;
                    }
                } else {
                    for (d, s) in dst.iter_mut().step_by(stride_w).zip(src) {
                        *d += k * s;
                    }
                }
            });
        }
    }
}

/// `dk += Σ dy · x` over one plane, for every kernel offset.
fn plane_weight_grad(g: &Geometry, x: &[f32], dy: &[f32], dk: &mut [f32]) {
    let stride_w = g.stride[1];
    for kh in 0..g.kernel_h {
        for kw in 0..g.kernel_w {
            let mut sum = 0.0f32;
            for_each_segment(g, kh, kw, |oh, lo, hi, ih, first| {
                let d = &dy[oh * g.out_w + lo..oh * g.out_w + hi];
                let s = &x[ih * g.in_w + first..(ih + 1) * g.in_w];
                if stride_w == 1 {
                    sum += d.iter().zip(s).map(|(d, s)| d * s).sum::<f32>();
                } else {
                    sum += d
                        .iter()
                        .zip(s.iter().step_by(stride_w))
                        .map(|(d, s)| d * s)
                        .sum::<f32>();
                }
            });
            dk[kh * g.kernel_w + kw] += sum;
        }
    }
}

/// The padded-plane form of a stride-1 depthwise convolution.
///
/// With the input copied into a zero-bordered plane of width `wp = in_w + 2·pad_w`, output
/// `(oh, ow)` at kernel offset `(kh, kw)` reads padded element `(oh + kh)·wp + ow + kw`: one
/// constant shift of the flat index. Computing a "wide" output of `out_h × wp` (its last
/// `wp − out_w` columns are discarded) turns each kernel offset into a single contiguous
/// multiply-add over the whole plane instead of one short loop per row, which is what makes the
/// 4×4 and 8×8 planes of MobileNetV2 fast.
struct Padded {
    wp: usize,
    /// Length of the flat range of wide outputs that ends at the last real output.
    span: usize,
}

impl Padded {
    fn new(g: &Geometry) -> Option<Self> {
        if g.stride != [1, 1] {
            return None;
        }
        let wp = g.in_w + 2 * g.padding[1];
        Some(Self {
            wp,
            span: (g.out_h - 1) * wp + g.out_w,
        })
    }

    fn padded_len(&self, g: &Geometry) -> usize {
        (g.in_h + 2 * g.padding[0]) * self.wp
    }

    /// Copies one input plane into the interior of a zeroed padded plane.
    fn pad(&self, g: &Geometry, x: &[f32], padded: &mut [f32]) {
        padded.fill(0.0);
        let [pad_h, pad_w] = g.padding;
        for (row, src) in x.chunks_exact(g.in_w).enumerate() {
            let at = (row + pad_h) * self.wp + pad_w;
            padded[at..at + g.in_w].copy_from_slice(src);
        }
    }

    /// The flat shift of kernel offset `(kh, kw)`.
    fn shift(&self, kh: usize, kw: usize) -> usize {
        kh * self.wp + kw
    }
}

/// Depthwise `conv2d(x, w)` without bias: `[batch, channels, out_h, out_w]`, row-major.
pub fn forward(g: &Geometry, x: &[f32], w: &[f32]) -> Vec<f32> {
    let mut y = vec![0.0; g.output_len()];
    let kernel = g.kernel_plane();
    let Some(p) = Padded::new(g) else {
        y.par_chunks_mut(g.out_plane())
            .zip(x.par_chunks(g.in_plane()))
            .enumerate()
            .for_each(|(plane, (y, x))| {
                let c = plane % g.in_channels;
                plane_forward(g, x, &w[c * kernel..(c + 1) * kernel], y);
            });
        return y;
    };
    y.par_chunks_mut(g.out_plane())
        .zip(x.par_chunks(g.in_plane()))
        .enumerate()
        .for_each_init(
            || (vec![0.0; p.padded_len(g)], vec![0.0; g.out_h * p.wp]),
            |(padded, wide), (plane, (y, x))| {
                let c = plane % g.in_channels;
                let k = &w[c * kernel..(c + 1) * kernel];
                p.pad(g, x, padded);
                let wide = &mut wide[..p.span];
                wide.fill(0.0);
                for kh in 0..g.kernel_h {
                    for kw in 0..g.kernel_w {
                        let kv = k[kh * g.kernel_w + kw];
                        let src = &padded[p.shift(kh, kw)..p.shift(kh, kw) + p.span];
                        for (d, s) in wide.iter_mut().zip(src) {
                            *d += kv * s;
                        }
                    }
                }
                for (oh, row) in y.chunks_exact_mut(g.out_w).enumerate() {
                    row.copy_from_slice(&wide[oh * p.wp..oh * p.wp + g.out_w]);
                }
            },
        );
    y
}

/// Spreads one output-gradient plane over a zeroed wide plane (`out_h × wp`, zeros in the
/// discarded columns), so shifted reads of it are exact.
fn widen(g: &Geometry, p: &Padded, dy: &[f32], wide: &mut [f32]) {
    wide.fill(0.0);
    for (oh, row) in dy.chunks_exact(g.out_w).enumerate() {
        wide[oh * p.wp..oh * p.wp + g.out_w].copy_from_slice(row);
    }
}

/// The gradient of a depthwise `conv2d(x, w)` with respect to `x`.
pub fn input_grad(g: &Geometry, w: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut dx = vec![0.0; g.input_len()];
    let kernel = g.kernel_plane();
    if let Some(p) = Padded::new(g) {
        let [pad_h, pad_w] = g.padding;
        dx.par_chunks_mut(g.in_plane())
            .zip(dy.par_chunks(g.out_plane()))
            .enumerate()
            .for_each_init(
                || (vec![0.0; p.padded_len(g)], vec![0.0; g.out_h * p.wp]),
                |(padded, wide), (plane, (dx, dy))| {
                    let c = plane % g.in_channels;
                    let k = &w[c * kernel..(c + 1) * kernel];
                    widen(g, &p, dy, wide);
                    padded.fill(0.0);
                    for kh in 0..g.kernel_h {
                        for kw in 0..g.kernel_w {
                            let kv = k[kh * g.kernel_w + kw];
                            let dst = &mut padded[p.shift(kh, kw)..p.shift(kh, kw) + p.span];
                            for (d, s) in dst.iter_mut().zip(&wide[..p.span]) {
                                *d += kv * s;
                            }
                        }
                    }
                    for (row, dst) in dx.chunks_exact_mut(g.in_w).enumerate() {
                        let at = (row + pad_h) * p.wp + pad_w;
                        dst.copy_from_slice(&padded[at..at + g.in_w]);
                    }
                },
            );
        return dx;
    }
    dx.par_chunks_mut(g.in_plane())
        .zip(dy.par_chunks(g.out_plane()))
        .enumerate()
        .for_each(|(plane, (dx, dy))| {
            let c = plane % g.in_channels;
            plane_input_grad(g, dy, &w[c * kernel..(c + 1) * kernel], dx);
        });
    dx
}

/// The gradient of a depthwise `conv2d(x, w)` with respect to `w`.
pub fn weight_grad(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut dw = vec![0.0; g.weight_len()];
    let (in_plane, out_plane) = (g.in_plane(), g.out_plane());
    if let Some(p) = Padded::new(g) {
        dw.par_chunks_mut(g.kernel_plane())
            .enumerate()
            .for_each_init(
                || (vec![0.0; p.padded_len(g)], vec![0.0; g.out_h * p.wp]),
                |(padded, wide), (c, dk)| {
                    for image in 0..g.batch {
                        let plane = image * g.in_channels + c;
                        p.pad(g, &x[plane * in_plane..(plane + 1) * in_plane], padded);
                        widen(g, &p, &dy[plane * out_plane..(plane + 1) * out_plane], wide);
                        for kh in 0..g.kernel_h {
                            for kw in 0..g.kernel_w {
                                let src = &padded[p.shift(kh, kw)..p.shift(kh, kw) + p.span];
                                dk[kh * g.kernel_w + kw] += wide[..p.span]
                                    .iter()
                                    .zip(src)
                                    .map(|(d, s)| d * s)
                                    .sum::<f32>();
                            }
                        }
                    }
                },
            );
        return dw;
    }
    dw.par_chunks_mut(g.kernel_plane())
        .enumerate()
        .for_each(|(c, dk)| {
            for image in 0..g.batch {
                let plane = image * g.in_channels + c;
                plane_weight_grad(
                    g,
                    &x[plane * in_plane..(plane + 1) * in_plane],
                    &dy[plane * out_plane..(plane + 1) * out_plane],
                    dk,
                );
            }
        });
    dw
}

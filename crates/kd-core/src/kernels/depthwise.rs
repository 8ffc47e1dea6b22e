//! Depthwise convolution (`groups = in_channels = out_channels`), forward and both gradients, as
//! direct loops over each channel's plane on contiguous NCHW `f32` slices.
//!
//! Each channel sees only its own input plane and its own `kernel_h × kernel_w` filter, so there is
//! no matrix product to hand to a GEMM. With stride 1 (most layers) a channel's planes from every
//! image are stacked into one zero-bordered buffer and every kernel offset becomes one contiguous
//! multiply-add over it (see `Stacked`); other strides walk, for each kernel offset, the output
//! rows that read inside the input, within a row over the range [`valid_outputs`] gives. Channels
//! (stride 1) or planes (other strides) are spread over rayon's workers. These are MobileNetV2's and the
//! ShuffleNets' 3×3 layers, whose backward burn-flex otherwise runs as a generic grouped
//! transposed convolution.

use rayon::prelude::*;

use super::conv_shape::{ConvShape, valid_outputs};
use super::reduce;

/// Calls `f(oh, ow_lo, ow_hi, ih, iw_first)` for every output row `oh` of one plane that reads
/// inside the input at kernel offset `(kh, kw)`: outputs `ow_lo..ow_hi` of that row read input row
/// `ih` from column `iw_first` on, one stride apart.
fn for_each_segment(
    g: &ConvShape,
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
fn plane_forward(g: &ConvShape, x: &[f32], kernel: &[f32], y: &mut [f32]) {
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
fn plane_input_grad(g: &ConvShape, dy: &[f32], kernel: &[f32], dx: &mut [f32]) {
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
fn plane_weight_grad(g: &ConvShape, x: &[f32], dy: &[f32], dk: &mut [f32]) {
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

/// The stacked padded-plane form of a stride-1 depthwise convolution.
///
/// One channel's planes from every image share one filter, so they are handled together: each is
/// copied into a zero-bordered plane (width `wp = in_w + 2·pad_w`, height `hp = in_h + 2·pad_h`)
/// and the planes are laid one after another. Output `(b, oh, ow)` at kernel offset `(kh, kw)`
/// then reads stacked element `b·hp·wp + (oh + kh)·wp + ow + kw`: one constant shift of the flat
/// index. Computing a "wide" output with the same layout (the positions past `out_w` in a row and
/// past `out_h` in a plane are discarded) turns each kernel offset into a single contiguous
/// multiply-add over the whole batch of that channel, instead of one short loop per row: on
/// MobileNetV2's 4×4 and 8×8 planes the per-row overhead is what costs.
struct Stacked {
    wp: usize,
    hp: usize,
    /// Flat length of the wide output up to the last real output of the last image.
    span: usize,
}

impl Stacked {
    fn new(g: &ConvShape) -> Option<Self> {
        if g.stride != [1, 1] || g.batch == 0 {
            return None;
        }
        let wp = g.in_w + 2 * g.padding[1];
        let hp = g.in_h + 2 * g.padding[0];
        Some(Self {
            wp,
            hp,
            span: (g.batch - 1) * hp * wp + (g.out_h - 1) * wp + g.out_w,
        })
    }

    fn plane(&self) -> usize {
        self.hp * self.wp
    }

    fn len(&self, g: &ConvShape) -> usize {
        g.batch * self.plane()
    }

    fn shift(&self, kh: usize, kw: usize) -> usize {
        kh * self.wp + kw
    }

    /// Copies channel `c`'s input planes of every image into the interiors of a zeroed stack.
    fn pad(&self, g: &ConvShape, x: &[f32], c: usize, stack: &mut [f32]) {
        stack.fill(0.0);
        let [pad_h, pad_w] = g.padding;
        let in_plane = g.in_plane();
        for b in 0..g.batch {
            let src = &x[(b * g.in_channels + c) * in_plane..][..in_plane];
            for (row, line) in src.chunks_exact(g.in_w).enumerate() {
                let at = b * self.plane() + (row + pad_h) * self.wp + pad_w;
                stack[at..at + g.in_w].copy_from_slice(line);
            }
        }
    }

    /// Spreads channel `c`'s output-gradient planes of every image over a zeroed wide stack, so
    /// shifted reads of it see zeros at the discarded positions.
    fn widen(&self, g: &ConvShape, dy: &[f32], c: usize, stack: &mut [f32]) {
        stack.fill(0.0);
        let out_plane = g.out_plane();
        for b in 0..g.batch {
            let src = &dy[(b * g.in_channels + c) * out_plane..][..out_plane];
            for (oh, line) in src.chunks_exact(g.out_w).enumerate() {
                let at = b * self.plane() + oh * self.wp;
                stack[at..at + g.out_w].copy_from_slice(line);
            }
        }
    }
}

/// Writes per-channel results (`[channels][batch][plane]`) into an NCHW tensor.
fn scatter(per_channel: &[Vec<f32>], channels: usize, plane: usize, out: &mut [f32]) {
    out.par_chunks_mut(plane).enumerate().for_each(|(i, dst)| {
        let (b, c) = (i / channels, i % channels);
        dst.copy_from_slice(&per_channel[c][b * plane..(b + 1) * plane]);
    });
}

/// Depthwise `conv2d(x, w)` without bias: `[batch, channels, out_h, out_w]`, row-major.
pub fn forward(g: &ConvShape, x: &[f32], w: &[f32]) -> Vec<f32> {
    let mut y = vec![0.0; g.output_len()];
    let kernel = g.kernel_plane();
    let Some(st) = Stacked::new(g) else {
        y.par_chunks_mut(g.out_plane())
            .zip(x.par_chunks(g.in_plane()))
            .enumerate()
            .for_each(|(plane, (y, x))| {
                let c = plane % g.in_channels;
                plane_forward(g, x, &w[c * kernel..(c + 1) * kernel], y);
            });
        return y;
    };
    let per_channel: Vec<Vec<f32>> = (0..g.in_channels)
        .into_par_iter()
        .map_init(
            || (vec![0.0; st.len(g)], vec![0.0; st.len(g)]),
            |(padded, wide), c| {
                st.pad(g, x, c, padded);
                let wide = &mut wide[..st.span];
                wide.fill(0.0);
                for kh in 0..g.kernel_h {
                    for kw in 0..g.kernel_w {
                        let k = w[c * kernel + kh * g.kernel_w + kw];
                        let src = &padded[st.shift(kh, kw)..st.shift(kh, kw) + st.span];
                        for (d, s) in wide.iter_mut().zip(src) {
                            *d += k * s;
                        }
                    }
                }
                let mut out = Vec::with_capacity(g.batch * g.out_plane());
                for b in 0..g.batch {
                    for oh in 0..g.out_h {
                        let at = b * st.plane() + oh * st.wp;
                        out.extend_from_slice(&wide[at..at + g.out_w]);
                    }
                }
                out
            },
        )
        .collect();
    scatter(&per_channel, g.in_channels, g.out_plane(), &mut y);
    y
}

/// The gradient of a depthwise `conv2d(x, w)` with respect to `x`.
pub fn input_grad(g: &ConvShape, w: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut dx = vec![0.0; g.input_len()];
    let kernel = g.kernel_plane();
    let Some(st) = Stacked::new(g) else {
        dx.par_chunks_mut(g.in_plane())
            .zip(dy.par_chunks(g.out_plane()))
            .enumerate()
            .for_each(|(plane, (dx, dy))| {
                let c = plane % g.in_channels;
                plane_input_grad(g, dy, &w[c * kernel..(c + 1) * kernel], dx);
            });
        return dx;
    };
    let [pad_h, pad_w] = g.padding;
    let per_channel: Vec<Vec<f32>> = (0..g.in_channels)
        .into_par_iter()
        .map_init(
            || (vec![0.0; st.len(g)], vec![0.0; st.len(g)]),
            |(padded, wide), c| {
                st.widen(g, dy, c, wide);
                padded.fill(0.0);
                for kh in 0..g.kernel_h {
                    for kw in 0..g.kernel_w {
                        let k = w[c * kernel + kh * g.kernel_w + kw];
                        let dst = &mut padded[st.shift(kh, kw)..st.shift(kh, kw) + st.span];
                        for (d, s) in dst.iter_mut().zip(&wide[..st.span]) {
                            *d += k * s;
                        }
                    }
                }
                let mut out = Vec::with_capacity(g.batch * g.in_plane());
                for b in 0..g.batch {
                    for row in 0..g.in_h {
                        let at = b * st.plane() + (row + pad_h) * st.wp + pad_w;
                        out.extend_from_slice(&padded[at..at + g.in_w]);
                    }
                }
                out
            },
        )
        .collect();
    scatter(&per_channel, g.in_channels, g.in_plane(), &mut dx);
    dx
}

/// The gradient of a depthwise `conv2d(x, w)` with respect to `w`.
pub fn weight_grad(g: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut dw = vec![0.0; g.weight_len()];
    let (in_plane, out_plane) = (g.in_plane(), g.out_plane());
    if let Some(st) = Stacked::new(g) {
        dw.par_chunks_mut(g.kernel_plane())
            .enumerate()
            .for_each_init(
                || (vec![0.0; st.len(g)], vec![0.0; st.len(g)]),
                |(padded, wide), (c, dk)| {
                    st.pad(g, x, c, padded);
                    st.widen(g, dy, c, wide);
                    for kh in 0..g.kernel_h {
                        for kw in 0..g.kernel_w {
                            let src = &padded[st.shift(kh, kw)..st.shift(kh, kw) + st.span];
                            dk[kh * g.kernel_w + kw] = reduce::dot(&wide[..st.span], src);
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

//! Depthwise convolution (`groups = in_channels = out_channels`), forward and both gradients, on
//! contiguous NCHW `f32` slices.
//!
//! Each channel sees only its own input plane and its own `kernel_h × kernel_w` filter, so there
//! is no matrix product to hand to a GEMM. Instead a channel's planes from every image are
//! stacked into one zero-bordered buffer, split into stride phases, and every kernel offset
//! becomes one contiguous multiply-add over the whole batch of that channel (see [`Stacked`]).
//! Channels are spread over rayon's workers. The 3×3 layers of padding 1 and stride 1 or 2 (all
//! of the zoo's) take [`masked`] instead for the forward, the weight gradient and the stride-1
//! input gradient, on CPUs with AVX-512 or AVX2 + FMA. These are MobileNetV2's and the ShuffleNets' 3×3
//! layers, whose backward burn-flex otherwise runs as a generic grouped transposed convolution.

use rayon::prelude::*;

use super::conv_shape::ConvShape;
use super::epilogue::Epilogue;
use super::reduce;

mod masked;

/// The stacked, phase-split padded planes of one channel.
///
/// One channel's planes from every image share one filter, so they are handled together. Each is
/// zero-bordered (height `hp = in_h + 2·pad_h`, width `wp = in_w + 2·pad_w`) and split into
/// `stride_h · stride_w` phases: phase `(pr, pc)` holds the padded rows `≡ pr` and columns
/// `≡ pc` (mod the stride), as planes of `hq = ⌈hp / stride_h⌉ × wq = ⌈wp / stride_w⌉`, every
/// image's one after another. Output `(b, oh, ow)` at kernel offset `(kh, kw)` reads padded
/// position `(oh·stride_h + kh, ow·stride_w + kw)`, which is phase `(kh mod stride_h, kw mod
/// stride_w)` at `b·hq·wq + (oh + ⌊kh / stride_h⌋)·wq + ow + ⌊kw / stride_w⌋`: one constant
/// shift of the flat index `b·hq·wq + oh·wq + ow`. Computing a "wide" output with that layout
/// (the positions past `out_w` in a row and past `out_h` in a plane are discarded) turns each
/// kernel offset into a single contiguous multiply-add over the whole batch of that channel,
/// instead of one short loop per row, or a strided one: on MobileNetV2's 4×4 and 8×8 planes the
/// per-row overhead is what costs, and with stride 2 the strided loops do not vectorise. With
/// stride 1 there is one phase, the padded planes themselves.
struct Stacked {
    stride: [usize; 2],
    padding: [usize; 2],
    /// Input plane size.
    in_h: usize,
    in_w: usize,
    hq: usize,
    wq: usize,
    /// Images in the stack.
    batch: usize,
    /// Flat length of the wide output up to the last real output of the last image.
    span: usize,
}

impl Stacked {
    fn new(g: &ConvShape) -> Self {
        let [stride_h, stride_w] = g.stride;
        let hq = (g.in_h + 2 * g.padding[0]).div_ceil(stride_h);
        let wq = (g.in_w + 2 * g.padding[1]).div_ceil(stride_w);
        let span = match g.batch {
            0 => 0,
            batch => (batch - 1) * hq * wq + (g.out_h - 1) * wq + g.out_w,
        };
        Self {
            stride: g.stride,
            padding: g.padding,
            in_h: g.in_h,
            in_w: g.in_w,
            hq,
            wq,
            batch: g.batch,
            span,
        }
    }

    /// One image's plane in one phase.
    fn plane(&self) -> usize {
        self.hq * self.wq
    }

    /// One phase: every image's plane.
    fn phase(&self) -> usize {
        self.batch * self.plane()
    }

    fn len(&self) -> usize {
        self.stride[0] * self.stride[1] * self.phase()
    }

    /// Where kernel offset `(kh, kw)`'s reads for wide output 0 start.
    fn tap(&self, kh: usize, kw: usize) -> usize {
        let [sh, sw] = self.stride;
        ((kh % sh) * sw + kw % sw) * self.phase() + (kh / sh) * self.wq + kw / sw
    }

    /// For each phase column `pc`: the first input column whose padded column is `≡ pc` (mod
    /// `stride_w`), where it lands in the phase's rows, and how many of a row's columns the
    /// phase holds (every `stride_w`-th from the first).
    fn columns(&self) -> Vec<(usize, usize, usize)> {
        let (sw, pw) = (self.stride[1], self.padding[1]);
        (0..sw)
            .map(|pc| {
                let first = (pc + sw - pw % sw) % sw;
                let n = self.in_w.saturating_sub(first).div_ceil(sw);
                (first, pc * self.phase() + (first + pw) / sw, n)
            })
            .collect()
    }

    /// Where input row `row` of image `b` lands in phase column 0 of its phase row.
    fn input_row(&self, b: usize, row: usize) -> usize {
        let (sh, sw) = (self.stride[0], self.stride[1]);
        let r = row + self.padding[0];
        (r % sh) * sw * self.phase() + b * self.plane() + (r / sh) * self.wq
    }

    /// Copies channel `c` of every image of `x` (`[batch, channels, in_h, in_w]`) into a zeroed
    /// stack.
    fn pad(&self, g: &ConvShape, x: &[f32], c: usize, stack: &mut [f32]) {
        stack.fill(0.0);
        let in_plane = self.in_h * self.in_w;
        let (sw, columns) = (self.stride[1], self.columns());
        for b in 0..self.batch {
            let src = &x[(b * g.in_channels + c) * in_plane..][..in_plane];
            for (row, line) in src.chunks_exact(self.in_w).enumerate() {
                let at = self.input_row(b, row);
                if sw == 1 {
                    let at = at + self.padding[1];
                    stack[at..at + self.in_w].copy_from_slice(line);
                    continue;
                }
                for &(first, offset, n) in &columns {
                    let dst = &mut stack[at + offset..][..n];
                    for (i, d) in dst.iter_mut().enumerate() {
                        *d = line[first + i * sw];
                    }
                }
            }
        }
    }

    /// Reads channel `c`'s input-shaped planes back out of a stack into `out` (`[batch, in_h,
    /// in_w]`).
    fn unpad(&self, stack: &[f32], out: &mut Vec<f32>) {
        let (sw, columns) = (self.stride[1], self.columns());
        for b in 0..self.batch {
            for row in 0..self.in_h {
                let at = self.input_row(b, row);
                if sw == 1 {
                    let at = at + self.padding[1];
                    out.extend_from_slice(&stack[at..at + self.in_w]);
                    continue;
                }
                let start = out.len();
                out.resize(start + self.in_w, 0.0);
                let line = &mut out[start..];
                for &(first, offset, n) in &columns {
                    for (i, s) in stack[at + offset..][..n].iter().enumerate() {
                        line[first + i * sw] = *s;
                    }
                }
            }
        }
    }

    /// Where wide output row `oh` of image `b` starts.
    fn output_row(&self, b: usize, oh: usize) -> usize {
        b * self.plane() + oh * self.wq
    }

    /// Spreads channel `c`'s output-gradient planes of every image over a zeroed wide stack, so
    /// shifted reads of it see zeros at the discarded positions.
    fn widen(&self, g: &ConvShape, dy: &[f32], c: usize, wide: &mut [f32]) {
        wide.fill(0.0);
        let out_plane = g.out_plane();
        for b in 0..self.batch {
            let src = &dy[(b * g.in_channels + c) * out_plane..][..out_plane];
            for (oh, line) in src.chunks_exact(g.out_w).enumerate() {
                let at = self.output_row(b, oh);
                wide[at..at + g.out_w].copy_from_slice(line);
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

/// Depthwise `conv2d(x, w)` (`x`: `[batch, channels, in_h, in_w]`, `w`: `[channels, 1, kh, kw]`)
/// followed by `epilogue`: `[batch, channels, out_h, out_w]`, row-major. [`masked`] computes the
/// 3×3 layers of padding 1 and stride 1 or 2 on CPUs with AVX-512 or AVX2 + FMA.
///
/// # Panics
/// If a slice is shorter than `g` says.
pub fn forward(g: &ConvShape, x: &[f32], w: &[f32], epilogue: &Epilogue<'_>) -> Vec<f32> {
    if masked::applies(g) {
        return masked::forward(g, x, w, epilogue);
    }
    let mut y = vec![0.0; g.output_len()];
    let kernel = g.kernel_plane();
    let st = Stacked::new(g);
    let per_channel: Vec<Vec<f32>> = (0..g.in_channels)
        .into_par_iter()
        .map_init(
            || (vec![0.0; st.len()], vec![0.0; st.span]),
            |(stack, wide), c| {
                st.pad(g, x, c, stack);
                wide.fill(0.0);
                for kh in 0..g.kernel_h {
                    for kw in 0..g.kernel_w {
                        let k = w[c * kernel + kh * g.kernel_w + kw];
                        let src = &stack[st.tap(kh, kw)..][..st.span];
                        for (d, s) in wide.iter_mut().zip(src) {
                            *d += k * s;
                        }
                    }
                }
                let mut out = Vec::with_capacity(g.batch * g.out_plane());
                for b in 0..g.batch {
                    for oh in 0..g.out_h {
                        let at = st.output_row(b, oh);
                        out.extend_from_slice(&wide[at..at + g.out_w]);
                    }
                }
                out
            },
        )
        .collect();
    scatter(&per_channel, g.in_channels, g.out_plane(), &mut y);
    let plane = g.out_plane();
    y.par_chunks_mut(g.out_channels * plane)
        .enumerate()
        .for_each(|(image, y)| epilogue.apply(image, g.out_channels, plane, y));
    y
}

/// The gradient of a depthwise `conv2d(x, w)` with respect to `x` (`[batch, channels, in_h,
/// in_w]`), given `dy`: from [`masked`] for the 3×3 layers of padding 1 and stride 1 on CPUs with
/// AVX-512 or AVX2 + FMA.
///
/// # Panics
/// If a slice is shorter than `g` says.
pub fn input_grad(g: &ConvShape, w: &[f32], dy: &[f32]) -> Vec<f32> {
    if masked::applies_to_input_grad(g) {
        return masked::input_grad(g, w, dy);
    }
    let mut dx = vec![0.0; g.input_len()];
    let kernel = g.kernel_plane();
    let st = Stacked::new(g);
    let per_channel: Vec<Vec<f32>> = (0..g.in_channels)
        .into_par_iter()
        .map_init(
            || (vec![0.0; st.len()], vec![0.0; st.span]),
            |(stack, wide), c| {
                st.widen(g, dy, c, wide);
                stack.fill(0.0);
                for kh in 0..g.kernel_h {
                    for kw in 0..g.kernel_w {
                        let k = w[c * kernel + kh * g.kernel_w + kw];
                        let dst = &mut stack[st.tap(kh, kw)..][..st.span];
                        for (d, s) in dst.iter_mut().zip(wide.iter()) {
                            *d += k * s;
                        }
                    }
                }
                let mut out = Vec::with_capacity(g.batch * g.in_plane());
                st.unpad(stack, &mut out);
                out
            },
        )
        .collect();
    scatter(&per_channel, g.in_channels, g.in_plane(), &mut dx);
    dx
}

/// The gradient of a depthwise `conv2d(x, w)` with respect to `w` (`[channels, 1, kh, kw]`),
/// given `dy`: from [`masked`] for the 3×3 layers of padding 1 and stride 1 or 2 on CPUs with
/// AVX-512 or AVX2 + FMA.
///
/// # Panics
/// If a slice is shorter than `g` says.
pub fn weight_grad(g: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    if masked::applies(g) {
        return masked::weight_grad(g, x, dy);
    }
    let mut dw = vec![0.0; g.weight_len()];
    let st = Stacked::new(g);
    dw.par_chunks_mut(g.kernel_plane())
        .enumerate()
        .for_each_init(
            || (vec![0.0; st.len()], vec![0.0; st.span]),
            |(stack, wide), (c, dk)| {
                st.pad(g, x, c, stack);
                st.widen(g, dy, c, wide);
                for kh in 0..g.kernel_h {
                    for kw in 0..g.kernel_w {
                        let src = &stack[st.tap(kh, kw)..][..st.span];
                        dk[kh * g.kernel_w + kw] = reduce::dot(wide, src);
                    }
                }
            },
        );
    dw
}

//! The weight gradient of the direct 3×3 convolution on small planes: the planes of a chunk of
//! images stacked into one long plane, and one GEMM per kernel offset over all of them.
//!
//! For a large weight on a small plane (VGG's and ResNet-18/34's 8×8 and 4×4 stages), a tile
//! of [`super`] sums one or four vectors per image before it jumps to the next image, and reduces
//! each of its vectors at the end. Here the images of one input channel are stacked on top of
//! each other, with one zero row between
//! neighbours (and above the first and below the last), and copied three times as in
//! [`super::super::Copies`]: once per `kw`, the column a read at `kw − 1 = ±1` wraps onto
//! zeroed. The output gradient is stacked the same way, its rows between images zero. Kernel
//! offset `(kh, kw)` is then one shift of the stacked copy for every image at once, and
//!
//! `dW[o][c][kh][kw] = Σ_q dy_stacked[o][q] · copy_kw[c][q + kh·W + kw]`
//!
//! is an ordinary product (computed transposed: an `in × K` by a `K × out` matrix), `K` the
//! stacked positions (`(images·(H + 1) − 1)·W`), which `gemm` runs near its peak. The
//! separator rows add `1/H` to the work (a quarter on 4×4 planes); their output gradient is
//! zero, so they add nothing to the sum.
//!
//! Measured per layer (batch 64, ms, two threads of an AMD EPYC with AVX-512, cache-warm
//! buffers), against [`super`]'s tiles with the output-channel tasks they had for these layers: 512→512 channels on 4×4,
//! 15 against 68; 256→256 on 8×8, 13 against 40. The products run in `gemm`'s own kernels,
//! AVX-512 where the CPU has it. Smaller weights spend too large a share in `gemm`'s packing (in a ResNet-56 its
//! 32- and 64-channel layers ran slower here), and on 16×16 planes the tiles were faster in the
//! models ([`applies`]).
//!
//! The images go in chunks whose input copies take about 1 MiB ([`CHUNK_FLOATS`]), so that the
//! nine products of a chunk find its copies in the cache; each chunk's products are added to
//! the previous ones'. The result does not depend on the thread count: the chunks and the tasks
//! (a kernel offset and a block of output channels each) are fixed by the shape, and each
//! element is summed by one product per chunk, in chunk order.

use rayon::prelude::*;

use super::super::super::conv_shape::ConvShape;
use super::super::super::dense::{LARGE_WEIGHT, SMALL_PLANE};
use super::super::super::gemm::{MatRef, matmul_strided};
use super::super::copy_masked;

/// Whether the weight gradient of `g` runs here: a weight of at least [`LARGE_WEIGHT`]
/// elements on a plane of at most [`SMALL_PLANE`] pixels (8×8). Smaller products spend too
/// large a share in `gemm`'s packing, and on larger planes the tiles are as fast.
pub(super) fn applies(g: &ConvShape) -> bool {
    g.weight_len() >= LARGE_WEIGHT && g.in_h * g.in_w <= SMALL_PLANE
}

/// Output channels per task: a product's right operand and a block of the result.
fn channels_per_task(out: usize) -> usize {
    // At least 16 tasks (nine offsets × blocks) keep both cores busy to the end.
    if 9 * out.div_ceil(64) >= 16 { 64 } else { 32 }
}

/// The gradient of a stride-1, padding-1 3×3 convolution with respect to its weight
/// (`[out, in, 3, 3]`), given `x` (`[batch, in, h, w]`) and `dy` (`[batch, out, h, w]`).
///
/// # Panics
/// If `g` is not that geometry or a slice is shorter than `g` says.
pub(super) fn weight_grad(g: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let per_chunk = (CHUNK_FLOATS / (3 * g.in_channels * (g.in_h + 1) * g.in_w)).max(1);
    weight_grad_in_chunks(g, x, dy, per_chunk)
}

/// [`weight_grad`] over chunks of `per_chunk` images, whose products are added in order.
pub(super) fn weight_grad_in_chunks(
    g: &ConvShape,
    x: &[f32],
    dy: &[f32],
    per_chunk: usize,
) -> Vec<f32> {
    let (images, from, to, h, w) = (g.batch, g.in_channels, g.out_channels, g.in_h, g.in_w);
    let plane = h * w;
    assert!(x.len() >= images * from * plane && dy.len() >= images * to * plane);
    // Task `(tap, block)` writes `[from][per_task]` at `(tap · blocks + block) · from · per_task`.
    let per_task = channels_per_task(to);
    let blocks = to.div_ceil(per_task);
    let mut products = vec![0.0; 9 * blocks * from * per_task];
    assert!(per_chunk > 0);
    for first in (0..images).step_by(per_chunk) {
        let stack = Stack::new(
            &x[first * from * plane..],
            &dy[first * to * plane..],
            g,
            per_chunk.min(images - first),
        );
        products
            .par_chunks_mut(from * per_task)
            .enumerate()
            .for_each(|(task, dst)| {
                let (tap, block) = (task / blocks, task % blocks);
                let cols = per_task.min(to - block * per_task);
                let (taps, grads) = stack.operands(tap, block * per_task);
                matmul_strided(
                    (from, cols, stack.k),
                    dst,
                    (per_task, 1),
                    first > 0,
                    taps,
                    grads,
                );
            });
    }
    let mut dw = vec![0.0; g.weight_len()];
    dw.par_chunks_mut(9 * from).enumerate().for_each(|(o, dw)| {
        let (block, col) = (o / per_task, o % per_task);
        for (c, dw) in dw.chunks_exact_mut(9).enumerate() {
            for (tap, dw) in dw.iter_mut().enumerate() {
                *dw = products[((tap * blocks + block) * from + c) * per_task + col];
            }
        }
    });
    dw
}

/// Floats of stacked input copies one chunk of images holds (1 MiB), at least one image: the
/// nine products of a chunk read them while they are still in the cache, and the scratch stays
/// small.
const CHUNK_FLOATS: usize = 1 << 18;

/// One chunk's operands: the stacked, column-masked copies of its images' input planes and
/// its stacked output gradient.
struct Stack {
    /// `[from][3][len]`: copy `kw` of channel `c` at `(3·c + kw)·len`.
    copies: Vec<f32>,
    /// `[to][k]`.
    grads: Vec<f32>,
    len: usize,
    /// Stacked positions: the products' inner dimension.
    k: usize,
    w: usize,
}

impl Stack {
    /// The first `images` images of `x` (`[_, from, h, w]`) and `dy` (`[_, to, h, w]`).
    fn new(x: &[f32], dy: &[f32], g: &ConvShape, images: usize) -> Self {
        let (from, to, h, w) = (g.in_channels, g.out_channels, g.in_h, g.in_w);
        let plane = h * w;
        // Stacked rows: a zero row, then each image's rows followed by a zero row; one element
        // of slack either side for the reads at `kw − 1 = ±1`.
        let len = (1 + images * (h + 1)) * w + 2;
        let k = (images * (h + 1) - 1) * w;
        let mut copies = vec![0.0; 3 * from * len];
        copies
            .par_chunks_mut(3 * len)
            .enumerate()
            .for_each(|(c, copies)| {
                for (kw, copy) in copies.chunks_exact_mut(len).enumerate() {
                    for image in 0..images {
                        // Image `i`'s row `r` is stacked row `1 + i·(h + 1) + r`, after the slack.
                        let start = 1 + (1 + image * (h + 1)) * w;
                        let src = &x[(image * from + c) * plane..][..plane];
                        copy_masked(kw, w, src, &mut copy[start..start + plane]);
                    }
                }
            });
        let mut grads = vec![0.0; to * k];
        grads.par_chunks_mut(k).enumerate().for_each(|(o, row)| {
            for image in 0..images {
                row[image * (h + 1) * w..][..plane]
                    .copy_from_slice(&dy[(image * to + o) * plane..][..plane]);
            }
        });
        Self {
            copies,
            grads,
            len,
            k,
            w,
        }
    }

    /// The operands of kernel offset `tap` for output channels from `first`: element `(c, q)`
    /// of the left one is copy `kw` of channel `c` shifted by the offset, element `(q, o)` of
    /// the right one the stacked output gradient of channel `first + o`.
    fn operands(&self, tap: usize, first: usize) -> (MatRef<'_>, MatRef<'_>) {
        let (kh, kw) = (tap / 3, tap % 3);
        let taps = MatRef {
            data: &self.copies[kw * self.len + kh * self.w + kw..],
            row_stride: 3 * self.len,
            col_stride: 1,
        };
        (
            taps,
            MatRef::transposed(&self.grads[first * self.k..], self.k),
        )
    }
}

//! The weight gradient of the direct 3×3 convolution with AVX-512 tiles whose lanes run along
//! output channels: outer products of the output gradient and the taps, summed over positions
//! in registers, never reduced across lanes.
//!
//! `dW[o][t] = Σ_images Σ_j dy[o][j] · x_t[j]` (`t` a tap `(c, kh, kw)` of [`Copies`]). The
//! tiles of [`super`] put positions `j` in the lanes: ten short streams per image (four output
//! gradient rows and six taps, each `h·w` long and mostly not aligned to a cache line) and a
//! reduction of every accumulator across its lanes after each call. On small planes (8×8: four
//! vectors per image) they ran at less than half the peak of one core of an Intel Xeon with
//! AVX-512 (about 75 against 170 GFLOP/s), half the forward tiles' speed per FLOP. Here the
//! positions go in passes of at most [`POSITIONS_PER_PASS`] (whole images of a small plane, or
//! part of a larger one); each pass's
//! output gradient is transposed once, to `dyᵀ[j][o]`, and a tile keeps `dWᵀ[t][o]` for six
//! taps × 64 output channels (or twelve × 32) in 24 registers: each position loads four vectors
//! of `dyᵀ` (one contiguous row) and broadcasts six taps' values, 10 loads per 24
//! multiply-adds (the twelve-tap tile: 14 loads), and the lanes are never summed. After its
//! pass, a tile adds its accumulators to the task's `dWᵀ`. One block of 64 channels of a
//! pass's `dyᵀ` is 32 KiB, which the tiles of every block of taps read again: from the
//! first-level cache on the Xeon measured here (48 KiB).
//!
//! Output channels are padded to a multiple of 32 with zero gradients. Layers with fewer than
//! 32 output channels, weights of [`LARGE_WEIGHT`] elements or more (which take
//! [`super::stacked`] on planes of at most 8×8), and CPUs without AVX-512 keep [`super`]'s
//! tiles ([`applies`]).
//!
//! As in [`super`], the images go in fixed chunks of [`IMAGES_PER_PARTIAL`], one task each,
//! whose partial gradients are added in order: the result does not depend on the thread count.
#![allow(unsafe_code)]

use rayon::prelude::*;

use super::super::super::conv_shape::ConvShape;
use super::super::super::dense::{IMAGES_PER_PARTIAL, LARGE_WEIGHT};
use super::super::{Copies, Isa, lined, same_3x3};

/// Positions one pass of the tiles covers before their accumulators are added to the task's
/// gradient: `dyᵀ` for 64 channels over them is 32 KiB.
const POSITIONS_PER_PASS: usize = 128;

/// Lanes of an AVX-512 vector.
const LANES: usize = 16;

/// Taps of the tallest tile (two vectors of output channels × twelve taps); every tile's tap
/// count divides it, so `dWᵀ` rounded up to it holds every tile's last block of taps.
const MAX_TILE_TAPS: usize = 12;

/// `(image, first position, positions)`: a run of one image's positions within a pass.
type Segment = (usize, usize, usize);

/// Whether the weight gradient of `g` runs here: at least 32 output channels and a weight of
/// fewer than [`LARGE_WEIGHT`] elements, on a CPU with AVX-512 (the caller has checked the
/// geometry). The weight limit is measured, not derived: on 128 → 128 channels these tiles
/// were no faster than [`super`]'s on 16×16 planes and 13% slower on 32×32 (where one image's
/// copies, 1.7 MB, fill most of the second-level cache).
pub(super) fn applies(g: &ConvShape) -> bool {
    g.out_channels >= 32 && g.weight_len() < LARGE_WEIGHT && Isa::Avx512.available()
}

/// The weight gradient (`[out, in, 3, 3]`) of the same-size 3×3 convolution `g` of `x`, given
/// `dy`.
///
/// # Panics
/// If `g` is not a same-size 3×3 convolution, the CPU has no AVX-512, or a slice is shorter
/// than `g` says.
pub(super) fn weight_grad(g: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (from, to, plane) = (g.in_channels, g.out_channels, g.in_h * g.in_w);
    assert!(same_3x3(g) && g.out_h == g.in_h && g.out_w == g.in_w);
    assert!(
        Isa::Avx512.available(),
        "AVX-512 kernels on a CPU without them"
    );
    assert!(x.len() >= g.batch * from * plane && dy.len() >= g.batch * to * plane);
    let copies = Copies::new(from, g.in_h, g.in_w, 0);
    let taps = copies.offsets.len();
    let padded = to.next_multiple_of(2 * LANES);
    // Rows of `dWᵀ`: the taps, rounded up to whole blocks of every tile shape.
    let tap_rows = taps.next_multiple_of(MAX_TILE_TAPS);
    let (image_in, image_out) = (from * plane, to * plane);
    let partials: Vec<Vec<f32>> = (0..g.batch.div_ceil(IMAGES_PER_PARTIAL))
        .into_par_iter()
        .map_init(
            || {
                (
                    copies.scratch(IMAGES_PER_PARTIAL),
                    vec![0.0; POSITIONS_PER_PASS * padded],
                )
            },
            |(scratch, transposed), chunk| {
                let scratch = lined(scratch);
                let first = chunk * IMAGES_PER_PARTIAL;
                let images = IMAGES_PER_PARTIAL.min(g.batch - first);
                copies.fill_images(&x[first * image_in..(first + images) * image_in], scratch);
                let dy = &dy[first * image_out..(first + images) * image_out];
                let mut dwt = vec![0.0; tap_rows * padded];
                accumulate(
                    &copies,
                    scratch,
                    (dy, to),
                    transposed,
                    images,
                    padded,
                    &mut dwt,
                );
                dwt
            },
        )
        .collect();
    // The partials in order, then one transposition into `[out, taps]`.
    let mut sum = vec![0.0; tap_rows * padded];
    for dwt in &partials {
        sum.iter_mut().zip(dwt).for_each(|(a, b)| *a += b);
    }
    let mut dw = vec![0.0; g.weight_len()];
    for (o, dw) in dw.chunks_exact_mut(taps).enumerate() {
        for (t, dw) in dw.iter_mut().enumerate() {
            *dw = sum[t * padded + o];
        }
    }
    dw
}

/// The passes over `images` images of `plane` positions: each a list of segments of at most
/// [`POSITIONS_PER_PASS`] positions in all (whole images of a small plane, or part of a larger
/// one), every position of every image once, in order.
fn passes(images: usize, plane: usize) -> Vec<Vec<Segment>> {
    let mut passes = Vec::new();
    let (mut pass, mut size) = (Vec::new(), 0);
    for i in 0..images {
        for j0 in (0..plane).step_by(POSITIONS_PER_PASS) {
            let n = (plane - j0).min(POSITIONS_PER_PASS);
            if size + n > POSITIONS_PER_PASS {
                passes.push(std::mem::take(&mut pass));
                size = 0;
            }
            pass.push((i, j0, n));
            size += n;
        }
    }
    if !pass.is_empty() {
        passes.push(pass);
    }
    passes
}

/// `dyt[k][o] = dy[o][j]` for the pass's positions (`k` counts them in order, `j` within each
/// segment's image) and `o < channels`; the padding columns (`channels..padded`) are left as
/// they are (zero from the allocation). In blocks of 16 positions: the block's rows of `dyt`
/// stay in the first-level cache while every channel's 16 values are written into them.
fn transpose(
    (dy, channels): (&[f32], usize),
    plane: usize,
    pass: &[Segment],
    padded: usize,
    dyt: &mut [f32],
) {
    const BLOCK: usize = 16;
    let mut k = 0;
    for &(image, j0, n) in pass {
        let dy = &dy[image * channels * plane..(image + 1) * channels * plane];
        for b0 in (0..n).step_by(BLOCK) {
            let len = BLOCK.min(n - b0);
            let dyt = &mut dyt[(k + b0) * padded..(k + b0 + len) * padded];
            for (o, row) in dy.chunks_exact(plane).enumerate() {
                let row = &row[j0 + b0..j0 + b0 + len];
                for (v, out) in row.iter().zip(dyt[o..].iter_mut().step_by(padded)) {
                    *out = *v;
                }
            }
        }
        k += n;
    }
}

/// `dwt` (`[tap_rows, padded]`) += `Σ_images Σ_j x_t[j] · dyᵀ[j]` over `images` images:
/// image `i`'s copies start at `i · copies.len()` of `scratch`, its output gradient
/// (`[channels, h·w]`) at `i · channels · h·w` of `dy`. Each pass's positions are transposed into
/// `transposed` (`[POSITIONS_PER_PASS, padded]`) before the tiles read them.
///
/// Every extent the tiles address is checked here, before any of them runs.
fn accumulate(
    copies: &Copies,
    scratch: &[f32],
    (dy, channels): (&[f32], usize),
    transposed: &mut [f32],
    images: usize,
    padded: usize,
    dwt: &mut [f32],
) {
    let plane = copies.h * copies.w;
    let taps = copies.offsets.len();
    let largest = copies.offsets.iter().copied().max().unwrap_or(0);
    assert!(
        Isa::Avx512.available(),
        "AVX-512 kernels on a CPU without them"
    );
    assert!(images > 0 && padded.is_multiple_of(2 * LANES) && dwt.len().is_multiple_of(padded));
    assert!(channels <= padded && dy.len() >= images * channels * plane);
    assert!(largest + plane <= copies.len() && scratch.len() >= images * copies.len());
    assert!(transposed.len() >= POSITIONS_PER_PASS * padded);
    let tap_rows = dwt.len() / padded;
    assert!(tap_rows >= taps.next_multiple_of(MAX_TILE_TAPS));
    for pass in &passes(images, plane) {
        transpose((dy, channels), plane, pass, padded, transposed);
        let mut o0 = 0;
        while o0 < padded {
            // `padded − o0` is a multiple of 32: 64 or more take the wide tile, else exactly
            // 32 remain for the tall one.
            let wide = padded - o0 >= 4 * LANES;
            let (vectors, block_taps) = if wide {
                (4, MAX_TILE_TAPS / 2)
            } else {
                (2, MAX_TILE_TAPS)
            };
            for t0 in (0..taps).step_by(block_taps) {
                // A last block of fewer taps repeats its last one into the padding rows.
                let offsets: [usize; MAX_TILE_TAPS] =
                    std::array::from_fn(|t| copies.offsets[(t0 + t).min(taps - 1)]);
                let tile = OuterTile {
                    segments: pass,
                    src: scratch.as_ptr(),
                    src_image: copies.len(),
                    dy: transposed[o0..].as_ptr(),
                    dy_row: padded,
                    out: dwt[t0 * padded + o0..].as_mut_ptr(),
                    out_row: padded,
                };
                // SAFETY: checked above that the CPU has AVX-512. Segment `(i, j0, n)` reads
                // positions `j0..j0 + n ≤ plane` of image `i < images`: taps at
                // `i · copies.len() + offset + j` (inside `scratch`, as
                // `offset + plane ≤ copies.len()`), and `vectors` vectors from column `o0`
                // (`o0 + 16 · vectors ≤ padded`, `padded` a multiple of 32) of the pass's rows of
                // `transposed` (at most `POSITIONS_PER_PASS`); it adds to `block_taps` rows from
                // `t0` (`t0 + block_taps ≤ tap_rows`, as `block_taps` divides `MAX_TILE_TAPS`)
                // of `dwt`, the same columns. The const parameters are `(vectors, block_taps)`.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    if wide {
                        tile.avx512::<4, { MAX_TILE_TAPS / 2 }>(&offsets)
                    } else {
                        tile.avx512::<2, MAX_TILE_TAPS>(&offsets)
                    }
                }
                #[cfg(not(target_arch = "x86_64"))]
                let _ = (tile, offsets);
            }
            o0 += vectors * LANES;
        }
    }
}

/// One microkernel call: `NT` taps × `NV` vectors of output channels, over the positions of
/// `segments`.
struct OuterTile<'a> {
    segments: &'a [Segment],
    src: *const f32,
    src_image: usize,
    /// The pass's transposed output gradient: row `k` is the pass's `k`-th position.
    dy: *const f32,
    dy_row: usize,
    out: *mut f32,
    out_row: usize,
}

#[cfg(target_arch = "x86_64")]
impl OuterTile<'_> {
    /// `out[t][16·v + l] += Σ_segments Σ_j src_t[j] · dy[j][16·v + l]`.
    ///
    /// # Safety
    /// AVX-512F, and the extents [`accumulate`] checks.
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512<const NV: usize, const NT: usize>(&self, offsets: &[usize; MAX_TILE_TAPS]) {
        use std::arch::x86_64::*;
        let mut acc = [[_mm512_setzero_ps(); NV]; NT];
        let mut d = self.dy;
        for &(image, j0, n) in self.segments {
            // Pointers step with `wrapping_add`, so that no overflow check is left in the loop
            // (the extents are checked once, by `accumulate`).
            let base = self.src.wrapping_add(image * self.src_image + j0);
            let s: [*const f32; NT] = std::array::from_fn(|t| base.wrapping_add(offsets[t]));
            // SAFETY: extents checked by `accumulate`.
            acc = unsafe { positions_avx512(acc, s, d, self.dy_row, n) };
            d = d.wrapping_add(n * self.dy_row);
        }
        for (t, acc) in acc.iter().enumerate() {
            for (v, &sum) in acc.iter().enumerate() {
                // SAFETY: row `t < NT` and vector `v < NV` are inside `out`, by `accumulate`.
                unsafe {
                    let out = self.out.add(t * self.out_row + v * LANES);
                    _mm512_storeu_ps(out, _mm512_add_ps(_mm512_loadu_ps(out), sum));
                }
            }
        }
    }
}

/// `acc[t][v] += s_t[j] · d[j·row + 16·v ..]` for `j < n`, the accumulators passed in and out
/// by value so that they stay in registers across the loop.
///
/// # Safety
/// AVX-512F; every `s_t` readable for `n` elements, `d` for `n` rows of `16 · NV` lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn positions_avx512<const NV: usize, const NT: usize>(
    mut acc: [[std::arch::x86_64::__m512; NV]; NT],
    mut s: [*const f32; NT],
    mut d: *const f32,
    row: usize,
    n: usize,
) -> [[std::arch::x86_64::__m512; NV]; NT] {
    use std::arch::x86_64::*;
    for _ in 0..n {
        // SAFETY (whole block): the caller's.
        unsafe {
            let g: [__m512; NV] = std::array::from_fn(|v| _mm512_loadu_ps(d.add(v * LANES)));
            for (acc, s) in acc.iter_mut().zip(&mut s) {
                let x = _mm512_set1_ps(**s);
                *s = s.wrapping_add(1);
                for (acc, g) in acc.iter_mut().zip(&g) {
                    *acc = _mm512_fmadd_ps(x, *g, *acc);
                }
            }
        }
        d = d.wrapping_add(row);
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The passes cover every position of every image once, in order, none longer than
    /// [`POSITIONS_PER_PASS`]: whole images of small planes together, larger planes split
    /// (144 = 128 + 16), and a plane of exactly one pass alone.
    #[test]
    fn passes_cover_every_position_once() {
        for (images, plane, count) in [(4, 64, 2), (3, 144, 6), (4, 16, 1), (2, 128, 2), (1, 1, 1)]
        {
            let passes = passes(images, plane);
            assert_eq!(passes.len(), count, "{images} × {plane}");
            let mut next = (0, 0);
            for pass in &passes {
                assert!(!pass.is_empty());
                assert!(pass.iter().map(|s| s.2).sum::<usize>() <= POSITIONS_PER_PASS);
                for &(image, j0, n) in pass {
                    assert_eq!((image, j0), next, "{images} × {plane}");
                    assert!(n > 0 && j0 + n <= plane);
                    next = if j0 + n == plane {
                        (image + 1, 0)
                    } else {
                        (image, j0 + n)
                    };
                }
            }
            assert_eq!(next, (images, 0), "{images} × {plane}");
        }
    }
}

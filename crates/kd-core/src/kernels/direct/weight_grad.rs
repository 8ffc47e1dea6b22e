//! The weight gradient of the direct 3×3 convolution, read from the same three column-masked
//! copies as the forward ([`Copies`]), without im2col.
//!
//! `dW[o][c][kh][kw] = Σ_images Σ_j dy[o][j] · x_(c,kh,kw)[j]`, with `x_(c,kh,kw)` tap
//! `(c, kh, kw)` of the copies (the input shifted by the kernel offset, zero where it reads the
//! padding). Both operands are contiguous along the positions `j`, the sum's long axis, so this
//! module's microkernel keeps a tile of output channels × taps in registers as vectors of
//! partial sums over positions, and reduces each vector to one number when the tile's images
//! are done: with AVX-512, 4 channels × 6 taps in 24 accumulators (per step, 4 output-gradient
//! vectors and 6 tap vectors loaded: 10 loads for 24 multiply-adds); with AVX2 + FMA, 2 × 6 in
//! 12 of the 16 registers. On AVX-512 these tiles now run only for layers with fewer than 32
//! output channels and for large weights on planes larger than 8×8 (below). A tile sums over
//! as many of its task's images as make about [`POSITIONS_PER_CALL`] positions before it
//! reduces: a partial holds at most [`IMAGES_PER_PARTIAL`] images, so an 8×8 plane reduces
//! every 256 positions.
//!
//! A large weight on a small plane (at least 65,536 elements, `dense::LARGE_WEIGHT`, on at
//! most 8×8 pixels) takes [`stacked`] instead: the planes of a chunk of images stacked into one,
//! and one GEMM per kernel offset and chunk. On AVX-512, a smaller weight with at least 32
//! output channels takes [`outer`]: tiles whose lanes run along output channels, over the output
//! gradient transposed, which never reduce across lanes.
//!
//! im2col + GEMM ([`super::super::dense`]) writes nine shifted copies of every plane, then the
//! GEMM packs them once more: about a third of a ResNet-20 training step went to the two
//! (docs/results/bench.md). Planes of fewer than 16 pixels (2×2, 1×1) fill less than one vector
//! per image and stay there.
//!
//! As in [`super::super::dense`], the result does not depend on the thread count: images are
//! summed in fixed chunks whose partial gradients are added in order, and [`stacked`]'s tasks
//! are fixed by the shape.

use rayon::prelude::*;

use super::super::conv_shape::ConvShape;
use super::super::dense::IMAGES_PER_PARTIAL;
use super::{Copies, Isa, detected, lined, same_3x3, sum_lanes_avx2};

mod outer;
mod stacked;

/// Positions (over all its images) one tile sums before it reduces its accumulators: enough
/// that the reduction is a small share, few enough that the output gradients a row of tiles
/// reads (all output channels over these positions) stay in the second-level cache.
const POSITIONS_PER_CALL: usize = 1024;

/// Taps per tile.
const TAPS: usize = 6;

/// Whether the weight gradient of this convolution runs here: a geometry [`super::applies`]
/// accepts, on a plane of at least 16 pixels.
pub fn applies(g: &ConvShape) -> bool {
    super::applies(g) && g.in_h * g.in_w >= 16
}

/// The gradient of `conv2d(x, w)` with respect to `w` (`[out, in, 3, 3]`), given `dy`, for a
/// geometry [`applies`] accepts.
///
/// # Panics
/// If [`super::applies`] is false for `g`, or a slice is shorter than `g` says.
pub fn weight_grad(g: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    weight_grad_on(detected(), g, x, dy)
}

/// Output channels per tile.
fn tile_rows(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 4,
        Isa::Avx2 => 2,
    }
}

fn weight_grad_on(isa: Isa, g: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    assert!(same_3x3(g) && g.out_h == g.in_h && g.out_w == g.in_w);
    if stacked::applies(g) {
        stacked::weight_grad(g, x, dy)
    } else if isa == Isa::Avx512 && outer::applies(g) {
        outer::weight_grad(g, x, dy)
    } else {
        by_tiles(isa, g, x, dy)
    }
}

/// [`weight_grad`] by the tiles of this module, for any plane size.
fn by_tiles(isa: Isa, g: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (from, to, plane) = (g.in_channels, g.out_channels, g.in_h * g.in_w);
    assert!(same_3x3(g) && g.out_h == g.in_h && g.out_w == g.in_w);
    assert!(x.len() >= g.batch * from * plane && dy.len() >= g.batch * to * plane);
    let copies = Copies::new(from, g.in_h, g.in_w, 0);
    let (image_in, image_out) = (from * plane, to * plane);
    let partials: Vec<Vec<f32>> = (0..g.batch.div_ceil(IMAGES_PER_PARTIAL))
        .into_par_iter()
        .map_init(
            || copies.scratch(IMAGES_PER_PARTIAL),
            |scratch, chunk| {
                let scratch = lined(scratch);
                let first = chunk * IMAGES_PER_PARTIAL;
                let images = IMAGES_PER_PARTIAL.min(g.batch - first);
                copies.fill_images(&x[first * image_in..(first + images) * image_in], scratch);
                let mut dw = vec![0.0; g.weight_len()];
                let dy = &dy[first * image_out..];
                accumulate(isa, &copies, scratch, (dy, image_out), images, &mut dw);
                dw
            },
        )
        .collect();
    let mut dw = vec![0.0; g.weight_len()];
    for partial in &partials {
        dw.iter_mut().zip(partial).for_each(|(a, b)| *a += b);
    }
    dw
}

/// `dw` (`[rows, 9·channels]`) += `Σ_images dy · tapsᵀ` over `images` images: image `i`'s
/// copies start at `i · copies.len()` of `scratch`, and its output gradient for row `r` of `dw`
/// at `i · dy_image + r · h·w` of `dy`.
///
/// Every extent the tiles address is checked here, before any of them runs.
fn accumulate(
    isa: Isa,
    copies: &Copies,
    scratch: &[f32],
    (dy, dy_image): (&[f32], usize),
    images: usize,
    dw: &mut [f32],
) {
    let plane = copies.h * copies.w;
    let taps = copies.offsets.len();
    let rows = dw.len() / taps;
    let (nr, lanes) = (tile_rows(isa), isa.lanes());
    let largest = copies.offsets.iter().copied().max().unwrap_or(0);
    assert!(isa.available(), "{isa:?} kernels on a CPU without them");
    assert!(images > 0 && rows > 0 && dw.len() == rows * taps);
    assert!(largest + plane <= copies.len() && scratch.len() >= images * copies.len());
    assert!(dy.len() >= (images - 1) * dy_image + rows * plane);
    let per_call = (POSITIONS_PER_CALL / plane).max(1);
    for i0 in (0..images).step_by(per_call) {
        for t0 in (0..taps).step_by(TAPS) {
            // A last block of fewer than six taps repeats its last one; only real taps are
            // written.
            let offsets: [usize; TAPS] =
                std::array::from_fn(|t| copies.offsets[(t0 + t).min(taps - 1)]);
            for r0 in (0..rows).step_by(nr) {
                let tile = GradTile {
                    dy: dy[i0 * dy_image + r0 * plane..].as_ptr(),
                    dy_row: plane,
                    dy_image,
                    src: scratch[i0 * copies.len()..].as_ptr(),
                    src_image: copies.len(),
                    images: per_call.min(images - i0),
                    vectors: plane / lanes,
                    tail: plane % lanes,
                    out: dw[r0 * taps + t0..].as_mut_ptr(),
                    out_stride: taps,
                    rows: nr.min(rows - r0),
                    taps: TAPS.min(taps - t0),
                };
                // SAFETY: checked above that the CPU has `isa`'s instructions. The tile reads
                // `plane` positions of `rows` output-gradient rows (the last repeated up to
                // `nr`) and of six taps (`offset + plane ≤ copies.len()`) for each of its
                // images, all inside `dy` and `scratch` by the assertions above (the tail's
                // loads are masked), and adds to `rows × taps` elements of `dw` from
                // `(r0, t0)`.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    match isa {
                        Isa::Avx512 => tile.avx512(&offsets),
                        Isa::Avx2 => tile.avx2(&offsets),
                    }
                }
                #[cfg(not(target_arch = "x86_64"))]
                let _ = (tile, offsets);
            }
        }
    }
}

/// One microkernel call: up to `rows` output channels × up to six taps, summed over `images`
/// images of `vectors` whole vectors and a `tail` of positions each.
struct GradTile {
    dy: *const f32,
    dy_row: usize,
    dy_image: usize,
    src: *const f32,
    src_image: usize,
    images: usize,
    vectors: usize,
    tail: usize,
    out: *mut f32,
    out_stride: usize,
    rows: usize,
    taps: usize,
}

#[cfg(target_arch = "x86_64")]
impl GradTile {
    /// `out[r][t] += Σ_images Σ_j dy[r][j] · src[offsets[t] + j]`, 4 rows × 6 taps of 16-lane
    /// vectors.
    ///
    /// # Safety
    /// AVX-512F, and the extents [`accumulate`] checks.
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512(&self, offsets: &[usize; TAPS]) {
        use std::arch::x86_64::*;
        const NR: usize = 4;
        let tail = ((1u32 << self.tail) - 1) as u16;
        let mut acc = [[_mm512_setzero_ps(); TAPS]; NR];
        // Pointers step with `wrapping_add`, so that no overflow check is left in the loops in
        // any profile (the extents are checked once, by `accumulate`).
        let (mut dy, mut src) = (self.dy, self.src);
        for _ in 0..self.images {
            let d: [*const f32; NR] =
                std::array::from_fn(|r| dy.wrapping_add(self.dy_row * r.min(self.rows - 1)));
            let s: [*const f32; TAPS] = std::array::from_fn(|t| src.wrapping_add(offsets[t]));
            // SAFETY: extents checked by `accumulate`; the tail's masked lanes are not read.
            acc = unsafe { image_avx512(acc, d, s, self.vectors, tail) };
            dy = dy.wrapping_add(self.dy_image);
            src = src.wrapping_add(self.src_image);
        }
        for (r, acc) in acc.iter().enumerate().take(self.rows) {
            for (t, &sum) in acc.iter().enumerate().take(self.taps) {
                // SAFETY: row `r < rows`, tap `t < taps`.
                unsafe { *self.out.add(r * self.out_stride + t) += _mm512_reduce_add_ps(sum) };
            }
        }
    }

    /// [`GradTile::avx512`] with 2 rows × 6 taps of 8-lane vectors, on AVX2 + FMA.
    ///
    /// # Safety
    /// AVX2 and FMA, and the extents [`accumulate`] checks.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2(&self, offsets: &[usize; TAPS]) {
        use std::arch::x86_64::*;
        const NR: usize = 2;
        // Lane `l` of the tail is on when `l < tail` (the mask's sign bit).
        let tail = _mm256_cmpgt_epi32(
            _mm256_set1_epi32(self.tail as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        );
        let mut acc = [[_mm256_setzero_ps(); TAPS]; NR];
        let (mut dy, mut src) = (self.dy, self.src);
        for _ in 0..self.images {
            let d: [*const f32; NR] =
                std::array::from_fn(|r| dy.wrapping_add(self.dy_row * r.min(self.rows - 1)));
            let s: [*const f32; TAPS] = std::array::from_fn(|t| src.wrapping_add(offsets[t]));
            // SAFETY: extents checked by `accumulate`; the tail's masked lanes are not read.
            acc = unsafe { image_avx2(acc, d, s, self.vectors, tail) };
            dy = dy.wrapping_add(self.dy_image);
            src = src.wrapping_add(self.src_image);
        }
        for (r, acc) in acc.iter().enumerate().take(self.rows) {
            for (t, &sum) in acc.iter().enumerate().take(self.taps) {
                // SAFETY: row `r < rows`, tap `t < taps`.
                unsafe { *self.out.add(r * self.out_stride + t) += sum_lanes_avx2(sum) };
            }
        }
    }
}

/// One image of [`GradTile::avx512`]: `acc[r][t] += dy_r[j] · src_t[j]` over `vectors` whole
/// vectors and then the lanes of `tail`, the accumulators passed in and out by value so that
/// they stay in registers across the loop.
///
/// # Safety
/// AVX-512F; every pointer readable for `16 · vectors` lanes and the tail's.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn image_avx512(
    mut acc: [[std::arch::x86_64::__m512; TAPS]; 4],
    mut d: [*const f32; 4],
    mut s: [*const f32; TAPS],
    vectors: usize,
    tail: u16,
) -> [[std::arch::x86_64::__m512; TAPS]; 4] {
    use std::arch::x86_64::*;
    for _ in 0..vectors {
        // SAFETY (whole block): the caller's.
        unsafe {
            let g = [0, 1, 2, 3].map(|r| _mm512_loadu_ps(d[r]));
            for d in &mut d {
                *d = d.wrapping_add(16);
            }
            for (t, s) in s.iter_mut().enumerate() {
                let x = _mm512_loadu_ps(*s);
                *s = s.wrapping_add(16);
                for (acc, g) in acc.iter_mut().zip(&g) {
                    acc[t] = _mm512_fmadd_ps(*g, x, acc[t]);
                }
            }
        }
    }
    if tail != 0 {
        // SAFETY: the caller's; masked lanes are not read.
        unsafe {
            let g = [0, 1, 2, 3].map(|r| _mm512_maskz_loadu_ps(tail, d[r]));
            for (t, s) in s.iter().enumerate() {
                let x = _mm512_maskz_loadu_ps(tail, *s);
                for (acc, g) in acc.iter_mut().zip(&g) {
                    acc[t] = _mm512_fmadd_ps(*g, x, acc[t]);
                }
            }
        }
    }
    acc
}

/// One image of [`GradTile::avx2`], as [`image_avx512`] with 8-lane vectors and 2 rows; `tail`
/// has the sign bit set in the lanes to read.
///
/// # Safety
/// AVX2 and FMA; every pointer readable for `8 · vectors` lanes and the tail's.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn image_avx2(
    mut acc: [[std::arch::x86_64::__m256; TAPS]; 2],
    mut d: [*const f32; 2],
    mut s: [*const f32; TAPS],
    vectors: usize,
    tail: std::arch::x86_64::__m256i,
) -> [[std::arch::x86_64::__m256; TAPS]; 2] {
    use std::arch::x86_64::*;
    for _ in 0..vectors {
        // SAFETY (whole block): the caller's.
        unsafe {
            let g = [0, 1].map(|r| _mm256_loadu_ps(d[r]));
            for d in &mut d {
                *d = d.wrapping_add(8);
            }
            for (t, s) in s.iter_mut().enumerate() {
                let x = _mm256_loadu_ps(*s);
                *s = s.wrapping_add(8);
                for (acc, g) in acc.iter_mut().zip(&g) {
                    acc[t] = _mm256_fmadd_ps(*g, x, acc[t]);
                }
            }
        }
    }
    if _mm256_movemask_ps(_mm256_castsi256_ps(tail)) != 0 {
        // SAFETY: the caller's; masked lanes are not read.
        unsafe {
            let g = [0, 1].map(|r| _mm256_maskload_ps(d[r], tail));
            for (t, s) in s.iter().enumerate() {
                let x = _mm256_maskload_ps(*s, tail);
                for (acc, g) in acc.iter_mut().zip(&g) {
                    acc[t] = _mm256_fmadd_ps(*g, x, acc[t]);
                }
            }
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::super::tests::{SHAPES, pattern, runnable};
    use super::*;

    /// `dW[o][c][kh][kw] = Σ_b Σ_(oh, ow) dy[b][o][oh][ow] · x[b][c][oh + kh − 1][ow + kw − 1]`
    /// in f64, over the positions that read inside the input.
    fn textbook(g: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f64> {
        let (c_in, o, h, w) = (g.in_channels, g.out_channels, g.in_h, g.in_w);
        let mut dw = vec![0.0f64; g.weight_len()];
        for (i, dw) in dw.iter_mut().enumerate() {
            let (kw, kh, c, oc) = (i % 3, i / 3 % 3, i / 9 % c_in, i / (9 * c_in));
            for b in 0..g.batch {
                for oh in 0..h {
                    for ow in 0..w {
                        let (ih, iw) = (oh + kh, ow + kw);
                        if ih < 1 || iw < 1 || ih > h || iw > w {
                            continue;
                        }
                        let xv = x[((b * c_in + c) * h + ih - 1) * w + iw - 1];
                        *dw += xv as f64 * dy[((b * o + oc) * h + oh) * w + ow] as f64;
                    }
                }
            }
        }
        dw
    }

    /// A way to compute the weight gradient.
    #[derive(Debug, Clone, Copy)]
    enum Path {
        /// [`by_tiles`] on an instruction set.
        Tiles(Isa),
        /// [`outer`].
        Outer,
        /// [`stacked`], in chunks of this many images.
        Stacked(usize),
    }

    /// Every shape of the forward's tests (tails of positions, taps and rows; tiny planes,
    /// which [`applies`] sends elsewhere, still compute here), 4×4 and 3×7 planes over more
    /// images than one partial holds, 17×17 and 32×32 planes whose partials take more than one
    /// tile call (a later call starts at a later image), 170 output channels, whose last
    /// block of the stacked products' tasks is partial, and 80 and 70 output channels, which
    /// take both shapes of the outer-product tiles (the 70 on 12×12 planes, whose passes split
    /// an image): each against the textbook sum, by the tiles on every instruction set this CPU
    /// runs, by the outer-product tiles where it has AVX-512, and by the stacked products over
    /// every image at once, one image and three at a time (a shorter last chunk), on 1, 2 and 3
    /// threads, bitwise equal across them.
    #[test]
    fn weight_gradient_matches_the_textbook_sum() {
        let more = [
            [9, 5, 6, 4, 4],
            [6, 3, 9, 3, 7],
            [5, 48, 170, 4, 4],
            [5, 3, 5, 17, 17],
            [2, 4, 6, 32, 32],
            [3, 5, 80, 6, 6],
            [5, 3, 70, 12, 12],
        ];
        // The outer-product tiles run on every output channel count: 170 takes three blocks of
        // 64 (the last with 22 padding channels), 80 and 70 one of 64 and one of 32, the narrow
        // shapes one padded block of 32. The stacked products take no instruction set of their
        // own.
        let mut paths: Vec<Path> = runnable().into_iter().map(Path::Tiles).collect();
        if Isa::Avx512.available() {
            paths.push(Path::Outer);
        }
        paths.extend([usize::MAX, 1, 3].map(Path::Stacked));
        for path in paths {
            for [b, c, o, h, w] in SHAPES.into_iter().chain(more) {
                let g = ConvShape::new([b, c, h, w], [o, c, 3, 3], [1, 1], [1, 1], 1).unwrap();
                let (x, dy) = (pattern(g.input_len(), 0.37), pattern(g.output_len(), 0.23));
                let want = textbook(&g, &x, &dy);
                let on = |threads: usize| {
                    rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap()
                        .install(|| match path {
                            Path::Tiles(isa) => by_tiles(isa, &g, &x, &dy),
                            Path::Outer => outer::weight_grad(&g, &x, &dy),
                            Path::Stacked(chunk) => {
                                stacked::weight_grad_in_chunks(&g, &x, &dy, chunk)
                            }
                        })
                };
                let got = on(1);
                assert_eq!(got, on(2), "{path:?} {b}x{c}→{o} {h}x{w}");
                assert_eq!(got, on(3), "{path:?} {b}x{c}→{o} {h}x{w}");
                let scale = (b * h * w) as f64;
                for (i, (got, want)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (*got as f64 - want).abs() < 1e-5 * scale,
                        "{path:?} {b}x{c}→{o} {h}x{w} [{i}]: {got} vs {want}"
                    );
                }
            }
        }
    }

    /// Both paths refuse another geometry: a large 1×1 weight on a small plane, which the
    /// stacked products' own test alone would accept, panics before either runs.
    #[test]
    #[should_panic]
    fn another_geometry_is_refused() {
        let g = ConvShape::new([2, 256, 4, 4], [256, 256, 1, 1], [1, 1], [0, 0], 1).unwrap();
        let (x, dy) = (pattern(g.input_len(), 0.37), pattern(g.output_len(), 0.23));
        let _ = weight_grad_on(Isa::Avx2, &g, &x, &dy);
    }

    /// The dispatch: a weight of at least 65,536 elements on a plane of at most 64 pixels
    /// takes the stacked products; a smaller weight with at least 32 output channels the
    /// outer-product tiles on AVX-512; the rest (and every other layer on AVX2) the tiles. All
    /// agree (within rounding) either side of each boundary.
    #[test]
    fn each_geometry_takes_its_path() {
        for isa in runnable() {
            // 64 → 128 channels is 73,728 weights; 64 → 113 is 65,088.
            for (out, h, expect_stacked, expect_outer) in [
                (128, 8, true, false),
                (128, 9, false, false),
                (113, 8, false, true),
                (113, 17, false, true),
                (32, 8, false, true),
                (31, 8, false, false),
                (16, 16, false, false),
            ] {
                let g = ConvShape::new([2, 64, h, h], [out, 64, 3, 3], [1, 1], [1, 1], 1).unwrap();
                let expect_outer = expect_outer && isa == Isa::Avx512;
                assert_eq!(stacked::applies(&g), expect_stacked);
                assert_eq!(outer::applies(&g) && isa == Isa::Avx512, expect_outer);
                let (x, dy) = (pattern(g.input_len(), 0.37), pattern(g.output_len(), 0.23));
                let got = weight_grad_on(isa, &g, &x, &dy);
                let tiles = by_tiles(isa, &g, &x, &dy);
                let want = if expect_stacked {
                    stacked::weight_grad(&g, &x, &dy)
                } else if expect_outer {
                    outer::weight_grad(&g, &x, &dy)
                } else {
                    tiles.clone()
                };
                assert_eq!(got, want, "{isa:?} {out} {h}x{h}");
                for (a, b) in want.iter().zip(&tiles) {
                    assert!(
                        (a - b).abs() < 1e-4 * (1.0 + b.abs()),
                        "{isa:?} {out} {h}x{h}"
                    );
                }
            }
        }
    }
}

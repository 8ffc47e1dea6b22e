//! A direct 3×3 convolution (stride 1, padding 1, one group) for x86-64 CPUs with AVX-512 or
//! AVX2 + FMA: the forward and the input gradient of every 3×3 layer of the ResNets, WRNs and
//! VGGs that keeps its plane size, without im2col.
//!
//! [`super::dense`] writes nine shifted copies of every input plane (im2col) before its GEMM, and
//! the input gradient adds nine back (col2im): together a quarter of a ResNet-20 step
//! (docs/results/bench.md). Here the GEMM's microkernel reads the input planes themselves. With
//! `j = oh·W + ow` a flat output position, kernel offset `(kh, kw)` of channel `c` reads the
//! input at flat position `j + (kh − 1)·W + (kw − 1)`, one shift of the plane, except where
//! `ow + kw − 1` leaves the row: there it must read the padding but reads the neighbouring row's
//! edge. Each plane is therefore copied three times, once per `kw`, with a zero row above and
//! below and, for `kw = 0`, its last column zeroed (the only column a read from `ow = 0` wraps
//! onto), for `kw = 2` its first. Three copies instead of nine, and every `(c, kh, kw)` is then a
//! plain offset into them. Copy `kw` is stored `1 − kw` elements later and every copy starts on
//! a 64-byte line ([`lined`]), so on planes whose rows are whole lines (16 or 32 pixels wide)
//! every vector load of a tile is a whole line: on one core of an Intel Xeon with AVX-512, the
//! forward of 16→16 channels on 32×32 went from a median of 2.79 to 2.66 ms (2.72–2.82 and
//! 2.65–2.72), 32→32 on 32×32 from 10.2 to 9.4 ms (10.1–10.6 and 9.0–9.7; batch 64, five runs
//! each, commit 261fd66 against its parent).
//!
//! The microkernel keeps a tile of output positions × output channels in registers and, for
//! each `(c, kh, kw)`, loads the tile's input vectors and multiplies them by broadcast weights,
//! as `gemm`'s own kernels do for a packed matrix: with AVX-512, 64 positions (four 16-lane
//! vectors) × 6 channels in 24 accumulators (`gemm`'s `x4x6`), or 32 × 8 where six-channel
//! blocks would leave padding rows ([`TileShape`]); with AVX2, 16 positions (two
//! 8-lane vectors) × 6 channels in 12 of the 16 registers (three vectors × 4 channels, `gemm`'s
//! shape, spilled registers and ran at half the speed). On AVX-512, a plane of at most 16
//! pixels fills one vector, and a tile takes that vector from each of four images
//! ([`images`]). The input gradient of this geometry is the same convolution of the output
//! gradient with the weights' channel axes swapped and the kernel turned by 180°. The weight
//! gradient reads the same copies ([`weight_grad`]).
//!
//! Measured on one core of an AMD EPYC with AVX-512 against im2col + `gemm` (per layer, batch
//! 64): 16→16 channels on 32×32, 1.58 against 2.06 ms; 64→64 on 16×16, 5.1 against 5.9 ms;
//! 512→512 on 4×4, 28.6 against 39.4 ms (before the four-image tiles). Elsewhere (other
//! geometries, other CPUs) [`applies`] is false and [`super::dense`] runs as before.
#![allow(unsafe_code)]

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::conv_shape::ConvShape;
use super::epilogue::Epilogue;

mod weight_grad;

pub use weight_grad::{applies as weight_grad_applies, weight_grad};

/// Kernel taps `(c, kh, kw)` per pass over the output: the input rows one pass reads stay in the
/// second-level cache on wide layers.
const KC: usize = 288;

/// The vector instructions a tile runs on (also [`super::depthwise`]'s masked kernel's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Isa {
    /// 16-lane registers, tiles of 64 positions × 6 channels (32 × 8 for some widths,
    /// `TileShape`).
    Avx512,
    /// 8-lane registers with FMA, tiles of 16 positions × 6 channels.
    Avx2,
}

impl Isa {
    /// The best the running CPU has, if any.
    pub(super) fn detect() -> Option<Self> {
        [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .find(|isa| isa.available())
    }

    /// Whether the running CPU has this instruction set (the tiles' `target_feature`s).
    pub(super) fn available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
                Isa::Avx2 => {
                    std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// Output channels per tile (broadcast weights).
    fn rows(self) -> usize {
        match self {
            Isa::Avx512 | Isa::Avx2 => 6,
        }
    }

    /// Lanes per vector.
    pub(super) fn lanes(self) -> usize {
        match self {
            Isa::Avx512 => 16,
            Isa::Avx2 => 8,
        }
    }

    /// Output positions per tile.
    fn width(self) -> usize {
        match self {
            Isa::Avx512 => 64,
            Isa::Avx2 => 16,
        }
    }
}

/// Whether this convolution runs here: a dense 3×3 kernel, stride 1, padding 1 (so the output
/// plane is the input's), on a CPU with AVX-512 or AVX2 + FMA.
pub fn applies(g: &ConvShape) -> bool {
    same_3x3(g) && Isa::detect().is_some()
}

fn same_3x3(g: &ConvShape) -> bool {
    g.groups == 1 && (g.kernel_h, g.kernel_w) == (3, 3) && g.stride == [1, 1] && g.padding == [1, 1]
}

/// `conv2d(x, w)` followed by `epilogue`, for a geometry [`applies`] accepts:
/// `[batch, out_channels, h, w]`.
///
/// # Panics
/// If [`applies`] is false for `g`, or a slice is shorter than `g` says.
pub fn forward(g: &ConvShape, x: &[f32], w: &[f32], epilogue: &Epilogue<'_>) -> Vec<f32> {
    forward_on(detected(), g, x, w, epilogue)
}

/// The gradient of `conv2d(x, w)` with respect to `x` for a geometry [`applies`] accepts: the
/// convolution of `dy` with `w'[c][o][kh][kw] = w[o][c][2 − kh][2 − kw]`.
///
/// # Panics
/// If [`applies`] is false for `g`, or a slice is shorter than `g` says.
pub fn input_grad(g: &ConvShape, w: &[f32], dy: &[f32]) -> Vec<f32> {
    input_grad_on(detected(), g, w, dy)
}

/// The running CPU's instruction set, for callers whose `applies` already checked there is one.
///
/// # Panics
/// If the CPU has neither AVX-512 nor AVX2 + FMA.
pub(super) fn detected() -> Isa {
    Isa::detect().expect("the caller's `applies` checked the CPU")
}

fn forward_on(isa: Isa, g: &ConvShape, x: &[f32], w: &[f32], epilogue: &Epilogue<'_>) -> Vec<f32> {
    let taps = 9 * g.in_channels;
    let (from, to) = (g.in_channels, g.out_channels);
    let shape = TileShape::new(isa, g, to);
    let packed = pack_rows(shape.rows, to, taps, w);
    convolve(isa, shape, g, (from, to), x, &packed, epilogue)
}

fn input_grad_on(isa: Isa, g: &ConvShape, w: &[f32], dy: &[f32]) -> Vec<f32> {
    let (c_in, c_out) = (g.in_channels, g.out_channels);
    let shape = TileShape::new(isa, g, c_in);
    let packed = pack_flipped(shape.rows, c_in, c_out, w);
    convolve(isa, shape, g, (c_out, c_in), dy, &packed, &Epilogue::NONE)
}

/// Taps one step of [`pack_rows`] covers: the step's `nr` runs of the weights' rows (`nr ×
/// PACK_TAPS` floats) stay in the first-level cache while its share of the block is written
/// once, in order.
const PACK_TAPS: usize = 64;

/// The forward's weights `w` (`[rows, taps]`, row-major) in blocks of `nr` output channels,
/// tap-major within a block: `packed[block][k][r] = w[block·nr + r][k]`, the last block padded
/// with zero rows. Each block is transposed [`PACK_TAPS`] taps at a time, blocks in parallel.
///
/// The weights are repacked on every call. Packing element by element through a closure that
/// computed each source index had cost 6.1 ms for a 512 × 4608 weight (VGG's and ResNet-18's
/// widest) on one core of an Intel Xeon with AVX-512, against about 33 ms for the forward of
/// its 4×4 layer at batch 64; this takes 1.2–1.5 ms (best of twelve calls, three runs; the
/// old packing and a first version of this one, timed in one process, 6.1 against 2.9 ms).
fn pack_rows(nr: usize, rows: usize, taps: usize, w: &[f32]) -> Vec<f32> {
    match nr {
        6 => pack_rows_of::<6>(rows, taps, w),
        8 => pack_rows_of::<8>(rows, taps, w),
        _ => unreachable!("blocks of {nr} rows"),
    }
}

/// [`pack_rows`] for blocks of `NR` rows: each step reads `NR` runs of [`PACK_TAPS`] taps (zeros
/// past the last row) and writes them interleaved, in order.
fn pack_rows_of<const NR: usize>(rows: usize, taps: usize, w: &[f32]) -> Vec<f32> {
    const ZEROS: [f32; PACK_TAPS] = [0.0; PACK_TAPS];
    assert!(
        w.len() >= rows * taps,
        "weights shorter than {rows} × {taps}"
    );
    let mut packed = vec![0.0; rows.div_ceil(NR) * taps * NR];
    packed
        .par_chunks_mut(taps * NR)
        .enumerate()
        .for_each(|(block, packed)| {
            for (step, packed) in packed.chunks_mut(PACK_TAPS * NR).enumerate() {
                let (k0, m) = (step * PACK_TAPS, packed.len() / NR);
                let runs: [&[f32]; NR] = std::array::from_fn(|r| {
                    let o = block * NR + r;
                    if o < rows {
                        &w[o * taps + k0..][..m]
                    } else {
                        &ZEROS[..m]
                    }
                });
                for (k, lanes) in packed.chunks_exact_mut(NR).enumerate() {
                    for (lane, run) in lanes.iter_mut().zip(&runs) {
                        *lane = run[k];
                    }
                }
            }
        });
    packed
}

/// The input gradient's weights, `w` (`[c_out, c_in, 3, 3]`) with its channel axes swapped
/// and each kernel turned by 180°, packed as [`pack_rows`] packs the forward's:
/// `packed[block][o·9 + t][r] = w[o][block·nr + r][8 − t]`. Output channel by output channel,
/// each step reads `nr` whole kernels and writes one contiguous run of `9·nr`. The
/// element-by-element packing it replaces read `w` with a stride of one kernel and took 11.3 ms
/// for a 512 × 512 × 3 × 3 weight on one core of an Intel Xeon (best of five calls, the two
/// timed in one process), this 2.1–2.4 ms (best of twelve, three runs), against about 34 ms for
/// the input gradient of that layer on 4×4 planes at batch 64.
fn pack_flipped(nr: usize, c_in: usize, c_out: usize, w: &[f32]) -> Vec<f32> {
    match nr {
        6 => pack_flipped_of::<6>(c_in, c_out, w),
        8 => pack_flipped_of::<8>(c_in, c_out, w),
        _ => unreachable!("blocks of {nr} rows"),
    }
}

/// [`pack_flipped`] for blocks of `NR` input channels (zero kernels past the last).
fn pack_flipped_of<const NR: usize>(c_in: usize, c_out: usize, w: &[f32]) -> Vec<f32> {
    const ZEROS: [f32; 9] = [0.0; 9];
    assert!(
        w.len() >= c_out * c_in * 9,
        "weights shorter than {c_out} × {c_in} × 3 × 3"
    );
    let taps = 9 * c_out;
    let mut packed = vec![0.0; c_in.div_ceil(NR) * taps * NR];
    packed
        .par_chunks_mut(taps * NR)
        .enumerate()
        .for_each(|(block, packed)| {
            for (o, packed) in packed.chunks_exact_mut(9 * NR).enumerate() {
                let kernels: [&[f32]; NR] = std::array::from_fn(|r| {
                    let c = block * NR + r;
                    if c < c_in {
                        &w[(o * c_in + c) * 9..][..9]
                    } else {
                        &ZEROS
                    }
                });
                for (t, lanes) in packed.chunks_exact_mut(NR).enumerate() {
                    for (lane, kernel) in lanes.iter_mut().zip(&kernels) {
                        *lane = kernel[8 - t];
                    }
                }
            }
        });
    packed
}

/// The same-size 3×3 convolution of `src` (`[batch, from, h, w]`) with packed weights into
/// `[batch, to, h, w]`, then `epilogue`, images spread over rayon's workers.
fn convolve(
    isa: Isa,
    shape: TileShape,
    g: &ConvShape,
    (from, to): (usize, usize),
    src: &[f32],
    packed: &[f32],
    epilogue: &Epilogue<'_>,
) -> Vec<f32> {
    let (h, w) = (g.in_h, g.in_w);
    let plane = h * w;
    assert!(same_3x3(g) && g.out_h == h && g.out_w == w);
    assert!(isa.available(), "{isa:?} kernels on a CPU without them");
    assert!(src.len() >= g.batch * from * plane);
    assert!(from > 0, "a convolution of no input channels");
    let copies = Copies::new(from, h, w, isa.width());
    let len = g.batch * to * plane;
    // Not zeroed first: the tiles write every element (`super::uninit` has the measurements).
    let mut y = Vec::<f32>::with_capacity(len);
    // Planes of one AVX-512 vector go to the tiles four images at a time ([`images`]).
    let group = if isa == Isa::Avx512 && plane <= isa.lanes() && g.batch > 1 {
        IMAGES
    } else {
        1
    };
    let src = &src[..g.batch * from * plane];
    y.spare_capacity_mut()[..len]
        .par_chunks_mut(group * to * plane)
        .zip(src.par_chunks(group * from * plane))
        .enumerate()
        .for_each_init(
            || copies.scratch(group),
            |scratch, (index, (y, x))| {
                let scratch = lined(scratch);
                let count = x.len() / (from * plane);
                copies.fill_images(x, scratch);
                // The chunk's part of the residual, laid out as `y`.
                let first = index * group * to * plane;
                let epilogue = Epilogue {
                    residual: epilogue.residual.map(|r| &r[first..first + y.len()]),
                    ..*epilogue
                };
                if group > 1 {
                    images(shape, &copies, scratch, count, packed, to, &epilogue, y);
                } else {
                    image(isa, shape, &copies, scratch, packed, to, &epilogue, y);
                }
            },
        );
    // SAFETY: `image` and `images` wrote every element of each chunk: the first pass of taps
    // (there is one, as `from > 0`) stores each block's rows `< to` at every position of the
    // plane, of every image of the chunk.
    unsafe { y.set_len(len) };
    y
}

/// `f32`s in a 64-byte cache line: the copies start on lines, and a tap of a plane whose rows
/// are whole lines loads whole lines.
const LINE: usize = 16;

/// The part of `buffer` (from [`Copies::scratch`]) that starts on a 64-byte line: the same part
/// on every call with the same buffer, so the copies' zero borders stay where they were written.
fn lined(buffer: &mut [f32]) -> &mut [f32] {
    let skip = buffer.as_ptr().align_offset(4 * LINE);
    let skip = if skip < LINE { skip } else { 0 };
    &mut buffer[skip..]
}

/// The three column-masked copies of one image's planes ([`fill`](Copies::fill)) and where tap
/// `(c, kh, kw)` starts in them.
struct Copies {
    channels: usize,
    h: usize,
    w: usize,
    /// Length of one copy: one zero row above, the plane and one zero row below (`2w + plane`,
    /// the furthest read being `2w + plane − 1`), and two elements for copy `kw`'s plane
    /// starting `1 − kw` after the row above; rounded up to a multiple of [`LINE`], so that
    /// every copy starts on a 64-byte line, for planes larger than one AVX-512 vector, and
    /// packed for smaller ones, whose taps start mid-line whatever the copy's start (rounding
    /// them cost 3–4% of a 256→256 forward on 4×4).
    len: usize,
    /// Slack after the copies: one tile's width, so that no vector load of the last tile can
    /// leave the buffer (its lanes past the plane are masked off as well).
    slack: usize,
    /// Start of tap `(c, kh, kw)` (index `c·9 + kh·3 + kw`): element `j` of the tap is the input
    /// at output position `j` shifted by the kernel offset.
    offsets: Vec<usize>,
}

impl Copies {
    fn new(channels: usize, h: usize, w: usize, slack: usize) -> Self {
        let align = if h * w > LINE { LINE } else { 1 };
        let len = (h * w + 2 * w + 2).next_multiple_of(align);
        let mut offsets = Vec::with_capacity(9 * channels);
        for c in 0..channels {
            for kh in 0..3 {
                for kw in 0..3 {
                    // Copy `kw`'s plane starts at `w + 1 − kw` ([`fill`](Copies::fill)), so that
                    // element `j` at `kh·w` is the input at `j + (kh − 1)·w + (kw − 1)`: every
                    // tap of a plane whose rows are whole lines starts on a line.
                    offsets.push((3 * c + kw) * len + kh * w);
                }
            }
        }
        Self {
            channels,
            h,
            w,
            len,
            slack,
            offsets,
        }
    }

    /// Scratch length: the copies and the slack (a tile's width, 64 or 16, or 0), so that the
    /// copies of consecutive images start on lines too where `len` is rounded.
    fn len(&self) -> usize {
        3 * self.channels * self.len + self.slack
    }

    /// A zeroed buffer for the copies of `images` images, with room for [`lined`] to start
    /// them on a line.
    fn scratch(&self, images: usize) -> Vec<f32> {
        vec![0.0; images * self.len() + LINE - 1]
    }

    /// Writes the copies of each image of `x` (`[images, channels, h, w]`) into consecutive
    /// blocks of [`len`](Copies::len) elements of `scratch`, as [`fill`](Copies::fill).
    fn fill_images(&self, x: &[f32], scratch: &mut [f32]) {
        let image = self.channels * self.h * self.w;
        assert!(x.len().is_multiple_of(image) && scratch.len() >= x.len() / image * self.len());
        for (scratch, x) in scratch
            .chunks_exact_mut(self.len())
            .zip(x.chunks_exact(image))
        {
            self.fill(x, scratch);
        }
    }

    /// Writes the copies of `x`'s planes (`[channels, h, w]`) into `scratch`; the borders stay
    /// zero from the allocation, and only the masked columns and the planes are written.
    fn fill(&self, x: &[f32], scratch: &mut [f32]) {
        let (h, w) = (self.h, self.w);
        let plane = h * w;
        for (c, src) in x.chunks_exact(plane).take(self.channels).enumerate() {
            for kw in 0..3 {
                let start = (3 * c + kw) * self.len + w + 1 - kw;
                copy_masked(kw, w, src, &mut scratch[start..start + plane]);
            }
        }
    }
}

/// `dst = src` (a plane of rows of `w`) for copy `kw`: with its last column zeroed for
/// `kw = 0` and its first for `kw = 2`, the only columns a read at `kw − 1 = ±1` wraps onto.
fn copy_masked(kw: usize, w: usize, src: &[f32], dst: &mut [f32]) {
    dst.copy_from_slice(src);
    match kw {
        0 => dst.iter_mut().skip(w - 1).step_by(w).for_each(|v| *v = 0.0),
        2 => dst.iter_mut().step_by(w).for_each(|v| *v = 0.0),
        _ => {}
    }
}

/// One image: `y` (`[to, h·w]`) = the packed weights applied to the taps of `copies`.
///
/// Every extent the tiles address is checked here, before any of them runs: the largest tap
/// offset plus the plane plus one tile width stays inside `scratch`, the packed weights hold
/// every block's taps, and each tile writes rows `< to` and positions `< h·w` of `y`.
#[allow(clippy::too_many_arguments)]
fn image(
    isa: Isa,
    shape: TileShape,
    copies: &Copies,
    scratch: &[f32],
    packed: &[f32],
    to: usize,
    epilogue: &Epilogue<'_>,
    y: &mut [MaybeUninit<f32>],
) {
    let plane = copies.h * copies.w;
    let taps = copies.offsets.len();
    let (nr, mr, lanes) = (shape.rows, shape.width, isa.lanes());
    let largest = copies.offsets.iter().copied().max().unwrap_or(0);
    assert!(isa.available(), "{isa:?} kernels on a CPU without them");
    assert!(
        mr <= isa.width() && scratch.len() >= copies.len() && largest + plane + mr <= scratch.len()
    );
    assert!(y.len() >= to * plane && packed.len() >= to.div_ceil(nr) * taps * nr);
    assert!(epilogue.bias.is_none_or(|b| b.len() >= to));
    assert!(epilogue.residual.is_none_or(|r| r.len() >= to * plane));
    for k0 in (0..taps).step_by(KC) {
        let offsets = &copies.offsets[k0..(k0 + KC).min(taps)];
        for m0 in (0..plane).step_by(mr) {
            let width = (plane - m0).min(mr);
            let vectors = width.div_ceil(lanes);
            let blocks = to.div_ceil(nr);
            let mut block = 0;
            while block < blocks {
                // One-vector tiles (planes of at most 16 pixels on AVX-512) have only six
                // independent accumulators and load a weight for every multiply-add: they take
                // up to four blocks of channels at once.
                let group = match (isa, vectors, nr) {
                    (Isa::Avx512, 1, 6) => BLOCKS.min(blocks - block),
                    _ => 1,
                };
                let tile = Tile {
                    src: scratch[m0..].as_ptr(),
                    src_vector_stride: lanes,
                    weights: packed[(block * taps + k0) * nr..].as_ptr(),
                    block_stride: taps * nr,
                    out: y[block * nr * plane + m0..].as_mut_ptr().cast::<f32>(),
                    out_stride: plane,
                    out_vector_stride: lanes,
                    rows: (group * nr).min(to - block * nr),
                    tail: width - lanes * (vectors - 1),
                    tail_in_every_vector: false,
                    accumulate: k0 > 0,
                    finish: Finish::of(
                        epilogue,
                        k0 + KC >= taps,
                        block * nr,
                        block * nr * plane + m0,
                    ),
                };
                // SAFETY: checked above that the CPU has `isa`'s instructions. The tile
                // reads `offsets[i] + m0 + [0, width)` of `scratch` (inside it by the assertion
                // above, whole vectors included), `offsets.len() · nr` packed weights from tap
                // `k0` of each of its `group` blocks (`block + group ≤ blocks`), and writes
                // `rows` rows of `width` positions from `m0` of `y`. Its `finish` reads the bias
                // of those rows and the residual at the same positions: `block · nr + rows ≤ to`
                // and the residual holds `to · plane`, by the assertions above.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    match (isa, nr, vectors, group) {
                        (Isa::Avx512, 8, 2, _) => tile.avx512::<2, 8>(offsets),
                        (Isa::Avx512, 8, 1, _) => tile.avx512::<1, 8>(offsets),
                        (Isa::Avx512, 6, 4, _) => tile.avx512::<4, 6>(offsets),
                        (Isa::Avx512, 6, 3, _) => tile.avx512::<3, 6>(offsets),
                        (Isa::Avx512, 6, 2, _) => tile.avx512::<2, 6>(offsets),
                        (Isa::Avx512, 6, 1, 4) => tile.avx512_blocks::<4>(offsets),
                        (Isa::Avx512, 6, 1, 3) => tile.avx512_blocks::<3>(offsets),
                        (Isa::Avx512, 6, 1, 2) => tile.avx512_blocks::<2>(offsets),
                        (Isa::Avx512, 6, 1, _) => tile.avx512::<1, 6>(offsets),
                        (Isa::Avx2, 6, 2, _) => tile.avx2::<2>(offsets),
                        (Isa::Avx2, 6, 1, _) => tile.avx2::<1>(offsets),
                        (_, nr, vectors, _) => {
                            unreachable!("{vectors} vectors × {nr} rows in one tile")
                        }
                    }
                }
                #[cfg(not(target_arch = "x86_64"))]
                let _ = (tile, offsets);
                block += group;
            }
        }
    }
}

/// The rows (output channels, also the packed weights' block) and width (positions) of
/// [`image`]'s tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TileShape {
    rows: usize,
    width: usize,
}

impl TileShape {
    /// [`Isa::rows`] × [`Isa::width`], except on AVX-512 for planes of more than one vector and
    /// up to 64 output channels (`to`) that are a multiple of 8 but not of 6 (8, 16, 32, 40,
    /// 56, 64: the 16- and 32-channel stages of the ResNets and WRNs): there six-channel blocks
    /// compute padding rows (12 for 8 channels, 18 for 16, 36 for 32, 66 for 64), and tiles of
    /// 8 channels × 32 positions (16 accumulators) compute none. On one core of an Intel Xeon,
    /// batch 64, against the six-channel tiles in the same binary (commit 8ac2e9c), the forward
    /// of 16→16 channels on 32×32 went from 2.38–2.48 to 2.06–2.27 ms, 32→32 on 16×16 from
    /// 2.18–2.21 to 1.92–1.96 ms, 32→32 on 32×32 from 8.7 to 7.9–8.1 ms and 64→64 on 8×8 from
    /// 2.05 to 1.96–2.03 ms; 128 and 256 channels, whose blocks waste about 3% and 1%, were the
    /// same either way, and tiles of 8 × 48 positions were no better than 8 × 32.
    fn new(isa: Isa, g: &ConvShape, to: usize) -> Self {
        let narrow = to <= 64 && to.is_multiple_of(8) && !to.is_multiple_of(6);
        if isa == Isa::Avx512 && narrow && g.in_h * g.in_w > isa.lanes() {
            Self {
                rows: 8,
                width: 2 * isa.lanes(),
            }
        } else {
            Self {
                rows: isa.rows(),
                width: isa.width(),
            }
        }
    }
}

/// Images one AVX-512 tile of [`images`] takes, one vector each.
const IMAGES: usize = 4;

/// Up to [`IMAGES`] images whose planes fit in one AVX-512 vector (VGG's and ResNet-18/34's
/// 4×4 stages): `y` (`[count, to, h·w]`) = the packed weights applied to the taps of each
/// image's copies, image `i`'s at `i · copies.len()` of `scratch`.
///
/// A tile takes one vector from each image, the same shape as a 64-position tile of a larger
/// plane: 4 input vectors and 6 broadcast weights per 24 multiply-adds. A one-vector tile of a
/// single image ([`Tile::avx512_blocks`]) loads a weight for every multiply-add.
///
/// Every extent the tiles address is checked here, as in [`image`].
#[allow(clippy::too_many_arguments)]
fn images(
    shape: TileShape,
    copies: &Copies,
    scratch: &[f32],
    count: usize,
    packed: &[f32],
    to: usize,
    epilogue: &Epilogue<'_>,
    y: &mut [MaybeUninit<f32>],
) {
    let plane = copies.h * copies.w;
    let taps = copies.offsets.len();
    let (nr, lanes) = (shape.rows, Isa::Avx512.lanes());
    let largest = copies.offsets.iter().copied().max().unwrap_or(0);
    assert!(
        Isa::Avx512.available(),
        "AVX-512 kernels on a CPU without them"
    );
    // The four-image tiles are six channels wide, as `TileShape` gives for these planes.
    assert!((1..=IMAGES).contains(&count) && plane <= lanes && nr == 6);
    assert!((count - 1) * copies.len() + largest + lanes <= scratch.len());
    assert!(y.len() >= count * to * plane && packed.len() >= to.div_ceil(nr) * taps * nr);
    assert!(epilogue.bias.is_none_or(|b| b.len() >= to));
    assert!(
        epilogue
            .residual
            .is_none_or(|r| r.len() >= count * to * plane)
    );
    for k0 in (0..taps).step_by(KC) {
        let offsets = &copies.offsets[k0..(k0 + KC).min(taps)];
        for block in 0..to.div_ceil(nr) {
            let tile = Tile {
                src: scratch.as_ptr(),
                src_vector_stride: copies.len(),
                weights: packed[(block * taps + k0) * nr..].as_ptr(),
                block_stride: taps * nr,
                out: y[block * nr * plane..].as_mut_ptr().cast::<f32>(),
                out_stride: plane,
                out_vector_stride: to * plane,
                rows: nr.min(to - block * nr),
                tail: plane,
                tail_in_every_vector: true,
                accumulate: k0 > 0,
                finish: Finish::of(epilogue, k0 + KC >= taps, block * nr, block * nr * plane),
            };
            // SAFETY: checked above that the CPU has AVX-512. Vector `v` of the tile reads
            // `v · copies.len() + offsets[i] + [0, 16)` of `scratch` (inside it by the
            // assertion above, as `v < count`), `offsets.len() · nr` packed weights from tap
            // `k0` of block `block`, and writes `rows` rows of the plane's `tail` positions of
            // image `v` of `y`, reading the bias of those rows and the residual at the same
            // positions (inside them by the assertions above).
            #[cfg(target_arch = "x86_64")]
            unsafe {
                match count {
                    4 => tile.avx512::<4, 6>(offsets),
                    3 => tile.avx512::<3, 6>(offsets),
                    2 => tile.avx512::<2, 6>(offsets),
                    _ => tile.avx512::<1, 6>(offsets),
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = (tile, offsets);
        }
    }
}

/// Blocks of output channels a one-vector AVX-512 tile takes at once: 24 accumulators.
const BLOCKS: usize = 4;

/// The sum of an AVX2 vector's eight lanes, halving: the reduction of the weight gradients'
/// accumulators.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn sum_lanes_avx2(v: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let pair = _mm_add_ps(half, _mm_movehl_ps(half, half));
    _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)))
}

/// One microkernel call: up to `rows` output channels × up to one tile width of positions.
struct Tile {
    src: *const f32,
    /// Distance between the tile's vectors in `src` ([`Tile::avx512`]): one vector's lanes
    /// within a plane, or one image's copies when each vector is a whole plane of another image
    /// ([`images`]).
    src_vector_stride: usize,
    weights: *const f32,
    /// Distance between consecutive blocks' packed weights ([`Tile::avx512_blocks`]).
    block_stride: usize,
    out: *mut f32,
    out_stride: usize,
    /// Distance between the tile's vectors in `out` ([`Tile::avx512`]), as `src_vector_stride`.
    out_vector_stride: usize,
    rows: usize,
    /// Lanes of the last vector that are inside the plane.
    tail: usize,
    /// Each vector is a plane of its own ([`images`]), so `tail` applies to every one.
    tail_in_every_vector: bool,
    /// Add to `out` (a later chunk of taps) rather than overwrite it.
    accumulate: bool,
    /// The epilogue, applied before the store of the last chunk of taps.
    finish: Finish,
}

/// An [`Epilogue`] fused into a tile's last store, so that the output is written once: the
/// epilogue's own pass over each image had been 6% of a resnet32 inference profile.
#[derive(Debug, Clone, Copy)]
struct Finish {
    /// Row `r`'s bias at `bias.add(r)`, or null for none.
    bias: *const f32,
    /// The residual, laid out as the tile's `out`, or null for none.
    residual: *const f32,
    relu: bool,
}

impl Finish {
    /// `epilogue`'s steps from output row `row` and element `at` of its residual, if `last`;
    /// none otherwise.
    fn of(epilogue: &Epilogue<'_>, last: bool, row: usize, at: usize) -> Self {
        if !last {
            return Self {
                bias: std::ptr::null(),
                residual: std::ptr::null(),
                relu: false,
            };
        }
        Self {
            bias: epilogue
                .bias
                .map_or(std::ptr::null(), |b| b[row..].as_ptr()),
            residual: epilogue
                .residual
                .map_or(std::ptr::null(), |r| r[at..].as_ptr()),
            relu: epilogue.relu,
        }
    }

    /// `max(sum + bias[r] + residual[at], 0)`, each step as present, the residual's lanes
    /// under `lanes`: the order of [`Epilogue::apply`].
    ///
    /// # Safety
    /// AVX-512F; row `r` of the bias and the residual's lanes at `at` are inside them.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512(
        &self,
        sum: std::arch::x86_64::__m512,
        r: usize,
        at: usize,
        lanes: u16,
    ) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        let mut sum = sum;
        // SAFETY: the caller's.
        unsafe {
            if !self.bias.is_null() {
                sum = _mm512_add_ps(sum, _mm512_set1_ps(*self.bias.add(r)));
            }
            if !self.residual.is_null() {
                sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(lanes, self.residual.add(at)));
            }
        }
        if self.relu {
            // `max(0, sum)`: NaN stays NaN (`super::epilogue::relu`).
            sum = _mm512_max_ps(_mm512_setzero_ps(), sum);
        }
        sum
    }

    /// [`Finish::avx512`] on AVX2 vectors, the residual's lanes under the sign bits of `lanes`.
    ///
    /// # Safety
    /// AVX2; row `r` of the bias and the residual's lanes at `at` are inside them.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn avx2(
        &self,
        sum: std::arch::x86_64::__m256,
        r: usize,
        at: usize,
        lanes: std::arch::x86_64::__m256i,
    ) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        let mut sum = sum;
        // SAFETY: the caller's.
        unsafe {
            if !self.bias.is_null() {
                sum = _mm256_add_ps(sum, _mm256_set1_ps(*self.bias.add(r)));
            }
            if !self.residual.is_null() {
                sum = _mm256_add_ps(sum, _mm256_maskload_ps(self.residual.add(at), lanes));
            }
        }
        if self.relu {
            sum = _mm256_max_ps(_mm256_setzero_ps(), sum);
        }
        sum
    }
}

#[cfg(target_arch = "x86_64")]
impl Tile {
    /// The AVX-512 mask of the last vector's lanes inside the plane.
    fn tail_mask(&self) -> u16 {
        ((1u32 << self.tail) - 1) as u16
    }

    /// `out[r][v] (+)= Σ_i weights[i][r] · src[offsets[i] + v · src_vector_stride]`, `V`
    /// vectors of 16 lanes (stored `v · out_vector_stride` apart), `NR` rows.
    ///
    /// # Safety
    /// AVX-512F, and the extents [`image`] or [`images`] checks.
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512<const V: usize, const NR: usize>(&self, offsets: &[usize]) {
        use std::arch::x86_64::*;
        let tail = self.tail_mask();
        let every = self.tail_in_every_vector;
        let lanes = |v: usize| if v + 1 == V || every { tail } else { u16::MAX };
        let mut acc = [[_mm512_setzero_ps(); V]; NR];
        // Pointer steps with `wrapping_add` and no index arithmetic in the loop, so that no
        // overflow or precondition check is left in it in any profile (the extents are checked
        // once, by `image`).
        let mut wk = self.weights;
        for &offset in offsets {
            // SAFETY (whole block): extents checked by `image` or `images`.
            unsafe {
                let a = self.src.wrapping_add(offset);
                let mut input = [_mm512_setzero_ps(); V];
                for (v, input) in input.iter_mut().enumerate() {
                    *input = _mm512_loadu_ps(a.wrapping_add(self.src_vector_stride * v));
                }
                for (r, acc) in acc.iter_mut().enumerate() {
                    let b = _mm512_broadcastss_ps(_mm_load_ss(wk.wrapping_add(r)));
                    for (acc, input) in acc.iter_mut().zip(&input) {
                        *acc = _mm512_fmadd_ps(*input, b, *acc);
                    }
                }
            }
            wk = wk.wrapping_add(NR);
        }
        for (r, acc) in acc.iter().enumerate().take(self.rows) {
            for (v, &sum) in acc.iter().enumerate() {
                // SAFETY: row `r < rows`, lanes inside the tile's width; `finish`'s bias row
                // and residual lanes are as inside theirs (checked by `image` or `images`).
                unsafe {
                    let offset = r * self.out_stride + self.out_vector_stride * v;
                    let at = self.out.add(offset);
                    let sum = if self.accumulate {
                        _mm512_add_ps(sum, _mm512_maskz_loadu_ps(lanes(v), at))
                    } else {
                        sum
                    };
                    let sum = self.finish.avx512(sum, r, offset, lanes(v));
                    _mm512_mask_storeu_ps(at, lanes(v), sum);
                }
            }
        }
    }

    /// [`Tile::avx512`] for one vector of positions and `B` blocks of 6 channels, the blocks'
    /// packed weights `block_stride` apart: `6·B` accumulators.
    ///
    /// # Safety
    /// AVX-512F, and the extents [`image`] checks.
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_blocks<const B: usize>(&self, offsets: &[usize]) {
        use std::arch::x86_64::*;
        const NR: usize = 6;
        let tail = self.tail_mask();
        let mut acc = [[_mm512_setzero_ps(); NR]; B];
        let mut wk = [self.weights; B];
        for (b, wk) in wk.iter_mut().enumerate() {
            *wk = self.weights.wrapping_add(b * self.block_stride);
        }
        for &offset in offsets {
            // SAFETY (whole block): extents checked by `image`.
            unsafe {
                let input = _mm512_loadu_ps(self.src.wrapping_add(offset));
                for (acc, wk) in acc.iter_mut().zip(&mut wk) {
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let k = _mm512_broadcastss_ps(_mm_load_ss(wk.wrapping_add(r)));
                        *acc = _mm512_fmadd_ps(input, k, *acc);
                    }
                    *wk = wk.wrapping_add(NR);
                }
            }
        }
        for (r, sum) in acc.into_iter().flatten().enumerate().take(self.rows) {
            // SAFETY: row `r < rows`, lanes inside the tile's width; `finish`'s bias row and
            // residual lanes are as inside theirs (checked by `image`).
            unsafe {
                let offset = r * self.out_stride;
                let at = self.out.add(offset);
                let sum = if self.accumulate {
                    _mm512_add_ps(sum, _mm512_maskz_loadu_ps(tail, at))
                } else {
                    sum
                };
                let sum = self.finish.avx512(sum, r, offset, tail);
                _mm512_mask_storeu_ps(at, tail, sum);
            }
        }
    }

    /// [`Tile::avx512`] with `V` vectors of 8 lanes, on AVX2 + FMA, consecutive in a plane (the
    /// vector strides and `tail_in_every_vector` are AVX-512's alone).
    ///
    /// # Safety
    /// AVX2 and FMA, and the extents [`image`] checks.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2<const V: usize>(&self, offsets: &[usize]) {
        use std::arch::x86_64::*;
        debug_assert!(self.src_vector_stride == 8 && !self.tail_in_every_vector);
        const NR: usize = 6;
        // Lane `l` of the last vector is on when `l < tail` (the mask's sign bit).
        let tail = _mm256_cmpgt_epi32(
            _mm256_set1_epi32(self.tail as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        );
        let all = _mm256_set1_epi32(-1);
        let lanes = |v: usize| if v + 1 == V { tail } else { all };
        let mut acc = [[_mm256_setzero_ps(); V]; NR];
        // Pointer steps with `wrapping_add` and no index arithmetic in the loop, so that no
        // overflow or precondition check is left in it in any profile (the extents are checked
        // once, by `image`).
        let mut wk = self.weights;
        for &offset in offsets {
            // SAFETY (whole block): extents checked by `image`.
            unsafe {
                let a = self.src.wrapping_add(offset);
                let mut input = [_mm256_setzero_ps(); V];
                for (v, input) in input.iter_mut().enumerate() {
                    *input = _mm256_loadu_ps(a.wrapping_add(8 * v));
                }
                for (r, acc) in acc.iter_mut().enumerate() {
                    let b = _mm256_broadcastss_ps(_mm_load_ss(wk.wrapping_add(r)));
                    for (acc, input) in acc.iter_mut().zip(&input) {
                        *acc = _mm256_fmadd_ps(*input, b, *acc);
                    }
                }
            }
            wk = wk.wrapping_add(NR);
        }
        for (r, acc) in acc.iter().enumerate().take(self.rows) {
            for (v, &sum) in acc.iter().enumerate() {
                // SAFETY: row `r < rows`, lanes inside the tile's width; `finish`'s bias row
                // and residual lanes are as inside theirs (checked by `image` or `images`).
                unsafe {
                    let offset = r * self.out_stride + 8 * v;
                    let at = self.out.add(offset);
                    let sum = if self.accumulate {
                        _mm256_add_ps(sum, _mm256_maskload_ps(at, lanes(v)))
                    } else {
                        sum
                    };
                    let sum = self.finish.avx2(sum, r, offset, lanes(v));
                    _mm256_maskstore_ps(at, lanes(v), sum);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Textbook convolution in f64: `[batch, o, h, w]` from `[batch, c, h, w]`, 3×3, padding 1.
    fn textbook(g: &ConvShape, x: &[f32], w: &[f32]) -> Vec<f64> {
        let (c_in, o, h, wd) = (g.in_channels, g.out_channels, g.in_h, g.in_w);
        let mut y = vec![0.0f64; g.batch * o * h * wd];
        for b in 0..g.batch {
            for oc in 0..o {
                for oh in 0..h {
                    for ow in 0..wd {
                        let mut s = 0.0f64;
                        for c in 0..c_in {
                            for kh in 0..3 {
                                for kw in 0..3 {
                                    let (ih, iw) = (oh + kh, ow + kw);
                                    if ih < 1 || iw < 1 || ih > h || iw > wd {
                                        continue;
                                    }
                                    let xv = x[((b * c_in + c) * h + ih - 1) * wd + iw - 1];
                                    let wv = w[((oc * c_in + c) * 3 + kh) * 3 + kw];
                                    s += xv as f64 * wv as f64;
                                }
                            }
                        }
                        y[((b * o + oc) * h + oh) * wd + ow] = s;
                    }
                }
            }
        }
        y
    }

    pub(super) fn pattern(n: usize, step: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * step).sin()).collect()
    }

    /// Odd sizes: output channels not a multiple of 6, planes of one and of several tiles that
    /// end in a partial one, a plane of exactly one AVX-512 tile over two passes of taps
    /// ([`KC`]), planes of 1×1, 1×2 and rows of 1 and 2 pixels, and one-vector planes with
    /// 2 to 5 blocks of output channels (groups of 4, 3 and 2 blocks, one of them over two
    /// passes of taps).
    pub(super) const SHAPES: [[usize; 5]; 18] = [
        // batch, in, out, h, w
        [19, 3, 7, 2, 2],
        [5, 33, 6, 1, 1],
        [2, 3, 7, 5, 9],
        [2, 3, 5, 9, 11],
        [1, 40, 7, 8, 8],
        [1, 2, 5, 1, 2],
        [1, 37, 13, 9, 7],
        [2, 16, 16, 12, 12],
        [1, 4, 5, 1, 1],
        [1, 2, 6, 2, 1],
        [2, 5, 27, 4, 4],
        [1, 7, 15, 3, 3],
        [1, 40, 25, 4, 4],
        // Groups of four one-vector images and a shorter last group, over two passes of taps.
        [6, 40, 13, 4, 4],
        [9, 2, 6, 3, 5],
        // Rows of one AVX-512 vector: every tap starts on a 64-byte line.
        [3, 5, 7, 3, 16],
        // Eight-channel tiles over two passes of taps (40 input channels), and as the input
        // gradient's 40 output channels.
        [1, 40, 16, 6, 6],
        // 64 channels in tiles of 8 (as output channels), ending in a three-position tile.
        [2, 3, 64, 5, 7],
    ];

    /// Both packings against their definitions, on row counts that leave a short last block
    /// and tap counts that leave a short last step of [`PACK_TAPS`] or end on a whole one.
    #[test]
    fn packed_weights_are_the_transposed_blocks() {
        for (nr, c_out, c_in) in [(6, 7, 3), (8, 16, 8), (6, 13, 9), (8, 5, 11), (6, 12, 64)] {
            let w: Vec<f32> = (0..c_out * c_in * 9).map(|i| i as f32).collect();
            let taps = 9 * c_in;
            let packed = pack_rows(nr, c_out, taps, &w);
            assert_eq!(packed.len(), c_out.div_ceil(nr) * taps * nr);
            for (i, &v) in packed.iter().enumerate() {
                let (block, k, r) = (i / (taps * nr), i / nr % taps, i % nr);
                let o = block * nr + r;
                let want = if o < c_out { w[o * taps + k] } else { 0.0 };
                assert_eq!(v, want, "rows {nr}×{c_out}×{c_in}, element {i}");
            }
            let flipped = pack_flipped(nr, c_in, c_out, &w);
            assert_eq!(flipped.len(), c_in.div_ceil(nr) * 9 * c_out * nr);
            for (i, &v) in flipped.iter().enumerate() {
                let (block, k, r) = (i / (9 * c_out * nr), i / nr % (9 * c_out), i % nr);
                let (c, o, t) = (block * nr + r, k / 9, k % 9);
                let want = if c < c_in {
                    w[(o * c_in + c) * 9 + 8 - t]
                } else {
                    0.0
                };
                assert_eq!(v, want, "flipped {nr}×{c_out}×{c_in}, element {i}");
            }
        }
    }

    /// Weights shorter than the shape are refused before anything is packed.
    #[test]
    #[should_panic(expected = "weights shorter than 7 × 27")]
    fn short_weights_are_refused() {
        pack_rows(6, 7, 27, &[0.0; 7 * 27 - 1]);
    }

    #[test]
    #[should_panic(expected = "weights shorter than 7 × 3 × 3 × 3")]
    fn short_flipped_weights_are_refused() {
        pack_flipped(8, 3, 7, &[0.0; 7 * 3 * 9 - 1]);
    }

    /// [`lined`] starts on a 64-byte line wherever the buffer starts, within its first line,
    /// and gives the same part on every call.
    #[test]
    fn lined_starts_on_a_line() {
        let mut buffer = vec![0.0f32; 100];
        for start in 0..LINE {
            let part = &mut buffer[start..];
            let len = part.len();
            let first = lined(part).as_ptr();
            assert_eq!(first as usize % (4 * LINE), 0, "from element {start}");
            assert!(len - lined(part).len() < LINE);
            assert_eq!(lined(part).as_ptr(), first);
        }
    }

    /// Eight-channel tiles exactly where six-channel blocks would pad: 16, 32 and 64 channels
    /// on AVX-512 planes of more than one vector.
    #[test]
    fn narrow_layers_take_eight_channel_tiles() {
        let g = |h, w| ConvShape::new([2, 3, h, w], [5, 3, 3, 3], [1, 1], [1, 1], 1).unwrap();
        let (six, eight) = (
            TileShape { rows: 6, width: 64 },
            TileShape { rows: 8, width: 32 },
        );
        for (to, want) in [
            (16, eight),
            (32, eight),
            (64, eight),
            (40, eight),
            (8, eight),
        ] {
            assert_eq!(TileShape::new(Isa::Avx512, &g(8, 8), to), want, "{to}");
        }
        for to in [6, 7, 48, 96, 128, 256, 512] {
            assert_eq!(TileShape::new(Isa::Avx512, &g(8, 8), to), six, "{to}");
        }
        assert_eq!(TileShape::new(Isa::Avx512, &g(4, 4), 16), six);
        assert_eq!(TileShape::new(Isa::Avx512, &g(2, 9), 16), eight);
        let avx2 = TileShape { rows: 6, width: 16 };
        assert_eq!(TileShape::new(Isa::Avx2, &g(8, 8), 16), avx2);
    }

    /// The instruction sets this CPU can run, best first.
    pub(super) fn runnable() -> Vec<Isa> {
        match Isa::detect() {
            Some(Isa::Avx512) => vec![Isa::Avx512, Isa::Avx2],
            Some(Isa::Avx2) => vec![Isa::Avx2],
            None => vec![],
        }
    }

    #[test]
    fn forward_matches_the_textbook_convolution() {
        for isa in runnable() {
            for [b, c, o, h, w] in SHAPES {
                let g = ConvShape::new([b, c, h, w], [o, c, 3, 3], [1, 1], [1, 1], 1).unwrap();
                let (x, wt) = (pattern(g.input_len(), 0.37), pattern(g.weight_len(), 0.11));
                let want = textbook(&g, &x, &wt);
                for (got, want) in forward_on(isa, &g, &x, &wt, &Epilogue::NONE)
                    .iter()
                    .zip(&want)
                {
                    assert!(
                        (*got as f64 - want).abs() < 1e-4,
                        "{isa:?} {b}x{c}→{o} {h}x{w}: {got} vs {want}"
                    );
                }
            }
        }
    }

    /// The epilogue fused into the tiles' last store equals the epilogue's own pass over the
    /// plain forward, step for step: bias, residual and ReLU alone and together, on every
    /// shape (over two passes of taps where the input has more than 32 channels).
    #[test]
    fn fused_epilogue_matches_the_epilogue_pass() {
        for isa in runnable() {
            for [b, c, o, h, w] in SHAPES {
                let g = ConvShape::new([b, c, h, w], [o, c, 3, 3], [1, 1], [1, 1], 1).unwrap();
                let (x, wt) = (pattern(g.input_len(), 0.37), pattern(g.weight_len(), 0.11));
                let (bias, residual) = (pattern(o, 0.7), pattern(g.output_len(), 0.19));
                let plain = forward_on(isa, &g, &x, &wt, &Epilogue::NONE);
                for (bias, residual, relu) in [
                    (Some(&bias[..]), None, false),
                    (None, Some(&residual[..]), false),
                    (None, None, true),
                    (Some(&bias[..]), Some(&residual[..]), true),
                ] {
                    let epilogue = Epilogue {
                        bias,
                        residual,
                        relu,
                    };
                    let mut want = plain.clone();
                    for (i, y) in want.chunks_exact_mut(o * h * w).enumerate() {
                        epilogue.apply(i, o, h * w, y);
                    }
                    let got = forward_on(isa, &g, &x, &wt, &epilogue);
                    assert_eq!(got.len(), want.len());
                    for (k, (got, want)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (got - want).abs() < 1e-6,
                            "{isa:?} {b}x{c}→{o} {h}x{w} {:?} [{k}]: {got} vs {want}",
                            (bias.is_some(), residual.is_some(), relu)
                        );
                    }
                }
            }
        }
    }

    /// A fused ReLU keeps NaN, as burn's does: the outputs that read a NaN input stay NaN, the
    /// rest are clamped as usual.
    #[test]
    fn fused_relu_keeps_nan() {
        for isa in runnable() {
            for [b, c, o, h, w] in [[2, 3, 16, 5, 5], [1, 3, 7, 9, 9], [5, 2, 6, 4, 4]] {
                let g = ConvShape::new([b, c, h, w], [o, c, 3, 3], [1, 1], [1, 1], 1).unwrap();
                let mut x = pattern(g.input_len(), 0.37);
                x[0] = f32::NAN;
                let wt = pattern(g.weight_len(), 0.11);
                let relu = Epilogue {
                    relu: true,
                    ..Epilogue::NONE
                };
                let plain = forward_on(isa, &g, &x, &wt, &Epilogue::NONE);
                let got = forward_on(isa, &g, &x, &wt, &relu);
                assert!(plain[0].is_nan(), "{isa:?}: the NaN reaches the output");
                for (got, plain) in got.iter().zip(&plain) {
                    let want = if plain.is_nan() {
                        f32::NAN
                    } else {
                        plain.max(0.0)
                    };
                    assert!(
                        got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                        "{isa:?} {b}x{c}→{o} {h}x{w}: {got} from {plain}"
                    );
                }
            }
        }
    }

    /// The input gradient against the textbook adjoint in f64: `dx[c][ih][iw] = Σ w[o][c][kh][kw] ·
    /// dy[o][ih + 1 − kh][iw + 1 − kw]` over the taps that land inside the output.
    #[test]
    fn input_gradient_matches_the_textbook_adjoint() {
        for isa in runnable() {
            for [b, c, o, h, w] in SHAPES {
                let g = ConvShape::new([b, c, h, w], [o, c, 3, 3], [1, 1], [1, 1], 1).unwrap();
                let (wt, dy) = (pattern(g.weight_len(), 0.11), pattern(g.output_len(), 0.23));
                let dx = input_grad_on(isa, &g, &wt, &dy);
                for (i, got) in dx.iter().enumerate() {
                    let (iw, ih, ci, bi) = (i % w, i / w % h, i / (w * h) % c, i / (w * h * c));
                    let mut want = 0.0f64;
                    for oc in 0..o {
                        for kh in 0..3 {
                            for kw in 0..3 {
                                let (oh, ow) = (ih + 1, iw + 1);
                                if oh < kh || ow < kw || oh - kh >= h || ow - kw >= w {
                                    continue;
                                }
                                let d = dy[((bi * o + oc) * h + oh - kh) * w + ow - kw];
                                want += wt[((oc * c + ci) * 3 + kh) * 3 + kw] as f64 * d as f64;
                            }
                        }
                    }
                    assert!(
                        (*got as f64 - want).abs() < 1e-4,
                        "{isa:?} {c}→{o} {h}x{w} [{i}]: {got} vs {want}"
                    );
                }
            }
        }
    }
}

//! 3×3 depthwise convolutions with padding 1 and stride 1 or 2 (every depthwise layer of
//! MobileNetV2 and the ShuffleNets), read straight from each image's planes with masked vector
//! loads (AVX-512, or AVX2 + FMA): the forward with its [`Epilogue`], the weight gradient, and
//! the input gradient of stride 1.
//!
//! With `j = oh·out_w + ow` a flat output position, kernel offset `(kh, kw)` reads input row
//! `s·oh + kh − 1`, column `s·ow + kw − 1`. For stride 1 that is flat input position
//! `j + (kh − 1)·W + (kw − 1)`: a vector of consecutive outputs reads consecutive inputs, and the lanes
//! whose read leaves the plane (a row above or below, or a column that wraps onto the
//! neighbouring row) are masked off, so the load reads zeros there, as the padding would. For
//! stride 2 each plane is first split into its four phases (even and odd rows × even and odd
//! columns, each `out_h × out_w`); a kernel offset then reads one phase at a constant shift, and
//! the same masks apply. The masks and shifts depend only on the geometry and are worked out
//! once per call ([`Plan`]).
//!
//! Each output vector is one accumulator over the nine offsets; four vectors (of one plane or
//! of consecutive channels) run together so the multiply-adds overlap. There is no copy of the
//! input for stride 1, and the output is written once, in NCHW, with the bias and ReLU applied
//! while it is in cache. The stacked path of [`super`] (one channel's planes of every image laid
//! side by side) stays for the stride-2 input gradient, other geometries and CPUs without AVX2 +
//! FMA: it pads and stacks every plane, makes nine passes over the stack, and scatters the
//! result back to NCHW.
#![allow(unsafe_code)]

use rayon::prelude::*;

use super::super::conv_shape::ConvShape;
#[cfg(target_arch = "x86_64")]
use super::super::direct::sum_lanes_avx2;
use super::super::direct::{Isa, detected};
use super::super::epilogue::Epilogue;

/// Output vectors one kernel call computes together.
const UNITS: usize = 4;

/// Whether this convolution runs here: depthwise, 3×3, padding 1, stride 1 or 2, on a CPU with
/// AVX-512 or AVX2 + FMA.
pub fn applies(g: &ConvShape) -> bool {
    g.is_depthwise()
        && (g.kernel_h, g.kernel_w) == (3, 3)
        && g.padding == [1, 1]
        && (g.stride == [1, 1] || g.stride == [2, 2])
        && Isa::detect().is_some()
}

/// Whether its input gradient runs here as well: stride 1, where it is the same convolution with
/// the kernel turned by 180°.
pub fn applies_to_input_grad(g: &ConvShape) -> bool {
    applies(g) && g.stride == [1, 1]
}

/// The depthwise `conv2d(x, w)` followed by `epilogue`: `[batch, channels, out_h, out_w]`.
///
/// # Panics
/// If [`applies`] is false for `g`, or a slice is shorter than `g` says.
pub fn forward(g: &ConvShape, x: &[f32], w: &[f32], epilogue: &Epilogue<'_>) -> Vec<f32> {
    forward_on(detected(), g, x, w, epilogue)
}

fn forward_on(isa: Isa, g: &ConvShape, x: &[f32], w: &[f32], epilogue: &Epilogue<'_>) -> Vec<f32> {
    assert!(applies(g));
    let plan = Plan::new(g, isa);
    let (channels, in_plane, out_plane) = (g.in_channels, g.in_plane(), g.out_plane());
    assert!(x.len() >= g.batch * channels * in_plane && w.len() >= channels * 9);
    let mut y = vec![0.0; g.output_len()];
    y.par_chunks_mut(channels * out_plane)
        .zip(x.par_chunks(channels * in_plane))
        .enumerate()
        .for_each_init(
            || vec![0.0; channels * plan.source_plane()],
            |phases, (image, (y, x))| {
                let source = plan.source(x, phases);
                // The bias and ReLU are applied to the accumulators before the store; a residual
                // (none in the zoo) is added afterwards, in the epilogue's order.
                match epilogue.residual {
                    None => plan.image(source, w, (epilogue.bias, epilogue.relu), y),
                    Some(_) => {
                        plan.image(source, w, (None, false), y);
                        epilogue.apply(image, channels, out_plane, y);
                    }
                }
            },
        );
    y
}

/// The gradient of the depthwise `conv2d(x, w)` with respect to `x`, stride 1: the same
/// convolution of `dy` with `w'[c][kh][kw] = w[c][2 − kh][2 − kw]`.
///
/// # Panics
/// If [`applies_to_input_grad`] is false for `g`, or a slice is shorter than `g` says.
pub fn input_grad(g: &ConvShape, w: &[f32], dy: &[f32]) -> Vec<f32> {
    input_grad_on(detected(), g, w, dy)
}

fn input_grad_on(isa: Isa, g: &ConvShape, w: &[f32], dy: &[f32]) -> Vec<f32> {
    assert!(applies_to_input_grad(g));
    let turned: Vec<f32> = w
        .chunks_exact(9)
        .take(g.in_channels)
        .flat_map(|k| k.iter().rev().copied())
        .collect();
    forward_on(isa, g, dy, &turned, &Epilogue::NONE)
}

/// The gradient of the depthwise `conv2d(x, w)` with respect to `w` (`[channels, 1, 3, 3]`),
/// given `dy`: `dw[c][t] = Σ_images Σ_j dy[c][j] · x_t[c][j]`, each kernel offset `t` read
/// through the forward's shifts and masks (zeros where it reads the padding), summed in nine
/// vector accumulators per channel over every image, one channel per task (so in image order,
/// whatever the thread count).
///
/// # Panics
/// If [`applies`] is false for `g`, or a slice is shorter than `g` says.
pub fn weight_grad(g: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    weight_grad_on(detected(), g, x, dy)
}

fn weight_grad_on(isa: Isa, g: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    assert!(applies(g));
    let plan = Plan::new(g, isa);
    let (channels, in_plane, out_plane) = (g.in_channels, g.in_plane(), g.out_plane());
    assert!(x.len() >= g.batch * channels * in_plane && dy.len() >= g.batch * channels * out_plane);
    assert!(plan.inside && isa.available());
    let mut dw = vec![0.0; channels * 9];
    dw.par_chunks_mut(9).enumerate().for_each_init(
        || vec![0.0; g.batch * plan.source_plane()],
        |phases, (c, dk)| {
            // Each image's plane of channel `c` as the shifts read it, and its output gradient.
            let mut planes = Vec::with_capacity(g.batch);
            let mut scratch = phases.chunks_exact_mut(plan.source_plane().max(1));
            for b in 0..g.batch {
                let at = b * channels + c;
                let x = &x[at * in_plane..(at + 1) * in_plane];
                let source = match scratch.next() {
                    Some(phases) if plan.stride == 2 => plan.source(x, phases),
                    _ => x,
                };
                planes.push((source.as_ptr(), dy[at * out_plane..].as_ptr()));
            }
            let dk: &mut [f32; 9] = dk.try_into().expect("nine weights per channel");
            // SAFETY: checked above that the CPU has the instruction set. Every unmasked lane
            // reads inside its plane's source (`reads_inside`) and the output gradient's lanes
            // are those inside the output plane, all inside the slices taken above.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                match isa {
                    Isa::Avx512 => plan.weight_grad_avx512(&planes, dk),
                    Isa::Avx2 => plan.weight_grad_avx2(&planes, dk),
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = (planes, dk);
        },
    );
    dw
}

/// Shifts and masks of one geometry, for one instruction set's vectors.
struct Plan {
    isa: Isa,
    stride: usize,
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
    /// Where kernel offset `t = kh·3 + kw` reads for output 0, relative to the start of the
    /// channel's source plane (or phases).
    shifts: [isize; 9],
    /// Per output vector, the lanes each kernel offset reads (`[vector][t]`, bit `l` for lane
    /// `l`).
    masks: Vec<[u16; 9]>,
    /// Per output vector, the lanes inside the plane.
    stores: Vec<u16>,
    /// [`Plan::reads_inside`], worked out once.
    inside: bool,
}

impl Plan {
    fn new(g: &ConvShape, isa: Isa) -> Self {
        let (s, lanes) = (g.stride[0], isa.lanes());
        let (out_h, out_w) = (g.out_h, g.out_w);
        let phase = out_h * out_w;
        let mut shifts = [0isize; 9];
        for (t, shift) in shifts.iter_mut().enumerate() {
            // Input offset `k − 1` = `s·d + p` with `p` the phase (0 ≤ p < s), `d` the shift
            // inside it (−1 for `k = 0` when `s = 2`).
            let split = |k: usize| {
                let k = k as isize - 1;
                (k.rem_euclid(s as isize), k.div_euclid(s as isize))
            };
            let ((pr, dr), (pc, dc)) = (split(t / 3), split(t % 3));
            let phase_start = if s == 1 {
                0
            } else {
                (pr * s as isize + pc) * phase as isize
            };
            let row = if s == 1 { g.in_w } else { out_w } as isize;
            *shift = phase_start + dr * row + dc;
        }
        let vectors = (out_h * out_w).div_ceil(lanes);
        let mut masks = vec![[0u16; 9]; vectors];
        let mut stores = vec![0u16; vectors];
        for (v, (masks, store)) in masks.iter_mut().zip(&mut stores).enumerate() {
            for lane in 0..lanes {
                let j = v * lanes + lane;
                if j >= out_h * out_w {
                    break;
                }
                *store |= 1 << lane;
                let (oh, ow) = (j / out_w, j % out_w);
                for (t, mask) in masks.iter_mut().enumerate() {
                    let (ih, iw) = (s * oh + t / 3, s * ow + t % 3);
                    if (1..=g.in_h).contains(&ih) && (1..=g.in_w).contains(&iw) {
                        *mask |= 1 << lane;
                    }
                }
            }
        }
        let mut plan = Self {
            isa,
            stride: s,
            in_h: g.in_h,
            in_w: g.in_w,
            out_h,
            out_w,
            shifts,
            masks,
            stores,
            inside: false,
        };
        plan.inside = plan.reads_inside();
        plan
    }

    /// Length of one channel's phases (stride 2); none for stride 1, which reads the input.
    fn source_plane(&self) -> usize {
        if self.stride == 1 {
            0
        } else {
            4 * self.out_h * self.out_w
        }
    }

    /// One image's planes as the shifts read them (`[channels, source plane]`): `x` itself for
    /// stride 1; for stride 2, each plane split into its four phases in `phases`.
    fn source<'a>(&self, x: &'a [f32], phases: &'a mut [f32]) -> &'a [f32] {
        if self.stride == 1 {
            return x;
        }
        let (h, w, ow) = (self.in_h, self.in_w, self.out_w);
        let phase = self.out_h * ow;
        for (src, dst) in x
            .chunks_exact(h * w)
            .zip(phases.chunks_exact_mut(4 * phase))
        {
            for (r, line) in src.chunks_exact(w).enumerate() {
                // Even columns to phase (r mod 2, 0), odd ones to (r mod 2, 1): pairs of columns,
                // which the compiler vectorises, then the odd last column of an odd width.
                let at = (r % 2) * 2 * phase + (r / 2) * ow;
                let (even, odd) = dst[at..].split_at_mut(phase);
                let pairs = line.chunks_exact(2);
                if let [last] = pairs.remainder() {
                    even[w / 2] = *last;
                }
                for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(pairs) {
                    *e = pair[0];
                    *o = pair[1];
                }
            }
        }
        phases
    }

    /// Length of one channel's plane as the shifts read it: the input plane for stride 1, its
    /// four phases for stride 2.
    fn read_plane(&self) -> usize {
        if self.stride == 1 {
            self.in_h * self.in_w
        } else {
            self.source_plane()
        }
    }

    /// Whether every element an unmasked lane reads lies inside its channel's plane of
    /// [`Plan::read_plane`] elements.
    fn reads_inside(&self) -> bool {
        let (len, lanes) = (self.read_plane() as isize, self.isa.lanes());
        self.masks.iter().enumerate().all(|(v, masks)| {
            masks.iter().zip(&self.shifts).all(|(&mask, &shift)| {
                (0..lanes).filter(|l| mask >> l & 1 == 1).all(|l| {
                    let at = (v * lanes + l) as isize + shift;
                    (0..len).contains(&at)
                })
            })
        })
    }

    /// One image: `y` (`[channels, out_h·out_w]`) from `source` (`[channels, read plane]`)
    /// and the kernels `w` (`[channels, 9]`), [`UNITS`] output vectors at a time.
    fn image(
        &self,
        source: &[f32],
        w: &[f32],
        (bias, relu): (Option<&[f32]>, bool),
        y: &mut [f32],
    ) {
        let (out_plane, read_plane) = (self.out_h * self.out_w, self.read_plane());
        let (channels, lanes) = (y.len() / out_plane, self.isa.lanes());
        assert!(
            self.isa.available(),
            "{:?} kernels on a CPU without them",
            self.isa
        );
        assert!(self.inside && y.len() == channels * out_plane);
        assert!(w.len() >= 9 * channels && source.len() >= channels * read_plane);
        assert!(bias.is_none_or(|b| b.len() >= channels));
        let mut group = Group {
            src: [source.as_ptr(); UNITS],
            weights: [w.as_ptr(); UNITS],
            masks: [[0; 9]; UNITS],
            out: [y.as_mut_ptr(); UNITS],
            stores: [0; UNITS],
            bias: [0.0; UNITS],
            add_bias: bias.is_some(),
            relu,
        };
        let mut n = 0;
        for c in 0..channels {
            for (v, (masks, &store)) in self.masks.iter().zip(&self.stores).enumerate() {
                group.src[n] = source[c * read_plane + v * lanes..].as_ptr();
                group.weights[n] = w[c * 9..].as_ptr();
                group.masks[n] = *masks;
                group.out[n] = y[c * out_plane + v * lanes..].as_mut_ptr();
                group.stores[n] = store;
                group.bias[n] = bias.map_or(0.0, |b| b[c]);
                n += 1;
                if n == UNITS || (c + 1 == channels && v + 1 == self.stores.len()) {
                    // Units past the last of the image load and store no lane.
                    for u in n..UNITS {
                        group.masks[u] = [0; 9];
                        group.stores[u] = 0;
                    }
                    // SAFETY: checked above that the CPU has the instruction set. Every unmasked
                    // lane reads inside its channel's plane of `source` (`reads_inside`, at
                    // construction), the nine weights of a channel below `channels` are inside
                    // `w`, and the stored lanes are inside the channel's plane of `y`.
                    #[cfg(target_arch = "x86_64")]
                    unsafe {
                        match self.isa {
                            Isa::Avx512 => group.avx512(&self.shifts),
                            Isa::Avx2 => group.avx2(&self.shifts),
                        }
                    };
                    n = 0;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl Plan {
    /// `dk[t] = Σ_planes Σ_j dy[j] · src[j + shifts[t]]` over each plane's vectors and the lanes
    /// of the masks, for `(src, dy)` pairs of one channel.
    ///
    /// # Safety
    /// AVX-512F; every `src` a source plane of [`Plan::read_plane`] elements and every `dy` an
    /// output plane.
    #[target_feature(enable = "avx512f")]
    unsafe fn weight_grad_avx512(&self, planes: &[(*const f32, *const f32)], dk: &mut [f32; 9]) {
        use std::arch::x86_64::*;
        let mut acc = [_mm512_setzero_ps(); 9];
        for &(src, dy) in planes {
            let (mut src, mut dy) = (src, dy);
            for (masks, &store) in self.masks.iter().zip(&self.stores) {
                // SAFETY: masked-off lanes are not read; the rest are inside (the caller's).
                unsafe {
                    let g = _mm512_maskz_loadu_ps(store, dy);
                    for ((acc, &mask), &shift) in acc.iter_mut().zip(masks).zip(&self.shifts) {
                        let x = _mm512_maskz_loadu_ps(mask, src.wrapping_offset(shift));
                        *acc = _mm512_fmadd_ps(g, x, *acc);
                    }
                }
                (src, dy) = (src.wrapping_add(16), dy.wrapping_add(16));
            }
        }
        for (dk, acc) in dk.iter_mut().zip(acc) {
            *dk = _mm512_reduce_add_ps(acc);
        }
    }

    /// [`Plan::weight_grad_avx512`] with 8-lane vectors, on AVX2 + FMA.
    ///
    /// # Safety
    /// AVX2 and FMA; as [`Plan::weight_grad_avx512`].
    #[target_feature(enable = "avx2,fma")]
    unsafe fn weight_grad_avx2(&self, planes: &[(*const f32, *const f32)], dk: &mut [f32; 9]) {
        use std::arch::x86_64::*;
        let mut acc = [_mm256_setzero_ps(); 9];
        for &(src, dy) in planes {
            let (mut src, mut dy) = (src, dy);
            for (masks, &store) in self.masks.iter().zip(&self.stores) {
                // SAFETY: masked-off lanes are not read; the rest are inside (the caller's).
                unsafe {
                    let g = _mm256_maskload_ps(dy, lanes(store));
                    for ((acc, &mask), &shift) in acc.iter_mut().zip(masks).zip(&self.shifts) {
                        let x = _mm256_maskload_ps(src.wrapping_offset(shift), lanes(mask));
                        *acc = _mm256_fmadd_ps(g, x, *acc);
                    }
                }
                (src, dy) = (src.wrapping_add(8), dy.wrapping_add(8));
            }
        }
        for (dk, acc) in dk.iter_mut().zip(acc) {
            *dk = sum_lanes_avx2(acc);
        }
    }
}

/// Up to [`UNITS`] output vectors, each with its channel's source plane (at the vector's first
/// position), kernel, read masks, output and store mask.
struct Group {
    src: [*const f32; UNITS],
    weights: [*const f32; UNITS],
    masks: [[u16; 9]; UNITS],
    out: [*mut f32; UNITS],
    stores: [u16; UNITS],
    /// Each unit's channel bias, added when `add_bias` (a bias of 0 too: `-0.0 + 0.0` is
    /// `+0.0`, as in the unfused [`Epilogue`]).
    bias: [f32; UNITS],
    add_bias: bool,
    /// Clamp at zero after the bias.
    relu: bool,
}

#[cfg(target_arch = "x86_64")]
impl Group {
    /// `out[u] = Σ_t weights[u][t] · src[u][shifts[t] + lane]` over the lanes of `masks[u][t]`,
    /// then `+ bias[u]` and `max(·, 0)` as asked.
    ///
    /// # Safety
    /// AVX-512F, and the extents [`Plan::image`] checks.
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512(&self, shifts: &[isize; 9]) {
        use std::arch::x86_64::*;
        let mut acc = [_mm512_setzero_ps(); UNITS];
        for (t, &shift) in shifts.iter().enumerate() {
            for (u, acc) in acc.iter_mut().enumerate() {
                // SAFETY: masked-off lanes are not read; the rest are inside (checked by
                // `Plan::image`), as is the weight.
                unsafe {
                    let at = self.src[u].wrapping_offset(shift);
                    let x = _mm512_maskz_loadu_ps(self.masks[u][t], at);
                    let k = _mm512_set1_ps(*self.weights[u].add(t));
                    *acc = _mm512_fmadd_ps(x, k, *acc);
                }
            }
        }
        for (u, &acc) in acc.iter().enumerate() {
            let acc = if self.add_bias {
                _mm512_add_ps(acc, _mm512_set1_ps(self.bias[u]))
            } else {
                acc
            };
            let acc = if self.relu {
                // `max(0, acc)`: NaN stays NaN (`super::super::epilogue::relu`).
                _mm512_max_ps(_mm512_setzero_ps(), acc)
            } else {
                acc
            };
            // SAFETY: only the lanes inside the output plane are stored.
            unsafe { _mm512_mask_storeu_ps(self.out[u], self.stores[u], acc) };
        }
    }

    /// [`Group::avx512`] with 8-lane vectors, on AVX2 + FMA.
    ///
    /// # Safety
    /// AVX2 and FMA, and the extents [`Plan::image`] checks.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2(&self, shifts: &[isize; 9]) {
        use std::arch::x86_64::*;
        let mut acc = [_mm256_setzero_ps(); UNITS];
        for (t, &shift) in shifts.iter().enumerate() {
            for (u, acc) in acc.iter_mut().enumerate() {
                // SAFETY: as in `avx512`.
                unsafe {
                    let at = self.src[u].wrapping_offset(shift);
                    let x = _mm256_maskload_ps(at, lanes(self.masks[u][t]));
                    let k = _mm256_set1_ps(*self.weights[u].add(t));
                    *acc = _mm256_fmadd_ps(x, k, *acc);
                }
            }
        }
        for (u, &acc) in acc.iter().enumerate() {
            let acc = if self.add_bias {
                _mm256_add_ps(acc, _mm256_set1_ps(self.bias[u]))
            } else {
                acc
            };
            let acc = if self.relu {
                _mm256_max_ps(_mm256_setzero_ps(), acc)
            } else {
                acc
            };
            // SAFETY: only the lanes inside the output plane are stored.
            unsafe { _mm256_maskstore_ps(self.out[u], lanes(self.stores[u]), acc) };
        }
    }
}

/// The AVX2 mask of the lanes whose bits are set in `bits`: lane `l` all ones when bit `l` is.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn lanes(bits: u16) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    let select = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    let spread = _mm256_and_si256(_mm256_set1_epi32(i32::from(bits)), select);
    _mm256_cmpeq_epi32(spread, select)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Textbook depthwise 3×3 convolution with padding 1 in f64.
    fn textbook(g: &ConvShape, x: &[f32], w: &[f32]) -> Vec<f64> {
        let (c_all, h, wd, s) = (g.in_channels, g.in_h, g.in_w, g.stride[0]);
        let mut y = vec![0.0f64; g.output_len()];
        for (i, y) in y.iter_mut().enumerate() {
            let (ow, oh) = (i % g.out_w, i / g.out_w % g.out_h);
            let (c, b) = (i / g.out_plane() % c_all, i / (g.out_plane() * c_all));
            for kh in 0..3 {
                for kw in 0..3 {
                    let (ih, iw) = (s * oh + kh, s * ow + kw);
                    if ih < 1 || iw < 1 || ih > h || iw > wd {
                        continue;
                    }
                    let xv = x[((b * c_all + c) * h + ih - 1) * wd + iw - 1] as f64;
                    *y += xv * w[c * 9 + kh * 3 + kw] as f64;
                }
            }
        }
        y
    }

    /// Planes of 1×1 to 17×17, square and not, even and odd, on both strides and every
    /// instruction set this CPU runs, with more channels
    /// than one group of vectors and fewer: the forward and the weight gradient against textbook
    /// sums, and the input gradient of stride 1 against the forward's adjoint
    /// `⟨conv(x), dy⟩ = ⟨x, dx⟩`.
    #[test]
    fn forward_and_gradients_match_textbook_sums() {
        let runnable = [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .filter(|isa| isa.available());
        let shapes = [
            [2, 3, 1, 1],
            [3, 5, 2, 2],
            [2, 7, 4, 4],
            [1, 2, 5, 7],
            [2, 3, 8, 8],
            [1, 4, 9, 6],
            [2, 2, 16, 16],
            [1, 3, 17, 17],
        ];
        let pattern =
            |n: usize, step: f32| -> Vec<f32> { (0..n).map(|i| (i as f32 * step).sin()).collect() };
        for isa in runnable {
            for [b, c, h, w] in shapes {
                for s in [1, 2] {
                    let g = ConvShape::new([b, c, h, w], [c, 1, 3, 3], [s, s], [1, 1], c).unwrap();
                    assert!(applies(&g));
                    let (x, k) = (pattern(g.input_len(), 0.37), pattern(9 * c, 0.71));
                    let y = forward_on(isa, &g, &x, &k, &Epilogue::NONE);
                    for (got, want) in y.iter().zip(textbook(&g, &x, &k)) {
                        let close = (*got as f64 - want).abs() < 1e-5;
                        assert!(close, "{isa:?} {g:?}: {got} vs {want}");
                    }
                    let dy = pattern(g.output_len(), 0.23);
                    let dw = weight_grad_on(isa, &g, &x, &dy);
                    for (i, got) in dw.iter().enumerate() {
                        let (t, ch) = (i % 9, i / 9);
                        let mut want = 0.0f64;
                        for (j, d) in dy.iter().enumerate() {
                            let (ow, oh) = (j % g.out_w, j / g.out_w % g.out_h);
                            let (cj, bj) = (j / g.out_plane() % c, j / (g.out_plane() * c));
                            let (ih, iw) = (s * oh + t / 3, s * ow + t % 3);
                            if cj != ch || ih < 1 || iw < 1 || ih > h || iw > w {
                                continue;
                            }
                            let xv = x[((bj * c + ch) * h + ih - 1) * w + iw - 1];
                            want += xv as f64 * *d as f64;
                        }
                        let close = (*got as f64 - want).abs() < 1e-4 * (1.0 + want.abs());
                        assert!(close, "{isa:?} {g:?} dw[{i}]: {got} vs {want}");
                    }
                    if s == 1 {
                        let dx = input_grad_on(isa, &g, &k, &dy);
                        let left: f64 = y.iter().zip(&dy).map(|(a, b)| (a * b) as f64).sum();
                        let right: f64 = x.iter().zip(&dx).map(|(a, b)| (a * b) as f64).sum();
                        let close = (left - right).abs() < 1e-4 * left.abs().max(1.0);
                        assert!(close, "{isa:?} {g:?}");
                    }
                }
            }
        }
    }

    /// The bias and ReLU applied before the store equal the unfused epilogue after it, bitwise,
    /// on every instruction set this CPU runs, both strides, with and without each step.
    #[test]
    fn fused_bias_and_relu_equal_the_epilogue() {
        let runnable = [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .filter(|isa| isa.available());
        for isa in runnable {
            for s in [1, 2] {
                let g = ConvShape::new([3, 5, 7, 6], [5, 1, 3, 3], [s, s], [1, 1], 5).unwrap();
                let mut x: Vec<f32> = (0..g.input_len())
                    .map(|i| (i as f32 * 0.37).sin())
                    .collect();
                // A NaN input stays NaN through the fused ReLU, as through burn's.
                x[7] = f32::NAN;
                let k: Vec<f32> = (0..45).map(|i| (i as f32 * 0.71).cos()).collect();
                let bias = [0.25, -0.5, 0.0, 1.0, -0.125];
                for (with_bias, relu) in [(true, true), (true, false), (false, true)] {
                    let epilogue = Epilogue {
                        bias: with_bias.then_some(&bias[..]),
                        residual: None,
                        relu,
                    };
                    let fused = forward_on(isa, &g, &x, &k, &epilogue);
                    let mut want = forward_on(isa, &g, &x, &k, &Epilogue::NONE);
                    let plane = g.out_plane();
                    for (image, y) in want.chunks_exact_mut(5 * plane).enumerate() {
                        epilogue.apply(image, 5, plane, y);
                    }
                    let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&fused), bits(&want), "{isa:?} s{s} {with_bias} {relu}");
                    assert!(!relu || fused.contains(&0.0));
                    assert!(fused.iter().any(|v| v.is_nan()));
                }
            }
        }
    }
}

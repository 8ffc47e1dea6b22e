//! im2col and its adjoint col2im for one image and one channel group, in NCHW order.
//!
//! The dense kernels ([`super::dense`]) turn a convolution into one matrix product per image:
//! [`im2col`] lays the input patches out as a `patch × out_plane` matrix whose row
//! `(channel, kh, kw)` is the input plane shifted by the kernel offset (zeros where it reads the
//! padding); [`col2im`] adds such a matrix back onto an input-shaped buffer, which is the
//! input gradient's last step. Where the output plane has the input's size (stride 1, "same"
//! padding) each row is one shifted copy of the plane; otherwise rows are written with slice
//! copies per output row where the stride is 1.

use super::conv_shape::{ConvShape, valid_outputs};

/// A stride-1 convolution whose output plane has the input's size (a 3×3 kernel with padding 1):
/// each im2col row is then the input plane shifted by one flat offset, so it can be moved with one
/// copy instead of one per output row, and the handful of positions that wrap across a row edge
/// fixed up after. This is every 3×3 layer of the ResNets and WRNs; on CPUs with AVX-512 or
/// AVX2 + FMA only their weight gradient comes here (`direct.rs` runs the rest).
struct SameShift {
    /// `(oh_lo, oh_hi, ow_lo, ow_hi)` per kernel offset `kh · kernel_w + kw`, and the flat shift.
    offsets: Vec<(usize, usize, usize, usize, isize)>,
}

impl SameShift {
    fn new(g: &ConvShape) -> Option<Self> {
        if g.stride != [1, 1] || g.out_h != g.in_h || g.out_w != g.in_w {
            return None;
        }
        let [pad_h, pad_w] = g.padding;
        let mut offsets = Vec::with_capacity(g.kernel_plane());
        for kh in 0..g.kernel_h {
            let (oh_lo, oh_hi) = valid_outputs(kh, pad_h, 1, g.in_h, g.out_h);
            for kw in 0..g.kernel_w {
                let (ow_lo, ow_hi) = valid_outputs(kw, pad_w, 1, g.in_w, g.out_w);
                let shift = (kh as isize - pad_h as isize) * g.in_w as isize
                    + (kw as isize - pad_w as isize);
                offsets.push((oh_lo, oh_hi, ow_lo, ow_hi, shift));
            }
        }
        Some(Self { offsets })
    }

    /// The flat output range `[start, end)` of the valid rows whose shifted source lies inside
    /// the plane.
    fn span(
        g: &ConvShape,
        (oh_lo, oh_hi, _, _, shift): (usize, usize, usize, usize, isize),
    ) -> (usize, usize) {
        let plane = g.in_plane() as isize;
        // On planes smaller than the shift (a 1×1 plane under a 3×3 kernel) nothing is valid:
        // the range is clamped to the plane so that it stays a (possibly empty) slice of it.
        let start = ((oh_lo * g.out_w) as isize).max(-shift).min(plane);
        let end = ((oh_hi * g.out_w) as isize).min(plane - shift);
        (start as usize, end.max(start) as usize)
    }

    /// Zeroes, in one im2col row, the positions of the valid rows that read across a row edge.
    fn clear_wrapped(
        g: &ConvShape,
        row: &mut [f32],
        (oh_lo, oh_hi, ow_lo, ow_hi, _): (usize, usize, usize, usize, isize),
    ) {
        for oh in oh_lo..oh_hi {
            let line = &mut row[oh * g.out_w..(oh + 1) * g.out_w];
            zero_edge(&mut line[..ow_lo]);
            zero_edge(&mut line[ow_hi..]);
        }
    }
}

/// Zeroes the few elements at a row's edge that read the padding (`padding` of them, 1 for a
/// 3×3 kernel) with plain stores: `fill` becomes a `memset` call, which cost about 3% of a
/// ResNet-20 training step when made once per row edge.
#[inline(always)]
fn zero_edge(edge: &mut [f32]) {
    match edge {
        [] => {}
        [a] => *a = 0.0,
        [a, b] => {
            *a = 0.0;
            *b = 0.0;
        }
        _ => edge.fill(0.0),
    }
}

/// `dst[i] = src[2i]`: one im2col row segment of a stride-2 convolution, written as pairs so
/// that it compiles to wide loads and shuffles rather than one element at a time. On one core
/// of an Intel Xeon, im2col went from 5.5% to 4.8% of a resnet32 inference profile (more than
/// the GEMM of its stride-2 layers, 3%): on rows of 8 or 16 outputs most of what is left is the
/// bookkeeping around each row.
///
/// # Panics
/// If `src` has fewer than `2 · dst.len() − 1` elements.
fn every_other(src: &[f32], dst: &mut [f32]) {
    let Some(last) = dst.len().checked_sub(1) else {
        return;
    };
    let (pairs, rest) = dst.split_at_mut(last);
    for (d, s) in pairs.iter_mut().zip(src[..2 * last].chunks_exact(2)) {
        *d = s[0];
    }
    rest[0] = src[2 * last];
}

/// Fills `col` (`patch × out_plane`, row-major) with the patches of `x`, one group's
/// `in_per_group` input planes of one image.
pub fn im2col(g: &ConvShape, x: &[f32], col: &mut [f32]) {
    im2col_strided(g, x, col, g.out_plane());
}

/// The rows of `col` as [`im2col`] and [`col2im`] address them: `patch` rows of `out_plane`
/// elements, `row_stride` apart.
///
/// # Panics
/// If `row_stride < out_plane`, or `col` does not hold the rows.
fn rows_of<'a>(
    g: &ConvShape,
    col: &'a mut [f32],
    row_stride: usize,
) -> impl Iterator<Item = &'a mut [f32]> {
    let out_plane = g.out_plane();
    assert!(row_stride >= out_plane, "im2col rows overlap");
    assert!(
        g.patch() == 0 || col.len() >= (g.patch() - 1) * row_stride + out_plane,
        "col holds {} rows of {out_plane} elements, {row_stride} apart",
        g.patch()
    );
    col.chunks_mut(row_stride)
        .map(move |row| &mut row[..out_plane])
}

/// [`im2col`] with the rows `row_stride` (at least `out_plane`) apart in `col`: with `col`
/// starting at `i · out_plane` of a `patch × (n · out_plane)` matrix and `row_stride =
/// n · out_plane`, image `i`'s columns of the patches of `n` images side by side.
///
/// # Panics
/// If `row_stride < out_plane`, or `col` does not hold `patch` rows that far apart.
pub fn im2col_strided(g: &ConvShape, x: &[f32], col: &mut [f32], row_stride: usize) {
    if let Some(same) = SameShift::new(g) {
        let mut rows = rows_of(g, col, row_stride);
        for plane in x.chunks_exact(g.in_plane()).take(g.in_per_group()) {
            for &offset in &same.offsets {
                let row = rows.next().expect("col holds patch rows");
                let (start, end) = SameShift::span(g, offset);
                let shift = offset.4;
                row[..start].fill(0.0);
                row[end..].fill(0.0);
                if start < end {
                    let from = (start as isize + shift) as usize;
                    row[start..end].copy_from_slice(&plane[from..from + end - start]);
                }
                SameShift::clear_wrapped(g, row, offset);
            }
        }
        return;
    }
    let (in_h, in_w, out_h, out_w) = (g.in_h, g.in_w, g.out_h, g.out_w);
    let [stride_h, stride_w] = g.stride;
    let [pad_h, pad_w] = g.padding;
    let mut rows = rows_of(g, col, row_stride);
    for plane in x.chunks_exact(g.in_plane()).take(g.in_per_group()) {
        for kh in 0..g.kernel_h {
            let (oh_lo, oh_hi) = valid_outputs(kh, pad_h, stride_h, in_h, out_h);
            for kw in 0..g.kernel_w {
                let (ow_lo, ow_hi) = valid_outputs(kw, pad_w, stride_w, in_w, out_w);
                let row = rows.next().expect("col holds patch rows");
                row[..oh_lo * out_w].fill(0.0);
                row[oh_hi * out_w..].fill(0.0);
                for oh in oh_lo..oh_hi {
                    let ih = oh * stride_h + kh - pad_h;
                    let src = &plane[ih * in_w..(ih + 1) * in_w];
                    let dst = &mut row[oh * out_w..(oh + 1) * out_w];
                    zero_edge(&mut dst[..ow_lo]);
                    zero_edge(&mut dst[ow_hi..]);
                    if ow_lo < ow_hi {
                        let first = ow_lo * stride_w + kw - pad_w;
                        if stride_w == 1 {
                            dst[ow_lo..ow_hi].copy_from_slice(&src[first..first + ow_hi - ow_lo]);
                        } else if stride_w == 2 {
                            every_other(&src[first..], &mut dst[ow_lo..ow_hi]);
                        } else {
                            for (d, s) in dst[ow_lo..ow_hi]
                                .iter_mut()
                                .zip(src[first..].iter().step_by(stride_w))
                            {
                                *d = *s;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Adds `col` (`patch × out_plane`, as [`im2col`] lays it out) onto `x`, one group's
/// `in_per_group` input planes of one image: the adjoint of [`im2col`]. `col` is scratch: entries
/// that correspond to reads of the padding may be zeroed on the way.
pub fn col2im(g: &ConvShape, col: &mut [f32], x: &mut [f32]) {
    col2im_strided(g, col, g.out_plane(), x);
}

/// [`col2im`] from rows `row_stride` apart in `col`, as [`im2col_strided`] writes them.
///
/// # Panics
/// If `row_stride < out_plane`, or `col` does not hold `patch` rows that far apart.
pub fn col2im_strided(g: &ConvShape, col: &mut [f32], row_stride: usize, x: &mut [f32]) {
    if let Some(same) = SameShift::new(g) {
        let mut rows = rows_of(g, col, row_stride);
        for plane in x.chunks_exact_mut(g.in_plane()).take(g.in_per_group()) {
            for &offset in &same.offsets {
                let row = rows.next().expect("col holds patch rows");
                SameShift::clear_wrapped(g, row, offset);
                let (start, end) = SameShift::span(g, offset);
                if start == end {
                    continue;
                }
                let from = (start as isize + offset.4) as usize;
                for (d, s) in plane[from..from + end - start]
                    .iter_mut()
                    .zip(&row[start..end])
                {
                    *d += *s;
                }
            }
        }
        return;
    }
    let (in_h, in_w, out_h, out_w) = (g.in_h, g.in_w, g.out_h, g.out_w);
    let [stride_h, stride_w] = g.stride;
    let [pad_h, pad_w] = g.padding;
    let in_plane = g.in_plane();
    let mut rows = rows_of(g, col, row_stride);
    for plane in x.chunks_exact_mut(in_plane).take(g.in_per_group()) {
        for kh in 0..g.kernel_h {
            let (oh_lo, oh_hi) = valid_outputs(kh, pad_h, stride_h, in_h, out_h);
            for kw in 0..g.kernel_w {
                let (ow_lo, ow_hi) = valid_outputs(kw, pad_w, stride_w, in_w, out_w);
                let row = rows.next().expect("col holds patch rows");
                if ow_lo >= ow_hi {
                    continue;
                }
                let first = ow_lo * stride_w + kw - pad_w;
                for oh in oh_lo..oh_hi {
                    let ih = oh * stride_h + kh - pad_h;
                    let dst = &mut plane[ih * in_w..(ih + 1) * in_w];
                    let src = &row[oh * out_w + ow_lo..oh * out_w + ow_hi];
                    if stride_w == 1 {
                        for (d, s) in dst[first..first + src.len()].iter_mut().zip(src) {
                            *d += *s;
                        }
                    } else {
                        for (d, s) in dst[first..].iter_mut().step_by(stride_w).zip(src) {
                            *d += *s;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometries() -> Vec<ConvShape> {
        let mut all = Vec::new();
        for (k, s, p) in [
            (3, 1, 1),
            (3, 2, 1),
            (1, 2, 0),
            (5, 1, 2),
            (3, 1, 0),
            (2, 2, 0),
        ] {
            all.push(ConvShape::new([1, 2, 7, 6], [3, 2, k, k], [s, s], [p, p], 1).unwrap());
        }
        // Stride-2 rows long enough for the vectorised gather of `every_other`.
        for (k, p) in [(3, 1), (1, 0)] {
            all.push(ConvShape::new([1, 2, 5, 41], [3, 2, k, k], [2, 2], [p, p], 1).unwrap());
        }
        // Same-size planes smaller than the kernel's reach: most taps read only padding.
        for (h, w) in [(1, 1), (1, 2), (2, 1)] {
            all.push(ConvShape::new([1, 2, h, w], [3, 2, 3, 3], [1, 1], [1, 1], 1).unwrap());
        }
        all
    }

    #[test]
    fn im2col_reads_the_padded_input_at_every_offset() {
        for g in geometries() {
            let x: Vec<f32> = (0..g.input_len()).map(|i| i as f32 + 1.0).collect();
            let mut col = vec![f32::NAN; g.patch() * g.out_plane()];
            im2col(&g, &x, &mut col);
            for c in 0..g.in_channels {
                for kh in 0..g.kernel_h {
                    for kw in 0..g.kernel_w {
                        let row = (c * g.kernel_h + kh) * g.kernel_w + kw;
                        for oh in 0..g.out_h {
                            for ow in 0..g.out_w {
                                let ih = (oh * g.stride[0] + kh) as isize - g.padding[0] as isize;
                                let iw = (ow * g.stride[1] + kw) as isize - g.padding[1] as isize;
                                let inside = (0..g.in_h as isize).contains(&ih)
                                    && (0..g.in_w as isize).contains(&iw);
                                let want = if inside {
                                    x[c * g.in_plane() + ih as usize * g.in_w + iw as usize]
                                } else {
                                    0.0
                                };
                                assert_eq!(col[row * g.out_plane() + oh * g.out_w + ow], want);
                            }
                        }
                    }
                }
            }
        }
    }

    /// `<im2col(x), c> = <x, col2im(c)>` for every pair: col2im is im2col's adjoint.
    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        for g in geometries() {
            let x: Vec<f32> = (0..g.input_len())
                .map(|i| (i as f32 * 0.37).sin())
                .collect();
            let c: Vec<f32> = (0..g.patch() * g.out_plane())
                .map(|i| (i as f32 * 0.11).cos())
                .collect();
            let mut col = vec![0.0; c.len()];
            im2col(&g, &x, &mut col);
            let lhs: f64 = col.iter().zip(&c).map(|(a, b)| (a * b) as f64).sum();
            let mut back = vec![0.0; x.len()];
            col2im(&g, &mut c.clone(), &mut back);
            let rhs: f64 = back.iter().zip(&x).map(|(a, b)| (a * b) as f64).sum();
            assert!((lhs - rhs).abs() < 1e-3, "{g:?}: {lhs} vs {rhs}");
        }
    }
    /// Three images' patches written side by side equal each image's own, and adding them
    /// back from there equals adding each image's own: every element of the shared matrix is
    /// written (it starts as NaN) and every row lands at its image's columns.
    #[test]
    fn strided_rows_put_images_side_by_side() {
        const IMAGES: usize = 3;
        for g in geometries() {
            let (plane, rows, image_in) = (g.out_plane(), g.patch(), g.input_len());
            let cols = IMAGES * plane;
            let x: Vec<f32> = (0..IMAGES * image_in)
                .map(|i| (i as f32 * 0.23).sin())
                .collect();
            let mut gathered = vec![f32::NAN; rows * cols];
            for image in 0..IMAGES {
                let xs = &x[image * image_in..(image + 1) * image_in];
                im2col_strided(&g, xs, &mut gathered[image * plane..], cols);
            }
            let mut back = vec![0.5; x.len()];
            for image in 0..IMAGES {
                let xs = &x[image * image_in..(image + 1) * image_in];
                let mut own = vec![f32::NAN; rows * plane];
                im2col(&g, xs, &mut own);
                for row in 0..rows {
                    let shared = &gathered[row * cols + image * plane..][..plane];
                    assert_eq!(shared, &own[row * plane..(row + 1) * plane], "{g:?}");
                }
                let mut want = vec![0.5; image_in];
                col2im(&g, &mut own, &mut want);
                let dx = &mut back[image * image_in..(image + 1) * image_in];
                col2im_strided(&g, &mut gathered[image * plane..], cols, dx);
                assert_eq!(dx, &want[..], "{g:?}");
            }
        }
    }

    #[test]
    #[should_panic(expected = "im2col rows overlap")]
    fn overlapping_rows_are_refused() {
        let g = ConvShape::new([1, 2, 4, 4], [3, 2, 3, 3], [1, 1], [1, 1], 1).unwrap();
        let mut col = vec![0.0; 18 * 16];
        im2col_strided(&g, &[0.0; 32], &mut col, 15);
    }

    #[test]
    #[should_panic(expected = "col holds 18 rows of 16 elements, 20 apart")]
    fn rows_past_the_end_are_refused() {
        let g = ConvShape::new([1, 2, 4, 4], [3, 2, 3, 3], [1, 1], [1, 1], 1).unwrap();
        let mut col = vec![0.0; 17 * 20 + 15];
        col2im_strided(&g, &mut col, 20, &mut [0.0; 32]);
    }
}

//! The one matrix product the convolution kernels call: a bounds-checked wrapper over the `gemm`
//! crate (the same GEMM burn-flex uses for its own matmul and convolution forward).
//!
//! `gemm::gemm` takes raw pointers and strides, so calling it needs `unsafe`. This file is the
//! only place in kd-core that calls it: [`matmul`] checks, before the call,
//! that every element the strides can reach lies inside the slices it was given, and runs the
//! product on the calling thread (the kernels parallelise over images and channels themselves).
#![allow(unsafe_code)]

/// A read-only matrix: element `(r, c)` at `r · row_stride + c · col_stride` of `data`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    /// The elements.
    pub data: &'a [f32],
    /// Distance between rows.
    pub row_stride: usize,
    /// Distance between columns.
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major matrix with `cols` columns.
    pub fn row_major(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major matrix that has `cols` columns (which become its rows).
    pub fn transposed(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            row_stride: 1,
            col_stride: cols,
        }
    }

    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0
            || cols == 0
            || (rows - 1) * self.row_stride + (cols - 1) * self.col_stride < self.data.len()
    }
}

/// `dst = lhs · rhs`, or `dst += lhs · rhs` when `accumulate`, where `lhs` is `m × k`, `rhs` is
/// `k × n` and `dst` is row-major `m × n`.
///
/// # Panics
/// If a matrix does not fit in its slice (a bug in the caller's index arithmetic).
pub fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    accumulate: bool,
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
) {
    matmul_strided((m, n, k), dst, (n, 1), accumulate, lhs, rhs);
}

/// [`matmul`] into a destination with the given `(row_stride, col_stride)`: `(1, m)` writes the
/// product column-major, i.e. the transpose of a row-major `n × m` matrix.
///
/// # Panics
/// If a matrix does not fit in its slice.
pub fn matmul_strided(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    (dst_rs, dst_cs): (usize, usize),
    accumulate: bool,
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
) {
    let dst_ref = MatRef {
        data: dst,
        row_stride: dst_rs,
        col_stride: dst_cs,
    };
    assert!(
        dst_ref.fits(m, n) && ((dst_cs == 1 && dst_rs >= n) || (dst_rs == 1 && dst_cs >= m)),
        "gemm: destination does not hold {m}×{n} without overlap"
    );
    assert!(lhs.fits(m, k), "gemm: left operand does not hold {m}×{k}");
    assert!(rhs.fits(k, n), "gemm: right operand does not hold {k}×{n}");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                for c in 0..n {
                    dst[r * dst_rs + c * dst_cs] = 0.0;
                }
            }
        }
        return;
    }
    // SAFETY: the three assertions above guarantee that every index the strides reach,
    // `(rows-1)·row_stride + (cols-1)·col_stride`, lies inside the slice it addresses; `dst` is
    // borrowed mutably, so it aliases neither operand; `Parallelism::None` keeps the product on
    // this thread, inside the borrows.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn textbook(m: usize, n: usize, k: usize, lhs: MatRef<'_>, rhs: MatRef<'_>) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    out[i * n + j] += lhs.data[i * lhs.row_stride + p * lhs.col_stride]
                        * rhs.data[p * rhs.row_stride + j * rhs.col_stride];
                }
            }
        }
        out
    }

    #[test]
    fn products_match_the_textbook_loop_in_every_layout() {
        let (m, n, k) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32).sin()).collect();
        for lhs in [MatRef::row_major(&a, k), MatRef::transposed(&a, m)] {
            for rhs in [MatRef::row_major(&b, n), MatRef::transposed(&b, k)] {
                let want = textbook(m, n, k, lhs, rhs);
                let mut got = vec![1.0; m * n];
                matmul((m, n, k), &mut got, false, lhs, rhs);
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() < 1e-5, "{g} vs {w}");
                }
                matmul((m, n, k), &mut got, true, lhs, rhs);
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - 2.0 * w).abs() < 1e-5, "{g} vs 2·{w}");
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "left operand")]
    fn a_short_operand_is_caught_before_the_call() {
        let a = [0.0f32; 5];
        let b = [0.0f32; 6];
        let mut c = [0.0f32; 4];
        matmul(
            (2, 2, 3),
            &mut c,
            false,
            MatRef::row_major(&a, 3),
            MatRef::row_major(&b, 2),
        );
    }
}

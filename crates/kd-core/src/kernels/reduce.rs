//! Sums and dot products of `f32` slices in eight independent lanes.
//!
//! A plain `iter().sum()` adds one element after another, an order the compiler must keep, so it
//! cannot use vector registers; eight partial sums it can. The batch-norm and depthwise kernels
//! reduce with these. The lanes are combined pairwise at the end, so the result is also a little
//! more accurate than one running sum.

const LANES: usize = 8;

fn combine(acc: [f32; LANES]) -> f32 {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// `Σ f(a[i], b[i])` over the shorter of the two, in eight lanes. `f` is inlined into the loop,
/// which the compiler then vectorises.
#[inline(always)]
fn lanes(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| f(x, y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((acc, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *acc += f(x, y);
        }
    }
    combine(acc) + tail
}

/// `Σ a[i]`.
pub fn sum(a: &[f32]) -> f32 {
    lanes(a, a, |x, _| x)
}

/// `Σ a[i] · b[i]` over the shorter of the two.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    lanes(a, b, |x, y| x * y)
}

/// `Σ a[i] · (b[i] − m)` over the shorter of the two.
pub fn dot_centered(a: &[f32], b: &[f32], m: f32) -> f32 {
    lanes(a, b, |x, y| x * (y - m))
}

/// `Σ (a[i] − m)²`.
pub fn squared_deviation(a: &[f32], m: f32) -> f32 {
    lanes(a, a, |x, _| (x - m) * (x - m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reductions_match_the_plain_loops() {
        for n in [0, 1, 7, 8, 9, 31, 100] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.7).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.3).cos()).collect();
            let plain: f64 = a.iter().map(|&v| v as f64).sum();
            assert!((sum(&a) as f64 - plain).abs() < 1e-5);
            let plain: f64 = a.iter().zip(&b).map(|(x, y)| (x * y) as f64).sum();
            assert!((dot(&a, &b) as f64 - plain).abs() < 1e-5);
            let plain: f64 = a.iter().zip(&b).map(|(x, y)| (x * (y - 0.5)) as f64).sum();
            assert!((dot_centered(&a, &b, 0.5) as f64 - plain).abs() < 1e-5);
            let plain: f64 = a.iter().map(|&v| ((v - 0.25) * (v - 0.25)) as f64).sum();
            assert!((squared_deviation(&a, 0.25) as f64 - plain).abs() < 1e-5);
        }
        assert_eq!(dot(&[1.0, 2.0, 3.0], &[4.0, 5.0]), 14.0);
    }
}

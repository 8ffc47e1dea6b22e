//! Sums and dot products of `f32` slices in 32 independent lanes.
//!
//! A plain `iter().sum()` adds one element after another, an order the compiler must keep, so it
//! cannot use vector registers; 32 partial sums it can, as two or four independent vector
//! additions per step, so that the additions' latency does not bound the loop (with eight lanes,
//! one 8-lane addition chain did). The batch-norm and depthwise kernels reduce with these. The
//! lanes are combined pairwise at the end, so the result is also a little more accurate than one
//! running sum.

const LANES: usize = 32;

/// The lanes' sum, halving: lane `i` is added to lane `i + n/2` until one is left.
fn combine(mut acc: [f32; LANES]) -> f32 {
    let mut n = LANES;
    while n > 1 {
        n /= 2;
        for i in 0..n {
            acc[i] += acc[i + n];
        }
    }
    acc[0]
}

/// `Σ f(a[i], b[i])` over the shorter of the two, in [`LANES`] lanes. `f` is inlined into the loop,
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

/// `(Σ a[i], Σ a[i] · (b[i] − m))` over the shorter of the two in one pass, bitwise equal to two
/// separate reductions in [`LANES`] lanes (the same lanes, the same order): the batch-norm
/// backward's two sums, reading the gradient once.
pub fn sum_and_dot_centered(a: &[f32], b: &[f32], m: f32) -> (f32, f32) {
    sum_and_dot_centered_where(a, b, m, |_| true)
}

/// [`sum_and_dot_centered`] over only the `i` where a ReLU passes `b[i] · scale + shift`
/// (positive or NaN, `super::epilogue::relu_passes`): the batch-norm backward's two sums with the
/// gradient of a ReLU after it (`b` the input, `a` the gradient of the ReLU's output), whose mask
/// is recomputed from the input.
pub fn sum_and_dot_centered_relu(
    a: &[f32],
    b: &[f32],
    m: f32,
    (scale, shift): (f32, f32),
) -> (f32, f32) {
    sum_and_dot_centered_where(a, b, m, |y| super::epilogue::relu_passes(y * scale + shift))
}

/// `(Σ a'[i], Σ a'[i] · (b[i] − m))` with `a'[i] = a[i]` where `keep(b[i])`, else 0.
#[inline(always)]
fn sum_and_dot_centered_where(
    a: &[f32],
    b: &[f32],
    m: f32,
    keep: impl Fn(f32) -> bool,
) -> (f32, f32) {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let kept = |x: f32, y: f32| if keep(y) { x } else { 0.0 };
    let (mut sums, mut dots) = ([0.0f32; LANES], [0.0f32; LANES]);
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (tail_sum, tail_dot) = (
        ca.remainder()
            .iter()
            .zip(cb.remainder())
            .map(|(&x, &y)| kept(x, y))
            .sum::<f32>(),
        ca.remainder()
            .iter()
            .zip(cb.remainder())
            .map(|(&x, &y)| kept(x, y) * (y - m))
            .sum::<f32>(),
    );
    for (x, y) in ca.zip(cb) {
        for (((sum, dot), &x), &y) in sums.iter_mut().zip(&mut dots).zip(x).zip(y) {
            let x = kept(x, y);
            *sum += x;
            *dot += x * (y - m);
        }
    }
    (combine(sums) + tail_sum, combine(dots) + tail_dot)
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
        for n in [0, 1, 7, 8, 9, 31, 32, 33, 100, 1000] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.7).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.3).cos()).collect();
            // f32 rounding grows with the number of terms.
            let tolerance = 1e-6 * (n as f64 + 10.0);
            let plain: f64 = a.iter().map(|&v| v as f64).sum();
            assert!((sum(&a) as f64 - plain).abs() < tolerance);
            let plain: f64 = a.iter().zip(&b).map(|(x, y)| (x * y) as f64).sum();
            assert!((dot(&a, &b) as f64 - plain).abs() < tolerance);
            let plain: f64 = a.iter().zip(&b).map(|(x, y)| (x * (y - 0.5)) as f64).sum();
            assert!((sum_and_dot_centered(&a, &b, 0.5).1 as f64 - plain).abs() < tolerance);
            let plain: f64 = a.iter().map(|&v| ((v - 0.25) * (v - 0.25)) as f64).sum();
            assert!((squared_deviation(&a, 0.25) as f64 - plain).abs() < tolerance);
        }
        assert_eq!(dot(&[1.0, 2.0, 3.0], &[4.0, 5.0]), 14.0);
    }

    /// With a ReLU's mask, the pair is the unmasked pair of the gradient zeroed where the
    /// recomputed output `b · scale + shift` is not positive (zero included).
    #[test]
    fn the_relu_pair_is_the_pair_of_the_masked_gradient() {
        for n in [0, 1, 31, 32, 33, 100] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.7).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.3).cos()).collect();
            // `b · 2 − 1 > 0` where `b > 0.5`; the element with `b = 0.5` exactly is dropped.
            let mut b = b;
            if n > 3 {
                b[3] = 0.5;
            }
            let masked: Vec<f32> = a
                .iter()
                .zip(&b)
                .map(|(&x, &y)| if y * 2.0 - 1.0 > 0.0 { x } else { 0.0 })
                .collect();
            let (s, d) = sum_and_dot_centered_relu(&a, &b, 0.25, (2.0, -1.0));
            let (ws, wd) = sum_and_dot_centered(&masked, &b, 0.25);
            assert_eq!(
                (s.to_bits(), d.to_bits()),
                (ws.to_bits(), wd.to_bits()),
                "{n}"
            );
        }
        let (s, d) =
            sum_and_dot_centered_relu(&[1.0, 2.0, 4.0], &[1.0, -1.0, 3.0], 1.0, (1.0, 0.0));
        assert_eq!((s, d), (5.0, 8.0));
    }

    /// The one-pass pair is bitwise the two reductions, on lengths around the lane count.
    #[test]
    fn sum_and_dot_centered_is_the_two_reductions() {
        for n in [0, 1, 31, 32, 33, 64, 100, 1000] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.7).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.3).cos()).collect();
            let (s, d) = sum_and_dot_centered(&a, &b, 0.5);
            assert_eq!(s.to_bits(), sum(&a).to_bits(), "{n}");
            assert_eq!(
                d.to_bits(),
                lanes(&a, &b, |x, y| x * (y - 0.5)).to_bits(),
                "{n}"
            );
        }
    }
}

//! Elementwise outputs written whole into memory that is never zeroed first.
//!
//! `vec![0.0; n]` on memory the allocator hands back costs a full pass (`memset`) before the
//! kernel's own pass writes every element again. On one core of an Intel Xeon with AVX-512, the
//! zeroing of the batch-norm and direct-convolution outputs took 3.5% of the samples of a
//! resnet32 benchmark (training and inference), and not zeroing them cut its CPU time by 5–7%
//! in four paired runs (two runs of one binary differ by up to 3% there, so the cut beyond the
//! samples' share is within noise). The functions here write each element exactly once, from
//! safe closures,
//! and only then call the vector initialised; `super::direct` does the same for its tiles.
#![allow(unsafe_code)]

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// `out[k] = f(i)(x[k])` for `k` in chunk `i` (of `chunk` elements, the last one shorter),
/// chunks spread over rayon's workers: a vector of `x.len()` elements.
///
/// # Panics
/// If `chunk` is 0.
pub fn map_chunks<F, G>(chunk: usize, x: &[f32], f: F) -> Vec<f32>
where
    F: Fn(usize) -> G + Sync,
    G: Fn(f32) -> f32,
{
    written(x.len(), |out| {
        out.par_chunks_mut(chunk)
            .zip(x.par_chunks(chunk))
            .enumerate()
            .for_each(|(i, (out, x))| {
                let g = f(i);
                for (out, &x) in out.iter_mut().zip(x) {
                    out.write(g(x));
                }
            })
    })
}

/// `out[k] = f(i)(a[k], b[k])` for `k` in chunk `i`, as [`map_chunks`] for two inputs.
///
/// # Panics
/// If `chunk` is 0 or `a` and `b` differ in length.
pub fn zip_map_chunks<F, G>(chunk: usize, a: &[f32], b: &[f32], f: F) -> Vec<f32>
where
    F: Fn(usize) -> G + Sync,
    G: Fn(f32, f32) -> f32,
{
    assert_eq!(a.len(), b.len(), "inputs of different lengths");
    written(a.len(), |out| {
        out.par_chunks_mut(chunk)
            .zip(a.par_chunks(chunk).zip(b.par_chunks(chunk)))
            .enumerate()
            .for_each(|(i, (out, (a, b)))| {
                let g = f(i);
                for ((out, &a), &b) in out.iter_mut().zip(a).zip(b) {
                    out.write(g(a, b));
                }
            })
    })
}

/// A vector of `len` elements that `fill` writes, given them uninitialised. Private: both
/// callers above write every element, as their chunks of `out` and of the inputs have the same
/// lengths.
fn written(len: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut out = Vec::with_capacity(len);
    fill(&mut out.spare_capacity_mut()[..len]);
    // SAFETY: `fill` wrote each of the first `len` elements (see the callers).
    unsafe { out.set_len(len) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every element is the closure's, chunk by chunk, including a shorter last chunk.
    #[test]
    fn each_element_is_its_chunks_function() {
        let x: Vec<f32> = (0..23).map(|i| i as f32).collect();
        let y = map_chunks(5, &x, |i| move |x| x * 10.0 + i as f32);
        let want: Vec<f32> = (0..23).map(|k| k as f32 * 10.0 + (k / 5) as f32).collect();
        assert_eq!(y, want);
        let z = zip_map_chunks(4, &x, &y, |i| move |a, b| b - a * 10.0 - i as f32);
        let want: Vec<f32> = (0..23).map(|k| ((k / 5) - (k / 4)) as f32).collect();
        assert_eq!(z, want);
        assert!(map_chunks(3, &[], |_| |x| x).is_empty());
    }
}

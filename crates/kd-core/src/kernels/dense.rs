//! Dense (and grouped) convolution as one matrix product per image and group, forward and both
//! gradients, on contiguous NCHW `f32` slices.
//!
//! With `col = im2col(x)` (`patch × out_plane`) and the group's weights `W` (`out_per_group ×
//! patch`, OIHW is already that matrix):
//!
//! - forward: `y = W · col`, written straight into the NCHW output;
//! - input gradient: `dx = col2im(Wᵀ · dy)`;
//! - weight gradient: `dW = Σ_images dy · colᵀ`, fixed chunks of images summed into their own
//!   buffers (transposed, see [`weight_grad`]) and the buffers added in order, so the result is
//!   the same whatever the scheduling.
//!
//! 3×3 same-size layers on CPUs with AVX-512 or AVX2 + FMA take [`direct`] instead: the forward
//! and the input gradient always, the weight gradient on planes of at least 16 pixels.
//!
//! Images are spread over rayon's workers; each product runs on its worker's thread. A pointwise
//! convolution (1×1, stride 1, no padding) skips im2col: the input planes are the matrix.
//! burn-flex's generic backward (a transposed convolution for `dx`, a convolution over swapped
//! axes for `dW`, each with full transposed copies) is what this replaces.

use rayon::prelude::*;

use super::conv_shape::ConvShape;
use super::direct;
use super::epilogue::Epilogue;
use super::gemm::{MatRef, matmul, matmul_strided};
use super::im2col::{col2im, col2im_strided, im2col, im2col_strided};

/// Output planes up to this many pixels make a pointwise convolution run as products over
/// several images ([`forward_batched`]) instead of one per image, a large weight's gradient
/// split by output channels ([`weight_grad_by_channels`]; on larger planes, the split cost
/// more than the partial sums it saves: ResNet-18 and resnet32x4 trained 7–15% slower when
/// each task recomputed the im2col), and a large 3×3 weight's gradient on the direct path run as the stacked
/// products of `direct::weight_grad::stacked`.
pub(super) const SMALL_PLANE: usize = 64;

/// Length of the im2col scratch one worker needs: none for a pointwise convolution, whose input
/// planes are already the matrix.
fn col_len(g: &ConvShape) -> usize {
    if g.is_pointwise() {
        0
    } else {
        g.patch() * g.out_plane()
    }
}

/// The `patch × out_plane` matrix of one image and group: `x` itself for a pointwise
/// convolution, else its im2col, written into `col`.
fn patches<'a>(g: &ConvShape, x: &'a [f32], col: &'a mut [f32]) -> &'a [f32] {
    if g.is_pointwise() {
        x
    } else {
        im2col(g, x, col);
        col
    }
}

/// `conv2d(x, w)` followed by `epilogue`: `[batch, out_channels, out_h, out_w]`, row-major.
pub fn forward(g: &ConvShape, x: &[f32], w: &[f32], epilogue: &Epilogue<'_>) -> Vec<f32> {
    if direct::applies(g) {
        return direct::forward(g, x, w, epilogue);
    }
    if batches(g) {
        return forward_batched(g, x, w, epilogue);
    }
    let mut y = vec![0.0; g.output_len()];
    let (patch, out_plane, out_pg) = (g.patch(), g.out_plane(), g.out_per_group());
    let in_group = g.in_per_group() * g.in_plane();
    y.par_chunks_mut(g.out_channels * out_plane)
        .zip(x.par_chunks(g.in_channels * g.in_plane()))
        .enumerate()
        .for_each_init(
            || vec![0.0; col_len(g)],
            |col, (image, (y, x))| {
                for group in 0..g.groups {
                    let xg = &x[group * in_group..(group + 1) * in_group];
                    let cols = patches(g, xg, col);
                    matmul(
                        (out_pg, out_plane, patch),
                        &mut y[group * out_pg * out_plane..(group + 1) * out_pg * out_plane],
                        false,
                        MatRef::row_major(&w[group * out_pg * patch..], patch),
                        MatRef::row_major(cols, out_plane),
                    );
                }
                epilogue.apply(image, g.out_channels, out_plane, y);
            },
        );
    y
}

/// Output positions (over its images) one task of [`forward_batched`] or
/// [`input_grad_batched`] multiplies.
const COLUMNS_PER_TASK: usize = 256;

/// Output planes up to this many pixels make a convolution that is not pointwise (a stride-2
/// layer into 4×4, or a 1×1 stride-2 shortcut) run as products over several images at once. On
/// one core of an Intel Xeon with AVX-512, batch 64, ResNet-18's 256→512 3×3 stride-2 layer
/// into 4×4 went from 33.4 to 21.2 ms forward and 52.7 to 22.9 ms input gradient, its 1×1
/// shortcut from 3.9 to 2.8 and 4.3 to 3.0 ms; into 8×8 (128→256) the products per image were
/// faster (21.4 against 23.1 ms forward, 22.6 against 25.5 input gradient).
const BATCHED_PATCH_PLANE: usize = 16;

/// Whether a convolution runs as products over several images at once ([`forward_batched`],
/// [`input_grad_batched`]): one group, more than one image, and an output plane of at most
/// [`SMALL_PLANE`] pixels for a pointwise convolution, [`BATCHED_PATCH_PLANE`] for any other.
/// Per image, the product would be `out_channels × plane × patch` with a plane of 1 to 64
/// columns, too narrow for the GEMM's tiles: on 4×4 planes `gemm` runs its one-vector
/// microkernel (6 multiply-adds per 7 loads).
fn batches(g: &ConvShape) -> bool {
    let largest = if g.is_pointwise() {
        SMALL_PLANE
    } else {
        BATCHED_PATCH_PLANE
    };
    g.groups == 1 && g.out_plane() <= largest && g.batch > 1
}

/// Images per task of [`forward_batched`] and [`input_grad_batched`]: about
/// [`COLUMNS_PER_TASK`] positions, at most an eighth of the batch (so that 2×2 and 1×1 planes
/// still make tasks enough for every core), at least one. It depends on the shape only, so the
/// result does not depend on the thread count.
fn images_per_task(g: &ConvShape) -> usize {
    (COLUMNS_PER_TASK / g.out_plane().max(1))
        .min(g.batch.div_ceil(8))
        .max(1)
}

/// A convolution with a small output plane (the late layers of MobileNetV2, the ShuffleNets,
/// and ResNet-18/34/50, 1×1 to 8×8 pixels, and the other layers into 4×4) as products
/// over several images at once. Each task takes [`images_per_task`] images, writes their
/// patches side by side into `patch × (images · plane)` ([`im2col_strided`]; a pointwise
/// convolution's are its input planes), multiplies, and scatters the result back to NCHW with
/// the epilogue, while both are in the cache.
fn forward_batched(g: &ConvShape, x: &[f32], w: &[f32], epilogue: &Epilogue<'_>) -> Vec<f32> {
    let plane = g.out_plane();
    let (patch, o, image_in) = (g.patch(), g.out_channels, g.in_channels * g.in_plane());
    let per_task = images_per_task(g);
    let mut y = vec![0.0; g.output_len()];
    y.par_chunks_mut(per_task * o * plane)
        .zip(x.par_chunks(per_task * image_in))
        .enumerate()
        .for_each(|(task, (y, x))| {
            let images = y.len() / (o * plane);
            let cols = images * plane;
            let mut gathered = vec![0.0; patch * cols];
            for (image, xs) in x.chunks_exact(image_in).take(images).enumerate() {
                im2col_strided(g, xs, &mut gathered[image * plane..], cols);
            }
            let mut product = vec![0.0; o * cols];
            matmul(
                (o, cols, patch),
                &mut product,
                false,
                MatRef::row_major(w, patch),
                MatRef::row_major(&gathered, cols),
            );
            for (image, ys) in y.chunks_exact_mut(o * plane).enumerate() {
                for (channel, dst) in ys.chunks_exact_mut(plane).enumerate() {
                    let at = channel * cols + image * plane;
                    dst.copy_from_slice(&product[at..at + plane]);
                }
                epilogue.apply(task * per_task + image, o, plane, ys);
            }
        });
    y
}

/// The input gradient of a convolution [`forward_batched`] takes, by the same chunks of
/// images: each task gathers its images' output gradients into `out_channels × (images ·
/// plane)`, multiplies by `Wᵀ`, and adds each image's columns back onto its input gradient
/// ([`col2im_strided`]).
fn input_grad_batched(g: &ConvShape, w: &[f32], dy: &[f32]) -> Vec<f32> {
    let plane = g.out_plane();
    let (patch, o, image_in) = (g.patch(), g.out_channels, g.in_channels * g.in_plane());
    let per_task = images_per_task(g);
    let mut dx = vec![0.0; g.input_len()];
    dx.par_chunks_mut(per_task * image_in)
        .zip(dy.par_chunks(per_task * o * plane))
        .for_each(|(dx, dy)| {
            let images = dx.len() / image_in;
            let cols = images * plane;
            let mut gathered = vec![0.0; o * cols];
            for (image, dys) in dy.chunks_exact(o * plane).take(images).enumerate() {
                for (channel, src) in dys.chunks_exact(plane).enumerate() {
                    let at = channel * cols + image * plane;
                    gathered[at..at + plane].copy_from_slice(src);
                }
            }
            let mut product = vec![0.0; patch * cols];
            matmul(
                (patch, cols, o),
                &mut product,
                false,
                MatRef::transposed(w, patch),
                MatRef::row_major(&gathered, cols),
            );
            for (image, dxs) in dx.chunks_exact_mut(image_in).enumerate() {
                col2im_strided(g, &mut product[image * plane..], cols, dxs);
            }
        });
    dx
}

/// The gradient of `conv2d(x, w)` with respect to `x`, given the output gradient `dy`.
pub fn input_grad(g: &ConvShape, w: &[f32], dy: &[f32]) -> Vec<f32> {
    if direct::applies(g) {
        return direct::input_grad(g, w, dy);
    }
    if batches(g) {
        return input_grad_batched(g, w, dy);
    }
    let mut dx = vec![0.0; g.input_len()];
    let (patch, out_plane, out_pg) = (g.patch(), g.out_plane(), g.out_per_group());
    let in_group = g.in_per_group() * g.in_plane();
    dx.par_chunks_mut(g.in_channels * g.in_plane())
        .zip(dy.par_chunks(g.out_channels * out_plane))
        .for_each_init(
            || vec![0.0; col_len(g)],
            |col, (dx, dy)| {
                for group in 0..g.groups {
                    let dxg = &mut dx[group * in_group..(group + 1) * in_group];
                    let dyg = &dy[group * out_pg * out_plane..(group + 1) * out_pg * out_plane];
                    // Wᵀ for this group: `patch × out_pg`.
                    let wt = MatRef::transposed(&w[group * out_pg * patch..], patch);
                    let rhs = MatRef::row_major(dyg, out_plane);
                    if g.is_pointwise() {
                        matmul((patch, out_plane, out_pg), dxg, false, wt, rhs);
                    } else {
                        matmul((patch, out_plane, out_pg), col, false, wt, rhs);
                        col2im(g, col, dxg);
                    }
                }
            },
        );
    dx
}

/// Images whose weight-gradient contributions one worker sums before the partial sums are added.
pub(super) const IMAGES_PER_PARTIAL: usize = 4;

/// The gradient of `conv2d(x, w)` with respect to `w`, given the output gradient `dy`: from
/// [`direct`] for the 3×3 same-size layers it takes, else from [`weight_grad_im2col`].
pub fn weight_grad(g: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    if direct::weight_grad_applies(g) {
        direct::weight_grad(g, x, dy)
    } else {
        weight_grad_im2col(g, x, dy)
    }
}

/// The weight gradient through im2col and `gemm`.
///
/// Each chunk of [`IMAGES_PER_PARTIAL`] images accumulates `dWᵀ = Σ col · dyᵀ` (`patch × out_per_group` per group): with the
/// long spatial axis as the inner dimension of both operands, `gemm` runs this orientation about
/// 2.7× faster than `dy · colᵀ` on ResNet-20's first stage (32 vs 88 GFLOP/s on one core). The
/// sum is transposed into OIHW once at the end.
fn weight_grad_im2col(g: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    if g.groups == 1 && g.weight_len() >= LARGE_WEIGHT && g.out_plane() <= SMALL_PLANE {
        return weight_grad_by_channels(g, x, dy);
    }
    let (patch, out_plane, out_pg) = (g.patch(), g.out_plane(), g.out_per_group());
    let in_group = g.in_per_group() * g.in_plane();
    let image_in = g.in_channels * g.in_plane();
    let image_out = g.out_channels * out_plane;
    let block = patch * out_pg;
    // Fixed chunks of images, summed in order: the result does not depend on how rayon
    // schedules the work or on the thread count, so training stays bitwise reproducible.
    let partials: Vec<Vec<f32>> = (0..g.batch.div_ceil(IMAGES_PER_PARTIAL))
        .into_par_iter()
        .map_init(
            || vec![0.0; col_len(g)],
            |col, chunk| {
                let mut dwt = vec![0.0; g.weight_len()];
                let first = chunk * IMAGES_PER_PARTIAL;
                for image in first..(first + IMAGES_PER_PARTIAL).min(g.batch) {
                    let x = &x[image * image_in..(image + 1) * image_in];
                    let dy = &dy[image * image_out..(image + 1) * image_out];
                    for group in 0..g.groups {
                        let xg = &x[group * in_group..(group + 1) * in_group];
                        let cols = patches(g, xg, col);
                        matmul(
                            (patch, out_pg, out_plane),
                            &mut dwt[group * block..(group + 1) * block],
                            true,
                            MatRef::row_major(cols, out_plane),
                            MatRef::transposed(&dy[group * out_pg * out_plane..], out_plane),
                        );
                    }
                }
                dwt
            },
        )
        .collect();
    let mut dwt = vec![0.0; g.weight_len()];
    for partial in &partials {
        dwt.iter_mut().zip(partial).for_each(|(a, b)| *a += b);
    }
    let mut dw = vec![0.0; g.weight_len()];
    for group in 0..g.groups {
        let (src, dst) = (&dwt[group * block..], &mut dw[group * block..]);
        for o in 0..out_pg {
            for p in 0..patch {
                dst[o * patch + p] = src[p * out_pg + o];
            }
        }
    }
    dw
}

/// Weights of at least this many elements on output planes of at most [`SMALL_PLANE`] pixels
/// take [`weight_grad_by_channels`], or on the direct path `direct::weight_grad::stacked`; on
/// the direct path, smaller weights with at least 32 output channels take
/// `direct::weight_grad::outer` on AVX-512.
pub(super) const LARGE_WEIGHT: usize = 1 << 16;

/// Input channels whose patches one task of [`weight_grad_by_channels`] writes.
const INPUT_CHANNELS_PER_TASK: usize = 16;

/// Blocks of output channels (rounded up to 16 channels each) of [`weight_grad_by_channels`]:
/// a count fixed by the shape, not the thread count, so that the sums do not depend on the
/// thread count. On two cores of an Intel Xeon, ResNet-18's 256→512 stride-2 weight gradient
/// took 11.4 ms in two blocks, 13.5 in four and 15.3 in eight.
const WEIGHT_BLOCKS: usize = 2;

/// [`weight_grad`] for a large weight on a small plane (the ImageNet-style ResNets' late
/// layers and stride-2 layers, WRN's and resnet32x4's stride-2 layers into 8×8, MobileNetV2's
/// and the ShuffleNets' late pointwise layers): instead of one full-size partial gradient per
/// chunk of images, summed and transposed afterwards (for 512-channel layers, sixteen 9 MB
/// buffers per layer), the output channels are split into [`WEIGHT_BLOCKS`] blocks, and each
/// block accumulates its `dWᵀ = Σ col · dyᵀ` in place, through a transposed destination.
///
/// The images go in chunks of about [`COLUMNS_PER_TASK`] positions: each chunk's patches are
/// written once, side by side (`patch × (images · plane)`, [`im2col_strided`], split over the
/// workers by input channels), and every block multiplies them by its channels' output
/// gradients, gathered the same way. Per image, each product would have an inner dimension of
/// the plane (16 on 4×4) and would rewrite the whole block for it. On one core of an Intel
/// Xeon with AVX-512, batch 64, the gradient of ResNet-18's 256→512 3×3 stride-2 weight went
/// from 70 to 23 ms and its 1×1 shortcut's from 9.3 to 3.3 ms (when every task of 64 channels
/// wrote the im2col of every image, that was two thirds of the time); 128→256 into 8×8, from
/// 45 to 24–32 ms (blocks of 256 and of 64 channels).
///
/// Every element is summed by one block, chunk after chunk in image order, and the blocks
/// depend on the shape only (`gemm` picks its path, and so the order of its sums, by the
/// product's sizes), so the result does not depend on the thread count.
fn weight_grad_by_channels(g: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (patch, plane, kernel) = (g.patch(), g.out_plane(), g.kernel_plane());
    let (image_in, in_plane) = (g.in_channels * g.in_plane(), g.in_plane());
    let image_out = g.out_channels * plane;
    let per_product = (COLUMNS_PER_TASK / plane.max(1)).clamp(1, g.batch.max(1));
    let mut dw = vec![0.0; g.weight_len()];
    let mut gathered = vec![0.0; patch * per_product * plane];
    for chunk in (0..g.batch).step_by(per_product) {
        let images = per_product.min(g.batch - chunk);
        let cols = images * plane;
        let gathered = &mut gathered[..patch * cols];
        // The chunk's patches, side by side, once for every task below: split by input
        // channels, whose rows are consecutive.
        gathered
            .par_chunks_mut(INPUT_CHANNELS_PER_TASK * kernel * cols)
            .enumerate()
            .for_each(|(task, rows)| {
                let first = task * INPUT_CHANNELS_PER_TASK;
                let channels = rows.len() / (kernel * cols);
                let part = ConvShape {
                    in_channels: channels,
                    out_channels: 1,
                    ..*g
                };
                for image in 0..images {
                    let at = (chunk + image) * image_in + first * in_plane;
                    let xs = &x[at..at + channels * in_plane];
                    im2col_strided(&part, xs, &mut rows[image * plane..], cols);
                }
            });
        let gathered = &*gathered;
        let per_task = g.out_channels.div_ceil(WEIGHT_BLOCKS).next_multiple_of(16);
        dw.par_chunks_mut(per_task * patch)
            .enumerate()
            .for_each(|(task, dw)| {
                let first = task * per_task;
                let channels = dw.len() / patch;
                let mut dys = vec![0.0; channels * cols];
                for image in 0..images {
                    let from = (chunk + image) * image_out + first * plane;
                    let planes = dy[from..from + channels * plane].chunks_exact(plane);
                    for (channel, src) in planes.enumerate() {
                        let at = channel * cols + image * plane;
                        dys[at..at + plane].copy_from_slice(src);
                    }
                }
                matmul_strided(
                    (patch, channels, cols),
                    dw,
                    (1, patch),
                    true,
                    MatRef::row_major(gathered, cols),
                    MatRef::transposed(&dys, cols),
                );
            });
    }
    dw
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `x`, `dy` filled with fixed smooth patterns, and the weight gradient computed on 1, 2 and
    /// 3 threads, which must be bitwise equal: training runs reproduce exactly whatever rayon's
    /// scheduling. Returns the inputs and the gradient.
    fn thread_count_independent(g: &ConvShape) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let x: Vec<f32> = (0..g.input_len())
            .map(|i| (i as f32 * 0.013).sin())
            .collect();
        let dy: Vec<f32> = (0..g.output_len())
            .map(|i| (i as f32 * 0.029).cos())
            .collect();
        let on = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| weight_grad_im2col(g, &x, &dy))
        };
        let one = on(1);
        assert_eq!(one, on(2));
        assert_eq!(one, on(3));
        (x, dy, one)
    }

    /// The chunked weight gradient through im2col does not depend on the thread count.
    #[test]
    fn weight_gradient_does_not_depend_on_the_thread_count() {
        let g = ConvShape::new([13, 6, 9, 9], [8, 6, 3, 3], [1, 1], [1, 1], 1).unwrap();
        thread_count_independent(&g);
    }

    /// Neither does the gradient of a weight large enough to be split by output channels (same
    /// size into 4×4 in one chunk of images; stride 2 into 4×4 in chunks of 16 and 3 images,
    /// with a channel count no split divides; a last block of one channel), and that path equals a per-image sum in f64
    /// within f32 rounding.
    #[test]
    fn large_weight_gradients_do_not_depend_on_the_thread_count() {
        for g in [
            ConvShape::new([5, 48, 4, 4], [170, 48, 3, 3], [1, 1], [1, 1], 1).unwrap(),
            ConvShape::new([19, 40, 8, 8], [200, 40, 3, 3], [2, 2], [1, 1], 1).unwrap(),
            ConvShape::new([2, 256, 8, 8], [33, 256, 3, 3], [2, 2], [1, 1], 1).unwrap(),
        ] {
            assert!(g.weight_len() >= LARGE_WEIGHT && g.out_plane() <= SMALL_PLANE);
            let (x, dy, one) = thread_count_independent(&g);
            let mut want = vec![0.0f64; g.weight_len()];
            let (patch, plane, image_in) = (g.patch(), g.out_plane(), g.in_channels * g.in_plane());
            let mut col = vec![0.0; patch * plane];
            for image in 0..g.batch {
                im2col(&g, &x[image * image_in..(image + 1) * image_in], &mut col);
                for o in 0..g.out_channels {
                    let dyo = &dy[(image * g.out_channels + o) * plane..][..plane];
                    for p in 0..patch {
                        let c = &col[p * plane..(p + 1) * plane];
                        want[o * patch + p] +=
                            c.iter().zip(dyo).map(|(a, b)| (a * b) as f64).sum::<f64>();
                    }
                }
            }
            for (got, want) in one.iter().zip(&want) {
                assert!((*got as f64 - want).abs() < 1e-4, "{g:?}: {got} vs {want}");
            }
        }
    }
}

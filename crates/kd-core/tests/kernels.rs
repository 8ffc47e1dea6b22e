//! kd's convolution kernels against burn's `conv2d`: outputs and the gradients of input, weight
//! and bias, for every geometry the zoo uses (dense, strided, pointwise, grouped, depthwise) and a
//! few it does not; training-mode batch norm likewise. `kernels_zoo.rs` runs whole networks with
//! the kernels on and off.

use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};
use burn::tensor::{activation, module};
use kd_core::kernels;

mod common;
use common::fixed;

/// A flex device, with autodiff or without.
fn flex(autodiff: bool) -> Device {
    if autodiff {
        Device::flex().autodiff()
    } else {
        Device::flex()
    }
}

/// Largest `|a − b| / (1 + |b|)` over two equally shaped tensors.
fn max_rel_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let a = a.into_data().try_into_vec::<f32>().unwrap();
    let b = b.into_data().try_into_vec::<f32>().unwrap();
    a.iter()
        .zip(&b)
        .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
        .fold(0.0, f32::max)
}

struct Case {
    x: [usize; 4],
    out: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    groups: usize,
    bias: bool,
}

const fn case(
    x: [usize; 4],
    out: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    groups: usize,
    bias: bool,
) -> Case {
    Case {
        x,
        out,
        kernel,
        stride,
        padding,
        groups,
        bias,
    }
}

const CASES: [Case; 28] = [
    case([3, 16, 12, 12], 16, 3, 1, 1, 1, false), // ResNet basic block
    case([2, 37, 9, 7], 13, 3, 1, 1, 1, true),    // direct 3×3: partial tiles, two passes of taps
    case([2, 4, 1, 1], 5, 3, 1, 1, 1, true),      // 3×3 on a 1×1 plane: only the centre tap reads
    case([3, 3, 1, 2], 7, 3, 1, 1, 1, false),     // and on a 1×2 plane
    case([19, 3, 2, 2], 5, 3, 1, 1, 1, true),     // 2×2 planes, an odd batch
    case([2, 16, 12, 12], 32, 3, 2, 1, 1, false), // ResNet downsampling
    case([2, 16, 8, 8], 32, 1, 2, 0, 1, false),   // ResNet shortcut
    case([2, 24, 8, 8], 48, 1, 1, 0, 1, false),   // pointwise (MobileNetV2 expand)
    case([2, 24, 8, 8], 48, 1, 1, 0, 3, false),   // grouped pointwise (ShuffleNetV1)
    case([3, 40, 3, 5], 70, 1, 1, 0, 1, true),    // pointwise on a small plane, over the batch
    case([43, 12, 4, 4], 20, 1, 1, 0, 1, true),   // and over chunks of 6 images and a last of 1
    case([19, 6, 8, 8], 10, 3, 2, 1, 1, true), // stride 2 into 4×4: chunks of 3 images, a last of 1
    case([17, 5, 6, 6], 7, 1, 2, 0, 1, false), // 1×1 stride 2 into 3×3: chunks of 3, a last of 2
    case([19, 40, 8, 8], 200, 3, 2, 1, 1, false), // a large weight into 4×4: chunks of 16 and 3 images
    case([2, 64, 4, 4], 130, 3, 1, 1, 1, false),  // a large weight: stacked products (AVX)
    case([2, 8, 9, 7], 12, 3, 1, 1, 2, true),     // grouped 3×3, odd sizes, bias
    case([3, 24, 9, 9], 24, 3, 1, 1, 24, false),  // depthwise (MobileNetV2)
    case([2, 24, 9, 9], 24, 3, 2, 1, 24, false),  // depthwise, strided
    case([3, 10, 4, 4], 10, 3, 2, 1, 10, true),   // depthwise, stride 2 to 2×2 (MobileNetV2)
    case([2, 5, 2, 2], 5, 3, 2, 1, 5, false),     // and to 1×1
    case([2, 3, 10, 11], 8, 5, 1, 2, 1, true),    // 5×5 with bias
    case([2, 3, 10, 10], 8, 3, 1, 0, 1, false),   // no padding
    case([1, 4, 7, 7], 6, 2, 2, 0, 1, false),     // even kernel
    case([2, 4, 6, 6], 4, 3, 3, 2, 4, true),      // depthwise, wide padding, bias
    case([2, 6, 5, 7], 6, 3, 1, 2, 6, false),     // depthwise stride 1, wider padding
    case([2, 6, 9, 8], 6, 5, 1, 2, 6, false),     // depthwise 5×5
    case([2, 6, 9, 8], 6, 5, 2, 2, 6, true),      // depthwise 5×5, stride 2 (stacked phases)
    case([2, 6, 4, 4], 6, 3, 1, 0, 6, true),      // depthwise, no padding
];

/// Output, input gradient, weight gradient and (if any) bias gradient of one convolution, through
/// kd's kernels or burn's `conv2d`, with the loss `Σ y · r` for a fixed random `r`.
fn run(c: &Case, use_kd: bool, device: &Device) -> Vec<Tensor<4>> {
    let x = fixed(c.x, 1, 1.0, device).require_grad();
    let w = fixed(
        [c.out, c.x[1] / c.groups, c.kernel, c.kernel],
        2,
        0.5,
        device,
    )
    .require_grad();
    let b = c
        .bias
        .then(|| fixed([c.out], 3, 1.0, device).require_grad());
    let options = ConvOptions::new(
        [c.stride, c.stride],
        [c.padding, c.padding],
        [1, 1],
        c.groups,
    );
    let y = if use_kd {
        kernels::conv2d(x.clone(), w.clone(), b.clone(), options)
    } else {
        module::conv2d(x.clone(), w.clone(), b.clone(), options)
    };
    let r = fixed(y.dims(), 4, 1.0, device);
    let grads = (y.clone() * r).sum().backward();
    let mut out = vec![y.inner(), x.grad(&grads).unwrap(), w.grad(&grads).unwrap()];
    if let Some(b) = b {
        out.push(b.grad(&grads).unwrap().reshape([1, 1, 1, c.out]));
    }
    out
}

#[test]
fn kernels_match_burns_conv2d_values_and_gradients() {
    let device = Device::flex().autodiff();
    for c in &CASES {
        let ours = run(c, true, &device);
        let burn = run(c, false, &device);
        assert_eq!(ours.len(), burn.len());
        for (what, (a, b)) in ["output", "dx", "dw", "dbias"]
            .iter()
            .zip(ours.into_iter().zip(burn))
        {
            let diff = max_rel_diff(a, b);
            assert!(
                diff < 1e-4,
                "x {:?} out {} k{} s{} p{} g{}: {what} differs by {diff}",
                c.x,
                c.out,
                c.kernel,
                c.stride,
                c.padding,
                c.groups
            );
        }
    }
}

#[test]
fn inference_forward_matches_burn_on_the_plain_device() {
    let device = Device::flex();
    for c in &CASES {
        let x = fixed(c.x, 5, 1.0, &device);
        let w = fixed(
            [c.out, c.x[1] / c.groups, c.kernel, c.kernel],
            6,
            0.5,
            &device,
        );
        let options = ConvOptions::new(
            [c.stride, c.stride],
            [c.padding, c.padding],
            [1, 1],
            c.groups,
        );
        let ours = kernels::conv2d(x.clone(), w.clone(), None, options.clone());
        let burn = module::conv2d(x, w, None, options);
        assert!(max_rel_diff(ours, burn) < 1e-4);
    }
}

/// The fused inference convolutions (bias, then residual, then ReLU, applied per image as the
/// convolution finishes it) equal kd's plain convolution followed by burn's elementwise ops
/// bitwise, on every path (dense, direct 3×3, pointwise over the batch, grouped, depthwise); a
/// residual given as a strided view is read in logical order; and on the autodiff device, where
/// the fused operations are composed of tracked ones, the gradients equal the unfused ops'.
#[test]
fn fused_inference_convolutions_equal_the_unfused_ops() {
    use burn::tensor::activation::relu;
    let bits = |t: Tensor<4>| t.into_data().try_into_vec::<f32>().unwrap();
    for autodiff in [false, true] {
        let device = flex(autodiff);
        for c in &CASES {
            // Variant `which` (0: bias, 1: bias and ReLU, 2: bias, residual and ReLU), fused or
            // as kd's plain convolution and burn's ops, each on a fresh graph: the input and
            // the output.
            let run = |which: usize, fused: bool| -> (Tensor<4>, Tensor<4>) {
                let x = fixed(c.x, 9, 1.0, &device);
                let x = if autodiff { x.require_grad() } else { x };
                let w = fixed(
                    [c.out, c.x[1] / c.groups, c.kernel, c.kernel],
                    10,
                    0.5,
                    &device,
                );
                let b = fixed([c.out], 11, 1.0, &device);
                let options = ConvOptions::new(
                    [c.stride, c.stride],
                    [c.padding, c.padding],
                    [1, 1],
                    c.groups,
                );
                let plain = kernels::conv2d(x.clone(), w.clone(), None, options.clone());
                let [n, o, h, wd] = plain.dims();
                // A residual stored transposed: a strided view of the output's shape.
                let residual = fixed([n, o, wd, h], 12, 1.0, &device).swap_dims(2, 3);
                let y = match (which, fused) {
                    (0, true) => kernels::conv2d_bias(x.clone(), w, b, options, false),
                    (1, true) => kernels::conv2d_bias(x.clone(), w, b, options, true),
                    (_, true) => kernels::conv2d_bias_add_relu(x.clone(), w, b, residual, options),
                    (0, false) => plain + b.reshape([1, o, 1, 1]),
                    (1, false) => relu(plain + b.reshape([1, o, 1, 1])),
                    (_, false) => relu(plain + b.reshape([1, o, 1, 1]) + residual),
                };
                (x, y)
            };
            for (which, what) in ["bias", "bias, relu", "bias, residual, relu"]
                .iter()
                .enumerate()
            {
                let ((x_got, got), (x_want, want)) = (run(which, true), run(which, false));
                let grads = autodiff.then(|| {
                    let r = fixed(want.dims(), 13, 1.0, &device);
                    let g = (got.clone() * r.clone()).sum().backward();
                    let h = (want.clone() * r).sum().backward();
                    (
                        bits(x_got.grad(&g).unwrap()),
                        bits(x_want.grad(&h).unwrap()),
                    )
                });
                let (got, want) = (bits(got), bits(want));
                assert!(
                    got == want,
                    "x {:?} out {} k{} s{} g{} ({what}): values differ",
                    c.x,
                    c.out,
                    c.kernel,
                    c.stride,
                    c.groups
                );
                if let Some((got, want)) = grads {
                    assert!(got == want, "x {:?} ({what}): input gradients differ", c.x);
                }
            }
        }
    }
}

/// The one-pass inference batch norm + ReLU equals burn's `relu(x · scale + shift)` bitwise (the
/// same two operations per element), on the plain device and, with equal input gradients, on
/// the autodiff device; a strided input is read in logical order.
#[test]
fn scale_shift_relu_equals_burns_ops() {
    use burn::tensor::activation::relu;
    let bits = |t: Tensor<4>| t.into_data().try_into_vec::<f32>().unwrap();
    for autodiff in [false, true] {
        let device = flex(autodiff);
        for transposed in [false, true] {
            let run = |fused: bool| {
                let x = fixed([3, 5, 6, 7], 14, 1.0, &device);
                let x = if autodiff { x.require_grad() } else { x };
                let input = if transposed {
                    x.clone().swap_dims(2, 3)
                } else {
                    x.clone()
                };
                let (scale, shift) = (fixed([5], 15, 1.0, &device), fixed([5], 16, 1.0, &device));
                let y = if fused {
                    kernels::scale_shift_relu(input, scale, shift)
                } else {
                    relu(input * scale.reshape([1, 5, 1, 1]) + shift.reshape([1, 5, 1, 1]))
                };
                (x, y)
            };
            let ((x_got, got), (x_want, want)) = (run(true), run(false));
            if autodiff {
                let r = fixed(want.dims(), 17, 1.0, &device);
                let g = (got.clone() * r.clone()).sum().backward();
                let h = (want.clone() * r).sum().backward();
                assert_eq!(
                    bits(x_got.grad(&g).unwrap()),
                    bits(x_want.grad(&h).unwrap())
                );
            }
            let (got, want) = (bits(got), bits(want));
            assert!(got == want, "autodiff {autodiff}, transposed {transposed}");
            assert!(got.contains(&0.0) && got.iter().any(|v| *v > 0.0));
        }
    }
}

/// Max pooling through kd's kernels equals burn's `max_pool2d`, values and input gradients, on
/// both devices: 2×2 windows on even and odd planes (the odd last row and column dropped), 3×3
/// windows of stride 2 and 1, a 2×3 window of stride (3, 2), and a strided (transposed) input.
#[test]
fn max_pooling_equals_burns() {
    use burn::tensor::ops::MaxPoolOptions;
    let bits = |t: Tensor<4>| t.into_data().try_into_vec::<f32>().unwrap();
    let shapes = [
        ([2, 3, 8, 8], [2, 2], [2, 2]),
        ([3, 4, 7, 9], [2, 2], [2, 2]),
        ([2, 2, 9, 9], [3, 3], [2, 2]),
        ([1, 2, 5, 6], [3, 3], [1, 1]),
        ([2, 3, 2, 2], [2, 2], [2, 2]),
        ([2, 3, 7, 9], [2, 3], [3, 2]),
    ];
    for autodiff in [false, true] {
        let device = flex(autodiff);
        for (dims, kernel, stride) in shapes {
            for transposed in [false, true] {
                let run = |ours: bool| {
                    let x = fixed(dims, 18, 1.0, &device);
                    let x = if autodiff { x.require_grad() } else { x };
                    let input = if transposed {
                        x.clone().swap_dims(2, 3)
                    } else {
                        x.clone()
                    };
                    let y = if ours {
                        kernels::max_pool2d(input, kernel, stride)
                    } else {
                        module::max_pool2d(input, MaxPoolOptions::new(kernel).with_stride(stride))
                    };
                    (x, y)
                };
                let ((x_got, got), (x_want, want)) = (run(true), run(false));
                let case = format!("{dims:?} k{kernel:?} s{stride:?} transposed {transposed}");
                if autodiff {
                    let r = fixed(want.dims(), 19, 1.0, &device);
                    let g = (got.clone() * r.clone()).sum().backward();
                    let h = (want.clone() * r).sum().backward();
                    let (dx_got, dx_want) = (x_got.grad(&g).unwrap(), x_want.grad(&h).unwrap());
                    assert_eq!(bits(dx_got), bits(dx_want), "{case}");
                }
                assert_eq!(bits(got), bits(want), "{case}");
            }
        }
    }
}

/// A strided view (a transposed input) is read in logical order, not storage order.
#[test]
fn strided_inputs_are_read_in_logical_order() {
    let device = Device::flex();
    let x = fixed([2, 4, 6, 6], 7, 1.0, &device).swap_dims(2, 3);
    let w = fixed([5, 4, 3, 3], 8, 1.0, &device);
    let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    let ours = kernels::conv2d(x.clone(), w.clone(), None, options.clone());
    let burn = module::conv2d(x, w, None, options);
    assert!(max_rel_diff(ours, burn) < 1e-5);
}

/// Training-mode batch norm, alone and with its ReLU fused: output, statistics and the gradients
/// of input, scale and shift against burn's `batch_norm_train` (and `relu` after it), the fused
/// ReLU on batches where it clamps some outputs.
#[test]
fn batch_norm_matches_burns_values_statistics_and_gradients() {
    let device = Device::flex().autodiff();
    for relu in [false, true] {
        for dims in [[4, 3, 5, 5], [2, 16, 8, 8], [3, 7, 1, 1]] {
            let mut results = Vec::new();
            for use_kd in [true, false] {
                let x = fixed(dims, 11, 2.0, &device).require_grad();
                let gamma = fixed([dims[1]], 12, 1.0, &device).require_grad();
                let beta = fixed([dims[1]], 13, 1.0, &device).require_grad();
                let (y, mean, var) = match (use_kd, relu) {
                    (true, false) => {
                        kernels::batch_norm_train(x.clone(), gamma.clone(), beta.clone(), 1e-5)
                    }
                    (true, true) => {
                        kernels::batch_norm_relu_train(x.clone(), gamma.clone(), beta.clone(), 1e-5)
                    }
                    (false, _) => {
                        let r =
                            module::batch_norm_train(x.clone(), gamma.clone(), beta.clone(), 1e-5);
                        let y = if relu {
                            activation::relu(r.output)
                        } else {
                            r.output
                        };
                        (y, r.mean, r.variance)
                    }
                };
                let r = fixed(dims, 14, 1.0, &device);
                let grads = (y.clone() * r).sum().backward();
                let vector = |t: Tensor<1>| t.reshape([1, 1, 1, dims[1]]);
                results.push(vec![
                    y.inner(),
                    vector(mean.inner()),
                    vector(var.inner()),
                    x.grad(&grads).unwrap(),
                    vector(gamma.grad(&grads).unwrap()),
                    vector(beta.grad(&grads).unwrap()),
                ]);
            }
            if relu {
                let zeros: i64 = results[0][0]
                    .clone()
                    .equal_elem(0.0)
                    .int()
                    .sum()
                    .into_scalar();
                assert!(zeros > 0, "{dims:?}: the ReLU clamps nothing");
            }
            let (ours, burn) = (results.remove(0), results.remove(0));
            for (what, (a, b)) in ["output", "mean", "variance", "dx", "dgamma", "dbeta"]
                .iter()
                .zip(ours.into_iter().zip(burn))
            {
                let diff = max_rel_diff(a, b);
                assert!(
                    diff < 1e-4,
                    "relu {relu} {dims:?}: {what} differs by {diff}"
                );
            }
        }
    }
}

/// An empty batch is left to burn (the kernels split work by image and channel sizes).
#[test]
fn empty_tensors_go_to_burn() {
    let device = Device::flex();
    let x = Tensor::<4>::zeros([0, 3, 8, 8], &device);
    let w = fixed([4, 3, 3, 3], 15, 1.0, &device);
    let y = kernels::conv2d(x, w, None, ConvOptions::new([1, 1], [1, 1], [1, 1], 1));
    assert_eq!(y.dims(), [0, 4, 8, 8]);
}

//! Where a convolution goes: kd's own kernels or burn's.
//!
//! [`conv2d`] is the convolution every zoo architecture calls (through
//! `zoo::layers::conv`). On a flex device, for `f32` tensors with symmetric padding and
//! unit dilation, it runs [`KdConv`](super::extension::KdConv), whose forward and handwritten
//! backward are this folder's kernels; anything else (another backend, another dtype, a geometry
//! the kernels do not cover) goes to burn's `conv2d` unchanged. [`batch_norm_train`] does the same
//! for training-mode batch normalisation. [`set_enabled`] turns the kernels
//! off process-wide, which is how the tests and `kd bench` compare the two paths.

use std::sync::atomic::{AtomicBool, Ordering};

use burn::backend::{Dispatch, DispatchDevice};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{DType, Tensor};
use burn::tensor::{activation, module};

use super::conv_shape::ConvShape;
use super::extension::KdOps;
use super::max_pool::Pool;

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns kd's convolution kernels on or off for the whole process (on by default). Off, every
/// convolution runs through burn's own `conv2d`.
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// Whether kd's convolution kernels are on.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Whether kd's kernels serve this tensor: they are on, it is a non-empty `f32` tensor, and it
/// lives on a flex device (plain or autodiff).
fn on_flex<const D: usize>(x: &Tensor<D>) -> bool {
    enabled()
        && x.dtype() == DType::F32
        && !x.dims().contains(&0)
        && matches!(x.device().inner().as_dispatch(), DispatchDevice::Flex(_))
}

/// The geometry kd's kernels run (stride, symmetric padding, groups and the output size), or
/// `None` when burn's `conv2d` must run instead.
fn kd_geometry(x: &Tensor<4>, weight: &Tensor<4>, options: &ConvOptions<2>) -> Option<ConvShape> {
    if weight.dtype() != DType::F32 || weight.dims().contains(&0) {
        return None;
    }
    if !on_flex(x) {
        return None;
    }
    let [(top, bottom), (left, right)] = options.padding;
    if top != bottom || left != right || options.dilation != [1, 1] {
        return None;
    }
    ConvShape::new(
        x.dims(),
        weight.dims(),
        options.stride,
        [top, left],
        options.groups,
    )
}

/// `conv2d(x, weight) + bias`, through kd's kernels where they apply (see the module docs).
///
/// # Shapes
/// - `x`: `[batch, in_channels, height, width]`
/// - `weight`: `[out_channels, in_channels / groups, kernel_h, kernel_w]`
/// - `bias`: `[out_channels]`
/// - output: `[batch, out_channels, out_h, out_w]`
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    let Some(g) = kd_geometry(&x, &weight, &options) else {
        return module::conv2d(x, weight, bias, options);
    };
    let out = Tensor::<4>::from_dispatch(<Dispatch as KdOps>::kd_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        g.stride,
        g.padding,
        g.groups,
    ));
    match bias {
        Some(bias) => {
            let channels = bias.dims()[0];
            out + bias.reshape([1, channels, 1, 1])
        }
        None => out,
    }
}

/// Inference: `conv2d(x, weight) + bias`, clamped at zero when `relu`, through kd's kernels
/// with the bias and the ReLU applied per image while the output is in cache (`epilogue.rs`);
/// elsewhere (see the module docs) burn's `conv2d` and `relu`. Bitwise equal to the unfused
/// ops: the same additions in the same order.
///
/// # Shapes
/// As [`conv2d`]; `bias`: `[out_channels]`.
pub fn conv2d_bias(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    options: ConvOptions<2>,
    relu: bool,
) -> Tensor<4> {
    let geometry = kd_geometry(&x, &weight, &options)
        .filter(|g| bias.dims() == [g.out_channels] && bias.dtype() == DType::F32);
    let Some(g) = geometry else {
        let out = module::conv2d(x, weight, Some(bias), options);
        return if relu { activation::relu(out) } else { out };
    };
    Tensor::<4>::from_dispatch(<Dispatch as KdOps>::kd_conv2d_bias(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        g.stride,
        g.padding,
        g.groups,
        relu,
    ))
}

/// Inference: `relu(conv2d(x, weight) + bias + residual)`, the end of a residual block, through
/// kd's kernels in one pass per image where they apply and `residual` has the output's shape;
/// elsewhere burn's ops.
///
/// # Shapes
/// As [`conv2d`]; `bias`: `[out_channels]`; `residual`: the output's shape.
pub fn conv2d_bias_add_relu(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    residual: Tensor<4>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    let geometry = kd_geometry(&x, &weight, &options).filter(|g| {
        residual.dims() == [g.batch, g.out_channels, g.out_h, g.out_w]
            && on_flex(&residual)
            && bias.dims() == [g.out_channels]
            && bias.dtype() == DType::F32
    });
    let Some(g) = geometry else {
        return activation::relu(module::conv2d(x, weight, Some(bias), options) + residual);
    };
    Tensor::<4>::from_dispatch(<Dispatch as KdOps>::kd_conv2d_bias_add_relu(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        residual.into_dispatch(),
        g.stride,
        g.padding,
        g.groups,
    ))
}

/// Inference: `max(x · scale + shift, 0)` with per-channel `scale` and `shift`, one pass through
/// kd's kernels on flex (`f32`, non-empty), burn's ops elsewhere.
///
/// # Shapes
/// - `x`: `[batch, channels, height, width]`; `scale`, `shift`: `[channels]`; output: the shape
///   of `x`
pub fn scale_shift_relu(x: Tensor<4>, scale: Tensor<1>, shift: Tensor<1>) -> Tensor<4> {
    let channels = x.dims()[1];
    let vector = |t: &Tensor<1>| t.dims() == [channels] && t.dtype() == DType::F32;
    if !on_flex(&x) || !vector(&scale) || !vector(&shift) {
        let per_channel = [1, channels, 1, 1];
        return activation::relu(x * scale.reshape(per_channel) + shift.reshape(per_channel));
    }
    Tensor::<4>::from_dispatch(<Dispatch as KdOps>::kd_scale_shift_relu(
        x.into_dispatch(),
        scale.into_dispatch(),
        shift.into_dispatch(),
    ))
}

/// Max pooling with no padding or dilation (`nn.MaxPool2d(kernel, stride)`), through kd's
/// kernels on flex (`f32`, non-empty, the window inside the plane), burn's `max_pool2d`
/// elsewhere.
///
/// # Shapes
/// - `x`: `[batch, channels, height, width]` → `[batch, channels, out_h, out_w]`, with
///   `out = (in − kernel) / stride + 1`
pub fn max_pool2d(x: Tensor<4>, kernel: [usize; 2], stride: [usize; 2]) -> Tensor<4> {
    if !on_flex(&x) || Pool::new(x.dims(), kernel, stride).is_none() {
        return module::max_pool2d(x, MaxPoolOptions::new(kernel).with_stride(stride));
    }
    Tensor::<4>::from_dispatch(<Dispatch as KdOps>::kd_max_pool2d(
        x.into_dispatch(),
        kernel,
        stride,
    ))
}

/// Training-mode batch normalisation: the normalised output with the batch's mean and biased
/// variance (detached), through kd's kernels on flex and burn's `batch_norm_train` elsewhere.
///
/// # Shapes
/// - `x`: `[batch, channels, height, width]`; `gamma`, `beta`: `[channels]`
/// - returns the output (shape of `x`), the mean and the variance (`[channels]` each)
pub fn batch_norm_train(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> (Tensor<4>, Tensor<1>, Tensor<1>) {
    batch_norm_train_then(x, (gamma, beta), epsilon, false)
}

/// [`batch_norm_train`] followed by a ReLU, `relu(bn(x))`: on flex in the batch norm's own pass,
/// its backward masking the gradient with the ReLU's mask recomputed from `x` in the batch
/// norm's backward (the ReLU's forward and backward passes over the activation and its
/// autodiff node are saved); elsewhere burn's batch norm and ReLU.
///
/// # Shapes
/// As [`batch_norm_train`].
pub fn batch_norm_relu_train(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> (Tensor<4>, Tensor<1>, Tensor<1>) {
    batch_norm_train_then(x, (gamma, beta), epsilon, true)
}

fn batch_norm_train_then(
    x: Tensor<4>,
    (gamma, beta): (Tensor<1>, Tensor<1>),
    epsilon: f64,
    relu: bool,
) -> (Tensor<4>, Tensor<1>, Tensor<1>) {
    if !on_flex(&x) {
        let result = module::batch_norm_train(x, gamma, beta, epsilon);
        let output = if relu {
            activation::relu(result.output)
        } else {
            result.output
        };
        return (output, result.mean.detach(), result.variance.detach());
    }
    let channels = x.dims()[1];
    // The statistics are computed on the inner (non-autodiff) device and enter the graph as
    // constants; the backward of `kd_batch_norm_train` carries their dependence on `x`.
    let stats = if x.device().is_autodiff() {
        Tensor::<2>::from_inner(Tensor::from_dispatch(
            <Dispatch as KdOps>::kd_batch_norm_stats(x.clone().inner().into_dispatch()),
        ))
    } else {
        Tensor::<2>::from_dispatch(<Dispatch as KdOps>::kd_batch_norm_stats(
            x.clone().into_dispatch(),
        ))
    };
    let output = Tensor::<4>::from_dispatch(<Dispatch as KdOps>::kd_batch_norm_train(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        stats.clone().into_dispatch(),
        epsilon,
        relu,
    ));
    let mean = stats.clone().slice([0..1, 0..channels]).reshape([channels]);
    let variance = stats.slice([1..2, 0..channels]).reshape([channels]);
    (output, mean, variance)
}

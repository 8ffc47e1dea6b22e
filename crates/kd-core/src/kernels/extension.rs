//! kd's kernels as a burn backend extension: the [`KdOps`] trait (convolution, the inference
//! convolution with its bias, residual and ReLU fused, batch statistics, training-mode batch
//! norm) and its implementation for burn-flex, which hands contiguous `f32`
//! slices to the kernels; `autodiff.rs` implements it for `Autodiff<Flex>` with handwritten
//! backward passes.
//!
//! burn 0.22's `#[backend_extension]` generates the routing from the dispatch tensor to the
//! concrete backend; [`super::base`] calls it only for tensors on a flex device, so no other
//! backend ever reaches it.

use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Flex, backend_extension};
use burn::tensor::{Bytes, DType, Shape};

use super::batch_norm::{self, Planes};
use super::conv_shape::ConvShape;
use super::epilogue::Epilogue;
use super::max_pool::{self, Pool};
use super::{dense, depthwise};

/// The operations kd computes with its own kernels.
#[backend_extension(Flex, Autodiff)]
pub trait KdOps: Backend {
    /// `conv2d(x, weight)` with the given stride, padding and groups.
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, height, width]`
    /// - `weight`: `[out_channels, in_channels / groups, kernel_h, kernel_w]`
    /// - output: `[batch, out_channels, out_h, out_w]`
    fn kd_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
        groups: usize,
    ) -> FloatTensor<Self>;

    /// Inference: `conv2d(x, weight) + bias`, then clamped at zero when `relu`, in one pass over
    /// each image's output ([`Epilogue`]). The autodiff backend composes it from tracked
    /// operations, so gradients flow as through the unfused ops.
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, height, width]`
    /// - `weight`: `[out_channels, in_channels / groups, kernel_h, kernel_w]`
    /// - `bias`: `[out_channels]`
    /// - output: `[batch, out_channels, out_h, out_w]`
    fn kd_conv2d_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
        groups: usize,
        relu: bool,
    ) -> FloatTensor<Self>;

    /// Inference: `relu(conv2d(x, weight) + bias + residual)`, the end of a residual block, in
    /// one pass over each image's output.
    ///
    /// # Shapes
    /// As [`KdOps::kd_conv2d_bias`]; `residual` has the output's shape.
    fn kd_conv2d_bias_add_relu(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
        groups: usize,
    ) -> FloatTensor<Self>;

    /// Inference: `max(x · scale + shift, 0)` per channel, one pass (an inference batch norm
    /// and its ReLU, see `batch_norm::scale_shift_relu`). The autodiff backend composes it from
    /// tracked operations.
    ///
    /// # Shapes
    /// - `x`: `[batch, channels, height, width]`; `scale`, `shift`: `[channels]`; output: the
    ///   shape of `x`
    fn kd_scale_shift_relu(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// Max pooling without padding or dilation (`max_pool.rs`), with its handwritten backward
    /// on the autodiff backend.
    ///
    /// # Shapes
    /// - `x`: `[batch, channels, height, width]` → `[batch, channels, out_h, out_w]`, with
    ///   `out = (in − kernel) / stride + 1`
    fn kd_max_pool2d(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
    ) -> FloatTensor<Self>;

    /// Per-channel batch mean and biased variance of `x`, as one `[2, channels]` tensor (row 0
    /// the means). Never tracked by autodiff: [`KdOps::kd_batch_norm_train`]'s backward accounts
    /// for the statistics' dependence on `x`.
    ///
    /// # Shapes
    /// - `x`: `[batch, channels, height, width]` → `[2, channels]`
    fn kd_batch_norm_stats(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Training-mode batch normalisation of `x` with the statistics [`KdOps::kd_batch_norm_stats`]
    /// returned for it: `(x − mean) / √(var + epsilon) · gamma + beta`, clamped at zero in the
    /// same pass when `relu` (and the backward then masks the gradient as ReLU's does).
    ///
    /// # Shapes
    /// - `x`: `[batch, channels, height, width]`; `gamma`, `beta`: `[channels]`;
    ///   `stats`: `[2, channels]`; output: the shape of `x`
    fn kd_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> FloatTensor<Self>;
}

/// The contiguous `f32` elements of a flex tensor (copied into order if it is a strided view).
pub(super) fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.is_contiguous() {
        t
    } else {
        t.to_contiguous()
    }
}

pub(super) fn elements(t: &FlexTensor) -> &[f32] {
    let (start, end) = t
        .layout()
        .contiguous_offsets()
        .expect("tensor made contiguous before reading");
    &t.storage::<f32>()[start..end]
}

pub(super) fn dims4(t: &FlexTensor) -> [usize; 4] {
    t.layout().shape().dims::<4>()
}

/// A contiguous `f32` flex tensor of the given shape.
pub(super) fn tensor(data: Vec<f32>, dims: &[usize]) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(Shape::from(dims.to_vec())),
        DType::F32,
    )
}

pub(super) fn geometry(
    x: &FlexTensor,
    w: &FlexTensor,
    stride: [usize; 2],
    padding: [usize; 2],
    groups: usize,
) -> ConvShape {
    ConvShape::new(dims4(x), dims4(w), stride, padding, groups)
        .expect("conv2d geometry checked by kernels::conv2d before dispatch")
}

impl KdOps for Flex {
    fn kd_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        stride: [usize; 2],
        padding: [usize; 2],
        groups: usize,
    ) -> FlexTensor {
        conv_forward(x, weight, (stride, padding, groups), None, None, false)
    }

    fn kd_conv2d_bias(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        stride: [usize; 2],
        padding: [usize; 2],
        groups: usize,
        relu: bool,
    ) -> FlexTensor {
        conv_forward(x, weight, (stride, padding, groups), Some(bias), None, relu)
    }

    fn kd_conv2d_bias_add_relu(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        residual: FlexTensor,
        stride: [usize; 2],
        padding: [usize; 2],
        groups: usize,
    ) -> FlexTensor {
        let options = (stride, padding, groups);
        conv_forward(x, weight, options, Some(bias), Some(residual), true)
    }

    fn kd_scale_shift_relu(x: FlexTensor, scale: FlexTensor, shift: FlexTensor) -> FlexTensor {
        let (x, scale, shift) = (contiguous(x), contiguous(scale), contiguous(shift));
        let y = batch_norm::scale_shift_relu(
            planes(&x),
            elements(&x),
            elements(&scale),
            elements(&shift),
        );
        tensor(y, &dims4(&x))
    }

    fn kd_max_pool2d(x: FlexTensor, kernel: [usize; 2], stride: [usize; 2]) -> FlexTensor {
        let x = contiguous(x);
        let [batch, channels, ..] = dims4(&x);
        let p = pool(&x, kernel, stride);
        tensor(
            max_pool::forward(&p, elements(&x)),
            &[batch, channels, p.out_h, p.out_w],
        )
    }

    fn kd_batch_norm_stats(x: FlexTensor) -> FlexTensor {
        let x = contiguous(x);
        let p = planes(&x);
        tensor(batch_norm::stats(p, elements(&x)), &[2, p.channels])
    }

    fn kd_batch_norm_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        stats: FlexTensor,
        epsilon: f64,
        relu: bool,
    ) -> FlexTensor {
        let (x, gamma, beta, stats) = (
            contiguous(x),
            contiguous(gamma),
            contiguous(beta),
            contiguous(stats),
        );
        let y = batch_norm::forward(
            planes(&x),
            elements(&x),
            (elements(&gamma), elements(&beta)),
            elements(&stats),
            epsilon,
            relu,
        );
        tensor(y, &dims4(&x))
    }
}

/// The forward of every `kd_conv2d*` operation: the convolution, then its [`Epilogue`] per image.
fn conv_forward(
    x: FlexTensor,
    weight: FlexTensor,
    (stride, padding, groups): ([usize; 2], [usize; 2], usize),
    bias: Option<FlexTensor>,
    residual: Option<FlexTensor>,
    relu: bool,
) -> FlexTensor {
    let (x, weight) = (contiguous(x), contiguous(weight));
    let (bias, residual) = (bias.map(contiguous), residual.map(contiguous));
    let g = geometry(&x, &weight, stride, padding, groups);
    let epilogue = Epilogue {
        bias: bias.as_ref().map(elements),
        residual: residual.as_ref().map(elements),
        relu,
    };
    let y = if g.is_depthwise() {
        depthwise::forward(&g, elements(&x), elements(&weight), &epilogue)
    } else {
        dense::forward(&g, elements(&x), elements(&weight), &epilogue)
    };
    tensor(y, &[g.batch, g.out_channels, g.out_h, g.out_w])
}

/// The max pooling of `x` by `kernel` and `stride`.
///
/// # Panics
/// If the window does not fit: [`super::base::max_pool2d`] checks it before calling.
pub(super) fn pool(x: &FlexTensor, kernel: [usize; 2], stride: [usize; 2]) -> Pool {
    Pool::new(dims4(x), kernel, stride).expect("base::max_pool2d checked the window")
}

/// `x`'s sizes as batch-norm planes.
pub(super) fn planes(x: &FlexTensor) -> Planes {
    let [batch, channels, h, w] = dims4(x);
    Planes {
        batch,
        channels,
        plane: h * w,
    }
}

/// Both gradients of `kd_conv2d`, each only when asked for.
pub(super) fn conv_gradients(
    x: FlexTensor,
    weight: FlexTensor,
    dy: FlexTensor,
    (stride, padding, groups): ([usize; 2], [usize; 2], usize),
    (want_x, want_w): (bool, bool),
) -> (Option<FlexTensor>, Option<FlexTensor>) {
    let (x, weight, dy) = (contiguous(x), contiguous(weight), contiguous(dy));
    let g = geometry(&x, &weight, stride, padding, groups);
    let (xs, ws, dys) = (elements(&x), elements(&weight), elements(&dy));
    let dx = want_x.then(|| {
        let dx = if g.is_depthwise() {
            depthwise::input_grad(&g, ws, dys)
        } else {
            dense::input_grad(&g, ws, dys)
        };
        tensor(dx, &dims4(&x))
    });
    let dw = want_w.then(|| {
        let dw = if g.is_depthwise() {
            depthwise::weight_grad(&g, xs, dys)
        } else {
            dense::weight_grad(&g, xs, dys)
        };
        tensor(dw, &dims4(&weight))
    });
    (dx, dw)
}

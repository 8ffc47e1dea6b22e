//! kd's kernels as a burn backend extension: the [`KdOps`] trait (convolution, batch statistics,
//! training-mode batch norm) and its implementation for burn-flex, which hands contiguous `f32`
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

    /// Per-channel batch mean and biased variance of `x`, as one `[2, channels]` tensor (row 0
    /// the means). Never tracked by autodiff: [`KdOps::kd_batch_norm_train`]'s backward accounts
    /// for the statistics' dependence on `x`.
    ///
    /// # Shapes
    /// - `x`: `[batch, channels, height, width]` → `[2, channels]`
    fn kd_batch_norm_stats(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Training-mode batch normalisation of `x` with the statistics [`KdOps::kd_batch_norm_stats`]
    /// returned for it: `(x − mean) / √(var + epsilon) · gamma + beta`.
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
        let (x, weight) = (contiguous(x), contiguous(weight));
        let g = geometry(&x, &weight, stride, padding, groups);
        let y = if g.is_depthwise() {
            depthwise::forward(&g, elements(&x), elements(&weight))
        } else {
            dense::forward(&g, elements(&x), elements(&weight))
        };
        tensor(y, &[g.batch, g.out_channels, g.out_h, g.out_w])
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
            elements(&gamma),
            elements(&beta),
            elements(&stats),
            epsilon,
        );
        tensor(y, &dims4(&x))
    }
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

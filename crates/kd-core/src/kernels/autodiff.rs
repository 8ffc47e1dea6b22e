//! `Autodiff<Flex>`'s side of [`KdOps`]: the forward on flex, recorded with a handwritten
//! backward.
//!
//! Each operation follows burn-autodiff's own pattern for `conv2d` and `batch_norm_train`: the
//! inputs the backward needs are checkpointed, and each gradient is computed only when its parent
//! is tracked. The batch statistics are returned untracked; the batch-norm backward includes their
//! dependence on `x` itself.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ActivationOps, FloatTensorOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Flex, TensorMetadata};
use burn::tensor::Shape;

use super::extension::{KdOps, contiguous, conv_gradients, dims4, elements, planes, pool, tensor};
use super::{batch_norm, max_pool};

#[derive(Debug)]
struct KdConvBackward;

impl Backward<Flex, 2> for KdConvBackward {
    type State = (NodeId, NodeId, ([usize; 2], [usize; 2], usize));

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_w] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x_state, w_state, options) = ops.state;
        let x = checkpointer.retrieve_node_output::<FlexTensor>(x_state);
        let weight = checkpointer.retrieve_node_output::<FlexTensor>(w_state);
        let (dx, dw) = conv_gradients(x, weight, dy, options, (node_x.is_some(), node_w.is_some()));
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<Flex>(node.id, dx);
        }
        if let (Some(node), Some(dw)) = (node_w, dw) {
            grads.register::<Flex>(node.id, dw);
        }
    }
}

impl<C: CheckpointStrategy> KdOps for Autodiff<Flex, C> {
    fn kd_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
        groups: usize,
    ) -> FloatTensor<Self> {
        match KdConvBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let w_state = prep.checkpoint(&weight);
                prep.finish(
                    (x_state, w_state, (stride, padding, groups)),
                    Flex::kd_conv2d(
                        x.into_primitive(),
                        weight.into_primitive(),
                        stride,
                        padding,
                        groups,
                    ),
                )
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::kd_conv2d(
                x.into_primitive(),
                weight.into_primitive(),
                stride,
                padding,
                groups,
            )),
        }
    }

    fn kd_conv2d_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
        groups: usize,
        relu: bool,
    ) -> FloatTensor<Self> {
        let out = biased::<C>(Self::kd_conv2d(x, weight, stride, padding, groups), bias);
        if relu { Self::relu(out) } else { out }
    }

    fn kd_conv2d_bias_add_relu(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
        groups: usize,
    ) -> FloatTensor<Self> {
        let out = biased::<C>(Self::kd_conv2d(x, weight, stride, padding, groups), bias);
        Self::relu(Self::float_add(out, residual))
    }

    fn kd_scale_shift_relu(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let channels = scale.shape().dims::<1>()[0];
        let per_channel = Shape::new([1, channels, 1, 1]);
        let scale = Self::float_reshape(scale, per_channel.clone());
        let shift = Self::float_reshape(shift, per_channel);
        Self::relu(Self::float_add(Self::float_mul(x, scale), shift))
    }

    fn kd_max_pool2d(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
    ) -> FloatTensor<Self> {
        match MaxPoolBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                prep.finish(
                    (x_state, kernel, stride),
                    Flex::kd_max_pool2d(x.into_primitive(), kernel, stride),
                )
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(Flex::kd_max_pool2d(x.into_primitive(), kernel, stride))
            }
        }
    }

    fn kd_batch_norm_stats(x: FloatTensor<Self>) -> FloatTensor<Self> {
        <FloatTensor<Self>>::new(Flex::kd_batch_norm_stats(x.into_primitive()))
    }

    fn kd_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> FloatTensor<Self> {
        let stats = stats.into_primitive();
        match BatchNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let gamma_state = prep.checkpoint(&gamma);
                let beta_state = prep.checkpoint(&beta);
                prep.finish(
                    (
                        x_state,
                        gamma_state,
                        beta_state,
                        stats.clone(),
                        epsilon,
                        relu,
                    ),
                    Flex::kd_batch_norm_train(
                        x.into_primitive(),
                        gamma.into_primitive(),
                        beta.into_primitive(),
                        stats,
                        epsilon,
                        relu,
                    ),
                )
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::kd_batch_norm_train(
                x.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
                stats,
                epsilon,
                relu,
            )),
        }
    }
}

/// `out + bias` with the bias broadcast over `[batch, ·, h, w]`, as tracked operations: the fused
/// inference convolutions are composed this way on the autodiff backend, where their gradients
/// must flow (kd's own code sends them only inference tensors).
fn biased<C: CheckpointStrategy>(
    out: FloatTensor<Autodiff<Flex, C>>,
    bias: FloatTensor<Autodiff<Flex, C>>,
) -> FloatTensor<Autodiff<Flex, C>> {
    let channels = bias.shape().dims::<1>()[0];
    let bias = Autodiff::<Flex, C>::float_reshape(bias, Shape::new([1, channels, 1, 1]));
    Autodiff::<Flex, C>::float_add(out, bias)
}

#[derive(Debug)]
struct BatchNormBackward;

impl Backward<Flex, 3> for BatchNormBackward {
    /// Input, scale, shift (for a fused ReLU's mask), statistics, epsilon, ReLU.
    type State = (NodeId, NodeId, NodeId, FlexTensor, f64, bool);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let (x_state, gamma_state, beta_state, stats, epsilon, relu) = ops.state;
        let x = contiguous(checkpointer.retrieve_node_output::<FlexTensor>(x_state));
        let gamma = contiguous(checkpointer.retrieve_node_output::<FlexTensor>(gamma_state));
        let beta = contiguous(checkpointer.retrieve_node_output::<FlexTensor>(beta_state));
        let stats = contiguous(stats);
        let p = planes(&x);
        let (dx, dgamma, dbeta) = batch_norm::backward(
            p,
            elements(&x),
            (elements(&gamma), elements(&beta)),
            elements(&stats),
            epsilon,
            elements(&dy),
            relu,
        );
        let vector = |v: Vec<f32>| tensor(v, &[p.channels]);
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, tensor(dx, &dims4(&x)));
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, vector(dgamma));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, vector(dbeta));
        }
    }
}

#[derive(Debug)]
struct MaxPoolBackward;

impl Backward<Flex, 1> for MaxPoolBackward {
    type State = (NodeId, [usize; 2], [usize; 2]);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let Some(node) = node_x else { return };
        let (x_state, kernel, stride) = ops.state;
        let x = contiguous(checkpointer.retrieve_node_output::<FlexTensor>(x_state));
        let p = pool(&x, kernel, stride);
        let dx = max_pool::backward(&p, elements(&x), elements(&dy));
        grads.register::<Flex>(node.id, tensor(dx, &dims4(&x)));
    }
}

//! A zoo model's bare training step (forward, cross-entropy, one backward, SGD with momentum
//! and weight decay) and inference step (evaluation mode on the inner backend), on a synthetic
//! batch: the reference the runtime's steps are compared with, and what
//! `scripts/reference/pytorch_bench.py` does in PyTorch.

use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};

use super::{Throughput, time_iterations};
use crate::loss::cross_entropy;
use crate::method::SgdSettings;
use crate::zoo::{Network, Staged};

fn labels(batch: usize, classes: usize, device: &Device) -> Tensor<1, Int> {
    let values: Vec<i64> = (0..batch).map(|i| ((i * 37) % classes) as i64).collect();
    Tensor::from_data(TensorData::new(values, [batch]), device)
}

/// Training images per second of `network` (built on `autodiff`, an autodiff device): batches
/// of `[batch, channels, size, size]`.
pub fn train_throughput(
    network: Network,
    classes: usize,
    shape: [usize; 4],
    warmup: usize,
    iterations: usize,
    autodiff: &Device,
) -> Throughput {
    let mut network = Some(network);
    let mut optimizer = SgdSettings {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 5e-4,
    }
    .build();
    let images = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), autodiff);
    let targets = labels(shape[0], classes, autodiff);
    let seconds = time_iterations(warmup, iterations, || {
        let net = network.take().expect("network present");
        let loss = cross_entropy(net.forward(images.clone()), targets.clone()).mean();
        let mut grads = loss.backward();
        let params = GradientsParams::from_module(&mut grads, &net);
        let net = optimizer.step(0.05, net, params);
        // Synchronise: the updated weights are read back before the clock stops.
        let _ = loss.into_scalar::<f32>();
        network = Some(net);
    });
    Throughput::from_seconds(&seconds, shape[0])
}

/// Inference images per second of `network` in evaluation mode on `device`.
pub fn inference_throughput(
    network: &Network,
    shape: [usize; 4],
    warmup: usize,
    iterations: usize,
    device: &Device,
) -> Throughput {
    let images = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), device);
    let seconds = time_iterations(warmup, iterations, || {
        let _ = network.forward(images.clone()).into_data();
    });
    Throughput::from_seconds(&seconds, shape[0])
}

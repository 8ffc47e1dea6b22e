//! Inference with every batch norm folded into its convolution (`zoo::layers::conv_norm`)
//! against burn's own convolution and batch norm, for every zoo architecture. The kernels switch
//! is process-wide, so this test has a binary of its own.

use burn::module::Module;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Tensor};
use kd_core::kernels;

mod common;
use common::fixed;
use kd_core::zoo::{self, ModelSpec, Network, Staged};

/// A network whose batch norms have moved away from their initial state: two training-mode
/// forwards (running statistics) and one SGD step (γ, β and the weights), so that folding has
/// non-trivial scales and shifts to get right.
fn trained_a_little(arch: &str, device: &Device) -> Network {
    let spec = ModelSpec {
        num_classes: 10,
        in_channels: 3,
    };
    device.seed(5);
    let net = (zoo::find(arch).unwrap().arch)(spec).init(device);
    let _ = net.forward(fixed([4, 3, 32, 32], 3, 2.0, device));
    let logits = net.forward(fixed([4, 3, 32, 32], 4, 1.5, device) + 0.3);
    let weights = fixed(logits.dims(), 10, 1.0, device);
    let grads = (logits * weights).sum().backward();
    let params = GradientsParams::from_grads(grads, &net);
    SgdConfig::new().init().step(0.05, net, params)
}

/// Largest `|a − b|` over `max |b|`.
fn relative_max_diff(a: Tensor<2>, b: Tensor<2>) -> f32 {
    let a = a.into_data().try_into_vec::<f32>().unwrap();
    let b = b.into_data().try_into_vec::<f32>().unwrap();
    assert!(
        b.iter().all(|v| v.is_finite()),
        "burn's logits are not finite"
    );
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    diff / scale
}

/// Every architecture's inference logits, with its conv → batch-norm pairs folded (kd's kernels
/// on) and with burn's convolution and inference batch norm (kernels off), agree within 1e-4 of
/// the largest logit, element by element. The unfolded path is what every earlier release ran and
/// what the PyTorch parity tests (tests/import.rs) hold to PyTorch.
#[test]
fn folded_inference_equals_burns_convolution_and_batch_norm_for_every_architecture() {
    let device = Device::flex().autodiff();
    for arch in zoo::names() {
        let net = trained_a_little(arch, &device).valid();
        let x = fixed([3, 3, 32, 32], 21, 1.0, &Device::flex());
        kernels::set_enabled(true);
        let folded = net.forward(x.clone());
        kernels::set_enabled(false);
        let burn = net.forward(x);
        kernels::set_enabled(true);
        let diff = relative_max_diff(folded, burn);
        assert!(diff < 1e-4, "{arch}: folded logits differ by {diff:.2e}");
    }
}

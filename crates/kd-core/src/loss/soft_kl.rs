//! The soft-target loss of Hinton et al. (2015): `T² · KL(softmax(t/T) ‖ softmax(s/T))`, summed
//! over classes and averaged over the batch ("batchmean"), the target detached.
//!
//! `KL(P‖Q) = Σ_c P_c (log P_c − log Q_c)`; the first argument is the target, as PyTorch's
//! `F.kl_div(log_softmax(input), softmax(target))` computes it. The T² factor keeps gradient
//! magnitudes comparable across temperatures (Hinton et al. §2).

use burn::tensor::Tensor;
use burn::tensor::activation::log_softmax;

/// `T² · KL(softmax(target/T) ‖ softmax(input/T))`, batch-mean, gradients into `input` only.
///
/// # Shapes
/// - `input`, `target`: `[N, C]` logits
/// - output: `[1]`
pub fn soft_kl(input: Tensor<2>, target: Tensor<2>, temperature: f64) -> Tensor<1> {
    kl_to_target(input, target.detach(), temperature).mul_scalar(temperature * temperature)
}

/// `KL(softmax(target/T) ‖ softmax(input/T))`, batch-mean, without the T² factor and without
/// detaching the target (callers decide).
///
/// # Shapes
/// - `input`, `target`: `[N, C]` logits
/// - output: `[1]`
pub fn kl_to_target(input: Tensor<2>, target: Tensor<2>, temperature: f64) -> Tensor<1> {
    let [n, _] = input.dims();
    let log_q = log_softmax(input.div_scalar(temperature), 1);
    let log_p = log_softmax(target.div_scalar(temperature), 1);
    let p = log_p.clone().exp();
    (p * (log_p - log_q)).sum().div_scalar(n as f64)
}

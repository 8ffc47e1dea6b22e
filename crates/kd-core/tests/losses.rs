//! Golden values of the loss primitives, worked out by hand (see each comment) on 2x3 logits.

use burn::tensor::{Device, Int, Tensor, TensorData};
use kd_core::loss::{cross_entropy, soft_kl};

fn logits(values: [[f32; 3]; 2], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::from(values), device)
}

fn scalar(t: Tensor<1>) -> f64 {
    t.into_scalar::<f32>() as f64
}

#[test]
fn cross_entropy_matches_hand_computation() {
    let device = Device::flex();
    // Row 0: logits (0, 0, ln 2): softmax = (1/4, 1/4, 1/2); label 2 → -ln(1/2) = ln 2.
    // Row 1: logits (0, 0, 0): softmax uniform; label 0 → ln 3.
    let z = logits([[0.0, 0.0, 2f32.ln()], [0.0, 0.0, 0.0]], &device);
    let y = Tensor::<1, Int>::from_data(TensorData::from([2i64, 0]), &device);
    let expected = (2f64.ln() + 3f64.ln()) / 2.0;
    assert!((scalar(cross_entropy(z, y)) - expected).abs() < 1e-6);
}

#[test]
fn soft_kl_matches_hand_computation() {
    let device = Device::flex();
    // T = 2. Row 0: target (2 ln 2, 0, 0)/2 → softmax (1/2, 1/4, 1/4); input zeros → uniform 1/3.
    //   KL = 1/2 ln(3/2) + 2 · 1/4 ln(3/4) = 1/2 ln(3/2) + 1/2 ln(3/4) = 1/2 ln(9/8).
    // Row 1: identical rows → 0. Batch mean = 1/4 ln(9/8); times T² = 4 → ln(9/8).
    let target = logits([[2.0 * 2f32.ln(), 0.0, 0.0], [1.0, 2.0, 3.0]], &device);
    let input = logits([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]], &device);
    let value = scalar(soft_kl(input, target, 2.0));
    assert!((value - (9.0f64 / 8.0).ln()).abs() < 1e-6, "{value}");
}

#[test]
fn soft_kl_sends_gradient_only_into_the_input() {
    let device = Device::flex().autodiff();
    let input = logits([[0.0, 0.0, 0.0], [1.0, 0.0, -1.0]], &device).require_grad();
    let target = logits([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], &device).require_grad();
    let loss = soft_kl(input.clone(), target.clone(), 4.0);
    let grads = loss.backward();
    assert!(input.grad(&grads).is_some());
    assert!(target.grad(&grads).is_none(), "the target is detached");
    // d/dz_s [T² KL] = T (q − p) / N per element: row 0, class 0:
    // q = 1/3, p = softmax((1,2,3)/4)_0.
    let e = [0.25f64.exp(), 0.5f64.exp(), 0.75f64.exp()];
    let p0 = e[0] / (e[0] + e[1] + e[2]);
    let expected = 4.0 * (1.0 / 3.0 - p0) / 2.0;
    let grad = input
        .grad(&grads)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert!(
        (grad[0] as f64 - expected).abs() < 1e-6,
        "{} vs {expected}",
        grad[0]
    );
}

//! The channel-wise spatial-distribution KL of the code proxy (`zoo/Our_1.py`): per channel, a
//! softmax over the H·W positions of the map divided by τ; KL(target ‖ input) summed over
//! positions, channels and batch, scaled by τ²/(N·C).

use burn::tensor::Tensor;
use burn::tensor::activation::log_softmax;

/// `τ²/(N·C) · Σ_{n,c} KL(softmax(target_nc/τ) ‖ softmax(input_nc/τ))`. Neither side is
/// detached here; callers detach the side that must not learn.
///
/// # Shapes
/// - `input`, `target`: `[N, C, H, W]`
/// - output: `[1]`
pub fn channel_kl(input: Tensor<4>, target: Tensor<4>, temperature: f64) -> Tensor<1> {
    let [n, c, h, w] = input.dims();
    let flat = |t: Tensor<4>| t.reshape([n, c, h * w]).div_scalar(temperature);
    let log_q = log_softmax(flat(input), 2);
    let log_p = log_softmax(flat(target), 2);
    let p = log_p.clone().exp();
    (p * (log_p - log_q))
        .sum()
        .mul_scalar(temperature * temperature / (n * c) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn hand_worked_case() {
        let device = Device::flex();
        // One image, two channels of 1x2. Channel 0: target (ln 3, 0) → (3/4, 1/4), input
        // (0, 0) → (1/2, 1/2): KL = 3/4 ln(3/2) + 1/4 ln(1/2). Channel 1: equal maps → 0.
        // τ = 1, N·C = 2 → half the sum.
        let target = Tensor::<4>::from_data(
            TensorData::new(vec![3f32.ln(), 0.0, 5.0, 1.0], [1, 2, 1, 2]),
            &device,
        );
        let input = Tensor::<4>::from_data(
            TensorData::new(vec![0.0f32, 0.0, 5.0, 1.0], [1, 2, 1, 2]),
            &device,
        );
        let expected = (0.75 * 1.5f64.ln() + 0.25 * 0.5f64.ln()) / 2.0;
        let value = channel_kl(input, target, 1.0).into_scalar::<f32>() as f64;
        assert!((value - expected).abs() < 1e-6, "{value} vs {expected}");
    }

    #[test]
    fn temperature_softens_and_scales() {
        let device = Device::flex();
        // τ = 2: target (2 ln 3, 0)/2 → (3/4, 1/4) again; the sum is multiplied by τ² = 4.
        let target = Tensor::<4>::from_data(
            TensorData::new(vec![2.0 * 3f32.ln(), 0.0], [1, 1, 1, 2]),
            &device,
        );
        let input = Tensor::<4>::zeros([1, 1, 1, 2], &device);
        let expected = 4.0 * (0.75 * 1.5f64.ln() + 0.25 * 0.5f64.ln());
        let value = channel_kl(input, target, 2.0).into_scalar::<f32>() as f64;
        assert!((value - expected).abs() < 1e-5, "{value} vs {expected}");
    }
}

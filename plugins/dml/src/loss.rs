//! The mutual-learning term and the peers' ensemble, with golden values worked out by hand.

use burn::tensor::Tensor;
use kd_core::loss::soft_kl;

use crate::config::Reduction;

/// `Σ_l τ²·KL(p_l ‖ p_k)` over the other peers' logits (detached), divided by their number for
/// [`Reduction::Mean`].
///
/// # Shapes
/// - `peer`: `[N, C]`; each of `others`: `[N, C]`
/// - output: `[1]`
pub fn mutual_kl(
    peer: Tensor<2>,
    others: &[Tensor<2>],
    temperature: f64,
    reduction: Reduction,
) -> Tensor<1> {
    let total = others
        .iter()
        .map(|other| soft_kl(peer.clone(), other.clone(), temperature))
        .reduce(|a, b| a + b)
        .expect("at least one other peer");
    match reduction {
        Reduction::Mean => total.div_scalar(others.len() as f64),
        Reduction::Sum => total,
    }
}

/// The peers' ensemble, shared with CTSL-MKT: [`kd_core::loss::ensemble_log_probs`].
pub use kd_core::loss::ensemble_log_probs;

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn logits(values: [[f32; 3]; 2], device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::from(values), device)
    }

    fn scalar(t: Tensor<1>) -> f64 {
        t.into_scalar::<f32>() as f64
    }

    /// KL((3/5, 1/5, 1/5) ‖ uniform) = 3/5 ln(9/5) + 2/5 ln(3/5).
    fn kl_35_uniform() -> f64 {
        0.6 * (9.0f64 / 5.0).ln() + 0.4 * (3.0f64 / 5.0).ln()
    }

    #[test]
    fn one_other_peer_at_temperature_one() {
        let device = Device::flex();
        // Peer: zeros → uniform. Other: (ln 3, 0, 0) in both rows → (3/5, 1/5, 1/5).
        let peer = logits([[0.0; 3], [0.0; 3]], &device);
        let other = logits([[3f32.ln(), 0.0, 0.0], [3f32.ln(), 0.0, 0.0]], &device);
        let value = scalar(mutual_kl(peer, &[other], 1.0, Reduction::Mean));
        assert!((value - kl_35_uniform()).abs() < 1e-6, "{value}");
    }

    #[test]
    fn mean_and_sum_over_two_others() {
        let device = Device::flex();
        // Others: one equal to the peer (KL 0), one with (ln 3, 0, 0) rows.
        let peer = logits([[0.0; 3], [0.0; 3]], &device);
        let same = logits([[0.0; 3], [0.0; 3]], &device);
        let other = logits([[3f32.ln(), 0.0, 0.0], [3f32.ln(), 0.0, 0.0]], &device);
        let others = [same, other];
        let sum = scalar(mutual_kl(peer.clone(), &others, 1.0, Reduction::Sum));
        let mean = scalar(mutual_kl(peer, &others, 1.0, Reduction::Mean));
        assert!((sum - kl_35_uniform()).abs() < 1e-6, "{sum}");
        assert!((mean - kl_35_uniform() / 2.0).abs() < 1e-6, "{mean}");
    }

    #[test]
    fn temperature_scales_by_tau_squared() {
        let device = Device::flex();
        // τ = 2: other (2 ln 3, 0, 0)/2 → (3/5, 1/5, 1/5); peer zeros; times τ² = 4.
        let peer = logits([[0.0; 3], [0.0; 3]], &device);
        let other = logits(
            [[2.0 * 3f32.ln(), 0.0, 0.0], [2.0 * 3f32.ln(), 0.0, 0.0]],
            &device,
        );
        let value = scalar(mutual_kl(peer, &[other], 2.0, Reduction::Mean));
        assert!((value - 4.0 * kl_35_uniform()).abs() < 1e-5, "{value}");
    }

    #[test]
    fn ensemble_averages_probabilities() {
        let device = Device::flex();
        // Softmaxes (1/2, 1/4, 1/4) and (1/4, 1/2, 1/4) average to (3/8, 3/8, 1/4).
        let a = logits([[2f32.ln(), 0.0, 0.0], [2f32.ln(), 0.0, 0.0]], &device);
        let b = logits([[0.0, 2f32.ln(), 0.0], [0.0, 2f32.ln(), 0.0]], &device);
        let out = ensemble_log_probs(&[a, b])
            .exp()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for (got, want) in out[..3].iter().zip([0.375f32, 0.375, 0.25]) {
            assert!((got - want).abs() < 1e-6, "{out:?}");
        }
    }
}

//! Linear centred kernel alignment (S. Kornblith, M. Norouzi, H. Lee, G. Hinton, "Similarity
//! of Neural Network Representations Revisited", ICML 2019, arXiv:1905.00414) and the feedback
//! stage selection it drives.

use burn::tensor::Tensor;

/// Linear CKA of two representations of the same N examples, computed through the N×N Gram
/// matrices of the column-centred features: `⟨K, L⟩_F / (‖K‖_F ‖L‖_F)` with `K = X Xᵀ`,
/// `L = Y Yᵀ`, equal to `‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F)`.
///
/// # Shapes
/// - `x`: `[N, P]`, `y`: `[N, Q]` (any feature widths)
pub fn linear_cka(x: Tensor<2>, y: Tensor<2>) -> f64 {
    let center = |t: Tensor<2>| {
        let mean = t.clone().mean_dim(0);
        t - mean
    };
    let (x, y) = (center(x), center(y));
    let k = x.clone().matmul(x.transpose());
    let l = y.clone().matmul(y.transpose());
    let cross: f64 = (k.clone() * l.clone()).sum().into_scalar::<f64>();
    let norm_k = k.powi_scalar(2).sum().into_scalar::<f64>().sqrt();
    let norm_l = l.powi_scalar(2).sum().into_scalar::<f64>().sqrt();
    if norm_k == 0.0 || norm_l == 0.0 {
        0.0
    } else {
        cross / (norm_k * norm_l)
    }
}

/// The stages whose CKA is at most the mean CKA: those the student understands no better than
/// average, fed back to the teacher.
pub fn feedback_stages(ckas: &[f64]) -> Vec<bool> {
    let mean = ckas.iter().sum::<f64>() / ckas.len().max(1) as f64;
    ckas.iter().map(|&c| c <= mean).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution, TensorData};

    fn matrix(rows: usize, cols: usize, values: Vec<f32>, device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(values, [rows, cols]), device)
    }

    #[test]
    fn hand_worked_case() {
        let device = Device::flex();
        // X = (1, 2, 3)ᵀ centres to (−1, 0, 1); Y = (1, 0, 2)ᵀ centres to (0, −1, 1).
        // YᵀX = 1, XᵀX = 2, YᵀY = 2 → CKA = 1² / (2 · 2) = 0.25.
        let x = matrix(3, 1, vec![1.0, 2.0, 3.0], &device);
        let y = matrix(3, 1, vec![1.0, 0.0, 2.0], &device);
        assert!((linear_cka(x, y) - 0.25).abs() < 1e-6);
    }

    #[test]
    fn one_for_identical_and_invariant_to_rotation_and_scale() {
        let device = Device::flex();
        let x = Tensor::<2>::random([16, 2], Distribution::Normal(0.0, 1.0), &device);
        assert!((linear_cka(x.clone(), x.clone()) - 1.0).abs() < 1e-5);
        // An orthogonal transform (a rotation by 30°) and an isotropic scaling by 7.
        let (c, s) = (30f32.to_radians().cos(), 30f32.to_radians().sin());
        let rotation = matrix(2, 2, vec![c, -s, s, c], &device);
        let y = x.clone().matmul(rotation).mul_scalar(7.0);
        assert!((linear_cka(x.clone(), y) - 1.0).abs() < 1e-5);
        // Unrelated features score well below 1.
        let z = Tensor::<2>::random([16, 2], Distribution::Normal(0.0, 1.0), &device);
        assert!(linear_cka(x, z) < 0.9);
    }

    #[test]
    fn feedback_takes_the_stages_at_or_below_the_mean() {
        // Exactly representable values: the mean is 0.5, and 0.5 itself is selected (≤).
        assert_eq!(feedback_stages(&[0.75, 0.25, 0.5]), vec![false, true, true]);
        assert_eq!(feedback_stages(&[0.4, 0.4]), vec![true, true]);
    }
}

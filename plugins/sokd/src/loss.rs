//! SOKD's logit terms and the feature term, with golden values worked out by hand.

use burn::tensor::{Int, Tensor};
use kd_core::loss::{cross_entropy, soft_kl};

/// `(ce_branch, kl_branch_teacher, kl_branch_student, kl_student)`, unweighted:
/// `CE(z_a)`, `τ²KL(p_t ‖ p_a)`, `τ²KL(p_s ‖ p_a)`, `τ²KL(p_a ‖ p_s)`; every target detached, so
/// the first three train the branch only and the last the student only.
///
/// # Shapes
/// - `branch`, `teacher`, `student`: `[N, C]` logits; `labels`: `[N]`
/// - outputs: `[1]` each
pub fn sokd_terms(
    branch: Tensor<2>,
    teacher: Tensor<2>,
    student: Tensor<2>,
    labels: Tensor<1, Int>,
    temperature: f64,
) -> [Tensor<1>; 4] {
    [
        cross_entropy(branch.clone(), labels),
        soft_kl(branch.clone(), teacher, temperature),
        soft_kl(branch.clone(), student.clone(), temperature),
        soft_kl(student, branch, temperature),
    ]
}

/// Mean squared error between a feature map and a detached target.
///
/// # Shapes
/// - `input`, `target`: `[N, C, H, W]`
/// - output: `[1]`
pub fn feature_mse(input: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    (input - target.detach()).powi_scalar(2).mean()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn logits(values: [[f32; 3]; 2], device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::from(values), device)
    }

    fn value(t: Tensor<1>) -> f64 {
        t.into_scalar::<f32>() as f64
    }

    #[test]
    fn golden_terms_at_temperature_one() {
        let device = Device::flex();
        // Branch uniform (zeros); teacher (ln 3, 0, 0) → (3/5, 1/5, 1/5); student (0, ln 2, 0)
        // → (1/4, 1/2, 1/4); labels (0, 1).
        let branch = logits([[0.0; 3], [0.0; 3]], &device);
        let teacher = logits([[3f32.ln(), 0.0, 0.0], [3f32.ln(), 0.0, 0.0]], &device);
        let student = logits([[0.0, 2f32.ln(), 0.0], [0.0, 2f32.ln(), 0.0]], &device);
        let labels = Tensor::<1, Int>::from_data(TensorData::from([0i64, 1]), &device);
        let [ce, kl_t, kl_s, kl_student] = sokd_terms(branch, teacher, student, labels, 1.0);
        // CE of a uniform branch: ln 3 for both rows.
        assert!((value(ce) - 3f64.ln()).abs() < 1e-6);
        // KL((3/5, 1/5, 1/5) ‖ 1/3) = 3/5 ln(9/5) + 2/5 ln(3/5).
        let expected_t = 0.6 * (9.0f64 / 5.0).ln() + 0.4 * (3.0f64 / 5.0).ln();
        assert!((value(kl_t) - expected_t).abs() < 1e-6);
        // KL((1/4, 1/2, 1/4) ‖ 1/3) = 1/2 ln(3/4) + 1/2 ln(3/2) = 1/2 ln(9/8).
        assert!((value(kl_s) - 0.5 * (9.0f64 / 8.0).ln()).abs() < 1e-6);
        // KL(1/3 ‖ (1/4, 1/2, 1/4)) = 2/3 ln(4/3) + 1/3 ln(2/3).
        let expected_student = 2.0 / 3.0 * (4.0f64 / 3.0).ln() + 1.0 / 3.0 * (2.0f64 / 3.0).ln();
        assert!((value(kl_student) - expected_student).abs() < 1e-6);
    }

    #[test]
    fn each_term_trains_only_its_side() {
        let device = Device::flex().autodiff();
        let branch = logits([[0.1, 0.2, 0.3], [0.0, -1.0, 1.0]], &device).require_grad();
        let teacher = logits([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], &device).require_grad();
        let student = logits([[0.3, 0.2, 0.1], [1.0, 0.0, -1.0]], &device).require_grad();
        let labels = Tensor::<1, Int>::from_data(TensorData::from([0i64, 1]), &device);
        let [ce, kl_t, kl_s, kl_student] = sokd_terms(
            branch.clone(),
            teacher.clone(),
            student.clone(),
            labels,
            4.0,
        );
        let grads = (ce + kl_t + kl_s).backward();
        assert!(branch.grad(&grads).is_some());
        assert!(teacher.grad(&grads).is_none() && student.grad(&grads).is_none());
        let grads = kl_student.backward();
        assert!(student.grad(&grads).is_some() && branch.grad(&grads).is_none());
    }

    #[test]
    fn feature_mse_matches_hand_computation() {
        let device = Device::flex();
        let a = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 1, 2, 2]),
            &device,
        );
        let b = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 3.0, 0.0], [1, 1, 2, 2]),
            &device,
        );
        // Squared differences 0, 4, 0, 16 → mean 5.
        assert!((value(feature_mse(a, b)) - 5.0).abs() < 1e-6);
    }
}

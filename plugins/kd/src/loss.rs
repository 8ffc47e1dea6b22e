//! The KD term, with golden values worked out by hand.

use burn::tensor::Tensor;
use kd_core::loss::soft_kl;

/// `T² · KL(softmax(teacher/T) ‖ softmax(student/T))`, batch-mean; gradients reach the student
/// only.
///
/// # Shapes
/// - `student`, `teacher`: `[N, C]` logits
/// - output: `[1]`
pub fn kd_loss(student: Tensor<2>, teacher: Tensor<2>, temperature: f64) -> Tensor<1> {
    soft_kl(student, teacher, temperature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn logits(values: [[f32; 3]; 2], device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::from(values), device)
    }

    #[test]
    fn golden_value_at_temperature_one() {
        let device = Device::flex();
        // Row 0: teacher (ln 3, 0, 0) → p = (3/5, 1/5, 1/5); student (0, 0, 0) → q = 1/3 each.
        //   KL = 3/5 ln(9/5) + 2 · 1/5 ln(3/5).
        // Row 1: teacher (0, ln 2, 0) → p = (1/4, 1/2, 1/4); student (0, 0, ln 2) → q = (1/4, 1/4, 1/2).
        //   KL = 1/2 ln 2 + 1/4 ln(1/2) = 1/4 ln 2.
        let teacher = logits([[3f32.ln(), 0.0, 0.0], [0.0, 2f32.ln(), 0.0]], &device);
        let student = logits([[0.0, 0.0, 0.0], [0.0, 0.0, 2f32.ln()]], &device);
        let row0 = 0.6 * (9.0f64 / 5.0).ln() + 0.4 * (3.0f64 / 5.0).ln();
        let row1 = 0.25 * 2f64.ln();
        let expected = (row0 + row1) / 2.0;
        let value = kd_loss(student, teacher, 1.0).into_scalar::<f32>() as f64;
        assert!((value - expected).abs() < 1e-6, "{value} vs {expected}");
    }

    #[test]
    fn golden_value_at_temperature_four_includes_t_squared() {
        let device = Device::flex();
        // T = 4: teacher (4 ln 3, 0, 0)/4 → (ln 3, 0, 0) → p = (3/5, 1/5, 1/5); student zeros.
        // Both rows equal, so the batch mean is one row's KL, times T² = 16.
        let teacher = logits(
            [[4.0 * 3f32.ln(), 0.0, 0.0], [4.0 * 3f32.ln(), 0.0, 0.0]],
            &device,
        );
        let student = logits([[0.0; 3], [0.0; 3]], &device);
        let row = 0.6 * (9.0f64 / 5.0).ln() + 0.4 * (3.0f64 / 5.0).ln();
        let value = kd_loss(student, teacher, 4.0).into_scalar::<f32>() as f64;
        assert!(
            (value - 16.0 * row).abs() < 1e-5,
            "{value} vs {}",
            16.0 * row
        );
    }

    #[test]
    fn zero_when_student_equals_teacher() {
        let device = Device::flex();
        let z = logits([[1.0, -2.0, 0.5], [0.0, 3.0, 1.0]], &device);
        let value = kd_loss(z.clone(), z, 4.0).into_scalar::<f32>();
        assert!(value.abs() < 1e-6);
    }
}

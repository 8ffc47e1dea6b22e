//! Relational knowledge distillation's potentials (Park, Kim, Lu, Cho, "Relational Knowledge
//! Distillation", CVPR 2019, arXiv:1904.05068), as RepDistiller's `distiller_zoo/RKD.py`
//! computes them: pairwise distances normalised by their mean over distinct pairs, angles at
//! every vertex of every triplet, each matched to the (detached) target with smooth-L1.

use burn::tensor::Tensor;

/// Pairwise Euclidean distances `[N, N]`, zero on the diagonal (`pdist(e, squared=False)`,
/// squared distances clamped at 1e-12 before the root).
pub fn pairwise_distances(features: Tensor<2>) -> Tensor<2> {
    let [n, _] = features.dims();
    let device = features.device();
    let squares = features.clone().powi_scalar(2).sum_dim(1); // [N, 1]
    let products = features.clone().matmul(features.transpose());
    let squared = squares.clone() + squares.transpose() - products.mul_scalar(2.0);
    let off_diagonal = Tensor::<2>::ones([n, n], &device) - Tensor::<2>::eye(n, &device);
    squared.clamp_min(1e-12).sqrt() * off_diagonal
}

/// Distances divided by their mean over the positive entries.
pub fn normalised_distances(features: Tensor<2>) -> Tensor<2> {
    let d = pairwise_distances(features);
    let positive = d.clone().greater_elem(0.0).float().sum();
    let mean = d.clone().sum() / positive;
    d / mean.reshape([1, 1])
}

/// `angle[a][b][c] = ⟨n(f_b − f_a), n(f_c − f_a)⟩` with `n(v) = v / max(‖v‖, 1e-12)`, flattened
/// to `[N·N·N]`.
pub fn triplet_angles(features: Tensor<2>) -> Tensor<1> {
    let [n, _] = features.dims();
    let differences: Tensor<3> =
        features.clone().unsqueeze_dim::<3>(0) - features.unsqueeze_dim::<3>(1); // [a][b] = f_b − f_a
    // max(‖v‖, 1e-12) computed as sqrt(max(‖v‖², 1e-24)): the same value, but the clamp comes
    // first, so a zero vector (the diagonal) gets a zero gradient instead of 0·∞ = NaN.
    let norms = differences
        .clone()
        .powi_scalar(2)
        .sum_dim(2)
        .clamp_min(1e-24)
        .sqrt(); // [N, N, 1]
    let unit = differences / norms;
    unit.clone()
        .matmul(unit.swap_dims(1, 2))
        .reshape([n * n * n])
}

/// PyTorch's `smooth_l1_loss` (β = 1, mean): `0.5·x²` where `|x| < 1`, `|x| − 0.5` elsewhere.
pub fn smooth_l1<const D: usize>(input: Tensor<D>, target: Tensor<D>) -> Tensor<1> {
    let a = (input - target).abs();
    let small = a.clone().clamp_max(1.0);
    (small.clone().powi_scalar(2).mul_scalar(0.5) + (a - small)).mean()
}

/// RKD distance loss: smooth-L1 between the normalised distance matrices, target detached.
pub fn distance_loss(features: Tensor<2>, target: Tensor<2>) -> Tensor<1> {
    smooth_l1(
        normalised_distances(features),
        normalised_distances(target.detach()),
    )
}

/// RKD angle loss: smooth-L1 between the triplet angles, target detached.
pub fn angle_loss(features: Tensor<2>, target: Tensor<2>) -> Tensor<1> {
    smooth_l1(triplet_angles(features), triplet_angles(target.detach()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn points(values: &[[f32; 2]], device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(values.concat(), [values.len(), 2]), device)
    }

    fn vec(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn distances_of_a_3_4_5_triangle() {
        let device = Device::flex();
        let f = points(&[[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]], &device);
        let d = vec(pairwise_distances(f.clone()));
        let expected = [0.0, 3.0, 4.0, 3.0, 0.0, 5.0, 4.0, 5.0, 0.0];
        for (got, want) in d.iter().zip(expected) {
            assert!((got - want).abs() < 1e-5, "{d:?}");
        }
        // Mean over the six off-diagonal entries: (3+4+5)·2/6 = 4.
        let n = vec(normalised_distances(f));
        for (got, want) in n.iter().zip(expected.map(|v| v / 4.0)) {
            assert!((got - want).abs() < 1e-6, "{n:?}");
        }
    }

    #[test]
    fn angles_of_a_right_triangle() {
        let device = Device::flex();
        let f = points(&[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], &device);
        let a = triplet_angles(f).into_data().try_to_vec::<f32>().unwrap();
        let at = |v: usize, b: usize, c: usize| a[v * 9 + b * 3 + c];
        assert!(
            (at(0, 1, 1) - 1.0).abs() < 1e-6,
            "a unit vector with itself"
        );
        assert!(at(0, 1, 2).abs() < 1e-6, "the right angle at vertex 0");
        // At vertex 1: (f0 − f1) = (−1, 0), (f2 − f1) = (−1, 1)/√2 → 1/√2.
        assert!((at(1, 0, 2) - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        assert_eq!(at(2, 2, 0), 0.0, "a zero vector normalises to zero");
    }

    #[test]
    fn gradients_are_finite_with_coincident_points() {
        let device = Device::flex().autodiff();
        let f = points(&[[0.0, 0.0], [1.0, 0.0], [1.0, 0.0]], &device).require_grad();
        let g = points(&[[0.0, 1.0], [2.0, 0.0], [0.0, 3.0]], &device);
        let loss = distance_loss(f.clone(), g.clone()) + angle_loss(f.clone(), g);
        let grads = loss.backward();
        let grad = f
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert!(grad.iter().all(|v| v.is_finite()), "{grad:?}");
    }

    #[test]
    fn smooth_l1_matches_hand_computation() {
        let device = Device::flex();
        let x = Tensor::<1>::from_data(TensorData::from([0.5f32, 2.0, -3.0]), &device);
        let zero = Tensor::<1>::zeros([3], &device);
        // 0.5·0.25 = 0.125; 2 − 0.5 = 1.5; 3 − 0.5 = 2.5 → mean 4.125/3.
        let value = smooth_l1(x, zero).into_scalar::<f32>();
        assert!((value - 4.125 / 3.0).abs() < 1e-6, "{value}");
    }

    #[test]
    fn distance_loss_is_zero_for_a_scaled_copy_and_positive_otherwise() {
        let device = Device::flex();
        let f = points(&[[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]], &device);
        let scaled = points(&[[0.0, 0.0], [6.0, 0.0], [0.0, 8.0]], &device);
        assert!(distance_loss(f.clone(), scaled).into_scalar::<f32>().abs() < 1e-6);
        assert!(
            angle_loss(f.clone(), f.clone().mul_scalar(3.0))
                .into_scalar::<f32>()
                .abs()
                < 1e-6
        );
        // Against the right isosceles triangle: normalised distances (0.75, 1, 1.25) vs
        // (1, 1, √2)/m with m = (2 + √2)/3; every difference is below 1, so the loss is
        // Σ 0.5·δ² over the 9 entries / 9.
        let g = points(&[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], &device);
        let m = (2.0 + 2f64.sqrt()) / 3.0;
        let deltas = [0.75 - 1.0 / m, 1.0 - 1.0 / m, 1.25 - 2f64.sqrt() / m];
        let expected = deltas.iter().map(|d| 2.0 * 0.5 * d * d).sum::<f64>() / 9.0;
        let value = distance_loss(f, g).into_scalar::<f32>() as f64;
        assert!((value - expected).abs() < 1e-6, "{value} vs {expected}");
    }
}

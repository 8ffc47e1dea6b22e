//! The gradient-agreement gate of the feedback step: the cosine between the gradients two losses
//! send into one module's parameters, as the reference code's `cal_each_grad_sim3` computes it
//! (wp502/SKD-RSL, `zoo/Our_111.py`: every gradient flattened and concatenated, one cosine).
//! The feedback step calls it with the teacher's cross-entropy and the feedback terms; a
//! negative cosine switches the feedback terms off for that step.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// `cos(∇_θ first, ∇_θ second)` over every parameter θ of `module`, the gradients flattened and
/// concatenated; a parameter that only one loss reaches counts as a zero gradient for the
/// other. 0 when either gradient is zero (nothing to agree or disagree with).
///
/// Each loss is back-propagated on its own, so each must come from its own forward pass (burn
/// has no `retain_graph`: a backward pass consumes the nodes it walks). Graphs that share only
/// the parameters stay usable, so the step's own loss can be built before the gate runs.
///
/// # Shapes
/// - `first`, `second`: `[1]`, on the autodiff device
pub fn gradient_cosine<M: Module>(first: Tensor<1>, second: Tensor<1>, module: &M) -> f64 {
    struct Dot {
        first: GradientsParams,
        second: GradientsParams,
        dot: f64,
        first_sq: f64,
        second_sq: f64,
    }
    impl ModuleVisitor for Dot {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let a = self.first.get::<D>(param.id);
            let b = self.second.get::<D>(param.id);
            let sum = |t: Tensor<D>| t.sum().into_scalar::<f32>() as f64;
            if let (Some(a), Some(b)) = (&a, &b) {
                self.dot += sum(a.clone() * b.clone());
            }
            if let Some(a) = a {
                self.first_sq += sum(a.clone() * a);
            }
            if let Some(b) = b {
                self.second_sq += sum(b.clone() * b);
            }
        }
    }
    let mut dot = Dot {
        first: GradientsParams::from_grads(first.backward(), module),
        second: GradientsParams::from_grads(second.backward(), module),
        dot: 0.0,
        first_sq: 0.0,
        second_sq: 0.0,
    };
    module.visit(&mut dot);
    let norms = (dot.first_sq * dot.second_sq).sqrt();
    if norms > 0.0 && norms.is_finite() {
        dot.dot / norms
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::{Device, TensorData};

    fn layer(device: &Device) -> Linear {
        let mut layer = LinearConfig::new(2, 1).with_bias(false).init(device);
        layer.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![1.0f32, 2.0], [2, 1]),
            device,
        ));
        layer
    }

    #[test]
    fn hand_worked_cosines() {
        let device = Device::flex().autodiff();
        let x = |v: [f32; 2]| Tensor::<2>::from_data(TensorData::new(v.to_vec(), [1, 2]), &device);
        let layer = layer(&device);
        // y = w·x; ∇_w y = x. Inputs (1, 0) and (1, 1): cos = 1/√2.
        let a = layer.forward(x([1.0, 0.0])).reshape([1]);
        let b = layer.forward(x([1.0, 1.0])).reshape([1]);
        let cos = gradient_cosine(a, b, &layer);
        assert!((cos - 0.5f64.sqrt()).abs() < 1e-6, "{cos}");
        // Opposite directions: −1; orthogonal: 0.
        let a = layer.forward(x([1.0, -2.0])).reshape([1]);
        let b = layer.forward(x([-2.0, 4.0])).reshape([1]);
        assert!((gradient_cosine(a, b, &layer) + 1.0).abs() < 1e-6);
        let a = layer.forward(x([1.0, 0.0])).reshape([1]);
        let b = layer.forward(x([0.0, 3.0])).reshape([1]);
        assert!(gradient_cosine(a, b, &layer).abs() < 1e-6);
    }

    #[test]
    fn gate_graphs_leave_the_steps_own_graph_usable() {
        // The gate back-propagates two losses, each from its own forward; a third forward
        // through the same parameters, built before either, must still back-propagate.
        let device = Device::flex().autodiff();
        let layer = layer(&device);
        let x = Tensor::<2>::from_data(TensorData::new(vec![3.0f32, -1.0], [1, 2]), &device);
        let y = |x: Tensor<2>| layer.forward(x).reshape([1]);
        let main = y(x.clone()).powi_scalar(2) - y(x.clone()); // ∇ = 2y·x − x, y = 1 → (3, −1)
        let first = y(x.clone()).powi_scalar(2); // ∇ = 2y·x → (6, −2)
        let second = y(x).mul_scalar(-1.0); // ∇ = −x → (−3, 1)
        let cos = gradient_cosine(first, second, &layer);
        assert!((cos + 1.0).abs() < 1e-6, "{cos}");
        let grads = GradientsParams::from_grads(main.backward(), &layer);
        let g = grads
            .get::<2>(layer.weight.id)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(g, vec![3.0, -1.0]);
    }
}

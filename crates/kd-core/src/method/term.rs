//! One named loss term of one step, as a method returns it from `terms()`.

use burn::tensor::Tensor;

/// One named loss term of one step.
#[derive(Debug, Clone)]
pub struct Term {
    /// Name declared in [`Needs::terms`](super::Needs::terms).
    pub name: String,
    /// Scalar value, `[1]`, on the autodiff device.
    pub value: Tensor<1>,
    /// Weight within the instance (the instance weight multiplies it again).
    pub weight: f64,
}

impl Term {
    /// A term of weight 1.
    pub fn new(name: &str, value: Tensor<1>) -> Self {
        Term {
            name: name.into(),
            value,
            weight: 1.0,
        }
    }

    /// A term with its own weight.
    pub fn weighted(name: &str, value: Tensor<1>, weight: f64) -> Self {
        Term {
            name: name.into(),
            value,
            weight,
        }
    }
}

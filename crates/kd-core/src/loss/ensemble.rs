//! The peers' ensemble of mutual-learning methods (DML, CTSL-MKT): the log of the mean of the
//! peers' softmax outputs (Zhang et al. 2018, "Deep Mutual Learning", evaluated as the
//! ensemble of the cohort).

use burn::tensor::Tensor;
use burn::tensor::activation::softmax;

/// Log of the mean of the peers' softmax outputs: the ensemble's class scores.
///
/// # Shapes
/// - each of `logits`: `[N, C]`
/// - output: `[N, C]`
///
/// # Panics
/// With no peer (the plan requires at least two).
pub fn ensemble_log_probs(logits: &[Tensor<2>]) -> Tensor<2> {
    let sum = logits
        .iter()
        .map(|z| softmax(z.clone(), 1))
        .reduce(|a, b| a + b)
        .expect("at least one peer");
    sum.div_scalar(logits.len() as f64).log()
}

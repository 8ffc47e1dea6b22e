//! Cross-entropy of logits with integer labels, averaged over the batch (PyTorch's
//! `F.cross_entropy` with `reduction='mean'`).

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};

/// `-mean_n log softmax(logits_n)[labels_n]`.
///
/// # Shapes
/// - `logits`: `[N, C]`
/// - `labels`: `[N]`, values in `0..C`
/// - output: `[1]`
pub fn cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let [n, _] = logits.dims();
    let picked = log_softmax(logits, 1).gather(1, labels.reshape([n, 1]));
    picked.mean().neg()
}

//! Loss primitives every method is built from: the task cross-entropy, the temperature-scaled
//! KL divergence to a soft target (Hinton et al. 2015; see docs/methods.md) and the peers'
//! ensemble of mutual-learning methods.

mod cross_entropy;
mod ensemble;
mod soft_kl;

pub use cross_entropy::cross_entropy;
pub use ensemble::ensemble_log_probs;
pub use soft_kl::{kl_to_target, soft_kl};

//! Loss primitives every method is built from: the task cross-entropy and the temperature-scaled
//! KL divergence to a soft target (Hinton et al. 2015; see docs/methods.md).

mod cross_entropy;
mod soft_kl;

pub use cross_entropy::cross_entropy;
pub use soft_kl::{kl_to_target, soft_kl};

//! # `dml`: deep mutual learning
//!
//! Y. Zhang, T. Xiang, T. M. Hospedales, H. Lu, "Deep Mutual Learning", CVPR 2018,
//! arXiv:1706.00384.
//!
//! **Loss.** K ≥ 2 peers (same or different architectures) train from scratch at once. Peer k
//! minimises its cross-entropy (added by the runtime for every trained role, weight
//! `loss.ce_weight`) plus `τ²·KL(p_l ‖ p_k)` towards every other peer l, the targets detached
//! (each peer's update treats the others as fixed, as the official code's per-scope train ops
//! do), averaged over the K − 1 others (the paper) or summed (the official TensorFlow code).
//! At the default τ = 1 the τ² factor is 1 and the term is the paper's plain KL. One joint step
//! on one forward pass (the official code), not the paper's sequential updates.
//!
//! **Keys** (`[method.<instance>]`, besides `kind = "dml"` and `weight`):
//! - `peers` (default `["student", "peer"]`): the roles that learn from each other, at least 2;
//! - `temperature` (default `1.0`): τ;
//! - `reduction` (default `"mean"`): `"mean"` over the K − 1 others or `"sum"`.
//!
//! **Roles.** Every peer is trained in the main phase with its own optimiser (its own
//! `networks.<peer>.lr` if set). Logged terms: `kl/<peer>`. Evaluated besides every peer:
//! `ensemble`, the mean of the peers' softmax outputs.

mod config;
mod loss;
mod method;

pub use config::{DmlConfig, Reduction};
pub use loss::{ensemble_log_probs, mutual_kl};
pub use method::Dml;

kd_core::register_method! {
    kind: "dml",
    summary: "deep mutual learning: K peers trained together, each distilling from the others",
    paper: "Zhang, Xiang, Hospedales, Lu, Deep Mutual Learning, CVPR 2018, arXiv:1706.00384",
    build: method::build,
    defaults: kd_core::method::defaults_of::<config::DmlConfig>,
}

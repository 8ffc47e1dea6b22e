//! # `kd`: knowledge distillation with soft targets
//!
//! G. Hinton, O. Vinyals, J. Dean, "Distilling the Knowledge in a Neural Network", NIPS 2014
//! Deep Learning Workshop, arXiv:1503.02531.
//!
//! **Loss.** The student matches the teacher's temperature-softened class distribution:
//! `T² · KL(softmax(z_t / T) ‖ softmax(z_s / T))`, summed over classes, averaged over the batch,
//! the teacher's logits detached (RepDistiller `distiller_zoo/KD.py`). The task cross-entropy
//! comes from the runtime (`loss.ce_weight`); the RepDistiller recipe is `loss.ce_weight = 0.1`
//! and this instance's `weight = 0.9` (`configs/methods/kd.toml`).
//!
//! **Keys** (`[method.<instance>]`, besides `kind = "kd"` and `weight`):
//! - `teacher` (default `"teacher"`): role of the teacher;
//! - `student` (default `"student"`): role of the student;
//! - `temperature` (default `4.0`): `T`, positive.
//!
//! **Roles.** The teacher: frozen, from a checkpoint (BatchNorm in evaluation mode, one
//! inference per step on the inner backend). The student: trained in the main phase. Two
//! instances with different teachers stack (`stack = ["kd_a", "kd_b"]`).

mod config;
mod loss;
mod method;

pub use config::KdConfig;
pub use loss::kd_loss;
pub use method::Kd;

kd_core::register_method! {
    kind: "kd",
    summary: "soft-target distillation from a frozen teacher: T²·KL(p_t ‖ p_s)",
    paper: "Hinton, Vinyals, Dean 2015, Distilling the Knowledge in a Neural Network, arXiv:1503.02531",
    build: method::build,
    defaults: kd_core::method::defaults_of::<config::KdConfig>,
}

//! # `iakd`: interactive knowledge distillation
//!
//! S. Fu, Z. Li, J. Xu, M.-M. Cheng, Z. Liu, X. Yang, "Interactive Knowledge Distillation",
//! arXiv:2007.01476 (v3, 2021); journal version "Interactive Knowledge Distillation for Image
//! Classification", Neurocomputing.
//!
//! **Idea** (the abstract): during distillation, blocks of the student are randomly replaced by
//! the corresponding blocks of the teacher, so the student works with the teacher's feature
//! transforms. No official code is public; everything beyond the abstract is kd's own
//! specification (docs/methods.md), every choice a key below.
//!
//! **Hybrid.** For each batch and each stage i, with probability p(e) the student's stage i is
//! replaced by the frozen teacher's stage i. Gradients flow *through* the teacher's stages into
//! the student's earlier stages; the teacher's weights never change. The student's stem and head
//! are always its own. A swapped stage normalises with the batch's statistics (`swap_bn =
//! "batch"`, the default: the student's activations are not the teacher's, and normalising them
//! with the teacher's running statistics left the pure student at 55% against 77% alone on the
//! quick protocol at p0 = 0.5) or with the teacher's running statistics (`"running"`); either way
//! the teacher's stored statistics never move. The student's own running statistics are updated
//! only on batches where nothing was swapped (`student_bn = "pure"`): the pure student is what is
//! evaluated and shipped, and statistics gathered on hybrid activations describe a network that
//! is never evaluated. `"hybrid"` updates them on every batch. (With `loss.ce_weight ≠ 0` the
//! runtime's own forward of the student updates them on every batch anyway.)
//!
//! **Loss.** `ce_weight·CE(z_hybrid) + kd_weight·τ²·KL(p_t ‖ p_hybrid)`, the teacher's logits
//! those of its own full forward (detached). The hybrid's cross-entropy replaces the student's
//! plain one: the preset sets `loss.ce_weight = 0`. With p = 0 the hybrid is the student and the
//! loss is KD's (tested step for step). Each step also logs `swap_mask` (weight 0): bit i − 1
//! set where stage i was the teacher's, so losses can be grouped by swap pattern.
//!
//! **Schedule.** `linear`: p(e) = p0·max(0, 1 − e/E_s), E_s = `decay_epochs` or, unset, the
//! first multistep milestone (else half the run) with `decay_until = "milestone"`, the run's
//! length with `"end"`; `constant`: p(e) = p0. Draws come from the step's seeded generator, so
//! runs and resumptions repeat them exactly.
//!
//! **Keys** (`[method.<instance>]`, besides `kind = "iakd"` and `weight`): `teacher`
//! (`"teacher"`), `student` (`"student"`), `temperature` (`4.0`), `kd_weight` (`1.0`),
//! `ce_weight` (`1.0`), `p0` (`0.1`), `schedule` (`"linear"`), `decay_epochs` (unset),
//! `decay_until` (`"milestone"`), `swap_bn` (`"batch"`), `student_bn` (`"pure"`), `adapters`
//! (`false`).
//!
//! **Roles.** `teacher`: frozen, from a checkpoint. `student`: trained; evaluated and saved
//! alone (the pure student). Pairs with identical stage shapes work as they are (resnet56 →
//! resnet20, wrn_40_2 → wrn_16_2, resnet32x4 → resnet8x4); for others `adapters = true` puts a
//! trainable conv + BN adapter before and after each swapped teacher stage whose shapes differ,
//! which the plan and the summary mark as non-canonical; without it, a mismatch is a plan error
//! naming the stage and the two shapes.

mod config;
mod hybrid;
mod method;

pub use config::{DecayUntil, IakdConfig, StudentBn, SwapBn, SwapSchedule};
pub use hybrid::{StageAdapters, draw_swaps, hybrid_logits, swap_mask, swap_probability};
pub use method::Iakd;

kd_core::register_method! {
    kind: "iakd",
    summary: "interactive KD: frozen teacher stages randomly swapped into the student's forward",
    paper: "Fu, Li, Xu, Cheng, Liu, Yang, Interactive Knowledge Distillation, arXiv:2007.01476",
    build: method::build,
    defaults: kd_core::method::defaults_of::<config::IakdConfig>,
}

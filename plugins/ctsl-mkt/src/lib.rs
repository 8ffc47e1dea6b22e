//! # `ctsl-mkt`: collaborative teacher-student learning via multiple knowledge transfer
//!
//! L. Sun, J. Gou, B. Yu, L. Du, D. Tao, "Collaborative Teacher-Student Learning via Multiple
//! Knowledge Transfer", arXiv:2101.08471 (2021).
//!
//! **Idea.** N ≥ 2 peers learn collaboratively, each both student and teacher of the others, and
//! each also distils from a frozen copy of itself. Knowledge is transferred as instances
//! (softened outputs) and as relations between instances (RKD's distance and angle potentials).
//!
//! **Two stages, one run.** Stage 1 (epochs `0 .. pretrain_epochs`) trains each peer on its
//! labels alone (the runtime's cross-entropy; this method adds nothing). At the first batch of
//! epoch `pretrain_epochs` each peer is copied into a frozen self-teacher, and stage 2 begins.
//! With `pretrain_epochs = 0` the peers must start from checkpoints (stage 1 done elsewhere).
//! Both stages share the run's schedule unless an experiment restarts it at the boundary
//! (`schedule.restarts`, as the CIFAR-100 recipe does), which also resets every optimiser, as a
//! second run would.
//!
//! **Loss of peer k in stage 2** (k′ the other peers; `α·CE` from the runtime):
//! `β·(L_RD + β2·L_MLI) + γ·L_SD` with
//! - `L_MLI` = mean over k′ of `KL(p_k′ ‖ p_k)` at τ = 1 (targets detached): term `mutual/<k>`;
//! - `L_RD` = mean over k′ of `w_d·L_DD + w_a·L_AD`, RKD distance and angle losses between the
//!   peers' representations (pooled features by default), targets detached, with RKD's own
//!   weights w_d = 25, w_a = 50 (RepDistiller, mdistiller): term `relation/<k>`;
//! - `L_SD` = `KL(σ(z̄_k/t) ‖ σ(z_k/t))` towards the frozen self-copy (times t² with
//!   `self_tau_squared`): term `self/<k>`.
//!
//! **Keys** (`[method.<instance>]`, besides `kind = "ctsl-mkt"` and `weight`; the sources of
//! the defaults are in docs/methods.md): `peers` (`["student", "peer"]`), `pretrain_epochs`
//! (`0`), `beta` (`1.0`), `distance_weight` (`25.0`), `angle_weight` (`50.0`), `beta2` (`1.0`),
//! `gamma` (`1.0`), `self_temperature` t (`3.0`), `self_tau_squared` (`false`), `relation_on`
//! (`"pooled"` or `"logits"`).
//!
//! **Roles.** Every peer trained in the main phase. Method-owned: one frozen self-teacher per
//! peer (saved with the run). Evaluated besides every peer: `ensemble`.

mod config;
mod method;
pub mod relation;

pub use config::{CtslConfig, RelationOn};
pub use method::CtslMkt;

kd_core::register_method! {
    kind: "ctsl-mkt",
    summary: "collaborative peers with mutual, relational (RKD) and self distillation in two stages",
    paper: "Sun, Gou, Yu, Du, Tao, Collaborative Teacher-Student Learning via Multiple Knowledge Transfer, arXiv:2101.08471",
    build: method::build,
    defaults: kd_core::method::defaults_of::<config::CtslConfig>,
}

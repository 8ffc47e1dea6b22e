//! # `sokd`: semi-online knowledge distillation
//!
//! Z. Liu, Y. Liu, C. Huang, "Semi-Online Knowledge Distillation", BMVC 2021,
//! arXiv:2111.11747; official code github.com/swlzq/Semi-Online-KD (`trainer/sokd.py`).
//!
//! **Idea.** A frozen, pretrained teacher trunk feeds a trainable auxiliary *branch* — a copy of
//! the teacher's last stage and head, fed the (detached) output of the stage before it — that
//! learns mutually with the student. The student never sees the teacher's logits; it imitates
//! the branch.
//!
//! **Loss** (τ = 4, every λ = 1 in the official config):
//! - branch: `L_A = λ_ceA·CE(z_a) + λ_kdT·τ²KL(p_t ‖ p_a) + λ_kdS·τ²KL(p_s ‖ p_a)`, z_t and z_s
//!   detached;
//! - student: `L_S = CE(z_s) + λ_kd·τ²KL(p_a ‖ p_s)`, z_a detached (the CE comes from the
//!   runtime, weight `loss.ce_weight`);
//! - optional feature extension (the abstract's; not in the released code): a 1x1 conv + BN
//!   regressor R maps the student's last stage onto the branch's; `MSE(R(F_s), F_a)` trains the
//!   student side and `MSE(F_a, R(F_s))` the branch, each with the other side detached.
//!
//! **Keys** (`[method.<instance>]`, besides `kind = "sokd"` and `weight`):
//! - `teacher` (`"teacher"`), `student` (`"student"`): roles;
//! - `temperature` (`4.0`): τ;
//! - `branch_init` (`"random"`): `"random"` as the official code (the copy is made before the
//!   init loop and checkpoints hold no branch weights) or `"teacher"` (copy the trained stage);
//! - `teacher_bn` (`"train"`): the trunk's BatchNorm in training mode as the official code
//!   (`teacher.train()`: batch statistics, running statistics updated, weights frozen) or
//!   `"eval"`;
//! - `branch_lr` (unset: `optim.lr`): the branch's learning rate (official yaml 0.1, code
//!   default 0.05);
//! - `branch_stages` (`1`): trailing teacher stages the branch copies; it grows from the stage
//!   before them, so it must be fewer than the teacher's stages;
//! - `ce_branch`, `kd_teacher`, `kd_student`, `kd` (`1.0` each): the λs above;
//! - `feature_weight` (`0.0`, off): weight of each feature term.
//!
//! **Roles.** `teacher`: frozen, from a checkpoint. `student`: trained. Method-owned: the branch
//! (and the regressor), trained in the main phase. Terms: `ce_branch`, `kl_branch_teacher`,
//! `kl_branch_student`, `kl_student` (+ `feat_student`, `feat_branch`). Evaluated: `branch`, the
//! "improved teacher" (trunk up to the branch's input, then the branch).

mod config;
mod loss;
mod method;

pub use config::{BranchInit, SokdConfig, TeacherBn};
pub use loss::{feature_mse, sokd_terms};
pub use method::Sokd;

kd_core::register_method! {
    kind: "sokd",
    summary: "semi-online KD: a trainable branch on a frozen teacher trunk learns mutually with the student",
    paper: "Liu, Liu, Huang, Semi-Online Knowledge Distillation, BMVC 2021, arXiv:2111.11747",
    build: method::build,
    defaults: kd_core::method::defaults_of::<config::SokdConfig>,
}

//! # `ffkd`: reciprocal teacher-student learning via forward and feedback distillation
//!
//! J. Gou, X. Chen, B. Yu, J. Liu, L. Du, S. Wan, Z. Yi, "Reciprocal Teacher-Student Learning
//! via Forward and Feedback Knowledge Distillation", IEEE Transactions on Multimedia 26,
//! 7901–7916, 2024, DOI 10.1109/TMM.2024.3372833.
//!
//! **What is known.** The abstract: a forward phase (the pretrained teacher teaches the
//! student) and a feedback phase (the teacher learns from the student), steered by a weighting
//! constraint measuring how well the student understands the teacher. The operational reading
//! here follows the closest public code, wp502/SKD-RSL, which is not FFKD's official code: the
//! CKA-weighted channel-KL scheme of its `train_our_distill` / `OurLoss`, plus the safeguards of
//! the code that repository actually runs (`train_our_distill_111`, `zoo/Our_111.py`): the
//! gradient-agreement gate and the choice of teacher parameters. Every unknown is a key; the
//! sources of each default are in docs/methods.md.
//!
//! **Forward step** (main phase; the student and forward regressors R_b train, the teacher is
//! frozen): `CE(z_s) + β_f·τ²KL(p_t ‖ p_s) + γ_f·Σ_b w_b·L_ch(F_t^b, R_b(F_s^b))`, where F^b
//! is stage b's output, R_b a conv + BN + ReLU regressor onto the teacher's shape, L_ch the
//! channel-wise spatial-distribution KL (softmax over H·W per channel at τ, KL(teacher ‖
//! student) summed, × τ²/(N·C)), and w_b the linear CKA of the two stage features on the batch
//! (detached), × `cka_scale` (100 in the code).
//!
//! **Feedback step** (phase `<instance>.feedback`, on its own batch, from epoch
//! `feedback_from`; the teacher and feedback regressors R′_b train, the student is fixed in
//! evaluation mode): `CE(z_t) + β_b·τ²KL(p_s ‖ p_t) + γ_b·Σ_{b : CKA_b ≤ mean CKA} L_ch(R′_b(F_s^b),
//! F_t^b)` — the teacher's channel distributions follow the student's regressed features, on the
//! stages the student understands no better than average (the weighting constraint). R′_b trains
//! with the teacher (its output is the target, not detached; the student's features are).
//! `feedback_update = "all"` trains every teacher parameter; `"deep"` only its last two stages
//! and classifier. With `grad_gate` (default on), each feedback step first measures the cosine
//! between the teacher-weight gradients of its CE and of `β_b·KL + γ_b·L_ch`; when it is
//! negative both feedback terms get weight 0 for that step, so feedback never pulls the teacher
//! against its own labels. The gate costs two extra teacher forward and backward passes per
//! feedback step; its decision is logged as `gate_open` (weight 0).
//!
//! **Keys** (`[method.<instance>]`, besides `kind = "ffkd"` and `weight`): `teacher`
//! (`"teacher"`), `student` (`"student"`), `temperature` τ (`4.0`), `beta_forward` (`1.0`),
//! `gamma_forward` (`1.0`), `beta_feedback` (`1.0`), `gamma_feedback` (`1.0`), `teacher_ce`
//! (`1.0`), `cka_scale` (`100.0`), `feedback_from` (`0`), `teacher_lr` (`5e-3`),
//! `feedback_update` (`"all"`), `grad_gate` (`true`).
//!
//! **Roles.** `teacher`: from a checkpoint, trained in the feedback phase only (its own
//! optimiser at `teacher_lr`, unless `networks.teacher.lr` says otherwise), frozen with
//! BatchNorm in evaluation mode in the forward phase. `student`: trained in the main phase.
//! Both need the same number of stages, each student stage adaptable to the teacher's (equal,
//! half or double spatial size). The refined teacher is evaluated each epoch; `summary.json`
//! keeps its accuracy before training (`initial_top1`).

mod cka;
mod config;
mod gate;
mod loss;
mod method;

pub use cka::{feedback_stages, linear_cka};
pub use config::{FeedbackUpdate, FfkdConfig};
pub use gate::gradient_cosine;
pub use loss::channel_kl;
pub use method::Ffkd;

kd_core::register_method! {
    kind: "ffkd",
    summary: "forward KD with CKA-weighted feature terms, then feedback that refines the teacher",
    paper: "Gou et al., Reciprocal Teacher-Student Learning via Forward and Feedback KD, IEEE TMM 26, 2024",
    build: method::build,
    defaults: kd_core::method::defaults_of::<config::FfkdConfig>,
}

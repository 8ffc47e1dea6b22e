//! The keys of an `ffkd` instance and their defaults, each sourced in docs/methods.md.

use serde::{Deserialize, Serialize};

/// Which teacher parameters the feedback step updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedbackUpdate {
    /// Every teacher parameter (the reference scripts' `--add_param_groups_method all`).
    All,
    /// The teacher's last two stages and its classifier; the stem and earlier stages keep their
    /// weights (the reference code's option marked best, `add_param_groups_method = '2'`).
    Deep,
}

/// `[method.<instance>]` of kind `ffkd`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FfkdConfig {
    /// Role of the teacher.
    pub teacher: String,
    /// Role of the student.
    pub student: String,
    /// τ of the logit and channel KLs.
    pub temperature: f64,
    /// β_f: weight of the forward logit KL.
    pub beta_forward: f64,
    /// γ_f: weight of the forward feature terms.
    pub gamma_forward: f64,
    /// β_b: weight of the feedback logit KL.
    pub beta_feedback: f64,
    /// γ_b: weight of the feedback feature terms.
    pub gamma_feedback: f64,
    /// Weight of the teacher's cross-entropy in the feedback step.
    pub teacher_ce: f64,
    /// Factor on the CKA weights (100 in the code proxy's `is_100cka`).
    pub cka_scale: f64,
    /// First epoch (0-based) with feedback steps.
    pub feedback_from: usize,
    /// The teacher's (and feedback regressors') learning rate.
    pub teacher_lr: f64,
    /// Which teacher parameters feedback updates.
    pub feedback_update: FeedbackUpdate,
    /// The gradient-agreement gate: on a feedback step where the teacher-weight gradient of the
    /// feedback KL and feature terms points against that of the teacher's cross-entropy
    /// (negative cosine), those terms get weight 0 for the step (the reference's
    /// `--fbUseGradSim`, on by default there).
    pub grad_gate: bool,
}

impl Default for FfkdConfig {
    fn default() -> Self {
        FfkdConfig {
            teacher: "teacher".into(),
            student: "student".into(),
            temperature: 4.0,
            beta_forward: 1.0,
            gamma_forward: 1.0,
            beta_feedback: 1.0,
            gamma_feedback: 1.0,
            teacher_ce: 1.0,
            cka_scale: 100.0,
            feedback_from: 0,
            teacher_lr: 5e-3,
            feedback_update: FeedbackUpdate::All,
            grad_gate: true,
        }
    }
}

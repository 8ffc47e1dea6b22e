//! The keys of a `sokd` instance, with the official code's defaults.

use serde::{Deserialize, Serialize};

/// How the branch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BranchInit {
    /// He-normal convolutions, BN 1/0 (the official code's effective behaviour).
    Random,
    /// A copy of the teacher's trained last stage(s) and head.
    Teacher,
}

/// BatchNorm mode of the frozen teacher trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TeacherBn {
    /// Batch statistics, running statistics updated (the official code).
    Train,
    /// Running statistics, untouched.
    Eval,
}

/// `[method.<instance>]` of kind `sokd`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SokdConfig {
    /// Role of the teacher.
    pub teacher: String,
    /// Role of the student.
    pub student: String,
    /// Softmax temperature τ.
    pub temperature: f64,
    /// How the branch starts.
    pub branch_init: BranchInit,
    /// BatchNorm mode of the teacher trunk.
    pub teacher_bn: TeacherBn,
    /// The branch's learning rate (unset: `optim.lr`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch_lr: Option<f64>,
    /// Trailing teacher stages the branch copies.
    pub branch_stages: usize,
    /// λ of the branch's cross-entropy.
    pub ce_branch: f64,
    /// λ of the branch's KL towards the teacher.
    pub kd_teacher: f64,
    /// λ of the branch's KL towards the student.
    pub kd_student: f64,
    /// λ of the student's KL towards the branch.
    pub kd: f64,
    /// Weight of each feature term (0: the extension is off).
    pub feature_weight: f64,
}

impl Default for SokdConfig {
    fn default() -> Self {
        SokdConfig {
            teacher: "teacher".into(),
            student: "student".into(),
            temperature: 4.0,
            branch_init: BranchInit::Random,
            teacher_bn: TeacherBn::Train,
            branch_lr: None,
            branch_stages: 1,
            ce_branch: 1.0,
            kd_teacher: 1.0,
            kd_student: 1.0,
            kd: 1.0,
            feature_weight: 0.0,
        }
    }
}

//! The keys of an `iakd` instance and their defaults, each sourced in docs/methods.md.

use serde::{Deserialize, Serialize};

/// How the swap probability evolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SwapSchedule {
    /// p0 decaying linearly to 0 at `decay_epochs`.
    Linear,
    /// p0 throughout.
    Constant,
}

/// Where a linear schedule reaches 0 when `decay_epochs` is unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecayUntil {
    /// The first multistep milestone, else half the run.
    Milestone,
    /// The end of the run: swaps span every epoch but the last ones fade out.
    End,
}

/// How a swapped-in teacher stage's BatchNorm normalises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SwapBn {
    /// With the teacher's running statistics, as a frozen teacher does.
    Running,
    /// With the batch's statistics (the teacher's stored statistics never change).
    Batch,
}

/// Which forwards move the student's BatchNorm running statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StudentBn {
    /// Only batches where nothing was swapped: the estimates describe the pure student, the
    /// network that is evaluated and shipped.
    Pure,
    /// Every hybrid batch (the estimates mix in activations computed by teacher stages).
    Hybrid,
}

/// `[method.<instance>]` of kind `iakd`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IakdConfig {
    /// Role of the teacher.
    pub teacher: String,
    /// Role of the student.
    pub student: String,
    /// Softmax temperature τ.
    pub temperature: f64,
    /// λ_kd: weight of the KL term.
    pub kd_weight: f64,
    /// Weight of the hybrid's cross-entropy.
    pub ce_weight: f64,
    /// Swap probability at the start.
    pub p0: f64,
    /// How it evolves.
    pub schedule: SwapSchedule,
    /// E_s, the epoch where a linear schedule reaches 0 (unset: as `decay_until` says).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decay_epochs: Option<usize>,
    /// E_s when `decay_epochs` is unset.
    pub decay_until: DecayUntil,
    /// BatchNorm of swapped-in teacher stages.
    pub swap_bn: SwapBn,
    /// Which forwards update the student's BatchNorm running statistics.
    pub student_bn: StudentBn,
    /// Conv + BN adapters around teacher stages whose shapes differ (non-canonical).
    pub adapters: bool,
}

impl Default for IakdConfig {
    fn default() -> Self {
        IakdConfig {
            teacher: "teacher".into(),
            student: "student".into(),
            temperature: 4.0,
            kd_weight: 1.0,
            ce_weight: 1.0,
            p0: 0.1,
            schedule: SwapSchedule::Linear,
            decay_epochs: None,
            decay_until: DecayUntil::Milestone,
            swap_bn: SwapBn::Batch,
            student_bn: StudentBn::Pure,
            adapters: false,
        }
    }
}

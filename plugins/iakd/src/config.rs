//! The keys of an `iakd` instance, with METHODS.md §4's proposed defaults.

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
    /// E_s, the epoch where a linear schedule reaches 0 (unset: the first LR milestone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decay_epochs: Option<usize>,
    /// 1x1 conv + BN adapters around teacher stages whose shapes differ (non-canonical).
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
            p0: 0.5,
            schedule: SwapSchedule::Linear,
            decay_epochs: None,
            adapters: false,
        }
    }
}

/// The defaults as JSON, for `kd methods --json`.
pub fn defaults() -> serde_json::Value {
    serde_json::to_value(IakdConfig::default()).expect("IakdConfig serialises")
}

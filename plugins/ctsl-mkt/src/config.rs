//! The keys of a `ctsl-mkt` instance and their defaults, each sourced in docs/methods.md.

use serde::{Deserialize, Serialize};

/// Which representation the relation loss compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelationOn {
    /// The pooled feature fed to the classifier (RKD's convention, RepDistiller's `feat[-1]`).
    Pooled,
    /// The logits.
    Logits,
}

/// `[method.<instance>]` of kind `ctsl-mkt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CtslConfig {
    /// Roles of the peers.
    pub peers: Vec<String>,
    /// Epochs of stage 1 (supervised pre-training); 0 when the peers start from checkpoints.
    pub pretrain_epochs: usize,
    /// β: weight of the mutual (relation + instance) part.
    pub beta: f64,
    /// w_d: weight of RKD's distance loss within the relation loss (25: `RKDLoss`'s default in
    /// RepDistiller's `distiller_zoo/RKD.py`, as its training script uses it).
    pub distance_weight: f64,
    /// w_a: weight of RKD's angle loss within the relation loss (50: `RKDLoss`'s default in
    /// RepDistiller's `distiller_zoo/RKD.py`).
    pub angle_weight: f64,
    /// β2: weight of the instance KL within the mutual part.
    pub beta2: f64,
    /// γ: weight of self-distillation.
    pub gamma: f64,
    /// t: temperature of self-distillation.
    pub self_temperature: f64,
    /// Multiply the self-distillation KL by t² (Hinton's gradient-scale correction). The paper's
    /// formula, as summarised, has no such factor.
    pub self_tau_squared: bool,
    /// Representation of the relation loss.
    pub relation_on: RelationOn,
}

impl Default for CtslConfig {
    fn default() -> Self {
        CtslConfig {
            peers: vec!["student".into(), "peer".into()],
            pretrain_epochs: 0,
            beta: 1.0,
            distance_weight: 25.0,
            angle_weight: 50.0,
            beta2: 1.0,
            gamma: 1.0,
            self_temperature: 3.0,
            self_tau_squared: false,
            relation_on: RelationOn::Pooled,
        }
    }
}

//! The keys of a `dml` instance.

use serde::{Deserialize, Serialize};

/// How the KL terms towards the other peers are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reduction {
    /// Averaged over the K − 1 other peers (the paper).
    Mean,
    /// Summed (the official TensorFlow code).
    Sum,
}

/// `[method.<instance>]` of kind `dml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DmlConfig {
    /// Roles of the peers.
    pub peers: Vec<String>,
    /// Softmax temperature τ.
    pub temperature: f64,
    /// Mean or sum over the other peers.
    pub reduction: Reduction,
}

impl Default for DmlConfig {
    fn default() -> Self {
        DmlConfig {
            peers: vec!["student".into(), "peer".into()],
            temperature: 1.0,
            reduction: Reduction::Mean,
        }
    }
}

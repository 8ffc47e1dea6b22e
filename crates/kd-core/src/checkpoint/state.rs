//! Where a run stands: the loop position, the running sums of the epoch in progress, every
//! finished epoch's results and the lengths of the metrics files. Saved in every checkpoint, so
//! a resumed run continues exactly where the checkpoint was taken.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Top-1 and top-5 accuracy, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// Top-1 accuracy (%).
    pub top1: f64,
    /// Top-5 accuracy (%).
    pub top5: f64,
}

/// One finished epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch (0-based here; files and messages count from 1).
    pub epoch: usize,
    /// Learning-rate factor at the end of the epoch.
    pub lr_factor: f64,
    /// Mean of each loss term over the epoch's images.
    pub train: BTreeMap<String, f64>,
    /// Accuracy of every evaluated output.
    pub eval: BTreeMap<String, Accuracy>,
}

/// The best epoch so far by the student's top-1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Best {
    /// Epoch (0-based).
    pub epoch: usize,
    /// The student's top-1 then.
    pub top1: f64,
}

/// The loop's position and history.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TrainState {
    /// The epoch in progress (or next to start).
    pub epoch: usize,
    /// The first batch of `epoch` not yet trained.
    pub next_batch: usize,
    /// Steps trained in all.
    pub global_step: usize,
    /// Whether every epoch is done.
    pub finished: bool,
    /// Sums of each term over the batches of `epoch` trained so far, each batch's mean weighted
    /// by its number of images (so a short last batch weighs what its images weigh).
    pub epoch_sums: BTreeMap<String, f64>,
    /// Batches of `epoch` trained so far.
    pub epoch_batches: usize,
    /// Images of `epoch` trained so far: the divisor of `epoch_sums`.
    #[serde(default)]
    pub epoch_images: usize,
    /// Finished epochs.
    pub history: Vec<EpochRecord>,
    /// The best epoch.
    pub best: Option<Best>,
    /// Accuracy of every output before training (frozen teachers, initial states).
    pub initial_eval: BTreeMap<String, Accuracy>,
    /// Lengths of `metrics.jsonl` and `metrics.csv` when the state was saved.
    pub metrics_len: (u64, u64),
    /// Training wall time so far, in seconds (excluded from exactness comparisons).
    pub wall_seconds: f64,
}

//! Progress events of a run, for whoever displays them (the CLI's progress bar). The runtime
//! itself only logs through `tracing`.

use std::collections::BTreeMap;

use crate::checkpoint::{Accuracy, Best};

/// A run is about to train.
#[derive(Debug, Clone)]
pub struct StartInfo {
    /// Run name.
    pub run: String,
    /// Epochs in all.
    pub epochs: usize,
    /// Batches per epoch.
    pub batches_per_epoch: usize,
    /// Where training starts (0, 0 unless resumed).
    pub start: (usize, usize),
}

/// A logged step.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Batch within the epoch.
    pub batch: usize,
    /// Batches per epoch.
    pub batches: usize,
    /// Global step.
    pub step: usize,
    /// Learning-rate factor.
    pub lr_factor: f64,
    /// Weighted total of the main phase.
    pub loss: f64,
    /// Every term's value.
    pub terms: Vec<(String, f64)>,
    /// Training throughput since the last report.
    pub images_per_sec: f64,
}

/// A finished epoch.
#[derive(Debug, Clone)]
pub struct EpochReport {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Epochs in all.
    pub epochs: usize,
    /// Mean of each term.
    pub train: BTreeMap<String, f64>,
    /// Accuracy of every evaluated output.
    pub eval: BTreeMap<String, Accuracy>,
    /// Best epoch so far.
    pub best: Option<Best>,
}

/// Receives progress events.
pub trait Observer {
    /// Training starts or resumes.
    fn started(&mut self, _info: &StartInfo) {}
    /// A step was logged.
    fn step(&mut self, _report: &StepReport) {}
    /// An epoch ended and was evaluated.
    fn epoch(&mut self, _report: &EpochReport) {}
}

/// An observer that ignores everything.
pub struct Silent;

impl Observer for Silent {}

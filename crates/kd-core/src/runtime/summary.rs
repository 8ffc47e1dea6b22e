//! `summary.json` and `curve.png`: the end of a run in one file and one picture. `summary.json`
//! replaces an earlier one whole, so a run stopped while writing it never leaves half a file.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::curve::draw_curves;
use super::error::TrainError;
use super::plan::RunPlan;
use super::run_dir::write_replacing;
use crate::checkpoint::{Accuracy, TrainState};

/// Results of one evaluated output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputSummary {
    /// Best top-1 over the epochs (%).
    pub best_top1: f64,
    /// Epoch of the best top-1, from 1 (as metrics files count).
    pub best_epoch: usize,
    /// Top-1 after the last epoch (%).
    pub last_top1: f64,
    /// Top-5 after the last epoch (%).
    pub last_top5: f64,
    /// Top-1 before training (%), where it was measured.
    pub initial_top1: Option<f64>,
}

/// What a finished run reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Run name.
    pub run: String,
    /// Seed.
    pub seed: u64,
    /// Epochs trained.
    pub epochs: usize,
    /// Steps trained.
    pub steps: usize,
    /// Training wall time in seconds (all sessions).
    pub wall_seconds: f64,
    /// Epoch with the student's best top-1, from 1.
    pub best_epoch: Option<usize>,
    /// Every evaluated output.
    pub outputs: BTreeMap<String, OutputSummary>,
    /// Git revision of the working directory, where there is one.
    pub git_revision: Option<String>,
    /// kd version.
    pub kd_version: String,
    /// The methods' remarks on the run (non-canonical options).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remarks: Vec<String>,
}

impl Summary {
    /// Builds the summary from a run's history.
    pub fn from_state(plan: &RunPlan, state: &TrainState, git_revision: Option<String>) -> Self {
        let mut outputs = BTreeMap::new();
        for name in plan.eval_outputs() {
            let series: Vec<(usize, Accuracy)> = state
                .history
                .iter()
                .filter_map(|e| e.eval.get(&name).map(|a| (e.epoch + 1, *a)))
                .collect();
            let Some(&(_, last)) = series.last() else {
                continue;
            };
            let (best_epoch, best) =
                series.iter().fold(
                    series[0],
                    |best, &(e, a)| if a.top1 > best.1.top1 { (e, a) } else { best },
                );
            outputs.insert(
                name.clone(),
                OutputSummary {
                    best_top1: best.top1,
                    best_epoch,
                    last_top1: last.top1,
                    last_top5: last.top5,
                    initial_top1: state.initial_eval.get(&name).map(|a| a.top1),
                },
            );
        }
        Summary {
            run: plan.config.run.name.clone(),
            seed: plan.config.run.seed,
            epochs: state.history.len(),
            steps: state.global_step,
            wall_seconds: state.wall_seconds,
            best_epoch: state.best.map(|b| b.epoch + 1),
            outputs,
            git_revision,
            kd_version: env!("CARGO_PKG_VERSION").into(),
            remarks: plan.remarks(),
        }
    }
}

/// Writes `summary.json` and `curve.png` into the run directory.
pub fn write_summary(dir: &Path, summary: &Summary, state: &TrainState) -> Result<(), TrainError> {
    let path = dir.join("summary.json");
    let text = serde_json::to_string_pretty(summary).expect("summary serialises");
    write_replacing(&path, (text + "\n").as_bytes()).map_err(TrainError::io(&path))?;
    let png = dir.join("curve.png");
    if let Err(message) = draw_curves(&png, &summary.run, state) {
        tracing::warn!(%message, "could not draw {}", png.display());
    }
    Ok(())
}

//! The training runtime: the plan (`plan/`), the networks and methods built from it
//! (`setup.rs`), the loop (`trainer.rs`) with its step (`step.rs`) and end of epoch
//! (`epoch_end.rs`), the run directory (`run_dir.rs`), evaluation, schedules, the run's
//! checkpoints (`checkpointing.rs`), metrics and the end-of-run summary.

mod checkpointing;
pub mod compare;
mod curve;
mod epoch_end;
mod error;
mod evaluate;
mod inference;
mod metrics;
mod observer;
mod plan;
mod run_dir;
mod schedule;
mod setup;
mod step;
mod summary;
mod tensorboard;
mod timing;
mod trainer;

pub use error::TrainError;
pub use evaluate::{Tally, evaluate};
pub use inference::{evaluate_network, load_network, predict_logits};
pub use metrics::TIMING_COLUMNS;
pub use observer::{EpochReport, Observer, Silent, StartInfo, StepReport};
pub use plan::{DataPlan, MethodInstance, PlanOptions, RolePlan, RunPlan, plan, plan_with};
pub use run_dir::{RunFiles, changed_keys_since_start};
pub use schedule::lr_factor;
pub use summary::{OutputSummary, Summary};
pub use timing::{Timing, time_plan_steps, time_steps};
pub use trainer::{TrainOptions, train};

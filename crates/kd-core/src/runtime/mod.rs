//! The training runtime: the plan (`plan.rs`), the roles (`roles.rs`), the loop
//! (`trainer.rs`), evaluation, schedules, checkpoints, metrics and the end-of-run summary.

pub mod checkpoint;
mod curve;
mod describe;
mod error;
mod evaluate;
mod inference;
pub mod metrics;
mod observer;
mod plan;
mod plan_data;
mod roles;
mod schedule;
mod session;
mod state;
mod summary;
mod timing;
mod trainer;

pub use error::TrainError;
pub use evaluate::{Tally, evaluate};
pub use inference::{evaluate_network, load_network, predict_logits};
pub use observer::{EpochReport, Observer, Silent, StartInfo, StepReport};
pub use plan::{DataPlan, MethodInstance, PlanOptions, RolePlan, RunPlan, plan, plan_with};
pub use plan_data::{default_normalisation, standard_geometry};
pub use roles::{RoleNet, Roles, materialize};
pub use schedule::lr_factor;
pub use state::{Accuracy, Best, EpochRecord, TrainState};
pub use summary::{OutputSummary, Summary};
pub use timing::{Timing, time_plan_steps, time_steps};
pub use trainer::{RunFiles, TrainOptions, train};

//! Configuration: the serde schema (`schema.rs`), figment layering (`load.rs`) over the
//! configuration files (`files.rs`), extraction reporting every bad key at once (`extract.rs`),
//! per-key provenance (`provenance.rs`), the closest known name for a "did you mean"
//! (`suggest.rs`), the errors that name key and source (`error.rs`) and
//! the list that collects them for reporting all at once (`issues.rs`).

mod error;
mod extract;
mod files;
mod issues;
mod load;
mod paths;
mod provenance;
mod schema;
mod suggest;

pub use error::{ConfigError, ConfigIssue};
pub(crate) use extract::unknown_key_message;
pub use issues::Issues;
pub(crate) use issues::f32_problem;
pub use load::{DEFAULTS_SOURCE, LoadedConfig, Override, load, load_with};
pub(crate) use load::{display_path, source_of};
pub use provenance::Provenance;
pub use schema::{
    AugmentSection, DataSection, LossConfig, NetworkConfig, OptimConfig, PluginsSection, RunConfig,
    RunSection, ScheduleConfig, ScheduleKind,
};
pub(crate) use suggest::did_you_mean;

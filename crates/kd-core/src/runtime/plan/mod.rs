//! From a resolved configuration to a validated [`RunPlan`], before any tensor exists.
//!
//! The second half of the two-phase configuration: method kinds are looked up in the registry
//! and their tables parsed by their plugins; roles are resolved (who trains what, in which
//! phase, from which checkpoint) and conflicts rejected; taps and shapes are checked; the data
//! files are found and their geometry read from headers. Every problem becomes a
//! [`ConfigIssue`] naming the full key and the source that set it, and all are reported
//! together. `kd plan` prints the result; `kd train` runs it.
//!
//! One concept per file: the dataset (`data.rs`), the method stack and its phases
//! (`methods.rs`), the roles merged from every method's needs (`roles.rs`), a role's
//! checkpoint checked from its header (`checkpoints.rs`) and the input preparation its weights
//! were trained with compared with the run's (`preparation.rs`), a trained role's learning rate
//! (`learning_rate.rs`), the domain of every numeric key
//! (`domains.rs`), and how a plan describes itself (`describe.rs`). This file holds the plan's
//! types and the order the checks run in.

mod checkpoints;
mod data;
mod describe;
mod domains;
mod learning_rate;
mod methods;
mod preparation;
mod roles;

use std::path::PathBuf;

use crate::checkpoint::InputPreparation;
use crate::config::{ConfigError, Issues, LoadedConfig, RunConfig};
use crate::method::{BnMode, Method, Needs, PhaseSpec, PlannedNetwork, Registry, SgdSettings};
use crate::zoo::ModelSpec;

pub use data::DataPlan;

/// One role as planned.
#[derive(Debug, Clone)]
pub struct RolePlan {
    /// The network.
    pub network: PlannedNetwork,
    /// Phase that trains it.
    pub trained_in: Option<String>,
    /// BatchNorm behaviour where it is not trained.
    pub bn: BnMode,
    /// Checkpoint file and the role inside it.
    pub checkpoint: Option<(PathBuf, String)>,
    /// The PyTorch file `checkpoint` is imported from when the run builds its roles (the plan
    /// checked its keys; `checkpoint` is then the import cache's file).
    pub imported_from: Option<PathBuf>,
    /// The input preparation `networks.<role>.trained_on` declares for that PyTorch file, which
    /// its import records (`None`: the import records none).
    pub imported_preparation: Option<InputPreparation>,
    /// Base learning rate (trained roles; see `learning_rate.rs` for the rule).
    pub lr: f64,
    /// The key that decided `lr` (`networks.student.lr`, `optim.lr_for_arch.MobileNetV2`,
    /// `optim.lr`, or the key of the method that suggested it).
    pub lr_source: String,
    /// Weight of its cross-entropy when trained in the main phase.
    pub ce_weight: f64,
    /// Who uses it (`task loss`, method instances).
    pub used_by: Vec<String>,
}

/// One method instance of the stack.
pub struct MethodInstance {
    /// Instance name.
    pub instance: String,
    /// Kind.
    pub kind: String,
    /// Instance weight.
    pub weight: f64,
    /// Crate that registered the kind.
    pub crate_name: String,
    /// What it asked for.
    pub needs: Needs,
    /// The instance.
    pub method: Box<dyn Method>,
}

/// A validated run.
pub struct RunPlan {
    /// The resolved configuration.
    pub config: RunConfig,
    /// Provenance listing (TOML with a source comment per key).
    pub sources: String,
    /// `run.output_dir / run.name`.
    pub run_dir: PathBuf,
    /// Dataset.
    pub data: DataPlan,
    /// Roles in order: `student` first, then the others by name.
    pub roles: Vec<RolePlan>,
    /// The planned networks, parallel to `roles` (for [`PlanView`](crate::method::PlanView)).
    pub networks: Vec<PlannedNetwork>,
    /// The stack, in order.
    pub methods: Vec<MethodInstance>,
    /// Phases in the order they run each step, `main` first.
    pub phases: Vec<PhaseSpec>,
    /// Optimiser settings.
    pub sgd: SgdSettings,
    /// Things worth knowing that are not errors.
    pub warnings: Vec<String>,
}

/// Builds the plan; every problem found is reported at once.
pub fn plan(loaded: &LoadedConfig, registry: &Registry) -> Result<RunPlan, ConfigError> {
    plan_with(loaded, registry, PlanOptions::default())
}

/// What the plan may take for granted.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions {
    /// A checkpoint file that does not exist yet is a warning, not an error (a dry run of a
    /// sequence whose earlier runs produce it). An existing one is still checked.
    pub allow_missing_checkpoints: bool,
    /// A dataset that is not on this machine is planned with its format's standard geometry
    /// (a dry run of a sweep meant for another machine). Folders have none and stay errors.
    pub allow_missing_data: bool,
}

/// Builds the plan with options.
pub fn plan_with(
    loaded: &LoadedConfig,
    registry: &Registry,
    options: PlanOptions,
) -> Result<RunPlan, ConfigError> {
    let config = &loaded.config;
    let mut issues = Issues::new(loaded);
    let mut warnings = Vec::new();
    let data = data::plan_data(
        loaded,
        &mut issues,
        &mut warnings,
        options.allow_missing_data,
    );
    let methods = methods::plan_methods(loaded, registry, &mut issues);
    for instance in config.method.keys() {
        if !config.stack.contains(instance) {
            warnings.push(format!(
                "[method.{instance}] is configured but not in `stack`; it is ignored"
            ));
        }
    }
    domains::check_domains(config, &mut issues);
    learning_rate::check_lr_for_arch(config, &mut issues);
    issues.extend(super::run_dir::path_issues(config));

    let uses = roles::merge_needs(config, &methods, &mut issues);
    let (num_classes, in_channels) = data
        .as_ref()
        .map(|d| (d.train.num_classes, d.train.channels))
        .unwrap_or((10, 1));
    let spec = ModelSpec {
        num_classes,
        in_channels,
    };
    let roles = roles::plan_roles(
        config,
        &uses,
        spec,
        &mut checkpoints::Checker {
            config,
            options,
            data: data.as_ref(),
            issues: &mut issues,
            warnings: &mut warnings,
        },
    );
    let networks: Vec<PlannedNetwork> = roles.iter().map(|r| r.network.clone()).collect();

    methods::check_taps(&methods, &networks, &mut issues);
    let phases = methods::plan_phases(&methods, &mut issues);
    if issues.is_empty()
        && let Some(data) = &data
    {
        methods::check_methods(&methods, &networks, data, config, &mut issues);
    }
    issues.finish()?;
    let data = data.expect("no issues means the data was planned");
    Ok(RunPlan {
        config: config.clone(),
        sources: loaded.provenance_toml(),
        run_dir: config.run.output_dir.join(&config.run.name),
        data,
        roles,
        networks,
        methods,
        phases,
        sgd: SgdSettings {
            momentum: config.optim.momentum,
            nesterov: config.optim.nesterov,
            weight_decay: config.optim.weight_decay,
        },
        warnings,
    })
}

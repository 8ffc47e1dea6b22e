//! From a resolved configuration to a validated [`RunPlan`], before any tensor exists.
//!
//! The second half of the two-phase configuration: method kinds are looked up in the registry
//! and their tables parsed by their plugins; roles are resolved (who trains what, in which
//! phase, from which checkpoint) and conflicts rejected; taps and shapes are checked; the data
//! files are found and their geometry read from headers. Every problem becomes a
//! [`ConfigIssue`] naming the full key and the source that set it, and all are reported
//! together. `kd plan` prints the result; `kd train` runs it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::{ConfigError, LoadedConfig, RunConfig, display_path, source_of};
use crate::data::{DataSource, Geometry};
use crate::import;
use crate::method::{
    BnMode, MAIN_PHASE, Method, MethodArgs, Needs, PhaseSpec, PlanView, PlannedNetwork, Registry,
    SgdSettings,
};
use crate::zoo::{self, ModelSpec};

use super::checkpoint::{self, CheckpointError};
use super::plan_data::{Issues, plan_data};

/// The dataset side of a plan.
#[derive(Debug, Clone)]
pub struct DataPlan {
    /// Format and root.
    pub source: DataSource,
    /// Training split geometry (before any per-class limit).
    pub train: Geometry,
    /// Test split geometry (before any per-class limit).
    pub test: Geometry,
    /// Files of the training split.
    pub train_files: Vec<PathBuf>,
    /// Files of the test split.
    pub test_files: Vec<PathBuf>,
    /// Network input side.
    pub input_size: usize,
    /// Per-channel mean.
    pub mean: Vec<f32>,
    /// Per-channel std.
    pub std: Vec<f32>,
}

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
    /// Base learning rate.
    pub lr: f64,
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
    /// The planned networks, parallel to `roles` (for [`PlanView`]).
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

fn as_f64(value: &serde_json::Value) -> Option<f64> {
    value.as_f64()
}

fn plan_methods(
    loaded: &LoadedConfig,
    registry: &Registry,
    issues: &mut Issues<'_>,
) -> Vec<MethodInstance> {
    let config = &loaded.config;
    let mut methods = Vec::new();
    let mut seen = Vec::new();
    for instance in &config.stack {
        if seen.contains(instance) {
            issues.push("stack", format!("instance `{instance}` appears twice"));
            continue;
        }
        seen.push(instance.clone());
        let Some(table) = config.method.get(instance) else {
            issues.push(
                "stack",
                format!("`{instance}` has no [method.{instance}] table"),
            );
            continue;
        };
        let Some(object) = table.as_object() else {
            issues.push(&format!("method.{instance}"), "must be a table");
            continue;
        };
        let Some(kind) = object.get("kind").and_then(|k| k.as_str()) else {
            issues.push(
                &format!("method.{instance}.kind"),
                "missing: every method instance names its kind",
            );
            continue;
        };
        let Some(registration) = registry.get(kind) else {
            issues.push(
                &format!("method.{instance}.kind"),
                registry.unknown_kind_message(kind),
            );
            continue;
        };
        let weight = match object.get("weight") {
            None => 1.0,
            Some(w) => match as_f64(w) {
                Some(w) if w.is_finite() => w,
                _ => {
                    issues.push(
                        &format!("method.{instance}.weight"),
                        "must be a finite number",
                    );
                    continue;
                }
            },
        };
        let mut params = object.clone();
        params.remove("kind");
        params.remove("weight");
        let figment = &loaded.figment;
        let source_of = |key: &str| source_of(figment, key);
        let args = MethodArgs {
            instance,
            params: serde_json::Value::Object(params),
            source_of: &source_of,
        };
        match (registration.build)(&args) {
            Ok(method) => methods.push(MethodInstance {
                instance: instance.clone(),
                kind: kind.to_string(),
                weight,
                crate_name: registration.crate_name.to_string(),
                needs: method.needs(),
                method,
            }),
            Err(e) => issues.list.extend(e.issues),
        }
    }
    methods
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
    let mut issues = Issues {
        loaded,
        list: Vec::new(),
    };
    let mut warnings = Vec::new();
    let data = plan_data(
        loaded,
        &mut issues,
        &mut warnings,
        options.allow_missing_data,
    );
    let methods = plan_methods(loaded, registry, &mut issues);
    for instance in config.method.keys() {
        if !config.stack.contains(instance) {
            warnings.push(format!(
                "[method.{instance}] is configured but not in `stack`; it is ignored"
            ));
        }
    }
    if config.run.epochs == 0 {
        issues.push("run.epochs", "must be at least 1");
    }
    let restarts = &config.schedule.restarts;
    if restarts.iter().any(|&r| r == 0 || r >= config.run.epochs)
        || restarts.windows(2).any(|w| w[0] >= w[1])
    {
        issues.push(
            "schedule.restarts",
            format!(
                "must be increasing epochs strictly between 0 and run.epochs ({})",
                config.run.epochs
            ),
        );
    }
    if let Err(e) = crate::backend::check(config.run.backend) {
        issues.push("run.backend", e.to_string());
    }

    // Roles: the student always; the others as the stack needs them.
    struct Merged {
        trained_in: Option<String>,
        pretrained: Vec<String>,
        bn: BnMode,
        bn_key: Option<String>,
        lr: Option<f64>,
        used_by: Vec<String>,
    }
    let mut merged: BTreeMap<String, Merged> = BTreeMap::new();
    merged.insert(
        "student".into(),
        Merged {
            trained_in: Some(MAIN_PHASE.into()),
            pretrained: vec![],
            bn: BnMode::Eval,
            bn_key: None,
            lr: None,
            used_by: vec!["task loss".into()],
        },
    );
    if !config.networks.contains_key("student") {
        issues.push("networks.student", "every run needs a [networks.student]");
    }
    for m in &methods {
        for need in &m.needs.roles {
            if !config.networks.contains_key(&need.role) {
                issues.push(
                    &need.key,
                    format!(
                        "names role `{}`, but there is no [networks.{}]",
                        need.role, need.role
                    ),
                );
                continue;
            }
            let entry = merged.entry(need.role.clone()).or_insert(Merged {
                trained_in: None,
                pretrained: vec![],
                bn: BnMode::Eval,
                bn_key: None,
                lr: None,
                used_by: vec![],
            });
            if need.lr.is_some() {
                entry.lr = need.lr;
            }
            if let Some(phase) = &need.trained_in {
                match &entry.trained_in {
                    Some(existing) if existing != phase => issues.push(
                        &need.key,
                        format!("trains role `{}` in phase `{phase}`, but it is already trained in `{existing}`", need.role),
                    ),
                    _ => entry.trained_in = Some(phase.clone()),
                }
            }
            if need.pretrained {
                entry.pretrained.push(need.key.clone());
            }
            if need.bn == BnMode::Train {
                entry.bn = BnMode::Train;
                entry.bn_key = Some(need.key.clone());
            }
            entry.used_by.push(m.instance.clone());
        }
    }
    for (role, entry) in &merged {
        if entry.trained_in.is_some()
            && entry.bn == BnMode::Train
            && let Some(key) = &entry.bn_key
        {
            issues.push(key, format!("asks for role `{role}` frozen with BatchNorm in training mode, but it is trained"));
        }
    }

    let (num_classes, in_channels) = data
        .as_ref()
        .map(|d| (d.train.num_classes, d.train.channels))
        .unwrap_or((10, 1));
    let input_size = config.data.input_size;
    let spec = ModelSpec {
        num_classes,
        in_channels,
    };
    let mut role_names: Vec<&String> = config.networks.keys().collect();
    role_names.sort_by_key(|r| (r.as_str() != "student", r.as_str()));
    let mut roles = Vec::new();
    for role in role_names {
        let network = &config.networks[role];
        let Some(entry) = merged.get(role) else {
            warnings.push(format!("[networks.{role}] is not used by the student or any method in `stack`; it is not built"));
            continue;
        };
        let arch_key = format!("networks.{role}.arch");
        let Some(zoo_entry) = zoo::find(&network.arch) else {
            let names = zoo::names();
            let closest = names
                .iter()
                .map(|n| (strsim::levenshtein(n, &network.arch), *n))
                .min()
                .filter(|(d, _)| *d <= 3)
                .map(|(_, n)| format!(" (did you mean `{n}`?)"))
                .unwrap_or_default();
            issues.push(
                &arch_key,
                format!(
                    "unknown architecture `{}`{closest}; `kd models` lists: {}",
                    network.arch,
                    names.join(", ")
                ),
            );
            continue;
        };
        let arch = (zoo_entry.arch)(spec);
        let planned = PlannedNetwork {
            role: role.clone(),
            arch_name: zoo_entry.name.to_string(),
            taps: arch.tap_shapes(input_size, input_size),
            arch,
            spec,
            has_checkpoint: network.checkpoint.is_some(),
        };
        let checkpoint_key = format!("networks.{role}.checkpoint");
        let checkpoint = match &network.checkpoint {
            None => {
                for key in &entry.pretrained {
                    issues.push(
                        &checkpoint_key,
                        format!("role `{role}` must start from a checkpoint ({key} needs a trained network); set {checkpoint_key}"),
                    );
                }
                None
            }
            Some(reference) if import::is_pytorch_checkpoint(reference) => {
                // A PyTorch file: imported once into the run root's cache, then used as any
                // kd checkpoint (the import checks architecture, classes and channels).
                if options.allow_missing_checkpoints && !reference.exists() {
                    warnings.push(format!(
                        "{checkpoint_key}: {} does not exist yet; assumed to be produced before training",
                        display_path(reference)
                    ));
                    None
                } else {
                    let dir = config.run.output_dir.join("imports");
                    let device = burn::tensor::Device::flex();
                    match import::cached_import(reference, zoo_entry.name, spec, &dir, &device) {
                        Ok(cached) => Some((cached, import::IMPORTED_ROLE.to_string())),
                        Err(e) => {
                            issues.push(&checkpoint_key, e.to_string());
                            None
                        }
                    }
                }
            }
            Some(reference) => {
                let (path, inner) = checkpoint::split_reference(reference);
                match checkpoint::read_header(&path) {
                    Err(CheckpointError::Io { source, .. })
                        if options.allow_missing_checkpoints && source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        warnings.push(format!(
                            "{checkpoint_key}: {} does not exist yet; assumed to be produced before training",
                            display_path(&path)
                        ));
                    }
                    Err(e) => issues.push(&checkpoint_key, e.to_string()),
                    Ok(header) => match header.network(&inner) {
                        None => {
                            let have: Vec<&str> = header.networks.iter().map(|n| n.role.as_str()).collect();
                            issues.push(
                                &checkpoint_key,
                                format!("{} holds no role `{inner}` (it holds {})", display_path(&path), have.join(", ")),
                            )
                        }
                        Some(stored) if stored.arch != planned.arch_name => issues.push(
                            &checkpoint_key,
                            format!(
                                "{} holds a {} for role `{inner}`, but networks.{role}.arch is {}",
                                display_path(&path),
                                stored.arch,
                                planned.arch_name
                            ),
                        ),
                        Some(stored) if (stored.num_classes, stored.in_channels) != (num_classes, in_channels) => issues.push(
                            &checkpoint_key,
                            format!(
                                "{} holds a network for {} classes and {} channel(s); the data has {num_classes} and {in_channels}",
                                display_path(&path),
                                stored.num_classes,
                                stored.in_channels
                            ),
                        ),
                        Some(_) => {}
                    },
                }
                Some((path, inner))
            }
        };
        if let Some(lr) = network.lr
            && !(lr.is_finite() && lr >= 0.0)
        {
            issues.push(
                &format!("networks.{role}.lr"),
                "must be a non-negative number",
            );
        }
        roles.push(RolePlan {
            network: planned,
            trained_in: entry.trained_in.clone(),
            bn: entry.bn,
            checkpoint,
            // The role's own key first, then the rate a method suggests, then the run's.
            lr: network.lr.or(entry.lr).unwrap_or(config.optim.lr),
            ce_weight: network.ce_weight.unwrap_or(config.loss.ce_weight),
            used_by: entry.used_by.clone(),
        });
    }
    let networks: Vec<PlannedNetwork> = roles.iter().map(|r| r.network.clone()).collect();

    // Taps, then each method's own checks.
    for m in &methods {
        for tap in &m.needs.taps {
            if let Some(network) = networks.iter().find(|n| n.role == tap.role)
                && network.tap(&tap.tap).is_none()
            {
                let known: Vec<&str> = network.taps.iter().map(|t| t.name.as_str()).collect();
                issues.push(
                    &tap.key,
                    format!(
                        "{} ({}) has no tap `{}`; it has {}",
                        tap.role,
                        network.arch_name,
                        tap.tap,
                        known.join(", ")
                    ),
                );
            }
        }
    }
    let mut phases = vec![PhaseSpec {
        name: MAIN_PHASE.into(),
        own_batch: false,
        from_epoch: 0,
    }];
    for m in &methods {
        for phase in &m.needs.phases {
            if phases.iter().any(|p| p.name == phase.name) {
                issues.push(
                    &format!("method.{}.kind", m.instance),
                    format!("phase `{}` is declared twice", phase.name),
                );
            } else {
                phases.push(phase.clone());
            }
        }
    }
    if issues.list.is_empty()
        && let Some(data) = &data
    {
        let view = PlanView {
            networks: &networks,
            input_size,
            num_classes: data.train.num_classes,
            in_channels: data.train.channels,
            config,
        };
        for m in &methods {
            for mut issue in m.method.check(&view) {
                if issue.source.is_none() {
                    issue.source = issue
                        .key
                        .as_deref()
                        .and_then(|k| source_of(&loaded.figment, k));
                }
                issues.list.push(issue);
            }
        }
    }
    if !issues.list.is_empty() {
        return Err(ConfigError {
            issues: issues.list,
        });
    }
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

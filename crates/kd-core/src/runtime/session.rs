//! A run's machinery, apart from its loop: the role networks built from the plan, the methods
//! initialised on them, one phase step (`run_phase`), and checkpoints written and restored.
//!
//! The trainer (`trainer.rs`) drives it over the data; `kd time` (`timing.rs`) drives it over
//! synthetic batches to measure the cost of a step.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};

use super::checkpoint::{self, CheckpointHeader, NetworkEntry};
use super::error::TrainError;
use super::plan::{MethodInstance, RunPlan};
use super::roles::{RoleNet, Roles, materialize};
use super::state::TrainState;
use crate::data::Batch;
use crate::loss::cross_entropy;
use crate::method::{InitContext, MAIN_PHASE, Part, PhaseSpec, PlanView, StepContext, Trainable};

/// Builds every role's network from the plan, loading checkpoints, freezing what never trains.
/// With `load_checkpoints = false`, a checkpoint that does not exist yet is skipped (timing a
/// run whose teacher another run will produce; the cost of a step does not depend on weights).
pub(super) fn build_roles(
    plan: &RunPlan,
    device: &Device,
    load_checkpoints: bool,
) -> Result<Roles, TrainError> {
    let mut roles = Roles::default();
    for r in &plan.roles {
        let network = r.network.arch.init(device);
        materialize(&network);
        let phase = r
            .trained_in
            .clone()
            .unwrap_or_else(|| MAIN_PHASE.to_string());
        let mut net = Trainable::new(&r.network.role, &phase, network, r.lr, &plan.sgd);
        if let Some((path, inner)) = &r.checkpoint
            && (load_checkpoints || path.is_file())
        {
            load_role_weights(&mut net, path, inner)?;
        }
        roles.insert(RoleNet {
            name: r.network.role.clone(),
            arch_name: r.network.arch_name.clone(),
            spec: r.network.spec,
            trained_in: r.trained_in.clone(),
            bn: r.bn,
            ce_weight: r.ce_weight,
            net,
        });
    }
    Ok(roles)
}

/// Lets every method build its own modules on the role networks.
pub(super) fn init_methods(
    plan: &mut RunPlan,
    roles: &Roles,
    device: &Device,
    num_classes: usize,
    in_channels: usize,
) -> Result<(), TrainError> {
    let view_networks = plan.networks.clone();
    let view_config = plan.config.clone();
    let view = PlanView {
        networks: &view_networks,
        input_size: plan.data.input_size,
        num_classes,
        in_channels,
        config: &view_config,
    };
    for m in plan.methods.iter_mut() {
        let mut ctx = InitContext {
            device,
            roles,
            sgd: plan.sgd,
            base_lr: plan.config.optim.lr,
            plan: view,
            seed: plan.config.run.seed,
        };
        m.method
            .init(&mut ctx)
            .map_err(|source| TrainError::Method {
                instance: m.instance.clone(),
                source,
            })?;
    }
    Ok(())
}

/// Every part of the run by checkpoint name: roles as `role:<name>`, method modules as
/// `part:<name>`.
pub(super) fn parts_mut<'a>(
    roles: &'a mut Roles,
    methods: &'a mut [MethodInstance],
) -> Vec<(String, bool, &'a mut dyn Part)> {
    let mut parts: Vec<(String, bool, &'a mut dyn Part)> = roles
        .iter_mut()
        .map(|r| {
            let trained = r.trained_in.is_some();
            (
                format!("role:{}", r.name),
                trained,
                &mut r.net as &mut dyn Part,
            )
        })
        .collect();
    for m in methods.iter_mut() {
        for part in m.method.parts() {
            let trained = part.is_trained();
            parts.push((format!("part:{}", part.name()), trained, part));
        }
    }
    parts
}

pub(super) fn save_checkpoint(
    path: &Path,
    plan_name: &str,
    roles: &mut Roles,
    methods: &mut [MethodInstance],
    state: &TrainState,
) -> Result<(), TrainError> {
    // Finite losses can still send non-finite gradients into the weights; never let such weights
    // replace the last good checkpoint.
    for (name, _, part) in parts_mut(roles, methods) {
        if !part.is_finite() {
            return Err(TrainError::NonFinite {
                term: format!("weights of {name}"),
                value: f64::NAN,
                epoch: state.epoch,
                batch: state.next_batch.saturating_sub(1),
                step: state.global_step,
                last_good: if path.is_file() {
                    path.display().to_string()
                } else {
                    "none (no checkpoint was written yet)".into()
                },
            });
        }
    }
    let networks = roles
        .iter()
        .map(|r| NetworkEntry {
            role: r.name.clone(),
            arch: r.arch_name.clone(),
            num_classes: r.spec.num_classes,
            in_channels: r.spec.in_channels,
        })
        .collect();
    let mut blobs = Vec::new();
    for (name, trained, part) in parts_mut(roles, methods) {
        blobs.push((format!("{name}/module"), part.module_bytes()?));
        if trained {
            blobs.push((format!("{name}/optimizer"), part.optimizer_bytes()?));
        }
    }
    let header = CheckpointHeader {
        format: checkpoint::FORMAT_VERSION,
        kd_version: env!("CARGO_PKG_VERSION").into(),
        run: plan_name.into(),
        networks,
        state: state.clone(),
        blobs: Vec::new(),
    };
    checkpoint::write(path, header, blobs)?;
    Ok(())
}

pub(super) fn restore_checkpoint(
    path: &Path,
    roles: &mut Roles,
    methods: &mut [MethodInstance],
) -> Result<TrainState, TrainError> {
    let (header, blobs) = checkpoint::read(path)?;
    let mut blobs: HashMap<String, Vec<u8>> = blobs.into_iter().collect();
    for (name, _, part) in parts_mut(roles, methods) {
        let module = blobs.remove(&format!("{name}/module")).ok_or_else(|| {
            TrainError::CheckpointMismatch {
                path: path.into(),
                message: format!("holds no `{name}`; was it written by another configuration?"),
            }
        })?;
        let optimizer = blobs.remove(&format!("{name}/optimizer"));
        part.restore(module, optimizer)
            .map_err(|e| TrainError::CheckpointMismatch {
                path: path.into(),
                message: e.to_string(),
            })?;
    }
    Ok(header.state)
}

/// Loads the network stored for `inner` in a checkpoint file into a role's part.
pub(super) fn load_role_weights(
    part: &mut dyn Part,
    path: &Path,
    inner: &str,
) -> Result<(), TrainError> {
    let (_, blobs) = checkpoint::read(path)?;
    let name = checkpoint::role_module_blob(inner);
    let bytes = blobs
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| b)
        .ok_or_else(|| TrainError::CheckpointMismatch {
            path: path.into(),
            message: format!("holds no weights for role `{inner}`"),
        })?;
    part.restore(bytes, None)
        .map_err(|e| TrainError::CheckpointMismatch {
            path: path.into(),
            message: e.to_string(),
        })
}

pub(super) struct PhaseOutcome {
    pub(super) loss: f64,
    pub(super) terms: Vec<(String, f64)>,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn run_phase(
    phase: &PhaseSpec,
    batch: &Batch,
    device: &Device,
    num_classes: usize,
    seed: u64,
    epochs: usize,
    state: &TrainState,
    factor: f64,
    roles: &mut Roles,
    methods: &mut [MethodInstance],
    last_good: &Option<PathBuf>,
) -> Result<PhaseOutcome, TrainError> {
    let images = Tensor::<4>::from_data(TensorData::new(batch.images.clone(), batch.shape), device);
    let labels = Tensor::<1, Int>::from_data(
        TensorData::new(batch.labels.clone(), [batch.labels.len()]),
        device,
    );
    let mut cache = HashMap::new();
    let mut terms: Vec<(String, Tensor<1>, f64)> = Vec::new();
    {
        let mut ctx = StepContext::new(
            &phase.name,
            state.epoch,
            epochs,
            batch.index,
            state.global_step,
            images,
            labels.clone(),
            num_classes,
            seed,
            roles,
            &mut cache,
        );
        for m in methods.iter_mut() {
            ctx.for_instance(&m.instance);
            m.method
                .begin_step(&mut ctx)
                .map_err(|source| TrainError::Method {
                    instance: m.instance.clone(),
                    source,
                })?;
        }
        if phase.name == MAIN_PHASE {
            let trained: Vec<(String, f64)> = roles
                .iter()
                // A zero weight skips the term entirely: no forward is spent on it.
                .filter(|r| r.trained_in.as_deref() == Some(MAIN_PHASE) && r.ce_weight != 0.0)
                .map(|r| (r.name.clone(), r.ce_weight))
                .collect();
            for (role, ce_weight) in trained {
                let logits = ctx
                    .features(&role)
                    .map_err(|source| TrainError::Method {
                        instance: "task loss".into(),
                        source,
                    })?
                    .logits
                    .clone();
                terms.push((
                    format!("ce/{role}"),
                    cross_entropy(logits, labels.clone()),
                    ce_weight,
                ));
            }
        }
        for m in methods.iter_mut() {
            ctx.for_instance(&m.instance);
            let produced = m
                .method
                .terms(&mut ctx)
                .map_err(|source| TrainError::Method {
                    instance: m.instance.clone(),
                    source,
                })?;
            for term in produced {
                terms.push((
                    format!("{}/{}", m.instance, term.name),
                    term.value,
                    m.weight * term.weight,
                ));
            }
        }
    }
    let mut outcome = PhaseOutcome {
        loss: 0.0,
        terms: Vec::with_capacity(terms.len()),
    };
    let mut total: Option<Tensor<1>> = None;
    for (name, value, weight) in terms {
        let v = value.clone().into_scalar::<f32>() as f64;
        if !v.is_finite() {
            return Err(TrainError::NonFinite {
                term: name,
                value: v,
                epoch: state.epoch,
                batch: batch.index,
                step: state.global_step,
                last_good: last_good
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "none (no checkpoint was written yet)".into()),
            });
        }
        outcome.loss += weight * v;
        outcome.terms.push((name, v));
        if weight != 0.0 {
            let weighted = value.mul_scalar(weight);
            total = Some(match total {
                None => weighted,
                Some(t) => t + weighted,
            });
        }
    }
    if let Some(total) = total.filter(|t| t.is_tracked()) {
        let mut grads = total.backward();
        for role in roles
            .iter_mut()
            .filter(|r| r.trained_in.as_deref() == Some(phase.name.as_str()))
        {
            let lr = role.net.base_lr() * factor;
            role.net.step(lr, &mut grads);
        }
        for m in methods.iter_mut() {
            for part in m.method.parts() {
                if part.phase() == phase.name {
                    let lr = part.base_lr() * factor;
                    part.step(lr, &mut grads);
                }
            }
        }
    }
    Ok(outcome)
}

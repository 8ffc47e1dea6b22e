//! One phase of one training step: the features every network computes at most once (into the
//! step's cache), the task cross-entropy of every role the phase trains, every method's terms
//! (checked against what it declared), their weighted sum, one backward, and one optimiser step
//! per part trained in the phase.
//!
//! The trainer (`trainer.rs`) calls it for every phase of every batch; `kd time`
//! (`timing.rs`) over synthetic batches.

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::{Device, Int, Tensor, TensorData};

use super::error::TrainError;
use super::plan::MethodInstance;
use crate::data::Batch;
use crate::loss::cross_entropy;
use crate::method::{MAIN_PHASE, Part, PhaseSpec, Roles, StepContext, StepPosition};

/// What a phase step needs to know besides its batch and its networks.
pub(super) struct StepSettings<'a> {
    /// Where the step is in the run.
    pub(super) position: StepPosition,
    /// The schedule's learning-rate factor at this step.
    pub(super) lr_factor: f64,
    /// The run seed (method randomness derives from it).
    pub(super) seed: u64,
    /// The autodiff device.
    pub(super) device: &'a Device,
    /// The last checkpoint written, named when a loss is not finite.
    pub(super) last_good: Option<&'a Path>,
}

/// What a phase step reports: its weighted loss and every term's unweighted value.
pub(super) struct PhaseOutcome {
    pub(super) loss: f64,
    pub(super) terms: Vec<(String, f64)>,
}

/// A term of the step: metrics name, value `[1]`, weight in the sum.
type WeightedTerm = (String, Tensor<1>, f64);

/// Runs one phase of one step over `batch` and steps every part the phase trains.
pub(super) fn run_phase(
    phase: &PhaseSpec,
    batch: &Batch,
    settings: &StepSettings<'_>,
    roles: &mut Roles,
    methods: &mut [MethodInstance],
) -> Result<PhaseOutcome, TrainError> {
    let terms = collect_terms(phase, batch, settings, roles, methods)?;
    let mut outcome = PhaseOutcome {
        loss: 0.0,
        terms: Vec::with_capacity(terms.len()),
    };
    let mut total: Option<Tensor<1>> = None;
    for (name, value, weight) in terms {
        let v = value.clone().into_scalar::<f32>() as f64;
        if !v.is_finite() {
            let p = settings.position;
            let batch = batch.index;
            return Err(TrainError::NonFinite {
                term: name,
                value: v,
                epoch: p.epoch,
                batch,
                step: p.global_step,
                last_good: settings
                    .last_good
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
        let factor = settings.lr_factor;
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

/// Every term of the phase: the task cross-entropy of each role the main phase trains, then
/// each method's, in stack order.
fn collect_terms(
    phase: &PhaseSpec,
    batch: &Batch,
    settings: &StepSettings<'_>,
    roles: &Roles,
    methods: &mut [MethodInstance],
) -> Result<Vec<WeightedTerm>, TrainError> {
    let device = settings.device;
    let images = Tensor::<4>::from_data(TensorData::new(batch.images.clone(), batch.shape), device);
    let labels = Tensor::<1, Int>::from_data(
        TensorData::new(batch.labels.clone(), [batch.labels.len()]),
        device,
    );
    let mut cache = HashMap::new();
    let mut terms: Vec<WeightedTerm> = Vec::new();
    let position = StepPosition {
        batch: batch.index,
        ..settings.position
    };
    let mut ctx = StepContext::new(
        &phase.name,
        position,
        images,
        labels.clone(),
        settings.seed,
        roles,
        &mut cache,
    );
    let method_error = |instance: &str| {
        let instance = instance.to_string();
        move |source| TrainError::Method { instance, source }
    };
    for m in methods.iter_mut() {
        ctx.for_instance(&m.instance);
        m.method
            .begin_step(&mut ctx)
            .map_err(method_error(&m.instance))?;
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
                .map_err(method_error("task loss"))?
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
            .map_err(method_error(&m.instance))?;
        m.needs
            .check_terms(&phase.name, &produced)
            .map_err(method_error(&m.instance))?;
        for term in produced {
            terms.push((
                format!("{}/{}", m.instance, term.name),
                term.value,
                m.weight * term.weight,
            ));
        }
    }
    Ok(terms)
}

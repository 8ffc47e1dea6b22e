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

use super::error::{RunPosition, TrainError};
use super::plan::MethodInstance;
use crate::data::Batch;
use crate::loss::cross_entropy;
use crate::method::{MAIN_PHASE, MethodError, Part, PhaseSpec, Roles, StepContext, StepPosition};

/// What a phase step needs to know besides its batch and its networks.
pub(super) struct StepSettings<'a> {
    /// Where the step is in the run.
    pub(super) position: StepPosition,
    /// The schedule's learning-rate factor at this step.
    pub(super) lr_factor: f64,
    /// Batches per epoch (for the position errors name).
    pub(super) batches: usize,
    /// The run seed (method randomness derives from it).
    pub(super) seed: u64,
    /// The autodiff device.
    pub(super) device: &'a Device,
    /// The last checkpoint written, named when a loss is not finite.
    pub(super) last_good: Option<&'a Path>,
}

/// What a phase step reports: its weighted loss, every term's unweighted value and, parallel to
/// it, its weight; the first `task_terms` terms are the task cross-entropies.
pub(super) struct PhaseOutcome {
    pub(super) loss: f64,
    pub(super) terms: Vec<(String, f64)>,
    pub(super) weights: Vec<f64>,
    pub(super) task_terms: usize,
}

/// A method term contributing less than this fraction of the task cross-entropy is negligible.
const NEGLIGIBLE: f64 = 1e-3;

/// The method terms of a main-phase step whose weighted value is under [`NEGLIGIBLE`] of the
/// task cross-entropy's, as `(term, contribution, cross-entropy)`: a weight chosen for another
/// magnitude, with which the term would do nothing. Zero-weight terms (logged only) are not
/// contributions; a step without cross-entropy has nothing to compare with.
pub(super) fn negligible_terms(outcome: &PhaseOutcome) -> Vec<(String, f64, f64)> {
    let contributions = outcome
        .terms
        .iter()
        .zip(&outcome.weights)
        .map(|((name, value), weight)| (name, weight * value, *weight));
    let ce: f64 = contributions
        .clone()
        .take(outcome.task_terms)
        .map(|(_, c, _)| c.abs())
        .sum();
    if ce == 0.0 {
        return Vec::new();
    }
    contributions
        .skip(outcome.task_terms)
        .filter(|(_, c, weight)| *weight != 0.0 && c.abs() < NEGLIGIBLE * ce)
        .map(|(name, c, _)| (name.clone(), c, ce))
        .collect()
}

/// A term of the step: metrics name, value `[1]`, weight in the sum.
type WeightedTerm = (String, Tensor<1>, f64);

/// The error of a method (or of the task loss) during a step, naming it; the name is copied
/// only when there is an error.
fn method_error(instance: &str) -> impl FnOnce(MethodError) -> TrainError + '_ {
    move |source| TrainError::Method {
        instance: instance.to_string(),
        source,
    }
}

/// Runs one phase of one step over `batch` and steps every part the phase trains.
pub(super) fn run_phase(
    phase: &PhaseSpec,
    batch: &Batch,
    settings: &StepSettings<'_>,
    roles: &mut Roles,
    methods: &mut [MethodInstance],
) -> Result<PhaseOutcome, TrainError> {
    let (terms, task_terms) = collect_terms(phase, batch, settings, roles, methods)?;
    let mut outcome = PhaseOutcome {
        loss: 0.0,
        terms: Vec::with_capacity(terms.len()),
        weights: Vec::with_capacity(terms.len()),
        task_terms,
    };
    let mut total: Option<Tensor<1>> = None;
    for (name, value, weight) in terms {
        let v = value.clone().into_scalar::<f32>() as f64;
        if !v.is_finite() {
            let p = settings.position;
            return Err(TrainError::NonFinite {
                term: name,
                value: v,
                at: RunPosition::of_step(
                    p.epoch,
                    p.epochs,
                    batch.index,
                    settings.batches,
                    p.global_step,
                ),
                last_good: settings
                    .last_good
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "none (no checkpoint was written yet)".into()),
            });
        }
        outcome.loss += weight * v;
        outcome.terms.push((name, v));
        outcome.weights.push(weight);
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
/// each method's, in stack order; and how many of them are cross-entropies.
fn collect_terms(
    phase: &PhaseSpec,
    batch: &Batch,
    settings: &StepSettings<'_>,
    roles: &Roles,
    methods: &mut [MethodInstance],
) -> Result<(Vec<WeightedTerm>, usize), TrainError> {
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
    let task_terms = terms.len();
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
    Ok((terms, task_terms))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An outcome whose first `task_terms` terms are cross-entropies: `(name, value, weight)`.
    fn outcome(terms: &[(&str, f64, f64)], task_terms: usize) -> PhaseOutcome {
        PhaseOutcome {
            loss: 0.0,
            terms: terms.iter().map(|(n, v, _)| (n.to_string(), *v)).collect(),
            weights: terms.iter().map(|(_, _, w)| *w).collect(),
            task_terms,
        }
    }

    #[test]
    fn a_term_under_a_thousandth_of_the_cross_entropy_is_negligible() {
        let found = negligible_terms(&outcome(
            &[
                ("ce/student", 2.0, 1.0),
                ("ce/peer", 0.6, 0.5),
                ("kd/kl", 0.01, 1.0),
                ("sp/sim", 1e-3, 0.1),
                ("iakd/swap_mask", 0.0, 0.0),
            ],
            2,
        ));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "sp/sim");
        assert!((found[0].1 - 1e-4).abs() < 1e-15, "{found:?}");
        assert!((found[0].2 - 2.3).abs() < 1e-12, "{found:?}");
        // Nothing to compare with without a cross-entropy.
        let without = outcome(&[("iakd/ce_hybrid", 2.0, 1.0), ("x", 1e-9, 1.0)], 0);
        assert!(negligible_terms(&without).is_empty());
    }
}

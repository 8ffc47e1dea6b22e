//! The method plugin API: what a distillation method declares and what it computes.
//!
//! A method is a loss contributor, not a training loop. At plan time it declares its [`Needs`]
//! (roles it reads or trains, taps, extra optimisation phases, the terms it will log, extra
//! outputs to evaluate) and checks them against the planned networks; at run time it may own
//! trainable modules ([`Part`]s), and each step it returns named [`Term`]s computed from a
//! [`StepContext`]. The runtime sums `instance weight × term weight × term` with the task loss,
//! runs one backward per phase and steps every module trained in that phase. Plugins implement
//! [`Method`]; the runtime (`runtime/`) is the only caller.

use burn::tensor::Tensor;

use super::context::{EvalContext, InitContext, PlanView, StepContext};
use super::error::MethodError;
use super::needs::Needs;
use super::part::Part;
use super::term::Term;
use crate::config::ConfigIssue;

/// A distillation method instance.
pub trait Method: Send {
    /// What the instance needs; called at plan time, before any tensor exists.
    fn needs(&self) -> Needs;

    /// Checks the planned networks (architectures, tap shapes) fit the method. Plan time.
    fn check(&self, _plan: &PlanView<'_>) -> Vec<ConfigIssue> {
        Vec::new()
    }

    /// Allocates method-owned modules, once the role networks exist.
    fn init(&mut self, _ctx: &mut InitContext<'_>) -> Result<(), MethodError> {
        Ok(())
    }

    /// Called at the start of every phase step, before any network of the step has run (so
    /// before BatchNorm statistics move): the place to take snapshots or update schedules.
    fn begin_step(&mut self, _ctx: &mut StepContext<'_>) -> Result<(), MethodError> {
        Ok(())
    }

    /// The terms of one step of one phase (`ctx.phase()`); none for phases the method is not
    /// part of.
    fn terms(&mut self, ctx: &mut StepContext<'_>) -> Result<Vec<Term>, MethodError>;

    /// Trainable modules the method owns, for the optimiser steps and checkpoints.
    fn parts(&mut self) -> Vec<&mut dyn Part> {
        Vec::new()
    }

    /// Logits of the extra outputs declared in [`Needs::eval_outputs`] on one evaluation batch.
    fn evaluate(
        &self,
        _ctx: &mut EvalContext<'_>,
    ) -> Result<Vec<(String, Tensor<2>)>, MethodError> {
        Ok(Vec::new())
    }
}

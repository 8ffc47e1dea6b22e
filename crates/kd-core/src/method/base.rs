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
use super::part::Part;
use crate::config::ConfigIssue;

/// The phase every run has: the student's (and every main-phase role's) update.
pub const MAIN_PHASE: &str = "main";

/// How a network behaves where it is not being trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BnMode {
    /// BatchNorm uses its running statistics and leaves them alone (a properly frozen network).
    #[default]
    Eval,
    /// BatchNorm normalises with batch statistics and updates its running statistics, while no
    /// weight receives a gradient (SOKD's official code runs its teacher trunk this way).
    Train,
}

/// A network role a method reads or trains.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleNeed {
    /// Role name: a key of `networks` in the config.
    pub role: String,
    /// The config key that made the method ask for it (for error messages), e.g.
    /// `method.kd.teacher`.
    pub key: String,
    /// The phase in which this method trains the role, if it trains it.
    pub trained_in: Option<String>,
    /// Whether the role must start from a checkpoint.
    pub pretrained: bool,
    /// BatchNorm behaviour where the role is not being trained.
    pub bn: BnMode,
    /// The learning rate the method suggests for the role where it trains it (FFKD's teacher);
    /// `networks.<role>.lr` overrides it.
    pub lr: Option<f64>,
}

impl RoleNeed {
    /// A frozen, pretrained role (a teacher).
    pub fn frozen_pretrained(role: &str, key: &str) -> Self {
        RoleNeed {
            role: role.into(),
            key: key.into(),
            trained_in: None,
            pretrained: true,
            bn: BnMode::Eval,
            lr: None,
        }
    }

    /// A role trained in the main phase from its configured initialisation (a peer).
    pub fn trained(role: &str, key: &str) -> Self {
        RoleNeed {
            role: role.into(),
            key: key.into(),
            trained_in: Some(super::MAIN_PHASE.into()),
            pretrained: false,
            bn: BnMode::Eval,
            lr: None,
        }
    }
}

/// A feature tap a method reads (`stage2` of `teacher`, say), checked to exist at plan time.
#[derive(Debug, Clone, PartialEq)]
pub struct TapNeed {
    /// Role.
    pub role: String,
    /// Tap name (`stem`, `stageN`, `pooled`, `logits`).
    pub tap: String,
    /// The config key behind the request.
    pub key: String,
}

/// An optimisation phase besides [`MAIN_PHASE`], run after it every step.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseSpec {
    /// Unique name, conventionally `<instance>.<what>`.
    pub name: String,
    /// Draw a fresh training batch for this phase instead of reusing the main phase's.
    pub own_batch: bool,
    /// First epoch (0-based) in which the phase runs.
    pub from_epoch: usize,
}

/// A term the method will log, declared so the plan can print the loss and the metrics files
/// can fix their columns.
#[derive(Debug, Clone, PartialEq)]
pub struct TermSpec {
    /// Name, unique within the instance (`kl`, `ce_branch`, ...).
    pub name: String,
    /// Phase the term belongs to.
    pub phase: String,
    /// The formula, for the plan (`T²·KL(p_teacher ‖ p_student), T=4`).
    pub formula: String,
}

/// Everything a method instance asks of the runtime.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Needs {
    /// Roles read or trained.
    pub roles: Vec<RoleNeed>,
    /// Feature taps read.
    pub taps: Vec<TapNeed>,
    /// Extra optimisation phases.
    pub phases: Vec<PhaseSpec>,
    /// Terms it logs.
    pub terms: Vec<TermSpec>,
    /// Names of extra outputs it evaluates each epoch (`ensemble`, `branch`, ...).
    pub eval_outputs: Vec<String>,
    /// Things the plan and the summary should say about this run (a non-canonical option).
    pub remarks: Vec<String>,
}

/// One named loss term of one step.
#[derive(Debug, Clone)]
pub struct Term {
    /// Name declared in [`Needs::terms`].
    pub name: String,
    /// Scalar value, `[1]`, on the autodiff device.
    pub value: Tensor<1>,
    /// Weight within the instance (the instance weight multiplies it again).
    pub weight: f64,
}

impl Term {
    /// A term of weight 1.
    pub fn new(name: &str, value: Tensor<1>) -> Self {
        Term {
            name: name.into(),
            value,
            weight: 1.0,
        }
    }

    /// A term with its own weight.
    pub fn weighted(name: &str, value: Tensor<1>, weight: f64) -> Self {
        Term {
            name: name.into(),
            value,
            weight,
        }
    }
}

/// Errors a method reports at run time.
#[derive(Debug, thiserror::Error)]
pub enum MethodError {
    /// The method asked for a role or tap the runtime does not have (a plan bug).
    #[error("{0}")]
    Missing(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

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

    /// Read-only access to the same parts (for saving and counting).
    fn parts_ref(&self) -> Vec<&dyn Part> {
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

//! What a method author needs, in one import: `use kd_core::prelude::*;`.
//!
//! The method API and its toolkit ([`crate::method`]), the loss primitives ([`crate::loss`]),
//! the networks a method reads ([`crate::zoo`]), configuration errors, and burn's tensor types
//! as kd-core is built against them. Everything else in kd-core is for the runtime, the CLI and
//! the tests.

pub use crate::burn::module::Module;
pub use crate::burn::tensor::{Device, Int, Tensor};
pub use crate::config::{ConfigError, ConfigIssue, RunConfig};
pub use crate::loss::{cross_entropy, ensemble_log_probs, kl_to_target, soft_kl};
pub use crate::method::{
    BnMode, EvalContext, Frozen, InitContext, MAIN_PHASE, Method, MethodArgs, MethodError,
    MethodRegistration, Needs, Part, PhaseSpec, PlanView, PlannedNetwork, RoleNeed, StepContext,
    TapNeed, Term, TermSpec, Trainable, defaults_of, instance_key, materialize,
};
pub use crate::zoo::{Adapter, Features, Network, Staged, stage_tap};

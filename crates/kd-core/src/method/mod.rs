//! The method plugin API (`base.rs`), the registry plugins submit to (`registry.rs`), the
//! contexts methods compute in (`context.rs`), trainable parts (`part.rs`) and parameter parsing
//! (`args.rs`).

mod args;
mod base;
mod context;
mod part;
mod registry;

pub use args::MethodArgs;
pub use base::{
    BnMode, MAIN_PHASE, Method, MethodError, Needs, PhaseSpec, RoleNeed, TapNeed, Term, TermSpec,
};
pub use context::{EvalContext, InitContext, PlanView, PlannedNetwork, StepContext};
pub use part::{Frozen, Part, PartError, SgdSettings, Trainable, module_is_finite};
pub use registry::{MethodRegistration, Registry, RegistryError};

//! The method plugin API: the [`Method`] trait (`base.rs`), the [`Term`]s it returns
//! (`term.rs`), what a method declares at plan time (`needs.rs`), the registry plugins submit
//! to (`registry.rs`), the contexts methods compute in (`context.rs`), the role networks they
//! read (`roles.rs`), trainable parts (`part.rs`), parameter parsing (`args.rs`), the
//! run-time error (`error.rs`), and a test context for a plugin's own tests (`testing.rs`).

mod args;
mod base;
mod context;
mod error;
mod needs;
mod part;
pub(crate) mod registry;
mod roles;
mod term;
pub mod testing;

pub use args::MethodArgs;
pub use base::Method;
pub use context::{EvalContext, InitContext, PlanView, PlannedNetwork, StepContext, StepPosition};
pub use error::MethodError;
pub use needs::{
    BnMode, MAIN_PHASE, Needs, PhaseSpec, RoleNeed, SuggestedLr, TapNeed, TermSpec, instance_key,
};
pub use part::{Frozen, Part, PartError, SgdSettings, Trainable, materialize, module_is_finite};
pub use registry::{MethodRegistration, Registry, RegistryError, defaults_of};
pub use roles::{RoleNet, Roles};
pub use term::Term;

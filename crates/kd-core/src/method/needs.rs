//! What a method instance declares at plan time, before any tensor exists: the roles it reads
//! or trains ([`RoleNeed`]), the taps it reads ([`TapNeed`]), extra optimisation phases
//! ([`PhaseSpec`]), the terms it logs ([`TermSpec`]), extra evaluated outputs and remarks, all
//! gathered in [`Needs`]. The plan merges them over the stack and checks them.

use super::error::MethodError;
use super::term::Term;

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
    /// The learning rate the method suggests for the role where it trains it (FFKD's teacher),
    /// with the key that set it; `networks.<role>.lr` overrides it.
    pub lr: Option<SuggestedLr>,
}

/// A learning rate a method suggests for a role it trains, and the configuration key that set
/// it: `kd plan` names that key as the rate's source, and a conflict between two suggestions
/// names both. The key is the rate's own (FFKD's `method.<instance>.teacher_lr`), not
/// [`RoleNeed::key`], which names the key that binds the role.
#[derive(Debug, Clone, PartialEq)]
pub struct SuggestedLr {
    /// The base rate (a multiplier of the gradient, before the schedule's factor).
    pub value: f64,
    /// The full key that set it, e.g. `method.ffkd.teacher_lr` (see [`instance_key`]).
    pub key: String,
}

impl SuggestedLr {
    /// The rate `value`, set by `method.<instance>.<key>`.
    pub fn new(value: f64, instance: &str, key: &str) -> Self {
        SuggestedLr {
            value,
            key: instance_key(instance, key),
        }
    }
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
            trained_in: Some(MAIN_PHASE.into()),
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

impl TermSpec {
    /// A term of the main phase.
    pub fn main(name: &str, formula: impl Into<String>) -> Self {
        TermSpec::new(name, MAIN_PHASE, formula)
    }

    /// A term of a given phase.
    pub fn new(name: &str, phase: &str, formula: impl Into<String>) -> Self {
        TermSpec {
            name: name.into(),
            phase: phase.into(),
            formula: formula.into(),
        }
    }
}

/// The full key of one of an instance's keys, `method.<instance>.<key>`, as [`Needs`] and
/// [`crate::config::ConfigIssue`]s name them.
pub fn instance_key(instance: &str, key: &str) -> String {
    format!("method.{instance}.{key}")
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

impl Needs {
    /// Checks that every term a step returned for `phase` is declared for it in
    /// [`Needs::terms`] (the runtime calls it after every `terms()`; so does the test context).
    ///
    /// # Errors
    /// [`MethodError::UndeclaredTerm`] naming the first undeclared term.
    pub fn check_terms(&self, phase: &str, terms: &[Term]) -> Result<(), MethodError> {
        for term in terms {
            let declared = |t: &&TermSpec| t.phase == phase;
            if !self
                .terms
                .iter()
                .filter(declared)
                .any(|t| t.name == term.name)
            {
                let names: Vec<&str> = self
                    .terms
                    .iter()
                    .filter(declared)
                    .map(|t| t.name.as_str())
                    .collect();
                return Err(MethodError::UndeclaredTerm {
                    term: term.name.clone(),
                    phase: phase.to_string(),
                    declared: if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    },
                });
            }
        }
        Ok(())
    }
}

//! The `iakd` method: checks stage shapes at plan time, builds adapters if asked, and computes
//! the hybrid's loss each step.

use burn::module::Module;
use burn::tensor::Tensor;
use kd_core::config::{ConfigError, ConfigIssue, ScheduleKind};
use kd_core::loss::{cross_entropy, soft_kl};
use kd_core::method::materialize;
use kd_core::method::{
    InitContext, MAIN_PHASE, Method, MethodArgs, MethodError, Needs, Part, PlanView,
    PlannedNetwork, RoleNeed, StepContext, Term, TermSpec, Trainable,
};
use kd_core::zoo::layers::without_running_stat_updates;
use kd_core::zoo::{Adapter, Network, stage_tap};

use crate::config::{DecayUntil, IakdConfig, StudentBn, SwapBn};
use crate::hybrid::{StageAdapters, draw_swaps, hybrid_logits, swap_mask, swap_probability};

/// An `iakd` instance.
pub struct Iakd {
    config: IakdConfig,
    instance: String,
    adapters: Option<Trainable<StageAdapters>>,
    /// With `swap_bn = "batch"`: the teacher with its BatchNorm in training mode and no
    /// gradient (its weights are the frozen teacher's, which never change).
    batch_teacher: Option<Network>,
    decay_epochs: usize,
    stages: usize,
}

/// Builds an instance from its table.
pub fn build(args: &MethodArgs<'_>) -> Result<Box<dyn Method>, ConfigError> {
    let config: IakdConfig = args.parse()?;
    let mut issues = Vec::new();
    if !(config.temperature.is_finite() && config.temperature > 0.0) {
        issues.push(args.issue("temperature", "must be a positive number"));
    }
    if !(0.0..=1.0).contains(&config.p0) {
        issues.push(args.issue("p0", "a probability: between 0 and 1"));
    }
    for (key, value) in [
        ("kd_weight", config.kd_weight),
        ("ce_weight", config.ce_weight),
    ] {
        if !(value.is_finite() && value >= 0.0) {
            issues.push(args.issue(key, "must be a non-negative number"));
        }
    }
    if config.decay_epochs == Some(0) {
        issues.push(args.issue("decay_epochs", "must be at least 1"));
    }
    issues.extend(args.same_role_issue(&config.teacher, &config.student));
    if !issues.is_empty() {
        return Err(ConfigError { issues });
    }
    Ok(Box::new(Iakd {
        config,
        instance: args.instance.to_string(),
        adapters: None,
        batch_teacher: None,
        decay_epochs: 1,
        stages: 0,
    }))
}

/// The map that enters stage `i` and the one that leaves it, `[C, H, W]`.
fn stage_io(network: &PlannedNetwork, i: usize) -> ([usize; 3], [usize; 3]) {
    let tap = |name: &str| {
        let s = network.tap(name).expect("every stage has a tap");
        [s[0], s[1], s[2]]
    };
    let input = if i == 0 {
        tap("stem")
    } else {
        tap(&stage_tap(i - 1))
    };
    (input, tap(&stage_tap(i)))
}

fn dims(shape: [usize; 3]) -> String {
    format!("{}x{}x{}", shape[0], shape[1], shape[2])
}

impl Iakd {
    fn key(&self, key: &str) -> String {
        format!("method.{}.{key}", self.instance)
    }

    fn issue(&self, key: &str, message: String) -> ConfigIssue {
        ConfigIssue {
            key: Some(self.key(key)),
            source: None,
            message,
        }
    }
}

/// E_s: the configured value; else, with `decay_until = "milestone"`, the first multistep
/// milestone or half the run; with `"end"`, the run's length.
fn decay_epochs(config: &IakdConfig, plan: &PlanView<'_>) -> usize {
    let schedule = &plan.config.schedule;
    let epochs = plan.config.run.epochs;
    config
        .decay_epochs
        .unwrap_or_else(|| match (config.decay_until, schedule.kind) {
            (DecayUntil::End, _) => epochs.max(1),
            (DecayUntil::Milestone, ScheduleKind::Multistep) if !schedule.milestones.is_empty() => {
                schedule.milestones[0]
            }
            (DecayUntil::Milestone, _) => (epochs / 2).max(1),
        })
}

impl Method for Iakd {
    fn needs(&self) -> Needs {
        let c = &self.config;
        let e_s = match (c.decay_epochs, c.decay_until) {
            (Some(e), _) => e.to_string(),
            (None, DecayUntil::Milestone) => {
                "the first multistep milestone, else half the run".into()
            }
            (None, DecayUntil::End) => "the end of the run".into(),
        };
        Needs {
            roles: vec![
                RoleNeed::frozen_pretrained(&c.teacher, &self.key("teacher")),
                RoleNeed::trained(&c.student, &self.key("student")),
            ],
            terms: vec![
                TermSpec {
                    name: "ce_hybrid".into(),
                    phase: MAIN_PHASE.into(),
                    formula: format!(
                        "{} × CE(hybrid), p0={} {:?} to 0 at E_s={e_s}; swapped stages' BN {:?}, \
                         student BN statistics from {:?} batches",
                        c.ce_weight, c.p0, c.schedule, c.swap_bn, c.student_bn
                    ),
                },
                TermSpec {
                    name: "kl_hybrid".into(),
                    phase: MAIN_PHASE.into(),
                    formula: format!(
                        "{} × τ²KL(p_{} ‖ p_hybrid), τ={}",
                        c.kd_weight, c.teacher, c.temperature
                    ),
                },
                TermSpec {
                    name: "swap_mask".into(),
                    phase: MAIN_PHASE.into(),
                    formula: "0 × Σ_i 2^(i−1)·[stage i swapped] (logged, not trained)".into(),
                },
            ],
            remarks: if c.adapters {
                vec!["adapters = true: conv + BN adapters around swapped teacher stages (not the canonical IAKD pairing)"
                    .into()]
            } else {
                Vec::new()
            },
            ..Needs::default()
        }
    }

    fn check(&self, plan: &PlanView<'_>) -> Vec<ConfigIssue> {
        let (Some(teacher), Some(student)) = (
            plan.network(&self.config.teacher),
            plan.network(&self.config.student),
        ) else {
            return Vec::new();
        };
        let (ts, ss) = (teacher.arch.num_stages(), student.arch.num_stages());
        if ts != ss {
            return vec![self.issue(
                "teacher",
                format!("IAKD swaps stage for stage: the teacher ({}) has {ts} stages, the student ({}) {ss}", teacher.arch_name, student.arch_name),
            )];
        }
        let mut issues = Vec::new();
        for i in 0..ss {
            let (s_in, s_out) = stage_io(student, i);
            let (t_in, t_out) = stage_io(teacher, i);
            if s_in == t_in && s_out == t_out {
                continue;
            }
            if !self.config.adapters {
                issues.push(self.issue(
                    "teacher",
                    format!(
                        "stage {} does not fit: the student maps {} to {}, the teacher {} to {}; choose a pair with \
                         identical stage widths or set {} = true (non-canonical)",
                        i + 1,
                        dims(s_in),
                        dims(s_out),
                        dims(t_in),
                        dims(t_out),
                        self.key("adapters")
                    ),
                ));
                continue;
            }
            for (from, to) in [(s_in, t_in), (t_out, s_out)] {
                if from != to
                    && let Err(e) = Adapter::check(from, to)
                {
                    issues.push(self.issue("adapters", format!("stage {}: {e}", i + 1)));
                }
            }
        }
        issues
    }

    fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), MethodError> {
        let missing = |role: &str| MethodError::Missing(format!("no planned network `{role}`"));
        let teacher = ctx
            .plan
            .network(&self.config.teacher)
            .ok_or_else(|| missing(&self.config.teacher))?;
        let student = ctx
            .plan
            .network(&self.config.student)
            .ok_or_else(|| missing(&self.config.student))?;
        self.stages = student.arch.num_stages();
        self.decay_epochs = decay_epochs(&self.config, &ctx.plan);
        if self.config.swap_bn == SwapBn::Batch {
            let frozen = ctx.network(&self.config.teacher)?;
            self.batch_teacher = Some(frozen.clone().unfreeze().no_grad());
        }
        if self.config.adapters {
            let mut adapters = StageAdapters {
                input: Vec::new(),
                output: Vec::new(),
            };
            for i in 0..self.stages {
                let (s_in, s_out) = stage_io(student, i);
                let (t_in, t_out) = stage_io(teacher, i);
                let make =
                    |from: [usize; 3], to: [usize; 3]| -> Result<Option<Adapter>, MethodError> {
                        if from == to {
                            return Ok(None);
                        }
                        let adapter = Adapter::new(from, to, false, ctx.device)
                            .map_err(|e| MethodError::Other(e.to_string()))?;
                        Ok(Some(adapter))
                    };
                adapters.input.push(make(s_in, t_in)?);
                adapters.output.push(make(t_out, s_out)?);
            }
            materialize(&adapters);
            let name = format!("{}.adapters", self.instance);
            self.adapters = Some(Trainable::new(
                &name,
                MAIN_PHASE,
                adapters,
                ctx.base_lr,
                &ctx.sgd,
            ));
        }
        Ok(())
    }

    fn terms(&mut self, ctx: &mut StepContext<'_>) -> Result<Vec<Term>, MethodError> {
        if ctx.phase() != MAIN_PHASE {
            return Ok(Vec::new());
        }
        let c = &self.config;
        let p = swap_probability(c.schedule, c.p0, self.decay_epochs, ctx.epoch);
        let swaps = draw_swaps(&mut ctx.rng(), self.stages, p);
        let z_t = ctx.features(&c.teacher)?.logits.clone();
        let teacher = match &self.batch_teacher {
            Some(network) => network,
            None => ctx.network(&c.teacher)?,
        };
        let student = ctx.network(&c.student)?;
        let adapters = self.adapters.as_ref().map(Trainable::module);
        let images = ctx.images.clone();
        let forward = || hybrid_logits(student, teacher, adapters, &swaps, images);
        let swapped = swaps.iter().any(|&s| s);
        let hybrid = if swapped && c.student_bn == StudentBn::Pure {
            without_running_stat_updates(forward)
        } else {
            forward()
        };
        let mask = Tensor::<1>::from_floats([swap_mask(&swaps) as f32], &ctx.images.device());
        Ok(vec![
            Term::weighted(
                "ce_hybrid",
                cross_entropy(hybrid.clone(), ctx.labels.clone()),
                c.ce_weight,
            ),
            Term::weighted(
                "kl_hybrid",
                soft_kl(hybrid, z_t, c.temperature),
                c.kd_weight,
            ),
            Term::weighted("swap_mask", mask, 0.0),
        ])
    }

    fn parts(&mut self) -> Vec<&mut dyn Part> {
        self.adapters
            .iter_mut()
            .map(|a| a as &mut dyn Part)
            .collect()
    }
}

//! The `iakd` method: checks stage shapes at plan time, builds adapters if asked, and computes
//! the hybrid's loss each step.

use burn::module::Module;
use burn::tensor::Tensor;
use kd_core::config::{ConfigError, ConfigIssue, ScheduleKind};
use kd_core::loss::{cross_entropy, soft_kl};
use kd_core::method::materialize;
use kd_core::method::{
    InitContext, MAIN_PHASE, Method, MethodArgs, MethodError, Needs, Part, PlanView,
    PlannedNetwork, RoleNeed, StepContext, Term, TermSpec, Trainable, instance_key,
};
use kd_core::zoo::layers::without_running_stat_updates;
use kd_core::zoo::{Adapter, Network};

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
    args.check([
        args.positive("temperature", config.temperature),
        args.in_range("p0", config.p0, 0.0, 1.0),
        args.non_negative("kd_weight", config.kd_weight),
        args.non_negative("ce_weight", config.ce_weight),
        (config.decay_epochs == Some(0)).then(|| args.issue("decay_epochs", "must be at least 1")),
        args.same_role_issue(&config.teacher, &config.student),
    ])?;
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
    let stage = |i: usize| network.stage_shape(i).expect("every stage has a tap");
    let input = if i == 0 {
        let s = network.tap("stem").expect("every stage has a tap");
        [s[0], s[1], s[2]]
    } else {
        stage(i - 1)
    };
    (input, stage(i))
}

fn dims(shape: [usize; 3]) -> String {
    format!("{}x{}x{}", shape[0], shape[1], shape[2])
}

impl Iakd {
    fn issue(&self, key: &str, message: String) -> ConfigIssue {
        ConfigIssue::at(&instance_key(&self.instance, key), message)
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
        let key = |k: &str| instance_key(&self.instance, k);
        let e_s = match (c.decay_epochs, c.decay_until) {
            (Some(e), _) => e.to_string(),
            (None, DecayUntil::Milestone) => {
                "the first multistep milestone, else half the run".into()
            }
            (None, DecayUntil::End) => "the end of the run".into(),
        };
        Needs {
            roles: vec![
                RoleNeed::frozen_pretrained(&c.teacher, &key("teacher")),
                RoleNeed::trained(&c.student, &key("student")),
            ],
            terms: vec![
                TermSpec::main(
                    "ce_hybrid",
                    format!(
                        "{} × CE(hybrid), p0={} {:?} to 0 at E_s={e_s}; swapped stages' BN {:?}, \
                         student BN statistics from {:?} batches",
                        c.ce_weight, c.p0, c.schedule, c.swap_bn, c.student_bn
                    ),
                ),
                TermSpec::main(
                    "kl_hybrid",
                    format!(
                        "{} × τ²KL(p_{} ‖ p_hybrid), τ={}",
                        c.kd_weight, c.teacher, c.temperature
                    ),
                ),
                TermSpec::main(
                    "swap_mask",
                    "0 × Σ_i 2^(i−1)·[stage i swapped] (logged, not trained)",
                ),
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
                        instance_key(&self.instance, "adapters")
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
        let teacher = ctx.plan.require(&self.config.teacher)?;
        let student = ctx.plan.require(&self.config.student)?;
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
        let z_t = ctx.logits(&c.teacher)?;
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

#[cfg(test)]
mod tests {
    use kd_core::method::testing::{TestRun, build_instance, term_value};

    use super::*;

    const ROLES: [(&str, &str); 2] = [("teacher", "resnet14"), ("student", "resnet8")];

    #[test]
    fn three_terms_in_the_main_phase_only() {
        let method = build_instance(build, "iakd", "").unwrap();
        let mut run = TestRun::new(method, &ROLES).unwrap();
        let terms = run.terms(MAIN_PHASE).unwrap();
        let names: Vec<&str> = terms.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["ce_hybrid", "kl_hybrid", "swap_mask"]);
        for (name, value) in &terms[..2] {
            assert!(*value >= 0.0 && value.is_finite(), "{name}: {value}");
        }
        let mask = terms[2].1;
        assert!((0.0..8.0).contains(&mask) && mask.fract() == 0.0, "{mask}");
        // The swap pattern is logged for grouping losses, never trained on.
        let weights: Vec<f64> = run
            .weighted_terms(MAIN_PHASE)
            .unwrap()
            .iter()
            .map(|t| t.2)
            .collect();
        assert_eq!(weights[2], 0.0, "{weights:?}");
        assert!(weights[..2].iter().all(|&w| w > 0.0), "{weights:?}");
        assert!(run.terms("other").unwrap().is_empty());
    }

    #[test]
    fn the_teacher_is_frozen_and_pretrained_the_student_trained() {
        let method = build_instance(build, "inter", "").unwrap();
        let needs = method.needs();
        assert_eq!(needs.roles.len(), 2);
        let (teacher, student) = (&needs.roles[0], &needs.roles[1]);
        assert_eq!(teacher.role, "teacher");
        assert_eq!(teacher.key, "method.inter.teacher");
        assert!(teacher.pretrained && teacher.trained_in.is_none());
        assert_eq!(student.role, "student");
        assert_eq!(student.key, "method.inter.student");
        assert!(!student.pretrained);
        assert_eq!(student.trained_in.as_deref(), Some(MAIN_PHASE));
        assert!(needs.phases.is_empty());
        assert!(needs.remarks.is_empty());
        let method = build_instance(build, "inter", "adapters = true").unwrap();
        assert!(method.needs().remarks[0].contains("adapters = true"));
    }

    #[test]
    fn with_p0_zero_the_hybrid_is_the_student_and_the_kl_is_kd() {
        use burn::module::Module;
        use kd_core::zoo::Staged;

        let method = build_instance(build, "iakd", "p0 = 0.0\ntemperature = 2.0").unwrap();
        let mut run = TestRun::new(method, &ROLES).unwrap();
        let terms = run.terms(MAIN_PHASE).unwrap();
        assert_eq!(term_value(&terms, "swap_mask"), 0.0);
        // The teacher runs frozen (evaluation mode), the student in training mode.
        let images = run.images();
        let teacher = run.roles().network("teacher").unwrap().valid();
        let teacher = Tensor::from_inner(teacher.forward_features(images.clone().inner()).logits);
        let student = run.roles().network("student").unwrap();
        let student = student.forward_features(images).logits;
        let expected = soft_kl(student, teacher, 2.0).into_scalar::<f32>() as f64;
        let kl = term_value(&terms, "kl_hybrid");
        assert!(
            (kl - expected).abs() < 1e-6 * expected.max(1.0),
            "{kl} vs {expected}"
        );
    }

    #[test]
    fn the_swap_mask_follows_the_schedule() {
        // p = 1 swaps every stage: bits 0, 1 and 2 of three stages.
        let method = build_instance(build, "iakd", "p0 = 1.0\nschedule = \"constant\"").unwrap();
        let mut run = TestRun::new(method, &ROLES).unwrap();
        for epoch in [0, 9] {
            run.position.epoch = epoch;
            let terms = run.terms(MAIN_PHASE).unwrap();
            assert_eq!(term_value(&terms, "swap_mask"), 7.0, "epoch {epoch}");
            assert!(term_value(&terms, "kl_hybrid").is_finite());
            assert!(term_value(&terms, "ce_hybrid").is_finite());
        }
        // Linear from 1 to 0 at epoch 4: every stage at epoch 0, none from epoch 4.
        let table = "p0 = 1.0\nschedule = \"linear\"\ndecay_epochs = 4";
        let method = build_instance(build, "iakd", table).unwrap();
        let mut run = TestRun::new(method, &ROLES).unwrap();
        for (epoch, mask) in [(0, 7.0), (4, 0.0), (7, 0.0)] {
            run.position.epoch = epoch;
            let terms = run.terms(MAIN_PHASE).unwrap();
            assert_eq!(term_value(&terms, "swap_mask"), mask, "epoch {epoch}");
        }
        // Unset, E_s is the first multistep milestone: 0 from epoch 3.
        let mut config = kd_core::config::RunConfig::default();
        config.run.epochs = 10;
        config.schedule.milestones = vec![3, 6];
        let method = build_instance(build, "iakd", "p0 = 1.0").unwrap();
        let mut run = TestRun::with_config(method, &ROLES, config).unwrap();
        for (epoch, mask) in [(0, 7.0), (3, 0.0)] {
            run.position.epoch = epoch;
            let terms = run.terms(MAIN_PHASE).unwrap();
            assert_eq!(term_value(&terms, "swap_mask"), mask, "epoch {epoch}");
        }
    }

    #[test]
    fn stages_of_different_shapes_are_refused_without_adapters() {
        let roles = [("teacher", "wrn_16_2"), ("student", "resnet8")];
        let method = build_instance(build, "iakd", "").unwrap();
        let Err(err) = TestRun::new(method, &roles) else {
            panic!("wrn_16_2 → resnet8 was accepted without adapters");
        };
        let message = err.to_string();
        assert!(message.contains("method.iakd.teacher"), "{message}");
        assert!(message.contains("stage 1 does not fit"), "{message}");
        assert!(message.contains("method.iakd.adapters"), "{message}");

        let roles = [("teacher", "vgg8"), ("student", "resnet8")];
        let method = build_instance(build, "iakd", "adapters = true").unwrap();
        let Err(err) = TestRun::new(method, &roles) else {
            panic!("vgg8 → resnet8 was accepted");
        };
        assert!(err.to_string().contains("stage for stage"), "{err}");

        let roles = [("teacher", "wrn_16_2"), ("student", "resnet8")];
        let table = "adapters = true\np0 = 1.0\nschedule = \"constant\"";
        let method = build_instance(build, "iakd", table).unwrap();
        let mut run = TestRun::new(method, &roles).unwrap();
        assert!(!run.method().parts().is_empty(), "the adapters train");
        let terms = run.terms(MAIN_PHASE).unwrap();
        assert_eq!(term_value(&terms, "swap_mask"), 7.0);
        assert!(term_value(&terms, "kl_hybrid").is_finite(), "{terms:?}");
    }

    #[test]
    fn bad_keys_are_named() {
        for (table, key, message) in [
            ("p0 = 1.5", "method.iakd.p0", "between 0 and 1"),
            ("decay_epochs = 0", "method.iakd.decay_epochs", "at least 1"),
            ("kd_weight = -1.0", "method.iakd.kd_weight", "non-negative"),
            (
                "teacher = \"student\"",
                "method.iakd.teacher",
                "different roles",
            ),
            (
                "schedule = \"cosine\"",
                "method.iakd.schedule",
                "unknown variant",
            ),
            ("p_0 = 0.5", "method.iakd.p_0", "unknown field"),
        ] {
            let Err(err) = build_instance(build, "iakd", table) else {
                panic!("{table} was accepted");
            };
            assert_eq!(err.issues[0].key.as_deref(), Some(key), "{table}");
            assert!(err.issues[0].message.contains(message), "{err}");
        }
    }
}

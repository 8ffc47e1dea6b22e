//! The `ffkd` method: forward terms in the main phase, feedback terms in its own phase, CKA
//! weights and stage selection computed on each batch.

use burn::module::Module;
use burn::tensor::Tensor;
use kd_core::config::{ConfigError, ConfigIssue};
use kd_core::loss::{cross_entropy, soft_kl};
use kd_core::method::materialize;
use kd_core::method::{
    BnMode, InitContext, MAIN_PHASE, Method, MethodArgs, MethodError, Needs, Part, PhaseSpec,
    PlanView, PlannedNetwork, RoleNeed, StepContext, SuggestedLr, Term, TermSpec, Trainable,
    instance_key,
};
use kd_core::zoo::layers::without_running_stat_updates;
use kd_core::zoo::{Adapter, Features, Staged};

use crate::cka::{feedback_stages, linear_cka};
use crate::config::{FeedbackUpdate, FfkdConfig};
use crate::gate::gradient_cosine;
use crate::loss::channel_kl;

/// Trailing teacher stages (with the classifier) that `feedback_update = "deep"` trains.
const DEEP_STAGES: usize = 2;

/// One regressor per stage, student shape → teacher shape.
#[derive(Module, Debug)]
pub struct Regressors {
    stage: Vec<Adapter>,
}

/// An `ffkd` instance.
pub struct Ffkd {
    config: FfkdConfig,
    instance: String,
    forward: Option<Trainable<Regressors>>,
    feedback: Option<Trainable<Regressors>>,
}

/// Builds an instance from its table.
pub fn build(args: &MethodArgs<'_>) -> Result<Box<dyn Method>, ConfigError> {
    let config: FfkdConfig = args.parse()?;
    args.check([
        args.positive("temperature", config.temperature),
        args.non_negative("beta_forward", config.beta_forward),
        args.non_negative("gamma_forward", config.gamma_forward),
        args.non_negative("beta_feedback", config.beta_feedback),
        args.non_negative("gamma_feedback", config.gamma_feedback),
        args.non_negative("teacher_ce", config.teacher_ce),
        args.non_negative("cka_scale", config.cka_scale),
        args.positive("teacher_lr", config.teacher_lr),
        args.same_role_issue(&config.teacher, &config.student),
    ])?;
    Ok(Box::new(Ffkd {
        config,
        instance: args.instance.to_string(),
        forward: None,
        feedback: None,
    }))
}

/// The shapes of stage `b` of the student and of the teacher, the regressor's ends.
fn stage_pair(student: &PlannedNetwork, teacher: &PlannedNetwork, b: usize) -> [[usize; 3]; 2] {
    [student, teacher].map(|n| n.stage_shape(b).expect("every stage has a tap"))
}

fn flat(map: &Tensor<4>) -> Tensor<2> {
    let [n, ..] = map.dims();
    map.clone().detach().reshape([n as i32, -1])
}

/// CKA of every stage pair on this batch, on detached features.
fn stage_ckas(teacher: &Features, student: &Features) -> Vec<f64> {
    teacher
        .stages
        .iter()
        .zip(&student.stages)
        .map(|(t, s)| linear_cka(flat(t), flat(s)))
        .collect()
}

impl Ffkd {
    fn phase(&self) -> String {
        format!("{}.feedback", self.instance)
    }

    fn regressors(part: &Option<Trainable<Regressors>>) -> Result<&Regressors, MethodError> {
        part.as_ref()
            .map(Trainable::module)
            .ok_or_else(|| MethodError::Other("regressors not built".into()))
    }

    /// The teacher's taps on this batch with a graph over the parameters feedback updates (a
    /// fresh forward pass, not the step's cached one).
    fn teacher_taps(&self, ctx: &StepContext<'_>) -> Result<Features, MethodError> {
        let network = ctx.network(&self.config.teacher)?;
        let images = ctx.images.clone();
        Ok(match self.config.feedback_update {
            FeedbackUpdate::All => network.forward_features(images),
            // The earlier part runs as usual (BatchNorm in training mode, as the reference's
            // `model_t.train()`) on a gradient-free clone: only the deep stages change.
            FeedbackUpdate::Deep => {
                let first = network.num_stages().saturating_sub(DEEP_STAGES);
                network.forward_features_split(&network.clone().no_grad(), first, images)
            }
        })
    }

    /// The feedback step's logit KL and feature terms, unweighted, on the teacher's taps;
    /// `selected` marks the stages fed back. (The teacher's CE is `cross_entropy` of its logits.)
    fn feedback_terms(
        &self,
        teacher: &Features,
        student: &Features,
        selected: &[bool],
    ) -> Result<(Tensor<1>, Tensor<1>), MethodError> {
        let c = &self.config;
        let regressors = Self::regressors(&self.feedback)?;
        let feature_back = teacher
            .stages
            .iter()
            .zip(&student.stages)
            .zip(&regressors.stage)
            .zip(selected)
            .filter(|(_, chosen)| **chosen)
            .map(|(((t, s), r), _)| {
                channel_kl(t.clone(), r.forward(s.clone().detach()), c.temperature)
            })
            .reduce(|a, b| a + b)
            .expect("the least understood stage is always selected");
        let kl = soft_kl(
            teacher.logits.clone(),
            student.logits.clone(),
            c.temperature,
        );
        Ok((kl, feature_back))
    }
}

impl Method for Ffkd {
    fn needs(&self) -> Needs {
        let c = &self.config;
        let key = |k: &str| instance_key(&self.instance, k);
        let feedback = self.phase();
        Needs {
            roles: vec![
                RoleNeed {
                    trained_in: Some(feedback.clone()),
                    bn: BnMode::Eval,
                    lr: Some(SuggestedLr::new(c.teacher_lr, &self.instance, "teacher_lr")),
                    ..RoleNeed::frozen_pretrained(&c.teacher, &key("teacher"))
                },
                RoleNeed::trained(&c.student, &key("student")),
            ],
            phases: vec![PhaseSpec {
                name: feedback.clone(),
                own_batch: true,
                from_epoch: c.feedback_from,
            }],
            terms: vec![
                TermSpec::main(
                    "kl",
                    format!(
                        "{} × τ²KL(p_{} ‖ p_{}), τ={}",
                        c.beta_forward, c.teacher, c.student, c.temperature
                    ),
                ),
                TermSpec::main(
                    "feature",
                    format!(
                        "{} × Σ_b {}·CKA_b · L_ch(F_{}^b ‖ R_b(F_{}^b))",
                        c.gamma_forward, c.cka_scale, c.teacher, c.student
                    ),
                ),
                TermSpec::new(
                    "ce_teacher",
                    &feedback,
                    format!(
                        "{} × CE({}); updates {:?} of the teacher",
                        c.teacher_ce, c.teacher, c.feedback_update
                    ),
                ),
                TermSpec::new(
                    "kl_teacher",
                    &feedback,
                    format!(
                        "{} × τ²KL(p_{} ‖ p_{})",
                        c.beta_feedback, c.student, c.teacher
                    ),
                ),
                TermSpec::new(
                    "feature_back",
                    &feedback,
                    format!(
                        "{} × Σ_{{b: CKA_b ≤ mean}} L_ch(R′_b(F_{}^b) ‖ F_{}^b)",
                        c.gamma_feedback, c.student, c.teacher
                    ),
                ),
                TermSpec::new(
                    "gate_open",
                    &feedback,
                    if c.grad_gate {
                        "0 × [cos(∇CE_teacher, ∇(kl_teacher + feature_back)) ≥ 0] (logged; \
                         0 switches both terms off for the step)"
                    } else {
                        "0 × 1 (gate off; logged)"
                    },
                ),
            ],
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
        let issue =
            |message: String| ConfigIssue::at(&instance_key(&self.instance, "teacher"), message);
        if ts != ss {
            return vec![issue(format!(
                "FFKD pairs stages one to one: the teacher ({}) has {ts}, the student ({}) {ss}",
                teacher.arch_name, student.arch_name
            ))];
        }
        (0..ss)
            .filter_map(|b| {
                let [from, to] = stage_pair(student, teacher, b);
                Adapter::check(from, to)
                    .err()
                    .map(|e| issue(format!("stage {}: no regressor fits: {e}", b + 1)))
            })
            .collect()
    }

    fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), MethodError> {
        let teacher = ctx.plan.require(&self.config.teacher)?;
        let student = ctx.plan.require(&self.config.student)?;
        let build = || -> Result<Regressors, MethodError> {
            let stage = (0..student.arch.num_stages())
                .map(|b| {
                    let [from, to] = stage_pair(student, teacher, b);
                    Adapter::new(from, to, true, ctx.device)
                        .map_err(|e| MethodError::Other(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let regressors = Regressors { stage };
            materialize(&regressors);
            Ok(regressors)
        };
        let forward = build()?;
        let feedback = build()?;
        let name = |what: &str| format!("{}.{what}", self.instance);
        self.forward = Some(Trainable::new(
            &name("forward"),
            MAIN_PHASE,
            forward,
            ctx.base_lr,
            &ctx.sgd,
        ));
        self.feedback = Some(Trainable::new(
            &name("feedback"),
            &self.phase(),
            feedback,
            self.config.teacher_lr,
            &ctx.sgd,
        ));
        Ok(())
    }

    fn terms(&mut self, ctx: &mut StepContext<'_>) -> Result<Vec<Term>, MethodError> {
        let c = &self.config;
        if ctx.phase() != MAIN_PHASE && ctx.phase() != self.phase() {
            return Ok(Vec::new());
        }
        let student = ctx.features(&c.student)?.clone();
        if ctx.phase() == MAIN_PHASE {
            let teacher = ctx.features(&c.teacher)?.clone();
            let ckas = stage_ckas(&teacher, &student);
            // Forward: the student learns; the teacher is frozen (its features carry no graph).
            let regressors = Self::regressors(&self.forward)?;
            let feature = teacher
                .stages
                .iter()
                .zip(&student.stages)
                .zip(&regressors.stage)
                .zip(&ckas)
                .map(|(((t, s), r), cka)| {
                    channel_kl(r.forward(s.clone()), t.clone().detach(), c.temperature)
                        .mul_scalar(cka * c.cka_scale)
                })
                .reduce(|a, b| a + b)
                .expect("at least one stage");
            let kl = soft_kl(
                student.logits.clone(),
                teacher.logits.clone(),
                c.temperature,
            );
            return Ok(vec![
                Term::weighted("kl", kl, c.beta_forward),
                Term::weighted("feature", feature, c.gamma_forward),
            ]);
        }
        // Feedback: the teacher (and R′) learn; the student is fixed (its features carry no graph).
        let teacher = match c.feedback_update {
            FeedbackUpdate::All => ctx.features(&c.teacher)?.clone(),
            FeedbackUpdate::Deep => self.teacher_taps(ctx)?,
        };
        let selected = feedback_stages(&stage_ckas(&teacher, &student));
        let ce = cross_entropy(teacher.logits.clone(), ctx.labels.clone());
        let (kl, feature_back) = self.feedback_terms(&teacher, &student, &selected)?;
        // The gate compares what the feedback terms would do to the teacher's weights with what
        // its own cross-entropy would, on this batch, before either is applied. Burn has no
        // retain_graph, so each gradient comes from a forward of its own (building only the loss
        // it back-propagates, so no graph is left behind): the same batch through the same
        // weights (batch statistics, so the same activations), the running statistics left as
        // the step's own forward set them.
        let open = !c.grad_gate || {
            let gate_ce = without_running_stat_updates(|| {
                let teacher = self.teacher_taps(ctx)?;
                Ok::<_, MethodError>(cross_entropy(teacher.logits, ctx.labels.clone()))
            })?;
            let gate_feedback = without_running_stat_updates(|| {
                let teacher = self.teacher_taps(ctx)?;
                let (kl, feature_back) = self.feedback_terms(&teacher, &student, &selected)?;
                Ok::<_, MethodError>(
                    kl.mul_scalar(c.beta_feedback) + feature_back.mul_scalar(c.gamma_feedback),
                )
            })?;
            gradient_cosine(gate_ce, gate_feedback, ctx.network(&c.teacher)?) >= 0.0
        };
        let (beta, gamma) = if open {
            (c.beta_feedback, c.gamma_feedback)
        } else {
            (0.0, 0.0)
        };
        let gate = Tensor::<1>::from_floats([open as u8 as f32], &ctx.images.device());
        Ok(vec![
            Term::weighted("ce_teacher", ce, c.teacher_ce),
            Term::weighted("kl_teacher", kl, beta),
            Term::weighted("feature_back", feature_back, gamma),
            Term::weighted("gate_open", gate, 0.0),
        ])
    }

    fn parts(&mut self) -> Vec<&mut dyn Part> {
        self.forward
            .iter_mut()
            .chain(self.feedback.iter_mut())
            .map(|p| p as &mut dyn Part)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use kd_core::method::testing::{TestRun, build_instance, term_names, term_value};

    use super::*;

    const ROLES: [(&str, &str); 2] = [("teacher", "resnet14"), ("student", "resnet8")];
    const FEEDBACK: &str = "ffkd.feedback";

    #[test]
    fn forward_terms_in_the_main_phase_feedback_terms_in_the_feedback_phase() {
        let method = build_instance(build, "ffkd", "").unwrap();
        let mut run = TestRun::new(method, &ROLES).unwrap();
        let terms = run.terms(MAIN_PHASE).unwrap();
        assert_eq!(term_names(&terms), ["kl", "feature"]);
        for (name, value) in &terms {
            assert!(*value >= 0.0 && value.is_finite(), "{name}: {value}");
        }
        let weighted = run.weighted_terms(FEEDBACK).unwrap();
        let terms: Vec<(String, f64)> = weighted.iter().map(|(n, v, _)| (n.clone(), *v)).collect();
        assert_eq!(
            term_names(&terms),
            ["ce_teacher", "kl_teacher", "feature_back", "gate_open"]
        );
        for (name, value) in &terms[..3] {
            assert!(*value >= 0.0 && value.is_finite(), "{name}: {value}");
        }
        let gate = term_value(&terms, "gate_open");
        assert!(gate == 0.0 || gate == 1.0, "{gate}");
        // The gate is logged, never trained on; a closed gate zeroes both feedback terms' weights.
        assert_eq!(weighted[3].2, 0.0);
        assert_eq!(
            weighted[0].2, 1.0,
            "the teacher's own cross-entropy always counts"
        );
        for (name, _, weight) in &weighted[1..3] {
            assert_eq!(
                *weight == 0.0,
                gate == 0.0,
                "{name}: weight {weight}, gate {gate}"
            );
        }
        assert!(run.terms("other").unwrap().is_empty());
    }

    #[test]
    fn the_teacher_trains_in_the_feedback_phase_from_its_epoch_only() {
        let method = build_instance(build, "ffkd", "feedback_from = 3").unwrap();
        let needs = method.needs();
        let (teacher, student) = (&needs.roles[0], &needs.roles[1]);
        assert_eq!(teacher.role, "teacher");
        assert_eq!(teacher.key, "method.ffkd.teacher");
        assert!(teacher.pretrained);
        assert_eq!(teacher.trained_in.as_deref(), Some(FEEDBACK));
        assert_eq!(teacher.bn, BnMode::Eval);
        let suggested = teacher.lr.as_ref().unwrap();
        // The rate is named by the key that sets it, not the one that binds the role.
        assert_eq!(
            (suggested.value, suggested.key.as_str()),
            (5e-3, "method.ffkd.teacher_lr")
        );
        assert_eq!(student.role, "student");
        assert_eq!(student.key, "method.ffkd.student");
        assert!(!student.pretrained);
        assert_eq!(student.trained_in.as_deref(), Some(MAIN_PHASE));
        assert_eq!(
            needs.phases,
            [PhaseSpec {
                name: FEEDBACK.into(),
                own_batch: true,
                from_epoch: 3,
            }]
        );
        let phase_of = |name: &str| {
            needs
                .terms
                .iter()
                .find(|t| t.name == name)
                .map(|t| t.phase.clone())
                .unwrap()
        };
        for name in ["kl", "feature"] {
            assert_eq!(phase_of(name), MAIN_PHASE, "{name}");
        }
        for name in ["ce_teacher", "kl_teacher", "feature_back", "gate_open"] {
            assert_eq!(phase_of(name), FEEDBACK, "{name}");
        }
        let method = build_instance(build, "ffkd", "teacher_lr = 0.01").unwrap();
        let suggested = method.needs().roles[0].lr.clone().unwrap();
        assert_eq!(suggested.value, 0.01);
    }

    #[test]
    fn the_logit_terms_are_the_kls_between_the_two_networks() {
        use kd_core::zoo::Staged;

        for update in ["all", "deep"] {
            let table = format!("temperature = 2.0\nfeedback_update = \"{update}\"");
            let method = build_instance(build, "ffkd", &table).unwrap();
            let mut run = TestRun::new(method, &ROLES).unwrap();
            let images = run.images();
            let frozen = |run: &TestRun, role: &str| -> Tensor<2> {
                let network = run.roles().network(role).unwrap().valid();
                Tensor::from_inner(network.forward_features(images.clone().inner()).logits)
            };
            let trained = |run: &TestRun, role: &str| -> Tensor<2> {
                let network = run.roles().network(role).unwrap();
                network.forward_features(images.clone()).logits
            };
            // Each network is read frozen (evaluation mode) as the other phase's step left its
            // running statistics, before anything else moves them; trained, it normalises with
            // the batch's statistics.
            let teacher_frozen = frozen(&run, "teacher");
            let forward = run.terms(MAIN_PHASE).unwrap();
            let student_frozen = frozen(&run, "student");
            let feedback = run.terms(FEEDBACK).unwrap();
            let scalar = |t: Tensor<1>| t.into_scalar::<f32>() as f64;
            // Forward: the student trains, the teacher is frozen.
            let kl = scalar(soft_kl(trained(&run, "student"), teacher_frozen, 2.0));
            // Feedback: the teacher trains, the student is fixed.
            let kl_teacher = scalar(soft_kl(trained(&run, "teacher"), student_frozen, 2.0));
            for (name, got, expected) in [
                ("kl", term_value(&forward, "kl"), kl),
                (
                    "kl_teacher",
                    term_value(&feedback, "kl_teacher"),
                    kl_teacher,
                ),
            ] {
                assert!(
                    (got - expected).abs() < 1e-5 * expected.max(1.0),
                    "{update} {name}: {got} vs {expected}"
                );
            }
        }
    }

    #[test]
    fn a_zero_cka_scale_zeroes_the_forward_feature_term() {
        let method = build_instance(build, "ffkd", "cka_scale = 0.0").unwrap();
        let mut run = TestRun::new(method, &ROLES).unwrap();
        let terms = run.terms(MAIN_PHASE).unwrap();
        assert_eq!(term_value(&terms, "feature"), 0.0);
        assert!(term_value(&terms, "kl") > 0.0);
        // The feedback feature term carries no CKA weight.
        let terms = run.terms(FEEDBACK).unwrap();
        assert!(term_value(&terms, "feature_back") > 0.0, "{terms:?}");
    }

    #[test]
    fn without_the_gate_feedback_is_always_open() {
        let method = build_instance(build, "ffkd", "grad_gate = false").unwrap();
        assert!(
            method
                .needs()
                .terms
                .iter()
                .any(|t| t.formula.contains("gate off"))
        );
        let mut run = TestRun::new(method, &ROLES).unwrap();
        for epoch in [0, 4] {
            run.position.epoch = epoch;
            let terms = run.terms(FEEDBACK).unwrap();
            assert_eq!(term_value(&terms, "gate_open"), 1.0, "epoch {epoch}");
        }
    }

    #[test]
    fn pairs_without_stage_for_stage_regressors_are_refused_at_plan_time() {
        let method = build_instance(build, "ffkd", "").unwrap();
        let roles = [("teacher", "vgg8"), ("student", "resnet8")];
        let Err(err) = TestRun::new(method, &roles) else {
            panic!("vgg8 → resnet8 was accepted");
        };
        let err = err.to_string();
        assert!(err.contains("method.ffkd.teacher"), "{err}");
        assert!(err.contains("one to one"), "{err}");
    }

    #[test]
    fn bad_keys_are_named() {
        for (table, key, message) in [
            ("teacher_lr = 0.0", "method.ffkd.teacher_lr", "positive"),
            ("temperature = 0.0", "method.ffkd.temperature", "positive"),
            (
                "teacher = \"student\"",
                "method.ffkd.teacher",
                "different roles",
            ),
            (
                "feedback_update = \"shallow\"",
                "method.ffkd.feedback_update",
                "unknown variant",
            ),
            (
                "feedback_form = 2",
                "method.ffkd.feedback_form",
                "unknown field",
            ),
        ] {
            let Err(err) = build_instance(build, "ffkd", table) else {
                panic!("{table} was accepted");
            };
            assert_eq!(err.issues[0].key.as_deref(), Some(key), "{table}");
            assert!(err.issues[0].message.contains(message), "{err}");
        }
    }
}

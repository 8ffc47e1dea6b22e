//! The `sokd` method: builds the branch (and regressor) at initialisation, adds the branch's
//! and the student's terms to the main phase, and evaluates the improved teacher.

use burn::module::Module;
use burn::tensor::Tensor;
use kd_core::config::{ConfigError, ConfigIssue};
use kd_core::method::materialize;
use kd_core::method::{
    BnMode, EvalContext, InitContext, MAIN_PHASE, Method, MethodArgs, MethodError, Needs, Part,
    PlanView, RoleNeed, StepContext, Term, TermSpec, Trainable, instance_key,
};
use kd_core::zoo::{Adapter, Network, Staged, independent_copy};

use crate::config::{BranchInit, SokdConfig, TeacherBn};
use crate::loss::{feature_mse, sokd_terms};

/// A `sokd` instance.
pub struct Sokd {
    config: SokdConfig,
    instance: String,
    branch: Option<Trainable<Network>>,
    regressor: Option<Trainable<Adapter>>,
    /// Index of the first teacher stage the branch copies.
    first: usize,
}

/// Builds an instance from its table.
pub fn build(args: &MethodArgs<'_>) -> Result<Box<dyn Method>, ConfigError> {
    let config: SokdConfig = args.parse()?;
    args.check([
        args.positive("temperature", config.temperature),
        (config.branch_stages == 0)
            .then(|| args.issue("branch_stages", "the branch copies at least one stage")),
        args.non_negative("ce_branch", config.ce_branch),
        args.non_negative("kd_teacher", config.kd_teacher),
        args.non_negative("kd_student", config.kd_student),
        args.non_negative("kd", config.kd),
        args.non_negative("feature_weight", config.feature_weight),
        config
            .branch_lr
            .and_then(|lr| args.positive("branch_lr", lr)),
        args.same_role_issue(&config.teacher, &config.student),
    ])?;
    Ok(Box::new(Sokd {
        config,
        instance: args.instance.to_string(),
        branch: None,
        regressor: None,
        first: 0,
    }))
}

impl Sokd {
    fn branch(&self) -> Result<&Network, MethodError> {
        self.branch
            .as_ref()
            .map(Trainable::module)
            .ok_or_else(|| MethodError::Other("the branch is not built".into()))
    }

    /// Runs the branch from its input (the teacher's stage `first - 1` output) to its last stage
    /// and its logits.
    fn run_branch(branch: &Network, first: usize, input: Tensor<4>) -> (Tensor<4>, Tensor<2>) {
        let mut x = input;
        for index in first..branch.num_stages() {
            x = branch.stage(index, x);
        }
        let logits = branch.classify(branch.pool(x.clone()));
        (x, logits)
    }
}

impl Method for Sokd {
    fn needs(&self) -> Needs {
        let c = &self.config;
        let key = |k: &str| instance_key(&self.instance, k);
        let formula = |what: &str| format!("{what}, τ={}", c.temperature);
        let mut terms = vec![
            TermSpec::main("ce_branch", format!("{} × CE(branch)", c.ce_branch)),
            TermSpec::main(
                "kl_branch_teacher",
                formula(&format!(
                    "{} × τ²KL(p_{} ‖ p_branch)",
                    c.kd_teacher, c.teacher
                )),
            ),
            TermSpec::main(
                "kl_branch_student",
                formula(&format!(
                    "{} × τ²KL(p_{} ‖ p_branch)",
                    c.kd_student, c.student
                )),
            ),
            TermSpec::main(
                "kl_student",
                formula(&format!("{} × τ²KL(p_branch ‖ p_{})", c.kd, c.student)),
            ),
        ];
        if c.feature_weight > 0.0 {
            terms.push(TermSpec::main(
                "feat_student",
                format!("{} × MSE(R(F_{}), F_branch)", c.feature_weight, c.student),
            ));
            terms.push(TermSpec::main(
                "feat_branch",
                format!("{} × MSE(F_branch, R(F_{}))", c.feature_weight, c.student),
            ));
        }
        Needs {
            roles: vec![
                RoleNeed {
                    bn: match c.teacher_bn {
                        TeacherBn::Train => BnMode::Train,
                        TeacherBn::Eval => BnMode::Eval,
                    },
                    ..RoleNeed::frozen_pretrained(&c.teacher, &key("teacher"))
                },
                RoleNeed::trained(&c.student, &key("student")),
            ],
            terms,
            eval_outputs: vec!["branch".into()],
            ..Needs::default()
        }
    }

    fn check(&self, plan: &PlanView<'_>) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        let (Some(teacher), Some(student)) = (
            plan.network(&self.config.teacher),
            plan.network(&self.config.student),
        ) else {
            return issues;
        };
        let stages = teacher.arch.num_stages();
        if self.config.branch_stages >= stages {
            issues.push(ConfigIssue::at(
                &instance_key(&self.instance, "branch_stages"),
                format!(
                    "the teacher ({}) has {stages} stages; a branch copying {} of them has no teacher stage to grow from \
                     (at most {})",
                    teacher.arch_name,
                    self.config.branch_stages,
                    stages - 1
                ),
            ));
        }
        if self.config.feature_weight > 0.0
            && let Err(e) = Adapter::check(student.last_stage_shape(), teacher.last_stage_shape())
        {
            issues.push(ConfigIssue::at(
                &instance_key(&self.instance, "feature_weight"),
                format!("the feature term maps the student's last stage onto the branch's: {e}"),
            ));
        }
        issues
    }

    fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), MethodError> {
        let c = &self.config;
        let teacher = ctx.plan.require(&c.teacher)?;
        let stages = teacher.arch.num_stages();
        self.first = stages - c.branch_stages;
        let mut branch = teacher.arch.init(ctx.device);
        materialize(&branch);
        if c.branch_init == BranchInit::Teacher {
            let record = ctx.network(&c.teacher)?.clone().into_record();
            branch = independent_copy(
                branch
                    .try_load_record(record)
                    .map_err(|e| MethodError::Other(format!("copying the teacher: {e}")))?,
            );
        }
        branch.clear_stages_before(self.first);
        let lr = c.branch_lr.unwrap_or(ctx.base_lr);
        self.branch = Some(Trainable::new(
            &format!("{}.branch", self.instance),
            MAIN_PHASE,
            branch,
            lr,
            &ctx.sgd,
        ));
        if c.feature_weight > 0.0 {
            let student = ctx.plan.require(&c.student)?;
            let (from, to) = (student.last_stage_shape(), teacher.last_stage_shape());
            let adapter = Adapter::new(from, to, false, ctx.device)
                .map_err(|e| MethodError::Other(e.to_string()))?;
            materialize(&adapter);
            let name = format!("{}.regressor", self.instance);
            self.regressor = Some(Trainable::new(
                &name,
                MAIN_PHASE,
                adapter,
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
        let teacher = ctx.features(&c.teacher)?;
        let input = teacher.stages[self.first - 1].clone().detach();
        let z_t = teacher.logits.clone();
        let student = ctx.features(&c.student)?;
        let (z_s, f_s) = (student.logits.clone(), student.last_stage().clone());
        let (f_a, z_a) = Self::run_branch(self.branch()?, self.first, input);
        let [ce, kl_t, kl_s, kl_student] =
            sokd_terms(z_a, z_t, z_s, ctx.labels.clone(), c.temperature);
        let mut terms = vec![
            Term::weighted("ce_branch", ce, c.ce_branch),
            Term::weighted("kl_branch_teacher", kl_t, c.kd_teacher),
            Term::weighted("kl_branch_student", kl_s, c.kd_student),
            Term::weighted("kl_student", kl_student, c.kd),
        ];
        if let Some(regressor) = &self.regressor {
            let mapped = regressor.module().forward(f_s);
            terms.push(Term::weighted(
                "feat_student",
                feature_mse(mapped.clone(), f_a.clone()),
                c.feature_weight,
            ));
            terms.push(Term::weighted(
                "feat_branch",
                feature_mse(f_a, mapped),
                c.feature_weight,
            ));
        }
        Ok(terms)
    }

    fn parts(&mut self) -> Vec<&mut dyn Part> {
        let mut parts: Vec<&mut dyn Part> = Vec::new();
        if let Some(branch) = self.branch.as_mut() {
            parts.push(branch);
        }
        if let Some(regressor) = self.regressor.as_mut() {
            parts.push(regressor);
        }
        parts
    }

    fn evaluate(&self, ctx: &mut EvalContext<'_>) -> Result<Vec<(String, Tensor<2>)>, MethodError> {
        let input = ctx.features(&self.config.teacher)?.stages[self.first - 1].clone();
        let branch = self.branch()?.valid();
        let (_, logits) = Self::run_branch(&branch, self.first, input);
        Ok(vec![("branch".into(), logits)])
    }
}

#[cfg(test)]
mod tests {
    use kd_core::loss::soft_kl;
    use kd_core::method::testing::{TestRun, build_instance, max_abs_difference, term_names};

    use super::*;

    const ROLES: [(&str, &str); 2] = [("teacher", "resnet14"), ("student", "resnet8")];

    #[test]
    fn four_logit_terms_in_the_main_phase_only() {
        let method = build_instance(build, "sokd", "").unwrap();
        let mut run = TestRun::new(method, &ROLES).unwrap();
        let terms = run.terms(MAIN_PHASE).unwrap();
        assert_eq!(
            term_names(&terms),
            [
                "ce_branch",
                "kl_branch_teacher",
                "kl_branch_student",
                "kl_student"
            ]
        );
        // Every term is finite; the cross-entropy of a random branch is positive, and a KL
        // divergence is never negative (between two freshly initialised networks' softened
        // outputs, both near uniform, it can round to exactly 0 in f32).
        for (name, value) in &terms {
            assert!(value.is_finite(), "{name}: {value}");
            let positive = name == "ce_branch";
            assert!(
                if positive {
                    *value > 0.0
                } else {
                    *value >= 0.0
                },
                "{name}: {value}"
            );
        }
        assert!(run.terms("other").unwrap().is_empty());
    }

    #[test]
    fn the_feature_terms_exist_only_with_a_positive_feature_weight() {
        let method = build_instance(build, "sokd", "feature_weight = 0.0").unwrap();
        let mut run = TestRun::new(method, &ROLES).unwrap();
        let terms = run.terms(MAIN_PHASE).unwrap();
        assert_eq!(terms.len(), 4, "{terms:?}");
        assert!(!term_names(&terms).iter().any(|n| n.starts_with("feat")));
        assert!(run.method().parts().len() == 1, "the branch only");

        let method = build_instance(build, "sokd", "feature_weight = 0.5").unwrap();
        let needs = method.needs();
        let declared: Vec<&str> = needs.terms.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(&declared[4..], ["feat_student", "feat_branch"]);
        let mut run = TestRun::new(method, &ROLES).unwrap();
        let terms = run.terms(MAIN_PHASE).unwrap();
        assert_eq!(
            term_names(&terms),
            [
                "ce_branch",
                "kl_branch_teacher",
                "kl_branch_student",
                "kl_student",
                "feat_student",
                "feat_branch"
            ]
        );
        // Both feature terms are the same MSE, seen from either side.
        let (student_side, branch_side) = (terms[4].1, terms[5].1);
        assert!(student_side > 0.0 && student_side.is_finite(), "{terms:?}");
        assert!((student_side - branch_side).abs() < 1e-6 * student_side.max(1.0));
        assert!(
            run.method().parts().len() == 2,
            "the branch and the regressor"
        );
    }

    #[test]
    fn the_teacher_is_frozen_and_pretrained_with_batchnorm_in_training_mode() {
        let method = build_instance(build, "semi", "").unwrap();
        let needs = method.needs();
        let teacher = &needs.roles[0];
        assert_eq!(teacher.role, "teacher");
        assert_eq!(teacher.key, "method.semi.teacher");
        assert!(teacher.pretrained && teacher.trained_in.is_none());
        assert_eq!(teacher.bn, BnMode::Train);
        let student = &needs.roles[1];
        assert_eq!(student.role, "student");
        assert_eq!(student.key, "method.semi.student");
        assert!(!student.pretrained);
        assert_eq!(student.trained_in.as_deref(), Some(MAIN_PHASE));
        assert!(needs.terms.iter().all(|t| t.phase == MAIN_PHASE));
        assert_eq!(needs.eval_outputs, ["branch"]);

        let method = build_instance(build, "semi", "teacher_bn = \"eval\"").unwrap();
        assert_eq!(method.needs().roles[0].bn, BnMode::Eval);
    }

    #[test]
    fn a_branch_copied_from_the_teacher_is_the_teacher_until_it_trains() {
        use kd_core::zoo::Staged;

        let table = "branch_init = \"teacher\"\ntemperature = 2.0";
        let method = build_instance(build, "sokd", table).unwrap();
        let mut run = TestRun::new(method, &ROLES).unwrap();
        // Evaluated: the trunk up to the branch, then the branch, both in evaluation mode.
        let images = run.images();
        let teacher_eval = run.roles().network("teacher").unwrap().valid();
        let teacher_eval = teacher_eval.forward_features(images.clone().inner()).logits;
        let outputs = run.evaluate().unwrap();
        assert_eq!(outputs.len(), 1);
        assert_eq!(outputs[0].0, "branch");
        let difference = max_abs_difference(outputs[0].1.clone(), teacher_eval);
        assert!(difference < 1e-5, "{difference}");

        // In a step the trunk's BatchNorm uses the batch's statistics, as the branch's does: the
        // branch's logits are the teacher's, so its KL towards the teacher vanishes and the two
        // student KLs are those between the teacher and the student.
        let terms = run.terms(MAIN_PHASE).unwrap();
        let z_t = run.roles().network("teacher").unwrap();
        let z_t = z_t
            .forward_features(images.clone().detach())
            .logits
            .detach();
        let z_s = run.roles().network("student").unwrap();
        let z_s = z_s.forward_features(images).logits;
        let scalar = |t: Tensor<1>| t.into_scalar::<f32>() as f64;
        let branch_student = scalar(soft_kl(z_t.clone(), z_s.clone(), 2.0));
        let student = scalar(soft_kl(z_s, z_t, 2.0));
        let value = |name: &str| terms.iter().find(|(n, _)| n == name).unwrap().1;
        assert!(value("kl_branch_teacher").abs() < 1e-5, "{terms:?}");
        assert!(branch_student > 1e-3 && student > 1e-3);
        for (name, expected) in [
            ("kl_branch_student", branch_student),
            ("kl_student", student),
        ] {
            let got = value(name);
            assert!(
                (got - expected).abs() < 1e-5 * expected.max(1.0),
                "{name}: {got} vs {expected}"
            );
        }
    }

    #[test]
    fn a_branch_with_no_teacher_stage_to_grow_from_is_refused_at_plan_time() {
        let method = build_instance(build, "sokd", "branch_stages = 3").unwrap();
        let Err(err) = TestRun::new(method, &ROLES) else {
            panic!("a branch of all three stages was accepted");
        };
        let message = err.to_string();
        assert!(message.contains("method.sokd.branch_stages"), "{message}");
        assert!(message.contains("at most 2"), "{message}");
        let method = build_instance(build, "sokd", "branch_stages = 2").unwrap();
        let mut run = TestRun::new(method, &ROLES).unwrap();
        assert_eq!(run.terms(MAIN_PHASE).unwrap().len(), 4);
    }

    #[test]
    fn bad_keys_are_named() {
        for (table, key, message) in [
            ("kd = -1.0", "method.sokd.kd", "non-negative"),
            ("temperature = 0.0", "method.sokd.temperature", "positive"),
            (
                "branch_stages = 0",
                "method.sokd.branch_stages",
                "at least one",
            ),
            ("branch_lr = 0", "method.sokd.branch_lr", "positive"),
            (
                "teacher = \"student\"",
                "method.sokd.teacher",
                "different roles",
            ),
            (
                "feature_weigth = 1.0",
                "method.sokd.feature_weigth",
                "unknown field",
            ),
        ] {
            let Err(err) = build_instance(build, "sokd", table) else {
                panic!("{table} was accepted");
            };
            assert_eq!(err.issues[0].key.as_deref(), Some(key), "{table}");
            assert!(err.issues[0].message.contains(message), "{err}");
        }
    }
}

//! The `sokd` method: builds the branch (and regressor) at initialisation, adds the branch's
//! and the student's terms to the main phase, and evaluates the improved teacher.

use burn::module::Module;
use burn::tensor::Tensor;
use kd_core::config::{ConfigError, ConfigIssue};
use kd_core::method::materialize;
use kd_core::method::{
    BnMode, EvalContext, InitContext, MAIN_PHASE, Method, MethodArgs, MethodError, Needs, Part,
    PlanView, RoleNeed, StepContext, TapNeed, Term, TermSpec, Trainable,
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
    let mut issues = Vec::new();
    if !(config.temperature.is_finite() && config.temperature > 0.0) {
        issues.push(args.issue("temperature", "must be a positive number"));
    }
    if config.branch_stages == 0 {
        issues.push(args.issue("branch_stages", "the branch copies at least one stage"));
    }
    for (key, value) in [
        ("ce_branch", config.ce_branch),
        ("kd_teacher", config.kd_teacher),
        ("kd_student", config.kd_student),
        ("kd", config.kd),
        ("feature_weight", config.feature_weight),
    ] {
        if !(value.is_finite() && value >= 0.0) {
            issues.push(args.issue(key, "must be a non-negative number"));
        }
    }
    if let Some(lr) = config
        .branch_lr
        .filter(|lr| !(lr.is_finite() && *lr >= 0.0))
    {
        issues.push(args.issue(
            "branch_lr",
            format!("must be a non-negative number, got {lr}"),
        ));
    }
    issues.extend(args.same_role_issue(&config.teacher, &config.student));
    if !issues.is_empty() {
        return Err(ConfigError { issues });
    }
    Ok(Box::new(Sokd {
        config,
        instance: args.instance.to_string(),
        branch: None,
        regressor: None,
        first: 0,
    }))
}

impl Sokd {
    fn key(&self, key: &str) -> String {
        format!("method.{}.{key}", self.instance)
    }

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
        let formula = |what: &str| format!("{what}, τ={}", c.temperature);
        let term = |name: &str, formula: String| TermSpec {
            name: name.into(),
            phase: MAIN_PHASE.into(),
            formula,
        };
        let mut terms = vec![
            term("ce_branch", format!("{} × CE(branch)", c.ce_branch)),
            term(
                "kl_branch_teacher",
                formula(&format!(
                    "{} × τ²KL(p_{} ‖ p_branch)",
                    c.kd_teacher, c.teacher
                )),
            ),
            term(
                "kl_branch_student",
                formula(&format!(
                    "{} × τ²KL(p_{} ‖ p_branch)",
                    c.kd_student, c.student
                )),
            ),
            term(
                "kl_student",
                formula(&format!("{} × τ²KL(p_branch ‖ p_{})", c.kd, c.student)),
            ),
        ];
        if c.feature_weight > 0.0 {
            terms.push(term(
                "feat_student",
                format!("{} × MSE(R(F_{}), F_branch)", c.feature_weight, c.student),
            ));
            terms.push(term(
                "feat_branch",
                format!("{} × MSE(F_branch, R(F_{}))", c.feature_weight, c.student),
            ));
        }
        Needs {
            roles: vec![
                RoleNeed {
                    role: c.teacher.clone(),
                    key: self.key("teacher"),
                    trained_in: None,
                    pretrained: true,
                    bn: match c.teacher_bn {
                        TeacherBn::Train => BnMode::Train,
                        TeacherBn::Eval => BnMode::Eval,
                    },
                    lr: None,
                },
                RoleNeed::trained(&c.student, &self.key("student")),
            ],
            taps: vec![TapNeed {
                role: c.teacher.clone(),
                tap: "logits".into(),
                key: self.key("teacher"),
            }],
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
            issues.push(ConfigIssue {
                key: Some(self.key("branch_stages")),
                source: None,
                message: format!(
                    "the teacher ({}) has {stages} stages; a branch copying {} of them has no teacher stage to grow from \
                     (at most {})",
                    teacher.arch_name,
                    self.config.branch_stages,
                    stages - 1
                ),
            });
        }
        if self.config.feature_weight > 0.0 {
            let last = |n: &kd_core::method::PlannedNetwork| -> [usize; 3] {
                let shape = n
                    .tap(&kd_core::zoo::stage_tap(n.arch.num_stages() - 1))
                    .expect("last stage tap");
                [shape[0], shape[1], shape[2]]
            };
            if let Err(e) = Adapter::check(last(student), last(teacher)) {
                issues.push(ConfigIssue {
                    key: Some(self.key("feature_weight")),
                    source: None,
                    message: format!(
                        "the feature term maps the student's last stage onto the branch's: {e}"
                    ),
                });
            }
        }
        issues
    }

    fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), MethodError> {
        let c = &self.config;
        let teacher = ctx
            .plan
            .network(&c.teacher)
            .ok_or_else(|| MethodError::Missing(format!("no planned network `{}`", c.teacher)))?;
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
            let student = ctx.plan.network(&c.student).ok_or_else(|| {
                MethodError::Missing(format!("no planned network `{}`", c.student))
            })?;
            let last = |n: &kd_core::method::PlannedNetwork| -> [usize; 3] {
                let shape = n
                    .tap(&kd_core::zoo::stage_tap(n.arch.num_stages() - 1))
                    .expect("last stage tap");
                [shape[0], shape[1], shape[2]]
            };
            let adapter = Adapter::new(last(student), last(teacher), false, ctx.device)
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

//! The `kd` method: needs a frozen teacher, adds one term to the main phase.

use kd_core::config::ConfigError;
use kd_core::method::{
    MAIN_PHASE, Method, MethodArgs, MethodError, Needs, RoleNeed, StepContext, TapNeed, Term,
    TermSpec,
};

use crate::config::KdConfig;
use crate::loss::kd_loss;

/// A `kd` instance.
#[derive(Debug)]
pub struct Kd {
    config: KdConfig,
    instance: String,
}

/// Builds an instance from its table.
pub fn build(args: &MethodArgs<'_>) -> Result<Box<dyn Method>, ConfigError> {
    let config: KdConfig = args.parse()?;
    if !(config.temperature.is_finite() && config.temperature > 0.0) {
        return Err(ConfigError {
            issues: vec![args.issue("temperature", "must be a positive number")],
        });
    }
    if let Some(issue) = args.same_role_issue(&config.teacher, &config.student) {
        return Err(ConfigError {
            issues: vec![issue],
        });
    }
    Ok(Box::new(Kd {
        config,
        instance: args.instance.to_string(),
    }))
}

impl Method for Kd {
    fn needs(&self) -> Needs {
        let key = |k: &str| format!("method.{}.{k}", self.instance);
        Needs {
            roles: vec![
                RoleNeed::frozen_pretrained(&self.config.teacher, &key("teacher")),
                RoleNeed::trained(&self.config.student, &key("student")),
            ],
            taps: vec![
                TapNeed {
                    role: self.config.teacher.clone(),
                    tap: "logits".into(),
                    key: key("teacher"),
                },
                TapNeed {
                    role: self.config.student.clone(),
                    tap: "logits".into(),
                    key: key("student"),
                },
            ],
            terms: vec![TermSpec {
                name: "kl".into(),
                phase: MAIN_PHASE.into(),
                formula: format!(
                    "T²·KL(p_{} ‖ p_{}), T={}",
                    self.config.teacher, self.config.student, self.config.temperature
                ),
            }],
            ..Needs::default()
        }
    }

    fn terms(&mut self, ctx: &mut StepContext<'_>) -> Result<Vec<Term>, MethodError> {
        if ctx.phase() != MAIN_PHASE {
            return Ok(Vec::new());
        }
        let teacher = ctx.features(&self.config.teacher)?.logits.clone();
        let student = ctx.features(&self.config.student)?.logits.clone();
        Ok(vec![Term::new(
            "kl",
            kd_loss(student, teacher, self.config.temperature),
        )])
    }
}

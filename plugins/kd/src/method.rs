//! The `kd` method: needs a frozen teacher, adds one term to the main phase.

use kd_core::config::ConfigError;
use kd_core::method::{
    MAIN_PHASE, Method, MethodArgs, MethodError, Needs, RoleNeed, StepContext, Term, TermSpec,
    instance_key,
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
    args.check([
        args.positive("temperature", config.temperature),
        args.same_role_issue(&config.teacher, &config.student),
    ])?;
    let instance = args.instance.to_string();
    Ok(Box::new(Kd { config, instance }))
}

impl Method for Kd {
    fn needs(&self) -> Needs {
        let key = |k: &str| instance_key(&self.instance, k);
        let c = &self.config;
        let formula = format!(
            "T²·KL(p_{} ‖ p_{}), T={}",
            c.teacher, c.student, c.temperature
        );
        Needs {
            roles: vec![
                RoleNeed::frozen_pretrained(&c.teacher, &key("teacher")),
                RoleNeed::trained(&c.student, &key("student")),
            ],
            terms: vec![TermSpec::main("kl", formula)],
            ..Needs::default()
        }
    }

    fn terms(&mut self, ctx: &mut StepContext<'_>) -> Result<Vec<Term>, MethodError> {
        if ctx.phase() != MAIN_PHASE {
            return Ok(Vec::new());
        }
        let teacher = ctx.logits(&self.config.teacher)?;
        let student = ctx.logits(&self.config.student)?;
        let kl = kd_loss(student, teacher, self.config.temperature);
        Ok(vec![Term::new("kl", kl)])
    }
}

#[cfg(test)]
mod tests {
    use kd_core::method::testing::{TestRun, build_instance};

    use super::*;

    const ROLES: [(&str, &str); 2] = [("teacher", "resnet8"), ("student", "resnet8")];

    #[test]
    fn one_kl_term_in_the_main_phase_only() {
        let method = build_instance(build, "kd", "temperature = 4.0").unwrap();
        let mut run = TestRun::new(method, &ROLES).unwrap();
        let terms = run.terms(MAIN_PHASE).unwrap();
        assert_eq!(terms.len(), 1);
        assert_eq!(terms[0].0, "kl");
        // Two differently initialised networks disagree: the KL is positive and finite.
        assert!(terms[0].1 > 0.0 && terms[0].1.is_finite(), "{terms:?}");
        assert!(run.terms("other").unwrap().is_empty());
    }

    #[test]
    fn the_teacher_is_frozen_and_pretrained_the_student_trained() {
        let method = build_instance(build, "kd", "").unwrap();
        let needs = method.needs();
        assert_eq!(needs.roles[0].role, "teacher");
        assert!(needs.roles[0].pretrained && needs.roles[0].trained_in.is_none());
        assert_eq!(needs.roles[0].key, "method.kd.teacher");
        assert_eq!(needs.roles[1].trained_in.as_deref(), Some(MAIN_PHASE));
    }

    #[test]
    fn the_term_is_the_kd_loss_of_the_two_networks_logits() {
        use burn::module::Module;
        use burn::tensor::Tensor;
        use kd_core::zoo::Staged;

        let method = build_instance(build, "kd", "temperature = 2.0").unwrap();
        let mut run = TestRun::new(method, &ROLES).unwrap();
        let kl = run.terms(MAIN_PHASE).unwrap()[0].1;
        // The teacher runs frozen (evaluation mode), the student in training mode.
        let images = run.images();
        let teacher = run.roles().network("teacher").unwrap().valid();
        let teacher = Tensor::from_inner(teacher.forward_features(images.clone().inner()).logits);
        let student = run.roles().network("student").unwrap();
        let student = student.forward_features(images).logits;
        let expected = kd_loss(student, teacher, 2.0).into_scalar::<f32>() as f64;
        assert!((kl - expected).abs() < 1e-6, "{kl} vs {expected}");
    }

    #[test]
    fn bad_keys_are_named() {
        for (table, key, message) in [
            ("temperature = 0.0", "method.kd.temperature", "positive"),
            (
                "teacher = \"student\"",
                "method.kd.teacher",
                "different roles",
            ),
            (
                "tempreature = 4.0",
                "method.kd.tempreature",
                "unknown field",
            ),
        ] {
            let Err(err) = build_instance(build, "kd", table) else {
                panic!("{table} was accepted");
            };
            assert_eq!(err.issues[0].key.as_deref(), Some(key), "{table}");
            assert!(err.issues[0].message.contains(message), "{err}");
        }
    }
}

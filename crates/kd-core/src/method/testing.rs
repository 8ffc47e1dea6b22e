//! A method on tiny networks, outside the runtime: what a plugin's own unit tests use to build
//! an instance from its keys, check it, initialise it and compute its terms, as the plan and
//! the runtime would.
//!
//! ```ignore
//! let method = build_instance(crate::method::build, "kd", "temperature = 4.0")?;
//! let mut run = TestRun::new(method, &[("teacher", "resnet8"), ("student", "resnet8")])?;
//! let terms = run.terms(MAIN_PHASE)?; // [("kl", value)], checked against needs()
//! ```
//!
//! Images are `[4, 1, 16, 16]` with 10 classes, drawn from a fixed seed; every role starts from
//! its architecture's random initialisation (a pretrained role is not loaded from anything).

use std::collections::HashMap;

use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};

use super::args::MethodArgs;
use super::base::Method;
use super::context::{
    EvalContext, InitContext, PlanView, PlannedNetwork, StepContext, StepPosition,
};
use super::error::MethodError;
use super::needs::{MAIN_PHASE, Needs};
use super::part::{SgdSettings, Trainable};
use super::roles::{RoleNet, Roles};
use crate::config::{ConfigError, ConfigIssue, RunConfig};
use crate::zoo::{self, ModelSpec};

/// Images per test batch.
pub const TEST_BATCH: usize = 4;
/// Side of the test images.
pub const TEST_SIZE: usize = 16;
/// Classes of the test labels.
pub const TEST_CLASSES: usize = 10;

/// Builds an instance named `instance` from a TOML table of its keys with a plugin's `build`
/// function, as the plan does.
///
/// # Errors
/// The plugin's [`ConfigError`] (keys named `method.<instance>.<key>`), or one for TOML that
/// does not parse.
pub fn build_instance(
    build: fn(&MethodArgs<'_>) -> Result<Box<dyn Method>, ConfigError>,
    instance: &str,
    table: &str,
) -> Result<Box<dyn Method>, ConfigError> {
    let parsed: toml::Table = table.parse().map_err(|e: toml::de::Error| {
        ConfigError::one(None, None, format!("test table: {}", e.message()))
    })?;
    let params = serde_json::to_value(parsed).expect("a TOML table is JSON");
    let no_source = |_: &str| None;
    build(&MethodArgs {
        instance,
        params,
        source_of: &no_source,
    })
}

/// The planned networks of `archs` (`(role, zoo name)`) on the test images.
fn plan_networks(archs: &[(&str, &str)]) -> Result<Vec<PlannedNetwork>, MethodError> {
    let spec = ModelSpec {
        num_classes: TEST_CLASSES,
        in_channels: 1,
    };
    let mut networks = Vec::new();
    for (role, name) in archs {
        let entry = zoo::find(name).ok_or_else(|| {
            MethodError::Missing(format!(
                "no architecture `{name}`; the zoo has {}",
                zoo::names().join(", ")
            ))
        })?;
        let arch = (entry.arch)(spec);
        networks.push(PlannedNetwork {
            role: role.to_string(),
            arch_name: entry.name.to_string(),
            taps: arch.tap_shapes(TEST_SIZE, TEST_SIZE),
            arch,
            spec,
            has_checkpoint: false,
        });
    }
    if networks.is_empty() {
        return Err(MethodError::Missing("no test network".into()));
    }
    Ok(networks)
}

/// What the plan would say about `method` on these networks: every declared tap that a
/// network does not have, then the method's own `check`.
fn plan_issues(
    method: &dyn Method,
    networks: &[PlannedNetwork],
    config: &RunConfig,
) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    for tap in &method.needs().taps {
        if let Some(network) = networks.iter().find(|n| n.role == tap.role)
            && network.tap(&tap.tap).is_none()
        {
            issues.push(ConfigIssue::at(
                &tap.key,
                format!(
                    "{} ({}) has no tap `{}`",
                    tap.role, network.arch_name, tap.tap
                ),
            ));
        }
    }
    let view = PlanView {
        networks,
        input_size: TEST_SIZE,
        num_classes: TEST_CLASSES,
        in_channels: 1,
        config,
    };
    issues.extend(method.check(&view));
    issues
}

/// The problems the plan would report for `method` on `archs` (`(role, zoo name)`) under
/// `config`: declared taps the networks lack, then the method's own `check`, each with its key.
///
/// # Errors
/// An unknown architecture.
pub fn check_issues(
    method: &dyn Method,
    archs: &[(&str, &str)],
    config: &RunConfig,
) -> Result<Vec<ConfigIssue>, MethodError> {
    Ok(plan_issues(method, &plan_networks(archs)?, config))
}

/// The default run configuration with `run.epochs = 10`, as [`TestRun::new`] plans under.
pub fn test_config() -> RunConfig {
    let mut config = RunConfig::default();
    config.run.epochs = 10;
    config
}

/// One method instance with its role networks, ready to compute terms.
pub struct TestRun {
    method: Box<dyn Method>,
    needs: Needs,
    roles: Roles,
    networks: Vec<PlannedNetwork>,
    config: RunConfig,
    device: Device,
    images: Tensor<4>,
    labels: Tensor<1, Int>,
    /// Where the next step is (epoch 0, batch 0 of `run.epochs` unless set).
    pub position: StepPosition,
    /// The instance name the step's random stream is drawn for (`StepContext::rng`): `test`
    /// unless set; give it the name passed to [`build_instance`] to draw as a run would.
    pub instance: String,
}

impl TestRun {
    /// Plans the roles the method needs from `archs` (`(role, zoo name)`), runs its plan-time
    /// `check` and its `init`, under the default run configuration with `run.epochs = 10`.
    ///
    /// # Errors
    /// A role the method needs missing from `archs`, an unknown architecture, or the method's
    /// own check or initialisation failing.
    pub fn new(method: Box<dyn Method>, archs: &[(&str, &str)]) -> Result<Self, MethodError> {
        Self::with_config(method, archs, test_config())
    }

    /// As [`TestRun::new`], under a given run configuration (epochs, schedule, ...).
    ///
    /// # Errors
    /// As [`TestRun::new`].
    pub fn with_config(
        mut method: Box<dyn Method>,
        archs: &[(&str, &str)],
        config: RunConfig,
    ) -> Result<Self, MethodError> {
        let needs = method.needs();
        let networks = plan_networks(archs)?;
        let issues: Vec<String> = plan_issues(method.as_ref(), &networks, &config)
            .iter()
            .map(ConfigIssue::to_string)
            .collect();
        if !issues.is_empty() {
            return Err(MethodError::Other(issues.join("; ")));
        }
        let spec = networks[0].spec;
        let view = PlanView {
            networks: &networks,
            input_size: TEST_SIZE,
            num_classes: TEST_CLASSES,
            in_channels: 1,
            config: &config,
        };
        let plain = Device::flex();
        plain.seed(7);
        let device = plain.autodiff();
        let sgd = SgdSettings {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
        };
        let mut roles = Roles::default();
        for need in &needs.roles {
            if roles.get(&need.role).is_some() {
                continue;
            }
            let planned = networks
                .iter()
                .find(|n| n.role == need.role)
                .ok_or_else(|| {
                    MethodError::Missing(format!("no test network for `{}`", need.role))
                })?;
            let phase = need.trained_in.clone();
            let net = Trainable::new(
                &need.role,
                phase.as_deref().unwrap_or(MAIN_PHASE),
                planned.arch.init(&device),
                0.1,
                &sgd,
            );
            roles.insert(RoleNet {
                name: need.role.clone(),
                arch_name: planned.arch_name.clone(),
                spec,
                trained_in: phase,
                bn: need.bn,
                ce_weight: 1.0,
                net,
            });
        }
        let mut init = InitContext {
            device: &device,
            roles: &roles,
            sgd,
            base_lr: 0.1,
            plan: view,
        };
        method.init(&mut init)?;
        let images = Tensor::random(
            [TEST_BATCH, 1, TEST_SIZE, TEST_SIZE],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let labels: Vec<i64> = (0..TEST_BATCH as i64).map(|i| (3 * i) % 10).collect();
        let labels = Tensor::from_data(TensorData::new(labels, [TEST_BATCH]), &device);
        let epochs = config.run.epochs;
        Ok(TestRun {
            method,
            needs,
            roles,
            networks,
            config,
            device,
            images,
            labels,
            position: StepPosition {
                epochs,
                ..StepPosition::default()
            },
            instance: "test".into(),
        })
    }

    /// What the instance declared.
    pub fn needs(&self) -> &Needs {
        &self.needs
    }

    /// The instance.
    pub fn method(&mut self) -> &mut dyn Method {
        self.method.as_mut()
    }

    /// The role networks.
    pub fn roles(&self) -> &Roles {
        &self.roles
    }

    /// The resolved configuration the run was planned under.
    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// The planned networks.
    pub fn networks(&self) -> &[PlannedNetwork] {
        &self.networks
    }

    /// The logits `[4, 10]` of `role` in evaluation mode on the inner device, as evaluation
    /// and frozen roles compute them.
    ///
    /// # Panics
    /// When the run has no such role.
    pub fn eval_logits(&self, role: &str) -> Tensor<2> {
        use crate::zoo::Staged;
        use burn::module::Module;
        let network = self
            .roles
            .network(role)
            .expect("a role of the test run")
            .valid();
        network.forward_features(self.images.clone().inner()).logits
    }

    /// The step's images `[4, 1, 16, 16]` on the autodiff device.
    pub fn images(&self) -> Tensor<4> {
        self.images.clone()
    }

    /// The autodiff device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The terms of one step of `phase` as `(name, value)`, after `begin_step`, each checked
    /// against what `needs()` declares for the phase. Nothing is stepped.
    ///
    /// # Errors
    /// The method's error, or [`MethodError::UndeclaredTerm`].
    pub fn terms(&mut self, phase: &str) -> Result<Vec<(String, f64)>, MethodError> {
        Ok(self
            .weighted_terms(phase)?
            .into_iter()
            .map(|(name, value, _)| (name, value))
            .collect())
    }

    /// As [`TestRun::terms`], with each term's own weight: `(name, value, weight)` (a logged-only
    /// term has weight 0).
    ///
    /// # Errors
    /// As [`TestRun::terms`].
    pub fn weighted_terms(&mut self, phase: &str) -> Result<Vec<(String, f64, f64)>, MethodError> {
        let mut cache = HashMap::new();
        let mut ctx = StepContext::new(
            phase,
            self.position,
            self.images.clone(),
            self.labels.clone(),
            7,
            &self.roles,
            &mut cache,
        );
        ctx.for_instance(&self.instance);
        self.method.begin_step(&mut ctx)?;
        let terms = self.method.terms(&mut ctx)?;
        self.needs.check_terms(phase, &terms)?;
        Ok(terms
            .into_iter()
            .map(|t| (t.name, t.value.into_scalar::<f32>() as f64, t.weight))
            .collect())
    }

    /// The extra outputs the method evaluates, as `(name, [N, C] logits)` on the plain device.
    ///
    /// # Errors
    /// The method's error.
    pub fn evaluate(&self) -> Result<Vec<(String, Tensor<2>)>, MethodError> {
        use burn::module::Module;
        let networks: HashMap<String, crate::zoo::Network> = self
            .roles
            .iter()
            .map(|r| (r.name.clone(), r.net.module().valid()))
            .collect();
        let mut ctx = EvalContext::new(self.images.clone().inner(), &networks);
        self.method.evaluate(&mut ctx)
    }
}

/// The names of `terms`, in order.
pub fn term_names(terms: &[(String, f64)]) -> Vec<&str> {
    terms.iter().map(|(name, _)| name.as_str()).collect()
}

/// The value of the term `name`.
///
/// # Panics
/// When there is no such term (the message lists the terms).
pub fn term_value(terms: &[(String, f64)], name: &str) -> f64 {
    terms
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no `{name}` in {terms:?}"))
        .1
}

/// The largest absolute difference between two tensors of the same shape.
///
/// # Panics
/// When the shapes differ or the tensors are not `f32`.
pub fn max_abs_difference(a: Tensor<2>, b: Tensor<2>) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    let a = a.into_data().try_to_vec::<f32>().expect("f32 values");
    let b = b.into_data().try_to_vec::<f32>().expect("f32 values");
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::{Needs, RoleNeed, TapNeed, Term, TermSpec};

    /// A method reading a tap of its student, with one main-phase term: the run's epochs.
    struct Probe(&'static str);

    impl Method for Probe {
        fn needs(&self) -> Needs {
            Needs {
                roles: vec![RoleNeed::trained("student", "method.p.student")],
                taps: vec![TapNeed {
                    role: "student".into(),
                    tap: self.0.into(),
                    key: "method.p.student".into(),
                }],
                terms: vec![TermSpec::main("epochs", "the run's epochs")],
                ..Needs::default()
            }
        }

        fn terms(&mut self, ctx: &mut StepContext<'_>) -> Result<Vec<Term>, MethodError> {
            let value = Tensor::from_data([ctx.epochs as f32], &ctx.images.device());
            Ok(vec![Term::new("epochs", value)])
        }
    }

    #[test]
    fn the_step_sees_the_configured_epochs() {
        let mut config = test_config();
        config.run.epochs = 3;
        let mut run =
            TestRun::with_config(Box::new(Probe("stage3")), &[("student", "resnet8")], config)
                .unwrap();
        assert_eq!(
            run.terms(MAIN_PHASE).unwrap(),
            [("epochs".to_string(), 3.0)]
        );
    }

    #[test]
    fn a_declared_tap_the_network_lacks_is_an_issue_on_its_key() {
        // resnet8 has three stages (stage1..stage3): no stage4.
        let issues =
            check_issues(&Probe("stage4"), &[("student", "resnet8")], &test_config()).unwrap();
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].key.as_deref(), Some("method.p.student"));
        assert!(issues[0].message.contains("no tap `stage4`"));
        assert!(TestRun::new(Box::new(Probe("stage4")), &[("student", "resnet8")]).is_err());
        let err =
            check_issues(&Probe("stage3"), &[("student", "resnet9")], &test_config()).unwrap_err();
        assert!(err.to_string().contains("resnet20"), "{err}");
    }
}

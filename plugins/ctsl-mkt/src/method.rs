//! The `ctsl-mkt` method: nothing in stage 1; at the stage boundary, frozen self-copies of the
//! peers; in stage 2, mutual, relational and self-distillation terms for every peer.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use kd_core::config::{ConfigError, ConfigIssue};
use kd_core::loss::{ensemble_log_probs, soft_kl};
use kd_core::method::{
    EvalContext, Frozen, InitContext, MAIN_PHASE, Method, MethodArgs, MethodError, Needs, Part,
    PlanView, RoleNeed, StepContext, Term, TermSpec,
};
use kd_core::zoo::{Arch, Network, Staged, independent_copy};

use crate::config::{CtslConfig, RelationOn};
use crate::relation::{angle_loss, distance_loss};

/// A `ctsl-mkt` instance.
pub struct CtslMkt {
    config: CtslConfig,
    instance: String,
    archs: Vec<Arch>,
    self_teachers: Vec<Frozen<Network>>,
}

/// Builds an instance from its table.
pub fn build(args: &MethodArgs<'_>) -> Result<Box<dyn Method>, ConfigError> {
    let config: CtslConfig = args.parse()?;
    let mut issues = args.peer_issues(&config.peers, "collaborative learning");
    for (key, value) in [
        ("beta", config.beta),
        ("distance_weight", config.distance_weight),
        ("angle_weight", config.angle_weight),
        ("beta2", config.beta2),
        ("gamma", config.gamma),
    ] {
        if !(value.is_finite() && value >= 0.0) {
            issues.push(args.issue(key, "must be a non-negative number"));
        }
    }
    if !(config.self_temperature.is_finite() && config.self_temperature > 0.0) {
        issues.push(args.issue("self_temperature", "must be a positive number"));
    }
    if !issues.is_empty() {
        return Err(ConfigError { issues });
    }
    Ok(Box::new(CtslMkt {
        config,
        instance: args.instance.to_string(),
        archs: Vec::new(),
        self_teachers: Vec::new(),
    }))
}

/// An independent, frozen-ready copy of `source` (its own parameter ids and running statistics).
fn copy_of(arch: &Arch, source: &Network, device: &Device) -> Result<Network, MethodError> {
    let _ = source.valid(); // sync BatchNorm's running statistics before reading them
    let fresh = arch.init(device);
    let loaded = fresh
        .try_load_record(source.clone().into_record())
        .map_err(|e| MethodError::Other(format!("copying a peer: {e}")))?;
    Ok(independent_copy(loaded))
}

impl CtslMkt {
    fn key(&self, key: &str) -> String {
        format!("method.{}.{key}", self.instance)
    }
}

impl Method for CtslMkt {
    fn needs(&self) -> Needs {
        let c = &self.config;
        let key = self.key("peers");
        let mut terms = Vec::new();
        for peer in &c.peers {
            let term = |name: String, formula: String| TermSpec {
                name,
                phase: MAIN_PHASE.into(),
                formula,
            };
            terms.push(term(
                format!("mutual/{peer}"),
                format!("{}·{} × mean KL(p_other ‖ p_{peer})", c.beta, c.beta2),
            ));
            terms.push(term(
                format!("relation/{peer}"),
                format!(
                    "{} × mean ({}·RKD distance + {}·RKD angle) on {:?}",
                    c.beta, c.distance_weight, c.angle_weight, c.relation_on
                ),
            ));
            terms.push(term(
                format!("self/{peer}"),
                format!(
                    "{} × {}KL(p_self ‖ p_{peer}), t={}, from epoch {}",
                    c.gamma,
                    if c.self_tau_squared { "t²·" } else { "" },
                    c.self_temperature,
                    c.pretrain_epochs
                ),
            ));
        }
        Needs {
            roles: c.peers.iter().map(|p| RoleNeed::trained(p, &key)).collect(),
            terms,
            eval_outputs: vec!["ensemble".into()],
            ..Needs::default()
        }
    }

    fn check(&self, plan: &PlanView<'_>) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        let epochs = plan.config.run.epochs;
        if self.config.pretrain_epochs >= epochs {
            issues.push(ConfigIssue {
                key: Some(self.key("pretrain_epochs")),
                source: None,
                message: format!(
                    "stage 2 never starts: {} ≥ run.epochs ({epochs})",
                    self.config.pretrain_epochs
                ),
            });
        }
        if self.config.pretrain_epochs == 0 {
            for peer in &self.config.peers {
                if plan.network(peer).is_some_and(|n| !n.has_checkpoint) {
                    issues.push(ConfigIssue {
                        key: Some(self.key("pretrain_epochs")),
                        source: None,
                        message: format!(
                            "0 means stage 1 was done elsewhere, but peer `{peer}` starts from scratch: set \
                             networks.{peer}.checkpoint or pretrain_epochs > 0"
                        ),
                    });
                }
            }
        }
        issues
    }

    fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), MethodError> {
        for peer in &self.config.peers {
            let planned = ctx
                .plan
                .network(peer)
                .ok_or_else(|| MethodError::Missing(format!("no planned network `{peer}`")))?;
            let copy = copy_of(&planned.arch, ctx.network(peer)?, ctx.device)?;
            self.self_teachers
                .push(Frozen::new(&format!("{}.self/{peer}", self.instance), copy));
            self.archs.push(planned.arch.clone());
        }
        Ok(())
    }

    fn begin_step(&mut self, ctx: &mut StepContext<'_>) -> Result<(), MethodError> {
        let c = &self.config;
        if ctx.phase() == MAIN_PHASE && ctx.epoch == c.pretrain_epochs && ctx.batch == 0 {
            // Stage 2 begins: each peer, as stage 1 left it, becomes its own frozen teacher
            // (before this step's forward moves its BatchNorm statistics).
            let device = ctx.images.device();
            for (k, peer) in c.peers.iter().enumerate() {
                let copy = copy_of(&self.archs[k], ctx.network(peer)?, &device)?;
                self.self_teachers[k].set_module(copy);
            }
        }
        Ok(())
    }

    fn terms(&mut self, ctx: &mut StepContext<'_>) -> Result<Vec<Term>, MethodError> {
        let c = &self.config;
        if ctx.phase() != MAIN_PHASE || ctx.epoch < c.pretrain_epochs {
            return Ok(Vec::new());
        }
        let mut logits = Vec::new();
        let mut representations = Vec::new();
        for peer in &c.peers {
            let features = ctx.features(peer)?;
            logits.push(features.logits.clone());
            representations.push(match c.relation_on {
                RelationOn::Pooled => features.pooled.clone(),
                RelationOn::Logits => features.logits.clone(),
            });
        }
        let inner_images = ctx.images.clone().inner();
        let others = (c.peers.len() - 1) as f64;
        let mut terms = Vec::new();
        for (k, peer) in c.peers.iter().enumerate() {
            let mut mutual = Vec::new();
            let mut relation = Vec::new();
            for l in (0..c.peers.len()).filter(|&l| l != k) {
                mutual.push(soft_kl(logits[k].clone(), logits[l].clone(), 1.0));
                let (mine, theirs) = (representations[k].clone(), representations[l].clone());
                relation.push(
                    distance_loss(mine.clone(), theirs.clone()).mul_scalar(c.distance_weight)
                        + angle_loss(mine, theirs).mul_scalar(c.angle_weight),
                );
            }
            let mean = |v: Vec<Tensor<1>>| {
                v.into_iter()
                    .reduce(|a, b| a + b)
                    .expect("another peer")
                    .div_scalar(others)
            };
            let own = self.self_teachers[k]
                .module()
                .valid()
                .forward(inner_images.clone());
            // soft_kl carries Hinton's t² factor; without `self_tau_squared` it is divided out.
            let t2 = c.self_temperature * c.self_temperature;
            let self_term = soft_kl(
                logits[k].clone(),
                Tensor::from_inner(own),
                c.self_temperature,
            );
            let self_term = if c.self_tau_squared {
                self_term
            } else {
                self_term.div_scalar(t2)
            };
            terms.push(Term::weighted(
                &format!("mutual/{peer}"),
                mean(mutual),
                c.beta * c.beta2,
            ));
            terms.push(Term::weighted(
                &format!("relation/{peer}"),
                mean(relation),
                c.beta,
            ));
            terms.push(Term::weighted(&format!("self/{peer}"), self_term, c.gamma));
        }
        Ok(terms)
    }

    fn parts(&mut self) -> Vec<&mut dyn Part> {
        self.self_teachers
            .iter_mut()
            .map(|t| t as &mut dyn Part)
            .collect()
    }

    fn evaluate(&self, ctx: &mut EvalContext<'_>) -> Result<Vec<(String, Tensor<2>)>, MethodError> {
        let mut logits = Vec::new();
        for peer in &self.config.peers {
            logits.push(ctx.features(peer)?.logits.clone());
        }
        Ok(vec![("ensemble".into(), ensemble_log_probs(&logits))])
    }
}

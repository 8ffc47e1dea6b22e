//! The `ctsl-mkt` method: nothing in stage 1; at the stage boundary, frozen self-copies of the
//! peers; in stage 2, mutual, relational and self-distillation terms for every peer.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use kd_core::config::{ConfigError, ConfigIssue};
use kd_core::loss::{ensemble_log_probs, soft_kl};
use kd_core::method::{
    EvalContext, Frozen, InitContext, MAIN_PHASE, Method, MethodArgs, MethodError, Needs, Part,
    PlanView, RoleNeed, StepContext, Term, TermSpec, instance_key,
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
    let peers = args.peer_issues(&config.peers, "collaborative learning");
    args.check(peers.into_iter().map(Some).chain([
        args.non_negative("beta", config.beta),
        args.non_negative("distance_weight", config.distance_weight),
        args.non_negative("angle_weight", config.angle_weight),
        args.non_negative("beta2", config.beta2),
        args.non_negative("gamma", config.gamma),
        args.positive("self_temperature", config.self_temperature),
    ]))?;
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

impl Method for CtslMkt {
    fn needs(&self) -> Needs {
        let c = &self.config;
        let key = instance_key(&self.instance, "peers");
        let mut terms = Vec::new();
        for peer in &c.peers {
            terms.push(TermSpec::main(
                &format!("mutual/{peer}"),
                format!("{}·{} × mean KL(p_other ‖ p_{peer})", c.beta, c.beta2),
            ));
            terms.push(TermSpec::main(
                &format!("relation/{peer}"),
                format!(
                    "{} × mean ({}·RKD distance + {}·RKD angle) on {:?}",
                    c.beta, c.distance_weight, c.angle_weight, c.relation_on
                ),
            ));
            terms.push(TermSpec::main(
                &format!("self/{peer}"),
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
            issues.push(ConfigIssue::at(
                &instance_key(&self.instance, "pretrain_epochs"),
                format!(
                    "stage 2 never starts: {} ≥ run.epochs ({epochs})",
                    self.config.pretrain_epochs
                ),
            ));
        }
        if self.config.pretrain_epochs == 0 {
            for peer in &self.config.peers {
                if plan.network(peer).is_some_and(|n| !n.has_checkpoint) {
                    issues.push(ConfigIssue::at(
                        &instance_key(&self.instance, "pretrain_epochs"),
                        format!(
                            "0 means stage 1 was done elsewhere, but peer `{peer}` starts from scratch: set \
                             networks.{peer}.checkpoint or pretrain_epochs > 0"
                        ),
                    ));
                }
            }
        }
        issues
    }

    fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), MethodError> {
        for peer in &self.config.peers {
            let planned = ctx.plan.require(peer)?;
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

#[cfg(test)]
mod tests {
    use kd_core::method::testing::{TestRun, build_instance, max_abs_difference};
    use kd_core::zoo::Staged;

    use super::*;

    const THREE: [(&str, &str); 3] = [("a", "resnet8"), ("b", "resnet14"), ("c", "resnet8")];
    const PEERS: &str = "peers = [\"a\", \"b\", \"c\"]\npretrain_epochs = 2";

    fn scalar(t: Tensor<1>) -> f64 {
        t.into_scalar::<f32>() as f64
    }

    #[test]
    fn nothing_in_stage_one_then_three_terms_per_peer() {
        let method = build_instance(build, "ctsl", PEERS).unwrap();
        let mut run = TestRun::new(method, &THREE).unwrap();
        for epoch in [0, 1] {
            run.position.epoch = epoch;
            assert!(run.terms(MAIN_PHASE).unwrap().is_empty(), "epoch {epoch}");
        }
        run.position.epoch = 2;
        let terms = run.terms(MAIN_PHASE).unwrap();
        let names: Vec<&str> = terms.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "mutual/a",
                "relation/a",
                "self/a",
                "mutual/b",
                "relation/b",
                "self/b",
                "mutual/c",
                "relation/c",
                "self/c"
            ]
        );
        for (name, value) in &terms {
            assert!(*value >= 0.0 && value.is_finite(), "{name}: {value}");
        }
        // Later in stage 2, past its first batch, the same terms.
        run.position.epoch = 5;
        run.position.batch = 3;
        assert_eq!(run.terms(MAIN_PHASE).unwrap().len(), 9);
        assert!(run.terms("other").unwrap().is_empty());
    }

    #[test]
    fn every_peer_is_trained_in_the_main_phase() {
        let method = build_instance(build, "collab", PEERS).unwrap();
        let needs = method.needs();
        let roles: Vec<&str> = needs.roles.iter().map(|r| r.role.as_str()).collect();
        assert_eq!(roles, ["a", "b", "c"]);
        for role in &needs.roles {
            assert_eq!(
                role.trained_in.as_deref(),
                Some(MAIN_PHASE),
                "{}",
                role.role
            );
            assert_eq!(role.key, "method.collab.peers");
        }
        assert_eq!(needs.terms.len(), 9);
        assert!(needs.terms.iter().all(|t| t.phase == MAIN_PHASE));
        assert!(needs.phases.is_empty());
        assert_eq!(needs.eval_outputs, ["ensemble"]);
    }

    #[test]
    fn the_terms_are_the_losses_of_the_peers_outputs_and_their_self_copies() {
        for (extra, on_logits, tau_squared) in [
            ("", false, false),
            (
                "relation_on = \"logits\"\nself_tau_squared = true",
                true,
                true,
            ),
        ] {
            let table = format!("{PEERS}\nself_temperature = 2.0\n{extra}");
            let method = build_instance(build, "ctsl", &table).unwrap();
            let mut run = TestRun::new(method, &THREE).unwrap();
            let images = run.images();
            let peers = ["a", "b", "c"];
            let evaluated = |run: &TestRun| -> Vec<Tensor<2>> {
                peers
                    .iter()
                    .map(|p| {
                        let network = run.roles().network(p).unwrap().valid();
                        let logits = network.forward_features(images.clone().inner()).logits;
                        Tensor::from_inner(logits)
                    })
                    .collect()
            };
            let at_init = evaluated(&run);
            // Stage 1 moves the peers after init: a training-mode forward updates their
            // BatchNorm running statistics.
            for p in peers {
                let _ = run.roles().network(p).unwrap().forward(images.clone());
            }
            // The self-copies are taken at the first batch of stage 2, before the step's forward
            // moves the statistics again, and run in evaluation mode.
            let own = evaluated(&run);
            assert!(max_abs_difference(at_init[0].clone(), own[0].clone()) > 1e-4);
            run.position.epoch = 2;
            let terms = run.terms(MAIN_PHASE).unwrap();
            // The peers are trained: training mode on the autodiff device.
            let features: Vec<_> = peers
                .iter()
                .map(|p| {
                    let network = run.roles().network(p).unwrap();
                    network.forward_features(images.clone())
                })
                .collect();
            let logits: Vec<Tensor<2>> = features.iter().map(|f| f.logits.clone()).collect();
            let representations: Vec<Tensor<2>> = features
                .iter()
                .map(|f| {
                    if on_logits {
                        f.logits.clone()
                    } else {
                        f.pooled.clone()
                    }
                })
                .collect();
            for (k, peer) in peers.iter().enumerate() {
                let others: Vec<usize> = (0..3).filter(|&l| l != k).collect();
                let mutual = others
                    .iter()
                    .map(|&l| scalar(soft_kl(logits[k].clone(), logits[l].clone(), 1.0)))
                    .sum::<f64>()
                    / 2.0;
                let relation = others
                    .iter()
                    .map(|&l| {
                        let (mine, theirs) =
                            (representations[k].clone(), representations[l].clone());
                        25.0 * scalar(distance_loss(mine.clone(), theirs.clone()))
                            + 50.0 * scalar(angle_loss(mine, theirs))
                    })
                    .sum::<f64>()
                    / 2.0;
                let kl = scalar(soft_kl(logits[k].clone(), own[k].clone(), 2.0));
                let own_term = if tau_squared { kl } else { kl / 4.0 };
                for (name, expected) in [
                    (format!("mutual/{peer}"), mutual),
                    (format!("relation/{peer}"), relation),
                    (format!("self/{peer}"), own_term),
                ] {
                    let got = terms.iter().find(|(n, _)| *n == name).unwrap().1;
                    assert!(
                        (got - expected).abs() < 1e-5 * expected.max(1.0),
                        "{extra:?} {name}: {got} vs {expected}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_ensemble_averages_the_peers_evaluation_outputs() {
        let method = build_instance(build, "ctsl", PEERS).unwrap();
        let run = TestRun::new(method, &THREE).unwrap();
        let outputs = run.evaluate().unwrap();
        assert_eq!(outputs.len(), 1);
        assert_eq!(outputs[0].0, "ensemble");
        let logits: Vec<Tensor<2>> = ["a", "b", "c"].map(|p| run.eval_logits(p)).to_vec();
        let difference = max_abs_difference(outputs[0].1.clone(), ensemble_log_probs(&logits));
        assert!(difference < 1e-6, "{difference}");
    }

    #[test]
    fn a_stage_two_that_never_starts_or_has_no_stage_one_is_refused_at_plan_time() {
        for (table, message) in [
            ("pretrain_epochs = 10", "stage 2 never starts"),
            ("pretrain_epochs = 0", "starts from scratch"),
        ] {
            let table = format!("peers = [\"a\", \"b\", \"c\"]\n{table}");
            let method = build_instance(build, "ctsl", &table).unwrap();
            let Err(err) = TestRun::new(method, &THREE) else {
                panic!("{table} was accepted");
            };
            let err = err.to_string();
            assert!(err.contains("method.ctsl.pretrain_epochs"), "{err}");
            assert!(err.contains(message), "{err}");
        }
    }

    #[test]
    fn bad_keys_are_named() {
        for (table, key, message) in [
            ("peers = [\"a\"]", "method.ctsl.peers", "at least two peers"),
            ("gamma = -1.0", "method.ctsl.gamma", "non-negative"),
            (
                "self_temperature = 0.0",
                "method.ctsl.self_temperature",
                "positive",
            ),
            (
                "relation_on = \"stem\"",
                "method.ctsl.relation_on",
                "unknown variant",
            ),
            ("betta = 1.0", "method.ctsl.betta", "unknown field"),
        ] {
            let Err(err) = build_instance(build, "ctsl", table) else {
                panic!("{table} was accepted");
            };
            assert_eq!(err.issues[0].key.as_deref(), Some(key), "{table}");
            assert!(err.issues[0].message.contains(message), "{err}");
        }
    }
}

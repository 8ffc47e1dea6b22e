//! The `dml` method: every peer trained in the main phase, one term per peer, an ensemble
//! evaluated each epoch.

use burn::tensor::Tensor;
use kd_core::config::ConfigError;
use kd_core::method::{
    EvalContext, MAIN_PHASE, Method, MethodArgs, MethodError, Needs, RoleNeed, StepContext, Term,
    TermSpec, instance_key,
};

use crate::config::DmlConfig;
use crate::loss::{ensemble_log_probs, mutual_kl};

/// A `dml` instance.
#[derive(Debug)]
pub struct Dml {
    config: DmlConfig,
    instance: String,
}

/// Builds an instance from its table.
pub fn build(args: &MethodArgs<'_>) -> Result<Box<dyn Method>, ConfigError> {
    let config: DmlConfig = args.parse()?;
    let peers = args.peer_issues(&config.peers, "mutual learning");
    args.check(
        peers
            .into_iter()
            .map(Some)
            .chain([args.positive("temperature", config.temperature)]),
    )?;
    Ok(Box::new(Dml {
        config,
        instance: args.instance.to_string(),
    }))
}

impl Method for Dml {
    fn needs(&self) -> Needs {
        let key = instance_key(&self.instance, "peers");
        let others = |peer: &str| {
            self.config
                .peers
                .iter()
                .filter(|p| *p != peer)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        };
        Needs {
            roles: self
                .config
                .peers
                .iter()
                .map(|p| RoleNeed::trained(p, &key))
                .collect(),
            terms: self
                .config
                .peers
                .iter()
                .map(|p| {
                    let formula = format!(
                        "{:?} over [{}] of τ²·KL(p_other ‖ p_{p}), τ={}",
                        self.config.reduction,
                        others(p),
                        self.config.temperature
                    );
                    TermSpec::main(&format!("kl/{p}"), formula)
                })
                .collect(),
            eval_outputs: vec!["ensemble".into()],
            ..Needs::default()
        }
    }

    fn terms(&mut self, ctx: &mut StepContext<'_>) -> Result<Vec<Term>, MethodError> {
        if ctx.phase() != MAIN_PHASE {
            return Ok(Vec::new());
        }
        let mut logits = Vec::with_capacity(self.config.peers.len());
        for peer in &self.config.peers {
            logits.push(ctx.logits(peer)?);
        }
        let terms = self
            .config
            .peers
            .iter()
            .enumerate()
            .map(|(k, peer)| {
                let others: Vec<Tensor<2>> = logits
                    .iter()
                    .enumerate()
                    .filter(|(l, _)| *l != k)
                    .map(|(_, z)| z.clone())
                    .collect();
                let value = mutual_kl(
                    logits[k].clone(),
                    &others,
                    self.config.temperature,
                    self.config.reduction,
                );
                Term::new(&format!("kl/{peer}"), value)
            })
            .collect();
        Ok(terms)
    }

    fn evaluate(&self, ctx: &mut EvalContext<'_>) -> Result<Vec<(String, Tensor<2>)>, MethodError> {
        let mut logits = Vec::with_capacity(self.config.peers.len());
        for peer in &self.config.peers {
            logits.push(ctx.features(peer)?.logits.clone());
        }
        Ok(vec![("ensemble".into(), ensemble_log_probs(&logits))])
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Tensor;
    use kd_core::method::testing::{TestRun, build_instance, max_abs_difference};
    use kd_core::zoo::Staged;

    use super::*;
    use crate::config::Reduction;

    const THREE: [(&str, &str); 3] = [("a", "resnet8"), ("b", "resnet14"), ("c", "resnet8")];
    const PEERS: &str = "peers = [\"a\", \"b\", \"c\"]";

    #[test]
    fn one_kl_term_per_peer_in_the_main_phase_only() {
        let method = build_instance(build, "dml", PEERS).unwrap();
        let mut run = TestRun::new(method, &THREE).unwrap();
        let terms = run.terms(MAIN_PHASE).unwrap();
        let names: Vec<&str> = terms.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["kl/a", "kl/b", "kl/c"]);
        // Every KL is finite and non-negative (between two freshly initialised, near-uniform
        // softened outputs it can round to exactly 0 in f32).
        for (name, value) in &terms {
            assert!(*value >= 0.0 && value.is_finite(), "{name}: {value}");
        }
        assert!(run.terms("other").unwrap().is_empty());
    }

    #[test]
    fn every_peer_is_trained_from_scratch_in_the_main_phase() {
        let method = build_instance(build, "mutual", PEERS).unwrap();
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
            assert!(!role.pretrained, "{}", role.role);
            assert_eq!(role.key, "method.mutual.peers");
        }
        assert!(needs.terms.iter().all(|t| t.phase == MAIN_PHASE));
        assert!(needs.phases.is_empty());
        assert_eq!(needs.eval_outputs, ["ensemble"]);
        // The defaults: two peers, `student` and `peer`.
        let needs = build_instance(build, "dml", "").unwrap().needs();
        let roles: Vec<&str> = needs.roles.iter().map(|r| r.role.as_str()).collect();
        assert_eq!(roles, ["student", "peer"]);
    }

    #[test]
    fn each_term_is_the_mutual_kl_of_the_peers_logits() {
        for (reduction, name) in [(Reduction::Mean, "mean"), (Reduction::Sum, "sum")] {
            let table = format!("{PEERS}\ntemperature = 2.0\nreduction = \"{name}\"");
            let method = build_instance(build, "dml", &table).unwrap();
            let mut run = TestRun::new(method, &THREE).unwrap();
            let terms = run.terms(MAIN_PHASE).unwrap();
            // Every peer is trained: each runs on the autodiff device in training mode.
            let images = run.images();
            let logits: Vec<Tensor<2>> = ["a", "b", "c"]
                .iter()
                .map(|p| {
                    let network = run.roles().network(p).unwrap();
                    network.forward_features(images.clone()).logits
                })
                .collect();
            for (k, (term, value)) in terms.iter().enumerate() {
                let others: Vec<Tensor<2>> = (0..3)
                    .filter(|&l| l != k)
                    .map(|l| logits[l].clone())
                    .collect();
                let expected = mutual_kl(logits[k].clone(), &others, 2.0, reduction)
                    .into_scalar::<f32>() as f64;
                assert!(
                    (value - expected).abs() < 1e-6 * expected.max(1.0),
                    "{name} {term}: {value} vs {expected}"
                );
            }
        }
    }

    #[test]
    fn the_ensemble_averages_the_peers_evaluation_outputs() {
        let method = build_instance(build, "dml", PEERS).unwrap();
        let run = TestRun::new(method, &THREE).unwrap();
        let outputs = run.evaluate().unwrap();
        assert_eq!(outputs.len(), 1);
        assert_eq!(outputs[0].0, "ensemble");
        // Evaluation runs every peer in evaluation mode on the inner device.
        let logits: Vec<Tensor<2>> = ["a", "b", "c"].map(|p| run.eval_logits(p)).to_vec();
        let expected = ensemble_log_probs(&logits);
        assert_eq!(outputs[0].1.dims(), [4, 10]);
        let difference = max_abs_difference(outputs[0].1.clone(), expected);
        assert!(difference < 1e-6, "{difference}");
    }

    #[test]
    fn bad_keys_are_named() {
        for (table, key, message) in [
            ("peers = [\"a\"]", "method.dml.peers", "at least two peers"),
            ("peers = [\"a\", \"a\"]", "method.dml.peers", "named twice"),
            ("temperature = 0.0", "method.dml.temperature", "positive"),
            (
                "reduction = \"max\"",
                "method.dml.reduction",
                "unknown variant",
            ),
            ("temprature = 1.0", "method.dml.temprature", "unknown field"),
        ] {
            let Err(err) = build_instance(build, "dml", table) else {
                panic!("{table} was accepted");
            };
            assert_eq!(err.issues[0].key.as_deref(), Some(key), "{table}");
            assert!(err.issues[0].message.contains(message), "{err}");
        }
    }
}

//! The `dml` method: every peer trained in the main phase, one term per peer, an ensemble
//! evaluated each epoch.

use burn::tensor::Tensor;
use kd_core::config::ConfigError;
use kd_core::method::{
    EvalContext, MAIN_PHASE, Method, MethodArgs, MethodError, Needs, RoleNeed, StepContext, Term,
    TermSpec,
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
    let mut issues = args.peer_issues(&config.peers, "mutual learning");
    if !(config.temperature.is_finite() && config.temperature > 0.0) {
        issues.push(args.issue("temperature", "must be a positive number"));
    }
    if !issues.is_empty() {
        return Err(ConfigError { issues });
    }
    Ok(Box::new(Dml {
        config,
        instance: args.instance.to_string(),
    }))
}

impl Method for Dml {
    fn needs(&self) -> Needs {
        let key = format!("method.{}.peers", self.instance);
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
                .map(|p| TermSpec {
                    name: format!("kl/{p}"),
                    phase: MAIN_PHASE.into(),
                    formula: format!(
                        "{:?} over [{}] of τ²·KL(p_other ‖ p_{p}), τ={}",
                        self.config.reduction,
                        others(p),
                        self.config.temperature
                    ),
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
            logits.push(ctx.features(peer)?.logits.clone());
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

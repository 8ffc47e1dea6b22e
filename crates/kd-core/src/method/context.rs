//! What a method sees: the plan (before tensors), the networks at initialisation, and one batch
//! with lazily computed features during a step or an evaluation.
//!
//! Features are computed at most once per network per phase step, on first request: a network
//! trained in the current phase runs on the autodiff device in training mode; any other runs
//! frozen — on the inner device through `valid()` (its outputs brought back with
//! `Tensor::from_inner`, so they carry no graph), or, for a role whose BatchNorm stays in
//! training mode, on the autodiff device with its weights excluded from gradients.

use std::collections::HashMap;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::error::MethodError;
use super::needs::{BnMode, TapNeed};
use super::part::SgdSettings;
use super::roles::Roles;
use crate::config::ConfigIssue;
use crate::data::mix;
use crate::zoo::{Arch, Features, ModelSpec, Network, Staged, TapShape};

/// A network as planned: no tensor exists yet.
#[derive(Debug, Clone)]
pub struct PlannedNetwork {
    /// Role name.
    pub role: String,
    /// Zoo name.
    pub arch_name: String,
    /// Buildable architecture.
    pub arch: Arch,
    /// Classes and input channels.
    pub spec: ModelSpec,
    /// Per-sample shapes of every tap.
    pub taps: Vec<TapShape>,
    /// Whether it starts from a checkpoint.
    pub has_checkpoint: bool,
}

impl PlannedNetwork {
    /// The shape of one tap.
    pub fn tap(&self, name: &str) -> Option<&[usize]> {
        self.taps
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.shape.as_slice())
    }

    /// The problem, on the requesting key, when this network lacks a tap a method declared
    /// (the plan and the test context both report it this way).
    pub fn tap_issue(&self, need: &TapNeed) -> Option<ConfigIssue> {
        if self.tap(&need.tap).is_some() {
            return None;
        }
        let known: Vec<&str> = self.taps.iter().map(|t| t.name.as_str()).collect();
        Some(ConfigIssue::at(
            &need.key,
            format!(
                "{} ({}) has no tap `{}`; it has {}",
                need.role,
                self.arch_name,
                need.tap,
                known.join(", ")
            ),
        ))
    }

    /// The per-sample output shape `[C, H, W]` of stage `i` (0-based), if there is one.
    pub fn stage_shape(&self, i: usize) -> Option<[usize; 3]> {
        let shape = self.tap(&crate::zoo::stage_tap(i))?;
        (shape.len() == 3).then(|| [shape[0], shape[1], shape[2]])
    }

    /// The per-sample output shape `[C, H, W]` of the last stage.
    pub fn last_stage_shape(&self) -> [usize; 3] {
        self.stage_shape(self.arch.num_stages() - 1)
            .expect("every zoo network taps its last stage")
    }
}

/// The plan as methods check it.
#[derive(Debug, Clone, Copy)]
pub struct PlanView<'a> {
    /// Every configured network.
    pub networks: &'a [PlannedNetwork],
    /// Side of the network input.
    pub input_size: usize,
    /// Classes of the dataset.
    pub num_classes: usize,
    /// Image channels.
    pub in_channels: usize,
    /// The resolved configuration (epochs, schedule, ...).
    pub config: &'a crate::config::RunConfig,
}

impl PlanView<'_> {
    /// The planned network of a role.
    pub fn network(&self, role: &str) -> Option<&PlannedNetwork> {
        self.networks.iter().find(|n| n.role == role)
    }

    /// The planned network of a role the method declared (so the plan made sure it exists).
    ///
    /// # Errors
    /// [`MethodError::Missing`] naming the role.
    pub fn require(&self, role: &str) -> Result<&PlannedNetwork, MethodError> {
        self.network(role)
            .ok_or_else(|| MethodError::Missing(format!("no planned network `{role}`")))
    }
}

/// What a method may use to build its own modules.
pub struct InitContext<'a> {
    /// The autodiff device modules must live on.
    pub device: &'a Device,
    /// The role networks, already loaded from their checkpoints.
    pub roles: &'a Roles,
    /// The run's SGD settings, for [`super::Trainable::new`].
    pub sgd: SgdSettings,
    /// The run's base learning rate (`optim.lr`).
    pub base_lr: f64,
    /// The plan.
    pub plan: PlanView<'a>,
}

impl InitContext<'_> {
    /// The network of a role.
    pub fn network(&self, role: &str) -> Result<&Network, MethodError> {
        self.roles.network(role)
    }
}

/// Where a step is in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StepPosition {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Total epochs of the run.
    pub epochs: usize,
    /// Batch index within the epoch.
    pub batch: usize,
    /// Steps completed before this one, over the whole run.
    pub global_step: usize,
}

/// One batch of one phase of one step.
pub struct StepContext<'a> {
    phase: &'a str,
    instance: String,
    /// Epoch (0-based).
    pub epoch: usize,
    /// Total epochs of the run.
    pub epochs: usize,
    /// Batch index within the epoch.
    pub batch: usize,
    /// Steps completed before this one, over the whole run.
    pub global_step: usize,
    /// Images `[N, C, S, S]` on the autodiff device (they carry no gradient).
    pub images: Tensor<4>,
    /// Labels `[N]`.
    pub labels: Tensor<1, Int>,
    seed: u64,
    roles: &'a Roles,
    cache: &'a mut HashMap<String, Features>,
}

impl<'a> StepContext<'a> {
    /// A context for one phase step at `position` of a run seeded with `seed`; features are
    /// computed into `cache` (one entry per role). The runtime and the test context create it.
    pub(crate) fn new(
        phase: &'a str,
        position: StepPosition,
        images: Tensor<4>,
        labels: Tensor<1, Int>,
        seed: u64,
        roles: &'a Roles,
        cache: &'a mut HashMap<String, Features>,
    ) -> Self {
        StepContext {
            phase,
            instance: String::new(),
            epoch: position.epoch,
            epochs: position.epochs,
            batch: position.batch,
            global_step: position.global_step,
            images,
            labels,
            seed,
            roles,
            cache,
        }
    }

    /// Sets the method instance the context is handed to (names its random stream).
    pub(crate) fn for_instance(&mut self, instance: &str) {
        self.instance.clear();
        self.instance.push_str(instance);
    }

    /// The phase being computed.
    pub fn phase(&self) -> &str {
        self.phase
    }

    /// Whether `role` is trained in this phase (its features carry a graph).
    pub fn is_trained(&self, role: &str) -> bool {
        self.roles
            .get(role)
            .is_some_and(|r| r.trained_in.as_deref() == Some(self.phase))
    }

    /// The network of a role, as stored: trainable roles as they train; frozen roles with their
    /// weights excluded from gradients (running a frozen network's stages on autodiff tensors
    /// lets gradients flow through it into whatever produced the input, as IAKD needs).
    pub fn network(&self, role: &str) -> Result<&Network, MethodError> {
        self.roles.network(role)
    }

    /// All taps of `role` on this batch, computed once per phase step.
    pub fn features(&mut self, role: &str) -> Result<&Features, MethodError> {
        if !self.cache.contains_key(role) {
            let entry = self
                .roles
                .get(role)
                .ok_or_else(|| MethodError::Missing(format!("no network in role `{role}`")))?;
            let network = entry.net.module();
            let features = if entry.trained_in.as_deref() == Some(self.phase) {
                network.forward_features(self.images.clone())
            } else if entry.bn == BnMode::Train {
                detach(network.forward_features(self.images.clone().detach()))
            } else {
                from_inner(
                    network
                        .valid()
                        .forward_features(self.images.clone().inner()),
                )
            };
            self.cache.insert(role.to_string(), features);
        }
        Ok(&self.cache[role])
    }

    /// The logits `[N, C]` of `role` on this batch (its `logits` tap, computed once).
    ///
    /// # Errors
    /// [`MethodError::Missing`] when the run has no such role.
    pub fn logits(&mut self, role: &str) -> Result<Tensor<2>, MethodError> {
        Ok(self.features(role)?.logits.clone())
    }

    /// A random generator for this instance, step and phase: the same on every run and after a
    /// resume, independent of everything else that draws.
    pub fn rng(&self) -> ChaCha8Rng {
        let mut h = mix(self.seed ^ 0x6b64_5f6d_6574_686f);
        for part in [self.instance.as_str(), self.phase] {
            for byte in part.bytes() {
                h = mix(h ^ byte as u64);
            }
        }
        h = mix(h ^ self.epoch as u64);
        h = mix(h ^ self.batch as u64);
        ChaCha8Rng::seed_from_u64(h)
    }
}

/// One evaluation batch: every role on the inner device, in evaluation mode.
pub struct EvalContext<'a> {
    /// Images `[N, C, S, S]` on the inner device.
    pub images: Tensor<4>,
    networks: &'a HashMap<String, Network>,
    cache: HashMap<String, Features>,
}

impl<'a> EvalContext<'a> {
    /// A context over evaluation-mode copies of the networks.
    pub(crate) fn new(images: Tensor<4>, networks: &'a HashMap<String, Network>) -> Self {
        EvalContext {
            images,
            networks,
            cache: HashMap::new(),
        }
    }

    /// The evaluation-mode network of a role.
    pub fn network(&self, role: &str) -> Result<&Network, MethodError> {
        self.networks
            .get(role)
            .ok_or_else(|| MethodError::Missing(format!("no network in role `{role}`")))
    }

    /// All taps of `role` on this batch.
    pub fn features(&mut self, role: &str) -> Result<&Features, MethodError> {
        if !self.cache.contains_key(role) {
            let features = self.network(role)?.forward_features(self.images.clone());
            self.cache.insert(role.to_string(), features);
        }
        Ok(&self.cache[role])
    }
}

fn map_features(
    f: Features,
    map4: impl Fn(Tensor<4>) -> Tensor<4>,
    map2: impl Fn(Tensor<2>) -> Tensor<2>,
) -> Features {
    Features {
        stem: map4(f.stem),
        stages: f.stages.into_iter().map(&map4).collect(),
        pooled: map2(f.pooled),
        logits: map2(f.logits),
    }
}

fn from_inner(f: Features) -> Features {
    map_features(f, Tensor::from_inner, Tensor::from_inner)
}

fn detach(f: Features) -> Features {
    map_features(f, Tensor::detach, Tensor::detach)
}

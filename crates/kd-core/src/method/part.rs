//! Trainable modules and their optimisers, behind one object-safe trait.
//!
//! A [`Trainable<M>`] pairs a burn module with its own SGD optimiser, base learning rate and the
//! phase that trains it. The runtime holds role networks as `Trainable<Network>`; methods hold
//! their own modules (SOKD's branch, FFKD's regressors) as `Trainable<Whatever>` and hand them to
//! the runtime as `&mut dyn Part` for stepping and checkpointing. One backward per phase, then
//! `GradientsParams::from_module` per part, as burn's multi-model training loops do.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Gradients, Tensor};

use crate::zoo::trainable_params;

/// The SGD settings shared by every optimiser of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdSettings {
    /// Momentum factor (PyTorch semantics: no dampening).
    pub momentum: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
}

impl SgdSettings {
    /// A fresh optimiser with these settings.
    pub fn build(&self) -> ModuleOptimizer {
        let momentum = (self.momentum > 0.0).then_some(MomentumConfig {
            momentum: self.momentum,
            dampening: 0.0,
            nesterov: self.nesterov,
        });
        let weight_decay = (self.weight_decay > 0.0).then_some(WeightDecayConfig {
            penalty: self.weight_decay as f32,
        });
        SgdConfig::new()
            .with_momentum(momentum)
            .with_weight_decay(weight_decay)
            .init()
    }
}

/// Errors restoring a part from bytes.
#[derive(Debug, thiserror::Error)]
#[error("{part}: {message}")]
pub struct PartError {
    /// The part.
    pub part: String,
    /// What went wrong.
    pub message: String,
}

/// A module trained by the runtime.
pub trait Part: Send {
    /// Unique name (role name, or `<instance>.<module>`).
    fn name(&self) -> &str;
    /// Phase in which it is trained.
    fn phase(&self) -> &str;
    /// Learning rate before the schedule's factor.
    fn base_lr(&self) -> f64;
    /// One optimiser step from the gradients of the phase's backward.
    fn step(&mut self, lr: f64, grads: &mut Gradients);
    /// Trainable scalars.
    fn trainable_params(&self) -> usize;
    /// The module's tensors (weights and running statistics), as a burnpack.
    fn module_bytes(&self) -> Result<Vec<u8>, PartError>;
    /// The optimiser's state, as a burnpack.
    fn optimizer_bytes(&self) -> Result<Vec<u8>, PartError>;
    /// Restores module and optimiser state.
    fn restore(&mut self, module: Vec<u8>, optimizer: Option<Vec<u8>>) -> Result<(), PartError>;
    /// Whether an optimiser trains it (a [`Frozen`] part has none).
    fn is_trained(&self) -> bool {
        true
    }
    /// Forgets the optimiser's state (momentum), as a fresh optimiser would start.
    fn reset_optimizer(&mut self) {}
    /// Whether every tensor is finite (checked before a checkpoint is written).
    fn is_finite(&self) -> bool;
}

/// Whether every float tensor of a module (running statistics included) is finite.
pub fn module_is_finite<M: Module>(module: &M) -> bool {
    struct Check(bool);
    impl burn::module::ModuleVisitor for Check {
        fn visit_float<const D: usize>(
            &mut self,
            param: &burn::module::Param<burn::tensor::Tensor<D>>,
        ) {
            if self.0 {
                self.0 = param.val().is_finite().all().into_scalar::<bool>();
            }
        }
    }
    let mut check = Check(true);
    module.visit(&mut check);
    check.0
}

/// A module with its optimiser.
pub struct Trainable<M: Module> {
    name: String,
    phase: String,
    base_lr: f64,
    module: Option<M>,
    optimizer: ModuleOptimizer,
    sgd: SgdSettings,
}

impl<M: Module + 'static> Trainable<M> {
    /// Wraps a module (on the autodiff device) with a fresh optimiser, drawing any lazily
    /// initialised parameter first ([`materialize`]).
    pub fn new(name: &str, phase: &str, module: M, base_lr: f64, sgd: &SgdSettings) -> Self {
        materialize(&module);
        Trainable {
            name: name.into(),
            phase: phase.into(),
            base_lr,
            module: Some(module),
            optimizer: sgd.build(),
            sgd: *sgd,
        }
    }

    /// The module.
    pub fn module(&self) -> &M {
        self.module
            .as_ref()
            .expect("a Trainable always holds its module between steps")
    }

    /// Replaces the module (after loading weights, say).
    pub fn set_module(&mut self, module: M) {
        self.module = Some(module);
    }

    fn error(&self, message: impl ToString) -> PartError {
        PartError {
            part: self.name.clone(),
            message: message.to_string(),
        }
    }
}

impl<M: Module + 'static> Part for Trainable<M> {
    fn name(&self) -> &str {
        &self.name
    }

    fn phase(&self) -> &str {
        &self.phase
    }

    fn base_lr(&self) -> f64 {
        self.base_lr
    }

    fn step(&mut self, lr: f64, grads: &mut Gradients) {
        let module = self.module.take().expect("module present");
        let params = GradientsParams::from_module(grads, &module);
        let module = if params.is_empty() {
            module
        } else {
            self.optimizer.step(lr, module, params)
        };
        self.module = Some(module);
    }

    fn trainable_params(&self) -> usize {
        trainable_params(self.module())
    }

    fn module_bytes(&self) -> Result<Vec<u8>, PartError> {
        // BatchNorm's running statistics (`RunningState`) hold the last update apart until the
        // next read syncs it; a record taken now would miss it. `valid()` syncs every running
        // state in place (the state is shared between clones) and changes nothing else.
        let _ = self.module().valid();
        let bytes = self
            .module()
            .clone()
            .into_record()
            .into_bytes()
            .map_err(|e| self.error(e))?;
        Ok(bytes.to_vec())
    }

    fn reset_optimizer(&mut self) {
        self.optimizer = self.sgd.build();
    }

    fn is_finite(&self) -> bool {
        module_is_finite(self.module())
    }

    fn optimizer_bytes(&self) -> Result<Vec<u8>, PartError> {
        let bytes = self
            .optimizer
            .to_record()
            .into_bytes()
            .map_err(|e| self.error(e))?;
        Ok(bytes.to_vec())
    }

    fn restore(&mut self, module: Vec<u8>, optimizer: Option<Vec<u8>>) -> Result<(), PartError> {
        let record =
            ModuleRecord::from_bytes(Bytes::from_bytes_vec(module)).map_err(|e| self.error(e))?;
        let current = self.module.take().expect("module present");
        let restored = current.clone().try_load_record(record);
        match restored {
            Ok(module) => self.module = Some(module),
            Err(e) => {
                self.module = Some(current);
                return Err(self.error(e));
            }
        }
        if let Some(bytes) = optimizer {
            let record = burn::optim::OptimizerRecord::from_bytes(Bytes::from_bytes_vec(bytes))
                .map_err(|e| self.error(e))?;
            let fresh = std::mem::replace(&mut self.optimizer, SgdConfig::new().init());
            self.optimizer = fresh.load_record(record);
        }
        Ok(())
    }
}

/// A method-owned module that never trains (CTSL-MKT's self-teachers): frozen (no gradients,
/// BatchNorm in evaluation mode), saved and restored with the run, never stepped.
pub struct Frozen<M: Module> {
    name: String,
    module: M,
}

impl<M: Module + 'static> Frozen<M> {
    /// Freezes `module` and wraps it.
    pub fn new(name: &str, module: M) -> Self {
        Frozen {
            name: name.into(),
            module: module.freeze(),
        }
    }

    /// The frozen module.
    pub fn module(&self) -> &M {
        &self.module
    }

    /// Replaces the module, freezing it.
    pub fn set_module(&mut self, module: M) {
        self.module = module.freeze();
    }
}

impl<M: Module + 'static> Part for Frozen<M> {
    fn name(&self) -> &str {
        &self.name
    }

    fn phase(&self) -> &str {
        ""
    }

    fn base_lr(&self) -> f64 {
        0.0
    }

    fn step(&mut self, _lr: f64, _grads: &mut Gradients) {}

    fn trainable_params(&self) -> usize {
        0
    }

    fn module_bytes(&self) -> Result<Vec<u8>, PartError> {
        let _ = self.module.valid(); // sync running statistics, as for `Trainable`
        let bytes = self.module.clone().into_record().into_bytes();
        bytes.map(|b| b.to_vec()).map_err(|e| PartError {
            part: self.name.clone(),
            message: e.to_string(),
        })
    }

    fn optimizer_bytes(&self) -> Result<Vec<u8>, PartError> {
        Ok(Vec::new())
    }

    fn restore(&mut self, module: Vec<u8>, _optimizer: Option<Vec<u8>>) -> Result<(), PartError> {
        let error = |e: &dyn std::fmt::Display| PartError {
            part: self.name.clone(),
            message: e.to_string(),
        };
        let record =
            ModuleRecord::from_bytes(Bytes::from_bytes_vec(module)).map_err(|e| error(&e))?;
        let loaded = self
            .module
            .clone()
            .try_load_record(record)
            .map_err(|e| error(&e))?;
        self.module = loaded.freeze();
        Ok(())
    }

    fn is_trained(&self) -> bool {
        false
    }

    fn is_finite(&self) -> bool {
        module_is_finite(&self.module)
    }
}

/// Draws every lazily initialised parameter now, in visiting order, so initial weights depend
/// only on the seed and the architecture (not on which forward touches a layer first).
pub fn materialize<M: Module>(module: &M) {
    struct Touch;
    impl ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Touch);
}

//! Parameter inventory of a module: every tensor's state-dict name and shape, and the trainable
//! count as PyTorch reports it.
//!
//! Names are built the way burn's own stores build them with enum variants skipped, so they
//! read like PyTorch keys (`layer1.0.downsample.1.running_mean`); [`torch_key`] renames
//! BatchNorm's `gamma`/`beta` to PyTorch's `weight`/`bias`. Nothing is allocated: lazily
//! initialised parameters report their shape without being drawn. `kd models`, the plan and the
//! checkpoint checks call this.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;
use serde::Serialize;

/// One tensor of a module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParamInfo {
    /// Dotted path, burn's field names (`bn1.gamma`).
    pub name: String,
    /// Tensor shape as burn stores it (`Linear` weights are `[in, out]`).
    pub shape: Vec<usize>,
    /// False for BatchNorm running statistics.
    pub trainable: bool,
}

struct Collector {
    path: Vec<String>,
    params: Vec<ParamInfo>,
}

impl ModuleVisitor for Collector {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        if !container_type.starts_with("Enum:") {
            self.path.push(name.to_string());
        }
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        if !container_type.starts_with("Enum:") {
            self.path.pop();
        }
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let leaf = self.path.last().map(String::as_str).unwrap_or("");
        let trainable = !matches!(leaf, "running_mean" | "running_var");
        self.params.push(ParamInfo {
            name: self.path.join("."),
            shape: param.lazy_shape().to_vec(),
            trainable,
        });
    }
}

/// Every float tensor of `module` in visiting order.
pub fn param_inventory<M: Module>(module: &M) -> Vec<ParamInfo> {
    let mut collector = Collector {
        path: Vec::new(),
        params: Vec::new(),
    };
    module.visit(&mut collector);
    collector.params
}

/// Number of trainable scalars (BatchNorm running statistics excluded, as
/// `sum(p.numel() for p in model.parameters())` counts in PyTorch).
pub fn trainable_params<M: Module>(module: &M) -> usize {
    param_inventory(module)
        .iter()
        .filter(|p| p.trainable)
        .map(|p| p.shape.iter().product::<usize>())
        .sum()
}

/// The PyTorch state-dict key of a burn parameter name: BatchNorm's `gamma`/`beta` become
/// `weight`/`bias`; everything else is already spelled as PyTorch spells it.
pub fn torch_key(name: &str) -> String {
    if let Some(prefix) = name.strip_suffix(".gamma") {
        format!("{prefix}.weight")
    } else if let Some(prefix) = name.strip_suffix(".beta") {
        format!("{prefix}.bias")
    } else {
        name.to_string()
    }
}

/// The same module with new parameter identities, every tensor detached and trainable: an
/// independent copy (SOKD's branch initialised from its teacher) whose gradients and optimiser
/// state cannot be confused with the original's.
pub fn independent_copy<M: Module>(module: M) -> M {
    struct Fresh;
    impl ModuleMapper for Fresh {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (_, tensor, _) = param.consume();
            Param::initialized(ParamId::new(), tensor.detach().require_grad())
        }
    }
    module.map(&mut Fresh)
}

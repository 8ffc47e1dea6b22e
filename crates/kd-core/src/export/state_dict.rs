//! A zoo network as the PyTorch state dict of its reference definition: every tensor under its
//! PyTorch key, in PyTorch's layout, plus the BatchNorm counters burn does not keep.
//!
//! The names come from [`param_inventory`] and [`torch_key`], the same functions `kd import`
//! matches a file against, so what is exported here is exactly what the importer expects.
//! Three differences from burn's own layout are undone: BatchNorm's `gamma`/`beta` are PyTorch's
//! `weight`/`bias`; Linear weights, `[in, out]` in burn, are `[out, in]` in PyTorch (every
//! two-dimensional parameter of the zoo is a Linear weight, as the importer also assumes); and
//! every BatchNorm gets a `num_batches_tracked` counter, an int64 scalar PyTorch's
//! `load_state_dict(strict=True)` requires. kd does not count batches, so the counter is 0; it
//! only matters to a BatchNorm with `momentum=None` (a cumulative average), which no zoo network
//! uses.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;

use crate::zoo::{Network, param_inventory, torch_key};

/// The values of one exported tensor, in the dtype PyTorch stores them in.
#[derive(Debug, Clone, PartialEq)]
pub enum TorchValues {
    /// `torch.float32`: weights, biases, running statistics.
    F32(Vec<f32>),
    /// `torch.int64`: BatchNorm's `num_batches_tracked`.
    I64(Vec<i64>),
}

impl TorchValues {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TorchValues::F32(v) => v.len(),
            TorchValues::I64(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as little-endian bytes (the layout of both safetensors and PyTorch storages).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        match self {
            TorchValues::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TorchValues::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// One entry of a PyTorch state dict.
#[derive(Debug, Clone, PartialEq)]
pub struct TorchTensor {
    /// The PyTorch key (`layer1.0.bn1.running_mean`).
    pub key: String,
    /// The shape in PyTorch's layout (`[]` for a scalar).
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: TorchValues,
}

/// Every float tensor of a module in visiting order (the order [`param_inventory`] names them).
struct Values {
    tensors: Vec<Vec<f32>>,
}

impl ModuleVisitor for Values {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let values = param
            .val()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("converted to f32");
        self.tensors.push(values);
    }
}

/// `[rows, cols]` row-major values transposed to `[cols, rows]`.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

/// The state dict PyTorch's reference definition of `network` has: every parameter and running
/// statistic under its PyTorch key and in PyTorch's layout (Linear weights transposed), and a
/// `num_batches_tracked` of 0 after each BatchNorm's `running_var`. Reads every tensor of the
/// network (float32).
pub fn torch_state_dict(network: &Network) -> Vec<TorchTensor> {
    let inventory = param_inventory(network);
    let mut values = Values {
        tensors: Vec::with_capacity(inventory.len()),
    };
    network.visit(&mut values);
    assert_eq!(inventory.len(), values.tensors.len());
    let mut out = Vec::with_capacity(inventory.len() * 5 / 4);
    for (param, data) in inventory.into_iter().zip(values.tensors) {
        let key = torch_key(&param.name);
        let (shape, data) = match param.shape[..] {
            // burn's Linear weight is [in, out]; PyTorch's is [out, in].
            [rows, cols] => (vec![cols, rows], transpose(&data, rows, cols)),
            _ => (param.shape.clone(), data),
        };
        let counter = key
            .strip_suffix(".running_var")
            .map(|prefix| format!("{prefix}.num_batches_tracked"));
        out.push(TorchTensor {
            key,
            shape,
            values: TorchValues::F32(data),
        });
        if let Some(key) = counter {
            out.push(TorchTensor {
                key,
                shape: Vec::new(),
                values: TorchValues::I64(vec![0]),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zoo::{self, ModelSpec};
    use burn::tensor::Device;

    #[test]
    fn transposing_swaps_rows_and_columns() {
        // [[1, 2, 3], [4, 5, 6]] -> [[1, 4], [2, 5], [3, 6]]
        let t = transpose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3);
        assert_eq!(t, vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }

    #[test]
    fn resnet8_has_pytorch_keys_layouts_and_counters() {
        let spec = ModelSpec {
            num_classes: 10,
            in_channels: 3,
        };
        let network = (zoo::find("resnet8").unwrap().arch)(spec).init(&Device::flex());
        let dict = torch_state_dict(&network);
        let get = |key: &str| dict.iter().find(|t| t.key == key).unwrap();
        assert_eq!(get("fc.weight").shape, vec![10, 64]);
        assert_eq!(get("fc.bias").shape, vec![10]);
        assert_eq!(get("conv1.weight").shape, vec![16, 3, 3, 3]);
        assert_eq!(get("bn1.weight").shape, vec![16]);
        let counter = get("bn1.num_batches_tracked");
        assert_eq!(counter.shape, Vec::<usize>::new());
        assert_eq!(counter.values, TorchValues::I64(vec![0]));
        assert!(
            !dict
                .iter()
                .any(|t| t.key.ends_with("gamma") || t.key.ends_with("beta"))
        );
        let batch_norms = dict
            .iter()
            .filter(|t| t.key.ends_with("running_mean"))
            .count();
        let counters = dict
            .iter()
            .filter(|t| t.key.ends_with("num_batches_tracked"))
            .count();
        assert_eq!(batch_norms, counters);
        // fc.weight transposed: PyTorch's row o is burn's column o.
        let burn_fc = param_inventory(&network)
            .iter()
            .position(|p| p.name == "fc.weight")
            .unwrap();
        let mut values = Values {
            tensors: Vec::new(),
        };
        network.visit(&mut values);
        let burn = &values.tensors[burn_fc]; // [64, 10]
        let TorchValues::F32(torch) = &get("fc.weight").values else {
            panic!("fc.weight is float32")
        };
        for o in 0..10 {
            for i in 0..64 {
                assert_eq!(torch[o * 64 + i].to_bits(), burn[i * 10 + o].to_bits());
            }
        }
    }
}

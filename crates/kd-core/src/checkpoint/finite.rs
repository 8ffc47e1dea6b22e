//! Weights that are not numbers: the check every load of weights runs (a kd checkpoint into a
//! network for `kd eval` and `kd predict`, a teacher into a run, a resumed run's parts, a
//! PyTorch import), so a NaN or infinity in a file is refused where it enters with the name of
//! the tensor, instead of surfacing later as a non-finite loss or as meaningless predictions.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// The dotted burn name (`layer1.0.bn1.running_var`) of the first float tensor of `module`, in
/// visiting order, that holds a NaN or an infinity; `None` when every value is finite.
pub fn first_non_finite<M: Module>(module: &M) -> Option<String> {
    struct Find {
        path: Vec<String>,
        found: Option<String>,
    }
    impl ModuleVisitor for Find {
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
            if self.found.is_none() && !param.val().is_finite().all().into_scalar::<bool>() {
                self.found = Some(self.path.join("."));
            }
        }
    }
    let mut find = Find {
        path: Vec::new(),
        found: None,
    };
    module.visit(&mut find);
    find.found
}

#[cfg(test)]
mod tests {
    use burn::module::{Module, Param};
    use burn::tensor::{Device, Tensor, TensorData};

    use super::first_non_finite;

    #[derive(Module, Debug)]
    struct Pair {
        first: Param<Tensor<1>>,
        second: Param<Tensor<2>>,
    }

    fn pair(second: [f32; 4]) -> Pair {
        let device = Device::flex();
        Pair {
            first: Param::from_tensor(Tensor::from_data(TensorData::from([1.0f32, -2.0]), &device)),
            second: Param::from_tensor(Tensor::from_data(
                TensorData::new(second.to_vec(), [2, 2]),
                &device,
            )),
        }
    }

    #[test]
    fn names_the_first_tensor_holding_nan_or_infinity() {
        assert_eq!(first_non_finite(&pair([0.0, 1.0, 2.0, 3.0])), None);
        assert_eq!(
            first_non_finite(&pair([0.0, f32::NAN, 2.0, 3.0])).as_deref(),
            Some("second")
        );
        assert_eq!(
            first_non_finite(&pair([0.0, 1.0, f32::NEG_INFINITY, 3.0])).as_deref(),
            Some("second")
        );
    }
}

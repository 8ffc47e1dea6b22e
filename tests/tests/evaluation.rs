//! `kd eval` on collapsed networks: a network whose logits are the same for every class must
//! score 0%, never 100% (ties are wrong answers), and the per-class report must stay numeric.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Device, Tensor};
use kd_core::import::{Imported, write_imported};
use kd_core::runtime::load_network;
use kd_tests::{kd, subset, success, tiny_teacher};

/// Zeroes every parameter under a top-level field (`fc`: the classifier's weight and bias).
struct ZeroField {
    field: &'static str,
    path: Vec<String>,
}

impl ModuleMapper for ZeroField {
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

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.path.first().map(String::as_str) == Some(self.field) {
            param.map(|t| t.zeros_like())
        } else {
            param
        }
    }
}

#[test]
fn a_network_with_constant_logits_scores_zero() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let trained = tiny_teacher(dir, "trained", "resnet8");
    let device = Device::flex();
    let (network, entry) = load_network(&trained, "student", &device).unwrap();
    let collapsed = network.map(&mut ZeroField {
        field: "fc",
        path: Vec::new(),
    });
    let out = dir.join("collapsed.kdc");
    let imported = Imported {
        network: collapsed,
        entry,
        tensors: 0,
        wrapper: None,
        data_parallel: false,
    };
    write_imported(&out, &imported, &trained).unwrap();
    let root = subset();
    let args = |path: &std::path::Path| {
        vec![
            "eval".to_string(),
            "--checkpoint".into(),
            path.display().to_string(),
            "--data".into(),
            root.display().to_string(),
            "--format".into(),
            "idx".into(),
            "--json".into(),
        ]
    };
    let report = |path: &std::path::Path| -> serde_json::Value {
        let args = args(path);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = success(kd(dir, &args));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let collapsed = report(&out);
    assert_eq!(collapsed["top1"].as_f64(), Some(0.0), "{collapsed}");
    assert_eq!(collapsed["top5"].as_f64(), Some(0.0), "{collapsed}");
    let per_class = collapsed["per_class"].as_array().unwrap();
    assert_eq!(per_class.len(), 10);
    assert!(
        per_class.iter().all(|p| p.as_f64() == Some(0.0)),
        "{collapsed}"
    );
    // The same network before the classifier was zeroed scores above chance.
    let healthy = report(&trained);
    assert!(healthy["top1"].as_f64().unwrap() > 10.0, "{healthy}");
}

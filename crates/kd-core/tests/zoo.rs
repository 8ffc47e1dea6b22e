//! The zoo against the reference PyTorch definitions.
//!
//! `fixtures/zoo_reference.json` was written by `scripts/reference/zoo_reference.py` from
//! RepDistiller's own model files: parameter counts as PyTorch counts them, every state-dict key
//! with its shape, and the tap shapes of a real forward pass. Nothing here reads numbers back
//! from the Rust code under test.

use std::collections::BTreeMap;

use burn::tensor::{Device, Distribution, Tensor};
use kd_core::zoo::{self, ModelSpec, Staged};
use serde_json::Value;

fn reference() -> Vec<Value> {
    let text = include_str!("fixtures/zoo_reference.json");
    let value: Value = serde_json::from_str(text).expect("fixture is JSON");
    value["models"].as_array().expect("models array").clone()
}

fn spec(row: &Value) -> ModelSpec {
    ModelSpec {
        num_classes: row["num_classes"].as_u64().unwrap() as usize,
        in_channels: row["in_channels"].as_u64().unwrap() as usize,
    }
}

fn shape_of(value: &Value) -> Vec<usize> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect()
}

#[test]
fn every_zoo_name_has_reference_rows_and_vice_versa() {
    let rows = reference();
    let mut reference_names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    reference_names.dedup();
    assert_eq!(reference_names, zoo::names());
    assert_eq!(zoo::names().len(), 24);
}

#[test]
fn trainable_parameter_counts_match_pytorch() {
    let device = Device::flex();
    let mut mismatches = Vec::new();
    for row in reference() {
        let name = row["name"].as_str().unwrap();
        let arch = (zoo::find(name).unwrap().arch)(spec(&row));
        let network = arch.init(&device);
        let ours = zoo::trainable_params(&network);
        let theirs = row["params"].as_u64().unwrap() as usize;
        if ours != theirs {
            mismatches.push(format!(
                "{name} {:?}: ours {ours}, PyTorch {theirs}",
                spec(&row)
            ));
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn tap_shapes_by_arithmetic_match_pytorch() {
    for row in reference() {
        let name = row["name"].as_str().unwrap();
        let arch = (zoo::find(name).unwrap().arch)(spec(&row));
        let ours: Vec<(String, Vec<usize>)> = arch
            .tap_shapes(32, 32)
            .into_iter()
            .map(|t| (t.name, t.shape))
            .collect();
        let theirs: Vec<(String, Vec<usize>)> = row["taps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["name"].as_str().unwrap().to_string(),
                    shape_of(&t["shape"]),
                )
            })
            .collect();
        assert_eq!(ours, theirs, "{name} {:?}", spec(&row));
        assert_eq!(arch.num_stages(), theirs.len() - 3, "{name}");
    }
}

#[test]
fn state_dict_keys_and_shapes_map_one_to_one() {
    let device = Device::flex();
    let rows: Vec<Value> = reference()
        .into_iter()
        .filter(|r| r.get("state_dict").is_some())
        .collect();
    assert_eq!(rows.len(), 24, "one state dict per architecture");
    for row in &rows {
        let name = row["name"].as_str().unwrap();
        let network = (zoo::find(name).unwrap().arch)(spec(row)).init(&device);
        let ours: BTreeMap<String, Vec<usize>> = zoo::param_inventory(&network)
            .into_iter()
            .map(|p| {
                let mut shape = p.shape;
                // burn stores Linear weights as [in, out]; PyTorch as [out, in].
                if shape.len() == 2 {
                    shape.reverse();
                }
                (zoo::torch_key(&p.name), shape)
            })
            .collect();
        let theirs: BTreeMap<String, Vec<usize>> = row["state_dict"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["key"].as_str().unwrap().to_string(),
                    shape_of(&e["shape"]),
                )
            })
            .collect();
        let missing: Vec<_> = theirs.keys().filter(|k| !ours.contains_key(*k)).collect();
        let extra: Vec<_> = ours.keys().filter(|k| !theirs.contains_key(*k)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{name}: missing {missing:?}, extra {extra:?}"
        );
        for (key, shape) in &theirs {
            assert_eq!(&ours[key], shape, "{name}: {key}");
        }
    }
}

#[test]
fn real_forward_produces_the_planned_tap_shapes() {
    let device = Device::flex();
    for entry in zoo::ZOO {
        for spec in [
            ModelSpec {
                num_classes: 10,
                in_channels: 1,
            },
            ModelSpec {
                num_classes: 7,
                in_channels: 3,
            },
        ] {
            let arch = (entry.arch)(spec);
            let network = arch.init(&device);
            let x = Tensor::<4>::random(
                [2, spec.in_channels, 32, 32],
                Distribution::Default,
                &device,
            );
            let features = network.forward_features(x);
            let mut actual = vec![("stem".to_string(), features.stem.dims()[1..].to_vec())];
            for (i, stage) in features.stages.iter().enumerate() {
                actual.push((zoo::stage_tap(i), stage.dims()[1..].to_vec()));
            }
            actual.push(("pooled".into(), features.pooled.dims()[1..].to_vec()));
            actual.push(("logits".into(), features.logits.dims()[1..].to_vec()));
            let planned: Vec<(String, Vec<usize>)> = arch
                .tap_shapes(32, 32)
                .into_iter()
                .map(|t| (t.name, t.shape))
                .collect();
            assert_eq!(actual, planned, "{} {spec:?}", entry.name);
            assert_eq!(features.logits.dims(), [2, spec.num_classes]);
        }
    }
}

#[test]
fn a_teacher_stage_runs_on_a_student_activation() {
    // resnet56 and resnet20 share stage widths: stage 2 of the teacher accepts stage 1 of the
    // student, which is what IAKD's swapping needs.
    let device = Device::flex();
    let spec = ModelSpec {
        num_classes: 10,
        in_channels: 1,
    };
    let student = (zoo::find("resnet20").unwrap().arch)(spec).init(&device);
    let teacher = (zoo::find("resnet56").unwrap().arch)(spec).init(&device);
    let x = Tensor::<4>::random([3, 1, 32, 32], Distribution::Default, &device);
    let s1 = student.stage(0, student.stem(x.clone()));
    let hybrid = teacher.stage(1, s1.clone());
    assert_eq!(hybrid.dims(), [3, 32, 16, 16]);
    let logits = student.classify(student.pool(student.stage(2, hybrid)));
    assert_eq!(logits.dims(), [3, 10]);
    // Stage-by-stage equals the one-call forward.
    let whole = student.forward(x.clone());
    let piecewise = student.classify(student.pool(student.stage(2, student.stage(1, s1))));
    let diff: f32 = (whole - piecewise).abs().max().into_scalar();
    assert!(diff < 1e-6, "{diff}");
}

#[test]
fn aliases_resolve_and_unknown_names_do_not() {
    assert_eq!(zoo::find("mobile_half").unwrap().name, "MobileNetV2");
    assert_eq!(zoo::find("vgg13_bn").unwrap().name, "vgg13");
    assert!(zoo::find("resnet9").is_none());
}

#[test]
fn forward_features_split_trains_only_the_later_stages() {
    use burn::module::Module;
    use burn::optim::GradientsParams;
    let device = Device::flex().autodiff();
    let spec = ModelSpec {
        num_classes: 10,
        in_channels: 1,
    };
    let network = (zoo::find("resnet8").unwrap().arch)(spec).init(&device);
    let x = Tensor::<4>::random([4, 1, 32, 32], Distribution::Default, &device);
    let full = network.forward_features(x.clone());
    let deep = network.forward_features_split(&network.clone().no_grad(), 2, x);
    // The same values: only the graph differs.
    let (a, b) = (
        full.logits.clone().into_data().try_to_vec::<f32>().unwrap(),
        deep.logits.clone().into_data().try_to_vec::<f32>().unwrap(),
    );
    assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-5));
    let inventory = zoo::param_inventory(&network);
    let count = |keep: &dyn Fn(&str) -> bool| {
        inventory
            .iter()
            .filter(|p| p.trainable && keep(&p.name))
            .count()
    };
    let mut grads = deep.logits.sum().backward();
    let deep_grads = GradientsParams::from_module(&mut grads, &network);
    // Only the last stage (`layer3`) and the classifier (`fc`) receive gradients.
    assert_eq!(
        deep_grads.len(),
        count(&|n| n.starts_with("layer3") || n.starts_with("fc"))
    );
    let mut grads = full.logits.sum().backward();
    let full_grads = GradientsParams::from_module(&mut grads, &network);
    assert_eq!(full_grads.len(), count(&|_| true));
}

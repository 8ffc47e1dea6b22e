//! Short real runs of the method plugins on the shipped data, and their plan-time errors.

use std::collections::BTreeMap;

use kd_core::zoo::ModelSpec;
use kd_tests::{
    failure, kd, metrics, part_tensors, role_tensors, run_dir, success, tiny_config, tiny_teacher,
    write,
};

fn config_with(dir: &std::path::Path, name: &str, stack: &str, extra: &str) -> std::path::PathBuf {
    let text = format!(
        "stack = [{stack}]\n{}",
        tiny_config(dir, name, "resnet8", 10, 1, extra)
    );
    write(dir, &format!("{name}.toml"), &text)
}

#[test]
fn dml_trains_two_different_peers_and_evaluates_their_ensemble() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "[networks.peer]\narch = \"resnet14\"\n[method.dml]\nkind = \"dml\"\npeers = [\"student\", \"peer\"]\n";
    let config = config_with(dir.path(), "dml", "\"dml\"", extra);
    success(kd(dir.path(), &["train", config.to_str().unwrap()]));
    let rows = metrics(&run_dir(dir.path(), "dml"));
    let step = rows.iter().find(|r| r["kind"] == "step").unwrap();
    for key in ["ce/student", "ce/peer", "dml/kl/student", "dml/kl/peer"] {
        assert!(step[key].as_f64().unwrap().is_finite(), "{key}: {step:?}");
    }
    let epoch = rows.iter().find(|r| r["kind"] == "epoch").unwrap();
    for key in ["student/top1", "peer/top1", "dml.ensemble/top1"] {
        assert!(epoch[key].as_f64().unwrap() >= 0.0, "{key}");
    }
    // Each peer has its own optimiser state in the checkpoint.
    let header = kd_core::runtime::checkpoint::read_header(
        &run_dir(dir.path(), "dml").join("checkpoints/last.kdc"),
    )
    .unwrap();
    let names: Vec<&str> = header.blobs.iter().map(|b| b.name.as_str()).collect();
    assert!(
        names.contains(&"role:student/optimizer") && names.contains(&"role:peer/optimizer"),
        "{names:?}"
    );
}

#[test]
fn dml_with_fewer_than_two_peers_is_a_plan_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(
        dir.path(),
        "one",
        "\"dml\"",
        "[method.dml]\nkind = \"dml\"\npeers = [\"student\"]\n",
    );
    let stderr = failure(kd(dir.path(), &["plan", config.to_str().unwrap()]), 2);
    assert!(
        stderr.contains("`method.dml.peers`") && stderr.contains("at least two peers"),
        "{stderr}"
    );
}

fn trainable(tensors: &[(String, bool, Vec<f32>)]) -> BTreeMap<String, Vec<f32>> {
    tensors
        .iter()
        .filter(|t| t.1)
        .map(|t| (t.0.clone(), t.2.clone()))
        .collect()
}

fn running(tensors: &[(String, bool, Vec<f32>)]) -> BTreeMap<String, Vec<f32>> {
    tensors
        .iter()
        .filter(|t| !t.1)
        .map(|t| (t.0.clone(), t.2.clone()))
        .collect()
}

#[test]
fn sokd_freezes_the_teacher_trunk_and_trains_the_branch() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = tiny_teacher(dir.path(), "teacher", "resnet14");
    let extra = format!(
        "[networks.teacher]\narch = \"resnet14\"\ncheckpoint = \"{}\"\n[method.sokd]\nkind = \"sokd\"\nbranch_init = \"teacher\"\nteacher_bn = \"train\"\n",
        teacher.display()
    );
    let config = config_with(dir.path(), "sokd", "\"sokd\"", &extra);
    success(kd(dir.path(), &["train", config.to_str().unwrap()]));
    let run = run_dir(dir.path(), "sokd");
    let last = run.join("checkpoints/last.kdc");

    let before = role_tensors(&teacher, "student");
    let after = role_tensors(&last, "teacher");
    assert_eq!(
        trainable(&before),
        trainable(&after),
        "the trunk's weights never change"
    );
    assert_ne!(
        running(&before),
        running(&after),
        "BatchNorm in training mode updates running statistics"
    );

    // The branch started as a copy of the teacher's last stage and head, and was trained.
    let spec = ModelSpec {
        num_classes: 10,
        in_channels: 1,
    };
    let branch = trainable(&part_tensors(&last, "sokd.branch", "resnet14", spec));
    let teacher_weights = trainable(&before);
    let stage3: Vec<&String> = branch
        .keys()
        .filter(|k| k.starts_with("layer3") || k.starts_with("fc"))
        .collect();
    assert!(!stage3.is_empty());
    for key in stage3 {
        assert_ne!(
            branch[key], teacher_weights[key],
            "branch tensor {key} was trained"
        );
    }

    let rows = metrics(&run);
    let step = rows.iter().find(|r| r["kind"] == "step").unwrap();
    for key in [
        "ce/student",
        "sokd/ce_branch",
        "sokd/kl_branch_teacher",
        "sokd/kl_branch_student",
        "sokd/kl_student",
    ] {
        assert!(step[key].as_f64().unwrap().is_finite(), "{key}: {step:?}");
    }
    let epoch = rows.iter().find(|r| r["kind"] == "epoch").unwrap();
    assert!(epoch["sokd.branch/top1"].as_f64().is_some());
}

#[test]
fn sokd_with_eval_bn_leaves_the_teacher_untouched_and_stacks_with_kd() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = tiny_teacher(dir.path(), "teacher", "resnet8");
    let extra = format!(
        "[networks.teacher]\narch = \"resnet8\"\ncheckpoint = \"{}\"\n[method.sokd]\nkind = \"sokd\"\nteacher_bn = \"eval\"\nfeature_weight = 0.5\n[method.kd]\nkind = \"kd\"\nweight = 0.5\n",
        teacher.display()
    );
    let config = config_with(dir.path(), "sokd_kd", "\"sokd\", \"kd\"", &extra);
    success(kd(dir.path(), &["train", config.to_str().unwrap()]));
    let last = run_dir(dir.path(), "sokd_kd").join("checkpoints/last.kdc");
    assert_eq!(
        role_tensors(&teacher, "student"),
        role_tensors(&last, "teacher")
    );
    let rows = metrics(&run_dir(dir.path(), "sokd_kd"));
    let step = rows.iter().find(|r| r["kind"] == "step").unwrap();
    for key in ["sokd/feat_student", "sokd/feat_branch", "kd/kl"] {
        assert!(step[key].as_f64().unwrap().is_finite(), "{key}: {step:?}");
    }
}

#[test]
fn sokd_without_a_stage_to_grow_from_is_a_plan_error() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = tiny_teacher(dir.path(), "teacher", "resnet8");
    let extra = format!(
        "[networks.teacher]\narch = \"resnet8\"\ncheckpoint = \"{}\"\n[method.sokd]\nkind = \"sokd\"\nbranch_stages = 3\n",
        teacher.display()
    );
    let config = config_with(dir.path(), "bad", "\"sokd\"", &extra);
    let stderr = failure(kd(dir.path(), &["plan", config.to_str().unwrap()]), 2);
    assert!(
        stderr.contains("`method.sokd.branch_stages`")
            && stderr.contains("no teacher stage to grow from"),
        "{stderr}"
    );
}

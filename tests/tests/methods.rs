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
    let header =
        kd_core::checkpoint::read_header(&run_dir(dir.path(), "dml").join("checkpoints/last.kdc"))
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

#[test]
fn iakd_swaps_teacher_stages_without_changing_the_teacher() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = tiny_teacher(dir.path(), "teacher", "resnet14");
    let extra = format!(
        "[loss]\nce_weight = 0.0\n[networks.teacher]\narch = \"resnet14\"\ncheckpoint = \"{}\"\n[method.iakd]\nkind = \"iakd\"\np0 = 0.5\nschedule = \"constant\"\n",
        teacher.display()
    );
    let config = config_with(dir.path(), "iakd", "\"iakd\"", &extra);
    success(kd(dir.path(), &["train", config.to_str().unwrap()]));
    let run = run_dir(dir.path(), "iakd");
    assert_eq!(
        role_tensors(&teacher, "student"),
        role_tensors(&run.join("checkpoints/last.kdc"), "teacher")
    );
    let rows = metrics(&run);
    let step = rows.iter().find(|r| r["kind"] == "step").unwrap();
    assert!(
        step["iakd/ce_hybrid"].as_f64().unwrap().is_finite()
            && step["iakd/kl_hybrid"].as_f64().unwrap().is_finite()
    );
    assert!(
        !step.contains_key("ce/student"),
        "a zero CE weight computes no plain CE: {step:?}"
    );
}

#[test]
fn iakd_rejects_mismatched_stages_unless_adapters_are_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = tiny_teacher(dir.path(), "teacher", "wrn_16_2");
    let body = |adapters: bool| {
        format!(
            "[networks.teacher]\narch = \"wrn_16_2\"\ncheckpoint = \"{}\"\n[method.iakd]\nkind = \"iakd\"\nadapters = {adapters}\n",
            teacher.display()
        )
    };
    let text = format!(
        "stack = [\"iakd\"]\n{}",
        tiny_config(dir.path(), "plain", "wrn_16_1", 10, 1, &body(false))
    );
    write(dir.path(), "plain.toml", &text);
    let stderr = failure(kd(dir.path(), &["plan", "plain.toml"]), 2);
    assert!(
        stderr.contains("`method.iakd.teacher`") && stderr.contains("stage 1 does not fit"),
        "{stderr}"
    );
    assert!(
        stderr.contains("16x32x32 to 16x32x32") && stderr.contains("16x32x32 to 32x32x32"),
        "{stderr}"
    );
    let text = format!(
        "stack = [\"iakd\"]\n{}",
        tiny_config(dir.path(), "adapted", "wrn_16_1", 10, 1, &body(true))
    );
    write(dir.path(), "adapted.toml", &text);
    let out = success(kd(dir.path(), &["plan", "adapted.toml"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("remark: iakd: adapters = true"));
    success(kd(dir.path(), &["train", "adapted.toml"]));
    let summary =
        std::fs::read_to_string(run_dir(dir.path(), "adapted").join("summary.json")).unwrap();
    assert!(
        summary.contains("not the canonical IAKD pairing"),
        "{summary}"
    );
}

#[test]
fn ctsl_mkt_pretrains_then_distils_from_frozen_self_copies() {
    let dir = tempfile::tempdir().unwrap();
    // Stage 1 of CTSL-MKT is plain supervised training: a one-epoch plain run of the same student
    // with the same seed and schedule ends exactly where CTSL-MKT's self-teacher is copied.
    let plain = write(
        dir.path(),
        "plain.toml",
        &tiny_config(dir.path(), "plain", "resnet8", 10, 1, ""),
    );
    success(kd(dir.path(), &["train", plain.to_str().unwrap()]));
    let extra = "[networks.peer]\narch = \"resnet8\"\n[method.ctsl]\nkind = \"ctsl-mkt\"\npretrain_epochs = 1\n";
    let text = format!(
        "stack = [\"ctsl\"]\n{}",
        tiny_config(dir.path(), "ctsl", "resnet8", 10, 2, extra)
    )
    .replace("kind = \"constant\"", "kind = \"constant\"\nrestarts = [1]");
    let config = write(dir.path(), "ctsl.toml", &text);
    success(kd(dir.path(), &["train", config.to_str().unwrap()]));
    let run = run_dir(dir.path(), "ctsl");
    let last = run.join("checkpoints/last.kdc");
    let spec = ModelSpec {
        num_classes: 10,
        in_channels: 1,
    };
    let self_teacher = part_tensors(&last, "ctsl.self/student", "resnet8", spec);
    let after_stage_1 = role_tensors(
        &run_dir(dir.path(), "plain").join("checkpoints/last.kdc"),
        "student",
    );
    let differing: Vec<&String> = self_teacher
        .iter()
        .zip(&after_stage_1)
        .filter(|(a, b)| a != b)
        .map(|(a, _)| &a.0)
        .collect();
    assert_eq!(self_teacher.len(), after_stage_1.len());
    assert!(
        differing.is_empty(),
        "the self-teacher is the student as stage 1 left it, unchanged since; differing: {differing:?}"
    );
    assert_ne!(
        role_tensors(&last, "student"),
        after_stage_1,
        "the student itself trained on in stage 2"
    );

    let rows = metrics(&run);
    let stage1 = rows
        .iter()
        .find(|r| r["kind"] == "step" && r["epoch"] == 1)
        .unwrap();
    assert!(
        !stage1.contains_key("ctsl/self/student"),
        "no distillation in stage 1"
    );
    let stage2 = rows
        .iter()
        .find(|r| r["kind"] == "step" && r["epoch"] == 2)
        .unwrap();
    for key in [
        "ctsl/mutual/student",
        "ctsl/relation/peer",
        "ctsl/self/student",
        "ctsl/self/peer",
    ] {
        assert!(
            stage2[key].as_f64().unwrap().is_finite(),
            "{key}: {stage2:?}"
        );
    }
    let epoch = rows.iter().rfind(|r| r["kind"] == "epoch").unwrap();
    assert!(epoch["ctsl.ensemble/top1"].as_f64().is_some());
}

#[test]
fn ctsl_mkt_without_pretraining_needs_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "[networks.peer]\narch = \"resnet8\"\n[method.ctsl]\nkind = \"ctsl-mkt\"\n";
    let config = config_with(dir.path(), "c", "\"ctsl\"", extra);
    let stderr = failure(kd(dir.path(), &["plan", config.to_str().unwrap()]), 2);
    assert!(
        stderr.contains("`method.ctsl.pretrain_epochs`") && stderr.contains("starts from scratch"),
        "{stderr}"
    );
}

#[test]
fn ffkd_changes_the_teacher_only_in_feedback_steps_from_the_configured_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = tiny_teacher(dir.path(), "teacher", "resnet14");
    let extra = format!(
        "[networks.teacher]\narch = \"resnet14\"\ncheckpoint = \"{}\"\n[method.ffkd]\nkind = \"ffkd\"\nfeedback_from = 1\n",
        teacher.display()
    );
    // One epoch: feedback never runs, so the forward phase alone leaves the teacher untouched.
    let one = format!(
        "stack = [\"ffkd\"]\n{}",
        tiny_config(dir.path(), "one", "resnet8", 10, 1, &extra)
    );
    write(dir.path(), "one.toml", &one);
    let plan = success(kd(dir.path(), &["plan", "one.toml"]));
    let plan = String::from_utf8_lossy(&plan.stdout);
    assert!(
        plan.contains("trained in `ffkd.feedback`, lr 0.005")
            && plan.contains("phase `ffkd.feedback`, own batch, from epoch 1"),
        "{plan}"
    );
    success(kd(dir.path(), &["train", "one.toml"]));
    let original = role_tensors(&teacher, "student");
    assert_eq!(
        role_tensors(
            &run_dir(dir.path(), "one").join("checkpoints/last.kdc"),
            "teacher"
        ),
        original
    );
    // Two epochs: the second has feedback steps, which refine the teacher.
    let two = format!(
        "stack = [\"ffkd\"]\n{}",
        tiny_config(dir.path(), "two", "resnet8", 10, 2, &extra)
    );
    write(dir.path(), "two.toml", &two);
    success(kd(dir.path(), &["train", "two.toml"]));
    let run = run_dir(dir.path(), "two");
    let refined = role_tensors(&run.join("checkpoints/last.kdc"), "teacher");
    assert_ne!(
        trainable(&refined),
        trainable(&original),
        "the feedback steps trained the teacher"
    );
    let rows = metrics(&run);
    let forward_only = rows
        .iter()
        .find(|r| r["kind"] == "step" && r["epoch"] == 1)
        .unwrap();
    assert!(forward_only["ffkd/feature"].as_f64().unwrap().is_finite());
    assert!(
        !forward_only.contains_key("ffkd/ce_teacher"),
        "no feedback before epoch 1"
    );
    let with_feedback = rows
        .iter()
        .find(|r| r["kind"] == "step" && r["epoch"] == 2)
        .unwrap();
    for key in [
        "ffkd/ce_teacher",
        "ffkd/kl_teacher",
        "ffkd/feature_back",
        "ffkd/kl",
    ] {
        assert!(
            with_feedback[key].as_f64().unwrap().is_finite(),
            "{key}: {with_feedback:?}"
        );
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert!(
        summary["outputs"]["teacher"]["initial_top1"]
            .as_f64()
            .is_some(),
        "the teacher before training is reported"
    );
}

#[test]
fn ffkd_needs_matching_stage_counts() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = tiny_teacher(dir.path(), "teacher", "vgg8");
    let extra = format!(
        "[networks.teacher]\narch = \"vgg8\"\ncheckpoint = \"{}\"\n[method.ffkd]\nkind = \"ffkd\"\n",
        teacher.display()
    );
    let config = config_with(dir.path(), "f", "\"ffkd\"", &extra);
    let stderr = failure(kd(dir.path(), &["plan", config.to_str().unwrap()]), 2);
    assert!(
        stderr.contains("`method.ffkd.teacher`")
            && stderr.contains("has 4, the student (resnet8) 3"),
        "{stderr}"
    );
}

#[test]
fn new_method_keys_are_checked_at_plan_time() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "\"ctsl\"",
            "[networks.peer]\narch = \"resnet8\"\n[method.ctsl]\nkind = \"ctsl-mkt\"\npretrain_epochs = 1\nangle_weight = -50.0\n",
            "`method.ctsl.angle_weight`",
            "non-negative",
        ),
        (
            "\"iakd\"",
            "[networks.teacher]\narch = \"resnet14\"\n[method.iakd]\nkind = \"iakd\"\nswap_bn = \"sometimes\"\n",
            "method.iakd.swap_bn",
            "sometimes",
        ),
        (
            "\"ffkd\"",
            "[networks.teacher]\narch = \"resnet14\"\n[method.ffkd]\nkind = \"ffkd\"\nfeedback_update = \"shallow\"\n",
            "method.ffkd.feedback_update",
            "shallow",
        ),
    ];
    for (i, (stack, extra, key, what)) in cases.iter().enumerate() {
        let config = config_with(dir.path(), &format!("c{i}"), stack, extra);
        let stderr = failure(kd(dir.path(), &["plan", config.to_str().unwrap()]), 2);
        assert!(stderr.contains(key) && stderr.contains(what), "{stderr}");
    }
}

#[test]
fn a_term_weighted_to_nothing_is_named_on_the_first_step_and_a_sensible_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let extra = |weight: &str| {
        format!(
            "[networks.peer]\narch = \"resnet8\"\n[method.dml]\nkind = \"dml\"\n\
             peers = [\"student\", \"peer\"]\nweight = {weight}\n"
        )
    };
    let tiny = config_with(dir.path(), "tiny", "\"dml\"", &extra("1e-7"));
    let out = success(kd(dir.path(), &["train", tiny.to_str().unwrap()]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("term `dml/kl/student`") && stderr.contains("negligible"),
        "{stderr}"
    );
    let usual = config_with(dir.path(), "usual", "\"dml\"", &extra("1.0"));
    let out = success(kd(dir.path(), &["train", usual.to_str().unwrap()]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("negligible"), "{stderr}");
}

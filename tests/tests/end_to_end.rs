//! Real runs on the shipped data: stacking two KD instances, a killed run resumed to exactly
//! the weights and metrics of a run that was never stopped, and how metrics count and average.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use kd_core::checkpoint;
use kd_core::runtime::{TIMING_COLUMNS, load_network};
use kd_tests::{kd, metrics, run_dir, success, tiny_config, tiny_teacher, write};

#[test]
fn two_kd_instances_with_different_teachers_log_each_term_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let a = tiny_teacher(dir.path(), "teacher_a", "resnet8");
    let b = tiny_teacher(dir.path(), "teacher_b", "resnet14");
    let extra = format!(
        r#"
[networks.teacher_a]
arch = "resnet8"
checkpoint = "{}"

[networks.teacher_b]
arch = "resnet14"
checkpoint = "{}"

[loss]
ce_weight = 0.2

[method.kd_a]
kind = "kd"
teacher = "teacher_a"
weight = 0.5
temperature = 4.0

[method.kd_b]
kind = "kd"
teacher = "teacher_b"
weight = 0.3
temperature = 2.0
"#,
        a.display(),
        b.display()
    );
    let text = format!(
        "stack = [\"kd_a\", \"kd_b\"]\n{}",
        tiny_config(dir.path(), "stacked", "resnet8", 10, 1, &extra)
    );
    let config = write(dir.path(), "stacked.toml", &text);
    let plan = success(kd(dir.path(), &["plan", config.to_str().unwrap()]));
    let plan = String::from_utf8_lossy(&plan.stdout);
    assert!(
        plan.contains("0.5 × kd_a/kl")
            && plan.contains("0.3 × kd_b/kl")
            && plan.contains("0.2 × CE(student)"),
        "{plan}"
    );
    success(kd(dir.path(), &["train", config.to_str().unwrap()]));
    let run = run_dir(dir.path(), "stacked");
    let rows = metrics(&run);
    let step = rows.iter().find(|r| r["kind"] == "step").unwrap();
    for key in ["ce/student", "kd_a/kl", "kd_b/kl", "loss"] {
        assert!(
            step[key].as_f64().unwrap().is_finite(),
            "{key} missing in {step:?}"
        );
    }
    // The logged total is the weighted sum of the logged terms.
    let total = 0.2 * step["ce/student"].as_f64().unwrap()
        + 0.5 * step["kd_a/kl"].as_f64().unwrap()
        + 0.3 * step["kd_b/kl"].as_f64().unwrap();
    assert!(
        (total - step["loss"].as_f64().unwrap()).abs() < 1e-5,
        "{step:?}"
    );
    // Both teachers are evaluated; their accuracy does not move (they are frozen).
    let epoch = rows.iter().find(|r| r["kind"] == "epoch").unwrap();
    for key in ["student/top1", "teacher_a/top1", "teacher_b/top1"] {
        assert!(epoch[key].as_f64().is_some(), "{key} missing");
    }
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(
        header.contains("kd_a/kl")
            && header.contains("kd_b/kl")
            && header.contains("teacher_b/top1"),
        "{header}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(
        summary["outputs"]["teacher_a"]["initial_top1"],
        summary["outputs"]["teacher_a"]["last_top1"],
        "a frozen teacher keeps its accuracy"
    );
    // The run's wall time is the one its last epoch row reports, and the one both checkpoints
    // of that epoch hold.
    let last_epoch = rows.iter().rev().find(|r| r["kind"] == "epoch").unwrap();
    assert_eq!(summary["wall_seconds"], last_epoch["wall_seconds"]);
    let checkpoints = run.join("checkpoints");
    let last = checkpoint::read_header(&checkpoints.join("last.kdc")).unwrap();
    let best = checkpoint::read_header(&checkpoints.join("best.kdc")).unwrap();
    assert_eq!(
        Some(last.state.wall_seconds),
        summary["wall_seconds"].as_f64()
    );
    assert!(best.state.wall_seconds <= last.state.wall_seconds);
    assert!(run.join("curve.png").is_file());
}

/// Every tensor of every role in a checkpoint, by role and parameter order.
fn weights(path: &Path) -> BTreeMap<String, Vec<Vec<f32>>> {
    struct Collect(Vec<Vec<f32>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0
                .push(param.val().into_data().try_to_vec::<f32>().unwrap());
        }
    }
    let header = checkpoint::read_header(path).unwrap();
    let device = Device::flex();
    header
        .networks
        .iter()
        .map(|n| {
            let (network, _) = load_network(path, &n.role, &device).unwrap();
            let mut collect = Collect(Vec::new());
            network.visit(&mut collect);
            (n.role.clone(), collect.0)
        })
        .collect()
}

/// Asserts bit-identical tensors, naming the first difference instead of dumping them.
fn assert_same_weights(a: &BTreeMap<String, Vec<Vec<f32>>>, b: &BTreeMap<String, Vec<Vec<f32>>>) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (role, tensors) in a {
        assert_eq!(tensors.len(), b[role].len(), "{role}: tensor count");
        for (i, (x, y)) in tensors.iter().zip(&b[role]).enumerate() {
            if let Some(j) = x
                .iter()
                .zip(y)
                .position(|(p, q)| p.to_bits() != q.to_bits())
            {
                panic!("{role}: tensor {i} differs at {j}: {} vs {}", x[j], y[j]);
            }
        }
    }
}

fn without_timing(
    rows: Vec<serde_json::Map<String, serde_json::Value>>,
) -> Vec<serde_json::Map<String, serde_json::Value>> {
    rows.into_iter()
        .map(|mut r| {
            for column in TIMING_COLUMNS {
                r.remove(column);
            }
            r
        })
        .collect()
}

#[test]
fn a_killed_run_resumes_to_exactly_the_same_weights_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = tiny_teacher(dir.path(), "teacher", "resnet8");
    let extra = format!(
        "[networks.teacher]\narch = \"resnet8\"\ncheckpoint = \"{}\"\n\n[method.kd]\nkind = \"kd\"\nweight = 0.9\n",
        teacher.display()
    );
    let body = tiny_config(dir.path(), "NAME", "resnet14", 40, 2, &extra)
        .replace("seed = 7", "seed = 7\ncheckpoint_every = 3");
    let straight = write(
        dir.path(),
        "straight.toml",
        &format!("stack = [\"kd\"]\n{}", body.replace("NAME", "straight")),
    );
    let killed = write(
        dir.path(),
        "killed.toml",
        &format!("stack = [\"kd\"]\n{}", body.replace("NAME", "killed")),
    );
    success(kd(dir.path(), &["train", straight.to_str().unwrap()]));

    // Start the same run under another name and kill it as soon as a mid-epoch checkpoint exists.
    let last = run_dir(dir.path(), "killed")
        .join("checkpoints")
        .join("last.kdc");
    kd_tests::train_and_kill_at_first_checkpoint(dir.path(), &killed, &last);
    let state = checkpoint::read_header(&last).unwrap().state;
    assert!(
        state.epoch == 0 && state.next_batch > 0,
        "killed mid-epoch: {state:?}"
    );
    assert!(!run_dir(dir.path(), "killed").join("summary.json").exists());

    // Resume under the original name of the killed run: the same config, so it is accepted.
    success(kd(
        dir.path(),
        &["train", killed.to_str().unwrap(), "--resume"],
    ));

    let final_straight = run_dir(dir.path(), "straight")
        .join("checkpoints")
        .join("last.kdc");
    assert_same_weights(&weights(&final_straight), &weights(&last));
    let rows_straight = without_timing(metrics(&run_dir(dir.path(), "straight")));
    let rows_killed = without_timing(metrics(&run_dir(dir.path(), "killed")));
    assert_eq!(rows_straight.len(), rows_killed.len());
    assert_eq!(rows_straight, rows_killed, "metrics differ after resume");
    let state_straight = checkpoint::read_header(&final_straight).unwrap().state;
    let state_killed = checkpoint::read_header(&last).unwrap().state;
    assert_eq!(state_straight.history, state_killed.history);
    assert_eq!(state_straight.global_step, state_killed.global_step);
}

#[test]
fn epoch_means_weigh_every_batch_by_its_images() {
    // 100 training images in batches of 33: three full batches and a last one of a single image,
    // which must weigh 1/100 of the epoch's loss, not 1/4.
    let dir = tempfile::tempdir().unwrap();
    let text = tiny_config(dir.path(), "weighted", "resnet8", 10, 1, "")
        .replace("batch_size = 16", "batch_size = 33");
    write(dir.path(), "x.toml", &text);
    success(kd(dir.path(), &["train", "x.toml"]));
    let rows = metrics(&run_dir(dir.path(), "weighted"));
    let steps: Vec<f64> = rows
        .iter()
        .filter(|r| r["kind"] == "step")
        .map(|r| r["loss"].as_f64().unwrap())
        .collect();
    assert_eq!(steps.len(), 4);
    let batches: Vec<u64> = rows
        .iter()
        .filter(|r| r["kind"] == "step")
        .map(|r| r["batch"].as_u64().unwrap())
        .collect();
    assert_eq!(batches, [1, 2, 3, 4], "batches are counted from 1");
    let weighted = (33.0 * (steps[0] + steps[1] + steps[2]) + steps[3]) / 100.0;
    let plain = steps.iter().sum::<f64>() / 4.0;
    let epoch = rows.iter().find(|r| r["kind"] == "epoch").unwrap();
    let logged = epoch["loss"].as_f64().unwrap();
    assert_eq!(epoch["epoch"], 1, "epochs are counted from 1");
    assert_eq!(epoch["step"], 4);
    assert!(
        (logged - weighted).abs() < 1e-9 * weighted.abs().max(1.0),
        "epoch loss {logged}, image-weighted mean {weighted}"
    );
    assert!(
        (plain - weighted).abs() > 1e-6,
        "the test needs batches whose losses differ: {steps:?}"
    );
}

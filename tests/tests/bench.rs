//! `kd bench`: the JSON `cargo xtask bench` reads, and its errors. Numbers are not asserted
//! (speed lives in benchmarks, not tests); shapes, counts and units are.

use kd_tests::{failure, kd, repo_root, subset, success};
use serde_json::Value;

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).expect("kd bench prints JSON")
}

fn assert_throughput(t: &Value, iterations: u64) {
    assert_eq!(t["iterations"], iterations, "{t}");
    let (min, median, max) = (
        t["min"].as_f64().unwrap(),
        t["median"].as_f64().unwrap(),
        t["max"].as_f64().unwrap(),
    );
    assert!(0.0 < min && min <= median && median <= max, "{t}");
}

#[test]
fn bench_models_reports_train_and_inference_per_model() {
    let dir = tempfile::tempdir().unwrap();
    let out = success(kd(
        dir.path(),
        &[
            "bench",
            "models",
            "--models",
            "resnet8,wrn_16_1",
            "--batch",
            "4",
            "--warmup",
            "0",
            "--iterations",
            "2",
        ],
    ));
    let rows = json(&out);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["model"], "resnet8");
    assert_eq!(
        rows[0]["params"], 83892,
        "RepDistiller's resnet8 for 100 classes"
    );
    assert_eq!(rows[1]["model"], "wrn_16_1");
    for row in rows {
        assert_eq!(row["batch"], 4);
        assert_throughput(&row["train"], 2);
        assert_throughput(&row["inference"], 2);
    }
    let out = success(kd(
        dir.path(),
        &[
            "bench",
            "models",
            "--models",
            "resnet8",
            "--batch",
            "2",
            "--no-train",
            "--iterations",
            "1",
        ],
    ));
    assert!(json(&out)[0]["train"].is_null());
}

#[test]
fn bench_step_times_a_planned_kd_step() {
    let config = repo_root().join("configs/bench/kd.toml");
    let dir = tempfile::tempdir().unwrap();
    let out = success(kd(
        dir.path(),
        &[
            "bench",
            "step",
            config.to_str().unwrap(),
            "--allow-missing-data",
            "--allow-missing-checkpoints",
            "--set",
            "data.batch_size=4",
            "--warmup",
            "0",
            "--iterations",
            "2",
        ],
    ));
    assert_throughput(&json(&out), 2);
}

#[test]
fn bench_data_reads_the_shipped_subset() {
    let dir = tempfile::tempdir().unwrap();
    let out = success(kd(
        dir.path(),
        &[
            "bench",
            "data",
            "--data",
            subset().to_str().unwrap(),
            "--format",
            "idx",
            "--batch",
            "32",
            "--warmup",
            "1",
            "--iterations",
            "3",
        ],
    ));
    assert_throughput(&json(&out), 3);
}

#[test]
fn bench_errors_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = failure(
        kd(dir.path(), &["bench", "models", "--models", "resnet9"]),
        2,
    );
    assert!(stderr.contains("unknown model `resnet9`"), "{stderr}");
    let stderr = failure(
        kd(
            dir.path(),
            &["bench", "data", "--data", "missing", "--format", "idx"],
        ),
        2,
    );
    assert!(stderr.contains("missing"), "{stderr}");
}

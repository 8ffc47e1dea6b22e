//! `kd backends` reports this machine truthfully: flex always available, CUDA absent from the
//! default build with the reason, the CPU model and extensions as `/proc/cpuinfo` has them; `kd
//! plan` names the device a run would use.

use kd_tests::{kd, success, tiny_config, write};

#[test]
fn backends_json_reports_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let out = success(kd(dir.path(), &["backends", "--json"]));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let backends = report["backends"].as_array().unwrap();
    assert_eq!(backends[0]["kind"], "flex");
    assert_eq!(backends[0]["available"], true);
    assert_eq!(backends[1]["kind"], "cuda");
    // The tests run the default build, which has no CUDA.
    assert_eq!(backends[1]["compiled"], false);
    assert_eq!(backends[1]["available"], false);
    assert!(
        backends[1]["detail"]
            .as_str()
            .unwrap()
            .contains("--features cuda")
    );
    let cpu = &report["cpu"];
    assert!(cpu["threads"].as_u64().unwrap() >= 1);
    if let Ok(text) = std::fs::read_to_string("/proc/cpuinfo") {
        let model = text
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, m)| m.trim().to_string());
        if let Some(model) = model {
            assert_eq!(cpu["model"], model.as_str());
        }
        let has_avx2 = text.split_whitespace().any(|w| w == "avx2");
        let extensions: Vec<&str> = cpu["extensions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        assert_eq!(extensions.contains(&"avx2"), has_avx2, "{extensions:?}");
    }
    let text = success(kd(dir.path(), &["backends"]));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("matrix kernels") && text.contains("flex  available"),
        "{text}"
    );
}

#[test]
fn plan_names_the_device() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "x.toml",
        &tiny_config(dir.path(), "p", "resnet8", 5, 1, ""),
    );
    let out = success(kd(dir.path(), &["plan", "x.toml"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("device: flex on "), "{text}");
}

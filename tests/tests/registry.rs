//! Registry completeness: every plugin kind the workspace ships is registered, in this test
//! binary and in `kd` itself, with its crate, paper and defaults.

use kd_core::method::Registry;
use kd_tests::{ALL_KINDS, kd, success};

#[test]
fn every_plugin_kind_is_registered_here() {
    let registry = Registry::global().expect("no duplicate kinds");
    assert_eq!(registry.kinds(), ALL_KINDS.to_vec());
    for entry in registry.entries() {
        assert!(
            entry.crate_name.starts_with("kd-method-"),
            "{}",
            entry.crate_name
        );
        assert!(!entry.paper.is_empty() && !entry.summary.is_empty());
        assert!((entry.defaults)().is_object());
    }
}

#[test]
fn every_plugin_kind_is_registered_in_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let out = success(kd(dir.path(), &["methods", "--json"]));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ALL_KINDS.to_vec());
    for row in rows.as_array().unwrap() {
        let kind = row["kind"].as_str().unwrap();
        assert_eq!(
            row["crate"],
            format!("kd-method-{kind}"),
            "crate names predict kinds"
        );
    }
    let kd_row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "kd")
        .unwrap();
    assert_eq!(kd_row["defaults"]["temperature"], 4.0);
}

//! Registry completeness: every method crate kd-plugins lists registers exactly the kind it is
//! listed with, in this test binary and in `kd` itself, with its paper and defaults; and nothing
//! else is registered.

use kd_core::method::Registry;
use kd_tests::{SHIPPED, all_kinds, kd, success};

#[test]
fn every_plugin_kind_is_registered_here() {
    let registry = Registry::global().expect("no duplicate kinds");
    assert_eq!(registry.kinds(), all_kinds());
    for shipped in SHIPPED {
        let entry = registry
            .entries()
            .find(|e| e.kind == shipped.kind)
            .unwrap_or_else(|| panic!("`{}` is not registered", shipped.kind));
        assert_eq!(
            entry.crate_name,
            shipped.package(),
            "kind `{}` is registered by another crate than the one listed",
            shipped.kind
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
    let rows = rows.as_array().unwrap();
    let kinds: Vec<&str> = rows.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, all_kinds());
    for (row, shipped) in rows.iter().zip(SHIPPED) {
        assert_eq!(
            row["crate"],
            shipped.package(),
            "the listed crate registers it"
        );
    }
    let kd_row = rows.iter().find(|r| r["kind"] == "kd").unwrap();
    assert_eq!(kd_row["defaults"]["temperature"], 4.0);
}

//! kd-core's modules form layers: each uses only modules below it, so a change to a lower one
//! never needs a higher one, and a reader can learn the crate bottom-up.
//!
//! The test reads every source file, collects the top-level modules it names through
//! `crate::<module>` (in `use` lines and paths, comments excluded) and compares them with the
//! allowed order below. `docs/architecture.md` draws the same order.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every module of kd-core with the modules it may use. A module absent from another's list
/// is above it or beside it.
const ALLOWED: &[(&str, &[&str])] = &[
    ("kernels", &[]),
    ("data", &[]),
    ("loss", &[]),
    ("backend", &[]),
    ("config", &["backend", "data"]),
    ("zoo", &["kernels"]),
    ("checkpoint", &[]),
    ("import", &["checkpoint", "zoo"]),
    (
        "method",
        &["config", "data", "loss", "zoo", "checkpoint", "kernels"],
    ),
    ("dynamic", &["method"]),
    (
        "runtime",
        &[
            "backend",
            "config",
            "data",
            "loss",
            "zoo",
            "checkpoint",
            "import",
            "method",
            "kernels",
        ],
    ),
    ("bench", &["data", "loss", "method", "zoo"]),
    ("prelude", &["config", "loss", "method", "zoo"]),
];

/// Names reached through the crate root that are not modules (re-exports for macros).
const ROOT_ITEMS: &[&str] = &["inventory", "burn", "register_method", "export_plugin"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a source text names through `crate::`, comments excluded.
fn named_modules(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|line| line.find("//").map_or(line, |i| &line[..i]))
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut names = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        let macro_path = rest[..i].ends_with('$');
        rest = &rest[i + "crate::".len()..];
        if macro_path {
            continue; // `$crate::` in a macro: resolved where it expands
        }
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a, b::c}`, possibly over several lines.
            let end = group.find('}').unwrap_or(group.len());
            names.extend(group[..end].split(',').map(ident));
        } else {
            names.insert(ident(rest));
        }
    }
    names.remove("");
    names
}

#[test]
fn every_module_uses_only_modules_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut violations = Vec::new();
    let mut seen_modules = BTreeSet::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let top = relative.components().next().unwrap().as_os_str();
        let module = top.to_str().unwrap().trim_end_matches(".rs").to_string();
        if module == "lib" {
            continue;
        }
        seen_modules.insert(module.clone());
        let Some(below) = allowed.get(module.as_str()) else {
            violations.push(format!(
                "{}: module `{module}` is not in ALLOWED",
                relative.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for used in named_modules(&text) {
            if used == module || ROOT_ITEMS.contains(&used.as_str()) {
                continue;
            }
            if !below.contains(&used.as_str()) {
                violations.push(format!(
                    "{}: `{module}` uses `{used}`, which is not below it",
                    relative.display()
                ));
            }
        }
    }
    for (module, _) in ALLOWED {
        assert!(
            seen_modules.contains(*module),
            "ALLOWED names `{module}`, which is not a module of kd-core"
        );
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_allowed_order_has_no_cycle() {
    // Each module may only use modules listed before it.
    for (i, (module, below)) in ALLOWED.iter().enumerate() {
        for used in *below {
            let position = ALLOWED.iter().position(|(m, _)| m == used);
            assert!(
                position.is_some_and(|p| p < i),
                "`{module}` may use `{used}`, which is not listed before it"
            );
        }
    }
}

#[test]
fn the_scanner_sees_paths_and_groups_but_not_comments() {
    let text = "use crate::zoo::Network;\nuse crate::{\n    config,\n    data::Split,\n};\n\
                // crate::runtime in a comment\nlet x = crate::loss::soft_kl(a);\n\
                $crate::inventory::submit!{}\n";
    let names: Vec<String> = named_modules(text).into_iter().collect();
    assert_eq!(names, ["config", "data", "loss", "zoo"]);
}

/// The longest function the runtime may hold, in lines: a loop that grows past it is split by
/// concept (the step, the end of an epoch, the run directory) as burn-train splits its learner.
const MAX_RUNTIME_FUNCTION_LINES: usize = 120;

/// `(name, lines)` of every function in a rustfmt-formatted source text: from its `fn` line to
/// the closing brace at the same indentation.
fn function_lengths(text: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let signature = trimmed
            .trim_start_matches("pub ")
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub(super) ")
            .trim_start_matches("async ")
            .trim_start_matches("unsafe ");
        let Some(rest) = signature.strip_prefix("fn ") else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let close = format!("{indent}}}");
        if let Some(end) = lines[i..].iter().position(|l| *l == close) {
            out.push((name, end + 1));
        }
    }
    out
}

#[test]
fn no_runtime_function_is_longer_than_the_limit() {
    let runtime = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/runtime");
    let mut files = Vec::new();
    rust_files(&runtime, &mut files);
    let mut long = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (name, lines) in function_lengths(&text) {
            if lines > MAX_RUNTIME_FUNCTION_LINES {
                long.push(format!("{}: fn {name} has {lines} lines", file.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "over {MAX_RUNTIME_FUNCTION_LINES} lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn function_lengths_run_from_signature_to_closing_brace() {
    let text =
        "fn a() {\n    1\n}\n\nimpl X {\n    pub(super) fn b(\n        x: u8,\n    ) {\n    }\n}\n";
    assert_eq!(
        function_lengths(text),
        [("a".to_string(), 3), ("b".to_string(), 4)]
    );
}

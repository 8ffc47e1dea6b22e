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
    ("export", &["checkpoint", "zoo", "import"]),
    ("method", &["config", "data", "zoo"]),
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

/// The source text with comments and the contents of string and character literals blanked,
/// so that neither can look like (or hide) a path.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut block = 0usize; // nesting depth of /* */ comments
    let mut string = false;
    while i < chars.len() {
        let (c, next) = (chars[i], chars.get(i + 1).copied());
        if block > 0 {
            if c == '*' && next == Some('/') {
                block -= 1;
                i += 1;
            } else if c == '/' && next == Some('*') {
                block += 1;
                i += 1;
            }
            out.push(if c == '\n' { '\n' } else { ' ' });
        } else if string {
            if c == '\\' {
                i += 1;
            } else if c == '"' {
                string = false;
            }
            out.push(if c == '\n' { '\n' } else { ' ' });
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            out.push('\n');
        } else if c == '/' && next == Some('*') {
            block = 1;
            i += 1;
            out.push(' ');
        } else if c == '"' {
            string = true;
            out.push(' ');
        } else if c == '\'' && next.is_some() && chars.get(i + 2) == Some(&'\'') {
            i += 2; // a character literal such as '"'
            out.push(' ');
        } else if c == '\'' && next == Some('\\') && chars.get(i + 3) == Some(&'\'') {
            i += 3; // an escaped character literal such as '\"'
            out.push(' ');
        } else {
            out.push(c);
        }
        i += 1;
    }
    out
}

/// The top-level modules a source file names through the crate root: `crate::x`, `$crate::x`
/// (a macro's path, which names this crate wherever it expands), and `super::` chains that
/// climb to the root (`depth` is how many `super::` that takes from the file). `crate as`
/// aliases are reported as the module `crate as`, which no table allows.
fn named_modules(text: &str, depth: usize) -> BTreeSet<String> {
    let code = code_only(text);
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut names = BTreeSet::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let root_path = if !boundary {
            None
        } else if let Some(after) = rest.strip_prefix("crate::") {
            Some(after)
        } else if rest.starts_with("crate as ") {
            names.insert("crate as".to_string());
            None
        } else if rest.starts_with("super::") {
            let mut after = rest;
            let mut climbs = 0;
            while let Some(next) = after.strip_prefix("super::") {
                after = next;
                climbs += 1;
            }
            i += rest.len() - after.len() - 1;
            (climbs >= depth).then_some(after)
        } else {
            None
        };
        if let Some(after) = root_path {
            if let Some(group) = after.strip_prefix('{') {
                // `use crate::{a, b::{c, d}}`: the top-level names of the group.
                let mut level = 0;
                let mut item = String::new();
                for c in group.chars() {
                    match c {
                        '{' => level += 1,
                        '}' if level == 0 => break,
                        '}' => level -= 1,
                        ',' if level == 0 => {
                            names.insert(ident(&item));
                            item.clear();
                        }
                        _ if level == 0 => item.push(c),
                        _ => {}
                    }
                }
                names.insert(ident(&item));
            } else {
                names.insert(ident(after));
            }
        }
        i += 1;
    }
    names.remove("");
    names
}

/// How many `super::` climb from a file to the crate root: one for `src/x.rs` and
/// `src/x/mod.rs`, two for `src/x/y.rs`, and so on.
fn depth_of(relative: &Path) -> usize {
    let parts = relative.components().count();
    let is_mod = relative.file_name().is_some_and(|n| n == "mod.rs");
    if is_mod { parts - 1 } else { parts }
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
        for used in named_modules(&text, depth_of(relative)) {
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
fn the_scanner_sees_every_way_to_reach_the_root_and_nothing_in_comments_or_strings() {
    let names = |text: &str, depth: usize| -> Vec<String> {
        named_modules(text, depth).into_iter().collect()
    };
    let text = "use crate::zoo::Network;\nuse crate::{\n    config::{self, X},\n    data::Split,\n};\n\
                // crate::runtime in a comment\n/* crate::import\n in a block */\n\
                let x = crate::loss::soft_kl(a);\nlet url = \"http://x\"; crate::backend::check();\n\
                let s = \"crate::bench\"; let q = '\\\"'; crate::import::x();\n\
                $crate::method::Method\n";
    assert_eq!(
        names(text, 1),
        [
            "backend", "config", "data", "import", "loss", "method", "zoo"
        ]
    );
    // `super::` reaches the root from a top-level file in one climb, from a nested one in two.
    assert_eq!(names("use super::runtime::X;", 1), ["runtime"]);
    assert!(names("use super::sibling::X;", 2).is_empty());
    assert_eq!(names("use super::super::runtime::X;", 2), ["runtime"]);
    assert_eq!(names("use crate as kd;", 1), ["crate as"]);
    assert_eq!(depth_of(Path::new("backend.rs")), 1);
    assert_eq!(depth_of(Path::new("zoo/mod.rs")), 1);
    assert_eq!(depth_of(Path::new("runtime/plan/roles.rs")), 3);
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
        // Any visibility, then any of the qualifiers a function may carry, then `fn`.
        let mut signature = trimmed;
        if let Some(after) = signature.strip_prefix("pub") {
            signature = match after.strip_prefix('(') {
                Some(inner) => inner.split_once(')').map_or(after, |(_, rest)| rest),
                None => after,
            }
            .trim_start();
        }
        for qualifier in ["const ", "async ", "unsafe ", "extern \"C\" "] {
            signature = signature.trim_start_matches(qualifier);
        }
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

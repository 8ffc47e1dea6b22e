//! `cargo xtask new-method NAME [--out DIR | --in-tree]`: scaffolds a method crate.
//!
//! The crate is a working method as generated — logit regression (Ba & Caruana 2014), a teacher
//! and a student, one term with a golden test — so that `cargo test` passes in it at once and the
//! user edits from something that runs. Templates live in `xtask/templates/method/`; both modes
//! render the same sources and configs, and differ in the manifest:
//!
//! - out of tree (the default): a workspace of its own that depends on this checkout's kd-core by
//!   absolute path, copies the workspace profile and the lockfile (the exact versions kd was
//!   built with), and names as dev-dependencies the crates whose features kd's build switches
//!   on in crates burn shares, so that its tests reuse kd's build of burn; plus a README;
//! - `--in-tree`: `plugins/NAME`, a workspace member inheriting the workspace's fields and
//!   dependencies, registered in kd-plugins' list by one line in each of three files
//!   (`shipped.rs`), so that `kd methods` lists it with no other edit.
//!
//! The printed next steps are the exact commands to type.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::BadInput;
use crate::manifest;
use crate::shipped;

/// Arguments of `cargo xtask new-method`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The method kind, as configs will write it (`method.<instance>.kind`): lowercase letters,
    /// digits and dashes, starting with a letter. The crate is `kd-method-NAME`.
    pub name: String,
    /// Where to create the crate (default: `./kd-method-NAME`). Must not exist yet.
    #[arg(long, conflicts_with = "in_tree")]
    pub out: Option<PathBuf>,
    /// Create `plugins/NAME` in this repository instead, a workspace member registered in
    /// `crates/kd-plugins` (one line in each of `Cargo.toml`, `crates/kd-plugins/Cargo.toml` and
    /// `crates/kd-plugins/src/lib.rs`).
    #[arg(long)]
    pub in_tree: bool,
}

/// The method's sources and configs, the same in both modes: path in the crate, template.
const SOURCES: [(&str, &str); 6] = [
    (
        "src/lib.rs",
        include_str!("../templates/method/lib.rs.tmpl"),
    ),
    (
        "src/config.rs",
        include_str!("../templates/method/config.rs.tmpl"),
    ),
    (
        "src/loss.rs",
        include_str!("../templates/method/loss.rs.tmpl"),
    ),
    (
        "src/method.rs",
        include_str!("../templates/method/method.rs.tmpl"),
    ),
    (
        "example.toml",
        include_str!("../templates/method/example.toml.tmpl"),
    ),
    (
        "teacher.toml",
        include_str!("../templates/method/teacher.toml.tmpl"),
    ),
];

/// The rest of an out-of-tree crate: a workspace of its own.
const OUT_OF_TREE: [(&str, &str); 3] = [
    (
        "Cargo.toml",
        include_str!("../templates/method/Cargo.toml.tmpl"),
    ),
    (
        "README.md",
        include_str!("../templates/method/README.md.tmpl"),
    ),
    (".gitignore", "/target\n/runs\n"),
];

/// The rest of an in-tree crate: a workspace member's manifest.
const IN_TREE: [(&str, &str); 1] = [(
    "Cargo.toml",
    include_str!("../templates/method/Cargo-in-tree.toml.tmpl"),
)];

/// Crates kd-cli links whose features reach crates burn shares (`log/std`, `portable-atomic`,
/// `regex` with `std`, `tracing-core/default`): an out-of-tree crate names them as
/// dev-dependencies, with kd's versions and features, so that its tests build burn exactly as kd
/// does. `the_scaffold_resolves_kds_features` keeps this list honest.
const FEATURE_TWINS: [&str; 2] = ["indicatif", "tracing-subscriber"];

/// Checks a method name; the error says what is allowed.
pub fn check_name(name: &str, builtin: &[String]) -> Result<(), BadInput> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--");
    if !valid {
        return Err(BadInput(format!(
            "NAME `{name}`: a method kind is lowercase letters, digits and single dashes, \
             starting with a letter (e.g. `logit-match`)"
        )));
    }
    if builtin.iter().any(|b| b == name) {
        return Err(BadInput(format!(
            "NAME `{name}`: kd already ships a method of that kind (built in: {})",
            builtin.join(", ")
        )));
    }
    Ok(())
}

/// `logit-match` → `LogitMatch`.
pub fn camel_case(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// Fills `{{key}}` placeholders; a placeholder left unfilled is a bug in the template.
pub fn render(template: &str, values: &[(&str, String)]) -> String {
    let mut out = template.to_string();
    for (key, value) in values {
        out = out.replace(&format!("{{{{{key}}}}}"), value);
    }
    assert!(
        !out.contains("{{"),
        "unfilled placeholder in a method template: {out}"
    );
    out
}

/// Writes the crate and returns its folder.
pub fn run(args: Args) -> anyhow::Result<PathBuf> {
    scaffold(&crate::reproduce::repo_root(), args)
}

/// [`run`] for the kd repository at `repo`.
fn scaffold(repo: &Path, args: Args) -> anyhow::Result<PathBuf> {
    check_name(&args.name, &manifest::builtin_kinds(repo)?)?;
    if args.in_tree {
        in_tree(repo, &args.name)
    } else {
        out_of_tree(repo, &args.name, args.out)
    }
}

/// The placeholders both modes fill.
fn common_values(name: &str) -> Vec<(&'static str, String)> {
    let crate_name = format!("kd-method-{name}");
    vec![
        ("crate", crate_name.clone()),
        ("kind", name.to_string()),
        ("snake", name.replace('-', "_")),
        ("snake_crate", crate_name.replace('-', "_")),
        ("camel", camel_case(name)),
        ("title", "logit regression (a starting point)".to_string()),
        (
            "summary",
            "the student regresses the teacher's logits: ½‖z_s − z_t‖²".to_string(),
        ),
    ]
}

/// The placeholders of an out-of-tree crate in `dir`, for kd at `repo` whose build lives in
/// `kd_target`.
fn out_of_tree_values(
    repo: &Path,
    dir: &Path,
    kd_target: &Path,
    name: &str,
) -> anyhow::Result<Vec<(&'static str, String)>> {
    let snake_crate = format!("kd_method_{}", name.replace('-', "_"));
    let custom = repo.join("target").join("debug").join("kd-custom");
    let mut values = common_values(name);
    values.extend([
        ("kd_core", toml_path(&repo.join("crates").join("kd-core"))),
        (
            "subset",
            toml_path(&repo.join("data").join("fashion-mnist-subset")),
        ),
        ("runs", "runs".to_string()),
        ("profile", manifest::profile_section(repo)?),
        ("feature_twins", feature_twins(repo)?),
        ("dir", dir.display().to_string()),
        ("kd_repo", repo.display().to_string()),
        ("kd_target", kd_target.display().to_string()),
        (
            "example_usage",
            format!(
                "#   {} train example.toml    # compiled in (cargo xtask build-kd)\n\
                 #   {}/target/kd-dynamic/kd-dynamic train example.toml \\\n\
                 #       --set 'plugins.load=[\"{}/target/kd-dynamic/lib{snake_crate}.so\"]'\n\
                 #                                 # loaded at run time (cargo xtask build-dynamic)",
                custom.display(),
                repo.display(),
                repo.display()
            ),
        ),
        (
            "teacher_usage",
            format!(
                "#   {} train teacher.toml   (any build of kd trains it: kd, kd-custom, \
                 kd-dynamic)",
                custom.display()
            ),
        ),
    ]);
    Ok(values)
}

/// The placeholders of an in-tree crate: paths relative to the repository root, where its
/// commands run.
fn in_tree_values(name: &str) -> Vec<(&'static str, String)> {
    let mut values = common_values(name);
    values.extend([
        ("subset", "data/fashion-mnist-subset".to_string()),
        ("runs", format!("runs/{name}")),
        (
            "example_usage",
            format!(
                "#   cargo run -p kd-cli -- train plugins/{name}/example.toml   (from kd's root)"
            ),
        ),
        (
            "teacher_usage",
            format!(
                "#   cargo run -p kd-cli -- train plugins/{name}/teacher.toml   (from kd's root)"
            ),
        ),
    ]);
    values
}

/// `cargo xtask new-method NAME [--out DIR]`.
fn out_of_tree(repo: &Path, name: &str, out: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let crate_name = format!("kd-method-{name}");
    let out = out.unwrap_or_else(|| PathBuf::from(&crate_name));
    if out.exists() {
        return Err(BadInput(format!(
            "--out {}: already exists; new-method never overwrites (choose another folder or \
             remove it)",
            out.display()
        ))
        .into());
    }
    let dir = std::path::absolute(&out).context("resolving --out")?;
    let kd_target = kd_target_dir(repo)?;
    let values = out_of_tree_values(repo, &dir, &kd_target, name)?;
    write_files(&dir, SOURCES.iter().chain(&OUT_OF_TREE), &values)?;
    std::fs::copy(repo.join("Cargo.lock"), dir.join("Cargo.lock"))
        .context("copying kd's Cargo.lock into the new crate")?;
    let custom = repo.join("target").join("debug").join("kd-custom");
    eprintln!(
        "created {crate_name} in {dir}\n\
         next steps, exactly as typed (the test reuses kd's build of burn in {target}):\n  \
         cd {dir}\n  \
         cargo test --target-dir {target}\n  \
         cd {repo}\n  \
         cargo xtask build-kd --with {dir}\n  \
         cd {dir}\n  \
         {custom} train teacher.toml\n  \
         {custom} train example.toml\n\
         (README.md in the crate also shows the run-time plugin route)",
        dir = dir.display(),
        target = kd_target.display(),
        repo = repo.display(),
        custom = custom.display(),
    );
    Ok(dir)
}

/// `cargo xtask new-method NAME --in-tree`.
fn in_tree(repo: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let crate_name = format!("kd-method-{name}");
    let dir = repo.join("plugins").join(name);
    if dir.exists() {
        return Err(BadInput(format!(
            "NAME `{name}`: plugins/{name} already exists; new-method never overwrites (choose \
             another name or remove the folder)"
        ))
        .into());
    }
    let registered = shipped::Files::read(repo)?.register(name)?;
    write_files(&dir, SOURCES.iter().chain(&IN_TREE), &in_tree_values(name))?;
    registered.write(repo)?;
    eprintln!(
        "created {crate_name} in plugins/{name}, registered in {} (one line each)\n\
         next steps, exactly as typed:\n  \
         cd {repo}\n  \
         cargo test -p {crate_name}\n  \
         cargo run -p kd-cli -- methods\n  \
         cargo run -p kd-cli -- train plugins/{name}/teacher.toml\n  \
         cargo run -p kd-cli -- train plugins/{name}/example.toml",
        [
            shipped::ROOT_MANIFEST,
            shipped::LIST_MANIFEST,
            shipped::LIST
        ]
        .join(", "),
        repo = repo.display(),
    );
    Ok(dir)
}

/// Where kd's build lives: `CARGO_TARGET_DIR` when set (as cargo itself reads it), else
/// `<repo>/target`.
fn kd_target_dir(repo: &Path) -> anyhow::Result<PathBuf> {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            Ok(std::path::absolute(PathBuf::from(dir)).context("resolving CARGO_TARGET_DIR")?)
        }
        _ => Ok(repo.join("target")),
    }
}

/// The [`FEATURE_TWINS`] as dependency lines, with the versions and features of kd's
/// `[workspace.dependencies]`.
fn feature_twins(repo: &Path) -> anyhow::Result<String> {
    let root = manifest::read(&repo.join("Cargo.toml"))?;
    let mut lines = Vec::new();
    for name in FEATURE_TWINS {
        let spec = root
            .get("workspace")
            .and_then(|w| w.get("dependencies"))
            .and_then(|d| d.get(name))
            .with_context(|| format!("kd's root manifest pins no `{name}`"))?;
        lines.push(format!("{name} = {spec}"));
    }
    Ok(lines.join("\n"))
}

fn write_files<'a>(
    dir: &Path,
    files: impl Iterator<Item = &'a (&'a str, &'a str)>,
    values: &[(&str, String)],
) -> anyhow::Result<()> {
    for (path, template) in files {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&target, render(template, values))
            .with_context(|| format!("writing {}", target.display()))?;
    }
    Ok(())
}

/// A path as a TOML string body (forward slashes survive TOML escaping everywhere).
fn toml_path(path: &Path) -> String {
    path.display().to_string().replace('\\', "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_identifiers() {
        assert_eq!(camel_case("logit-match"), "LogitMatch");
        assert_eq!(camel_case("fitnet2"), "Fitnet2");
    }

    #[test]
    fn bad_names_are_refused_with_the_rule() {
        let builtin = vec!["kd".to_string(), "dml".to_string()];
        for bad in ["", "Logit", "2kd", "logit_match", "logit-", "a--b", "l m"] {
            let err = check_name(bad, &builtin).unwrap_err();
            assert!(err.0.contains("lowercase letters"), "{bad}: {}", err.0);
        }
        let err = check_name("dml", &builtin).unwrap_err();
        assert!(err.0.contains("already ships"), "{}", err.0);
        check_name("logit-match", &builtin).unwrap();
    }

    #[test]
    fn every_placeholder_of_every_template_is_filled() {
        let repo = crate::reproduce::repo_root();
        let dir = Path::new("/elsewhere/kd-method-x");
        let outside = out_of_tree_values(&repo, dir, &repo.join("target"), "x").unwrap();
        for (_, template) in SOURCES.iter().chain(&OUT_OF_TREE) {
            render(template, &outside);
        }
        for (_, template) in SOURCES.iter().chain(&IN_TREE) {
            render(template, &in_tree_values("x"));
        }
    }

    /// `cargo tree` of the crate or workspace in `dir`: each package with its enabled features.
    fn features(dir: &Path, extra: &[&str]) -> std::collections::BTreeMap<String, String> {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = std::process::Command::new(cargo)
            .args([
                "tree",
                "-e",
                "normal,build,dev",
                "--prefix",
                "none",
                "-f",
                "{p} {f}",
            ])
            .args(extra)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut packages = std::collections::BTreeMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // `name vX (path or "*") features`: drop the parenthesised parts.
            let mut plain = String::new();
            let mut depth = 0;
            for c in line.chars() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ if depth == 0 => plain.push(c),
                    _ => {}
                }
            }
            let mut words = plain.split_whitespace();
            if let (Some(name), Some(version)) = (words.next(), words.next()) {
                let features = words.next().unwrap_or_default().to_string();
                packages.insert(format!("{name} {version}"), features);
            }
        }
        packages
    }

    #[test]
    fn the_scaffold_resolves_kds_features() {
        let repo = crate::reproduce::repo_root();
        let dir = tempfile::tempdir().unwrap();
        let krate = out_of_tree(&repo, "probe", Some(dir.path().join("kd-method-probe"))).unwrap();
        let kd = features(&repo, &["--workspace"]);
        let scaffold = features(&krate, &[]);
        let differing: Vec<String> = scaffold
            .iter()
            .filter(|(package, f)| kd.get(*package).is_some_and(|k| k != *f))
            .map(|(package, f)| format!("{package}: kd [{}], scaffold [{f}]", kd[package]))
            .collect();
        assert!(
            differing.is_empty(),
            "a crate burn shares is built with other features than kd's, so the scaffold's tests \
             would rebuild burn; name the crate that switches them on in FEATURE_TWINS:\n{}",
            differing.join("\n")
        );
    }

    /// A copy of the files `--in-tree` reads and edits, in a temporary "repository".
    fn repo_copy() -> tempfile::TempDir {
        let repo = crate::reproduce::repo_root();
        let copy = tempfile::tempdir().unwrap();
        for file in [
            shipped::ROOT_MANIFEST,
            shipped::LIST_MANIFEST,
            shipped::LIST,
        ] {
            let to = copy.path().join(file);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(repo.join(file), to).unwrap();
        }
        copy
    }

    fn in_tree_args(name: &str) -> Args {
        Args {
            name: name.into(),
            out: None,
            in_tree: true,
        }
    }

    #[test]
    fn in_tree_writes_a_member_crate_and_registers_it() {
        let repo = repo_copy();
        let before = shipped::Files::read(repo.path()).unwrap();
        let dir = scaffold(repo.path(), in_tree_args("unlisted-x")).unwrap();
        assert_eq!(dir, repo.path().join("plugins/unlisted-x"));
        let manifest = manifest::read(&dir.join("Cargo.toml")).unwrap();
        assert_eq!(
            manifest["package"]["name"].as_str(),
            Some("kd-method-unlisted-x")
        );
        assert_eq!(
            manifest["dependencies"]["kd-core"]["workspace"].as_bool(),
            Some(true)
        );
        assert!(manifest["features"].get("dynamic").is_some());
        assert!(manifest.get("workspace").is_none() && manifest.get("profile").is_none());
        // The same sources as out of tree: the registration idiom included.
        for (file, needle) in [
            ("src/lib.rs", "kd_core::register_method!(REGISTRATION);"),
            ("src/lib.rs", "kd_core::export_plugin!(REGISTRATION);"),
            ("example.toml", "root = \"data/fashion-mnist-subset\""),
            ("example.toml", "train plugins/unlisted-x/example.toml"),
        ] {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            assert!(text.contains(needle), "{file}: {text}");
        }
        assert!(!dir.join("README.md").exists() && !dir.join("Cargo.lock").exists());
        assert_eq!(
            shipped::Files::read(repo.path()).unwrap(),
            before.register("unlisted-x").unwrap()
        );
        assert!(
            manifest::builtin_kinds(repo.path())
                .unwrap()
                .contains(&"unlisted-x".to_string())
        );
    }

    #[test]
    fn in_tree_refuses_an_existing_folder_and_edits_nothing() {
        let repo = repo_copy();
        std::fs::create_dir_all(repo.path().join("plugins/unlisted-x")).unwrap();
        let before = shipped::Files::read(repo.path()).unwrap();
        let err = scaffold(repo.path(), in_tree_args("unlisted-x")).unwrap_err();
        let bad = err.downcast_ref::<BadInput>().expect("bad input: exit 2");
        assert!(
            bad.0.contains("plugins/unlisted-x already exists"),
            "{}",
            bad.0
        );
        assert_eq!(shipped::Files::read(repo.path()).unwrap(), before);
    }

    #[test]
    fn in_tree_refuses_a_list_it_cannot_edit_and_writes_nothing() {
        let repo = repo_copy();
        let before = shipped::Files::read(repo.path()).unwrap();
        let manifest = repo.path().join(shipped::LIST_MANIFEST);
        let text = std::fs::read_to_string(&manifest).unwrap();
        std::fs::write(&manifest, text.replace("kd-method-", "kd-method-x = 1\n# ")).unwrap();
        let err = scaffold(repo.path(), in_tree_args("unlisted-x")).unwrap_err();
        let bad = err.downcast_ref::<BadInput>().expect("bad input: exit 2");
        assert!(bad.0.starts_with(shipped::LIST_MANIFEST), "{}", bad.0);
        assert!(!repo.path().join("plugins/unlisted-x").exists());
        let after = shipped::Files::read(repo.path()).unwrap();
        assert_eq!(
            (&after.root_manifest, &after.list),
            (&before.root_manifest, &before.list)
        );
    }

    #[test]
    fn in_tree_refuses_a_bad_or_shipped_name() {
        let repo = repo_copy();
        for (name, why) in [("Sp", "lowercase letters"), ("dml", "already ships")] {
            let err = scaffold(repo.path(), in_tree_args(name)).unwrap_err();
            let bad = err.downcast_ref::<BadInput>().expect("bad input: exit 2");
            assert!(bad.0.contains(why), "{}", bad.0);
        }
        assert!(!repo.path().join("plugins").exists());
    }
}

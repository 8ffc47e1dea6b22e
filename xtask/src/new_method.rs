//! `cargo xtask new-method NAME [--out DIR]`: scaffolds an out-of-tree method crate.
//!
//! The crate is a working method as generated — logit regression (Ba & Caruana 2014), a teacher
//! and a student, one term with a golden test — so that `cargo test` passes in it at once and the
//! user edits from something that runs. Its `Cargo.toml` depends on this checkout's kd-core by
//! absolute path, copies the workspace profile and is a workspace of its own; the lockfile is
//! copied too, so the crate resolves to exactly the versions kd was built with (and shares its
//! build of burn). Templates live in `xtask/templates/method/`.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::BadInput;
use crate::manifest;

/// Arguments of `cargo xtask new-method`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The method kind, as configs will write it (`method.<instance>.kind`): lowercase letters,
    /// digits and dashes, starting with a letter. The crate is `kd-method-NAME`.
    pub name: String,
    /// Where to create the crate (default: `./kd-method-NAME`). Must not exist yet.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The crate's files: path in the crate, template.
const FILES: [(&str, &str); 9] = [
    (
        "Cargo.toml",
        include_str!("../templates/method/Cargo.toml.tmpl"),
    ),
    (
        "README.md",
        include_str!("../templates/method/README.md.tmpl"),
    ),
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
    (".gitignore", "/target\n/runs\n"),
];

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
    let repo = crate::reproduce::repo_root();
    check_name(&args.name, &manifest::builtin_kinds(&repo)?)?;
    let crate_name = format!("kd-method-{}", args.name);
    let out = args.out.unwrap_or_else(|| PathBuf::from(&crate_name));
    if out.exists() {
        return Err(BadInput(format!(
            "--out {}: already exists; new-method never overwrites (choose another folder or \
             remove it)",
            out.display()
        ))
        .into());
    }
    let snake = args.name.replace('-', "_");
    let dir = std::path::absolute(&out).context("resolving --out")?;
    let values = [
        ("crate", crate_name.clone()),
        ("kind", args.name.clone()),
        ("snake", snake.clone()),
        ("snake_crate", crate_name.replace('-', "_")),
        ("camel", camel_case(&args.name)),
        ("title", "logit regression (a starting point)".to_string()),
        (
            "summary",
            "the student regresses the teacher's logits: ½‖z_s − z_t‖²".to_string(),
        ),
        ("kd_core", toml_path(&repo.join("crates").join("kd-core"))),
        (
            "subset",
            toml_path(&repo.join("data").join("fashion-mnist-subset")),
        ),
        ("profile", manifest::profile_section(&repo)?),
        ("dir", dir.display().to_string()),
        ("kd_repo", repo.display().to_string()),
    ];
    write_files(&dir, &values)?;
    std::fs::copy(repo.join("Cargo.lock"), dir.join("Cargo.lock"))
        .context("copying kd's Cargo.lock into the new crate")?;
    eprintln!(
        "created {crate_name} in {}\n  cargo test --manifest-path {}/Cargo.toml\n  cargo xtask \
         build-kd --with {}",
        dir.display(),
        dir.display(),
        dir.display()
    );
    Ok(dir)
}

fn write_files(dir: &Path, values: &[(&str, String)]) -> anyhow::Result<()> {
    for (path, template) in FILES {
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
        let keys = [
            "crate",
            "kind",
            "snake",
            "snake_crate",
            "camel",
            "title",
            "summary",
            "kd_core",
            "subset",
            "profile",
            "dir",
            "kd_repo",
        ];
        let values: Vec<(&str, String)> = keys.iter().map(|k| (*k, "x".to_string())).collect();
        for (path, template) in FILES {
            let out = render(template, &values);
            assert!(!out.contains("{{"), "{path}");
        }
    }
}

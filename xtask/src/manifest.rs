//! Reading and writing Cargo manifests for the generated crates and workspaces of `new-method`,
//! `build-kd` and `build-dynamic`: the workspace profile, the built-in method kinds (read from
//! kd-plugins' list), an extra method crate's package name.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::BadInput;

/// Parses a manifest; a file that is not TOML is bad input naming the file.
pub fn read(path: &Path) -> anyhow::Result<toml::Table> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        BadInput(format!(
            "{}: cannot read the manifest ({e}); expected a method crate's Cargo.toml",
            path.display()
        ))
    })?;
    Ok(toml::from_str(&text).map_err(|e| BadInput(format!("{}: {e}", path.display())))?)
}

/// Writes a manifest, with a header saying it is generated.
pub fn write(path: &Path, table: &toml::Table, header: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let text = format!("{header}\n{}", toml::to_string(table)?);
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The `[profile.*]` tables of kd's root manifest, as TOML text. Generated crates copy them so
/// that they share kd's build cache (a different profile rebuilds burn: ten minutes here).
pub fn profile_section(repo: &Path) -> anyhow::Result<String> {
    let root = read(&repo.join("Cargo.toml"))?;
    let mut table = toml::Table::new();
    if let Some(profile) = root.get("profile") {
        table.insert("profile".into(), profile.clone());
    }
    Ok(toml::to_string(&table)?)
}

/// The method kinds kd ships: the list in `crates/kd-plugins` (`shipped.rs`), whose entries the
/// tests check against the folders under `plugins/`.
pub fn builtin_kinds(repo: &Path) -> anyhow::Result<Vec<String>> {
    crate::shipped::kinds(repo)
}

/// An extra method crate given on the command line.
#[derive(Debug, Clone)]
pub struct ExtraCrate {
    /// Its folder, absolute.
    pub dir: PathBuf,
    /// Its package name (`kd-method-…`).
    pub package: String,
    /// Its manifest.
    pub manifest: toml::Table,
}

impl ExtraCrate {
    /// Reads the crate in `dir`; errors name the folder and what is wrong.
    pub fn open(dir: &Path, flag: &str) -> anyhow::Result<ExtraCrate> {
        let dir = std::path::absolute(dir)?;
        let path = dir.join("Cargo.toml");
        if !path.is_file() {
            return Err(BadInput(format!(
                "{flag} {}: no Cargo.toml there; give the folder of a method crate",
                dir.display()
            ))
            .into());
        }
        let manifest = read(&path)?;
        let package = manifest
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(|n| n.as_str())
            .ok_or_else(|| {
                BadInput(format!(
                    "{}: no [package] name; a workspace root is not a method crate",
                    path.display()
                ))
            })?
            .to_string();
        let depends_on_core = manifest
            .get("dependencies")
            .and_then(|d| d.get("kd-core"))
            .is_some();
        if !depends_on_core {
            return Err(BadInput(format!(
                "{}: `{package}` does not depend on kd-core, so it registers no method",
                path.display()
            ))
            .into());
        }
        Ok(ExtraCrate {
            dir,
            package,
            manifest,
        })
    }

    /// The crate name as Rust code writes it.
    pub fn lib_name(&self) -> String {
        self.package.replace('-', "_")
    }
}

/// Each crate at most once, in the order given; two crates with one package name are refused.
pub fn open_all(dirs: &[PathBuf], flag: &str) -> anyhow::Result<Vec<ExtraCrate>> {
    let mut crates: Vec<ExtraCrate> = Vec::new();
    for dir in dirs {
        let extra = ExtraCrate::open(dir, flag)?;
        if let Some(other) = crates.iter().find(|c| c.package == extra.package) {
            if other.dir == extra.dir {
                continue;
            }
            return Err(BadInput(format!(
                "{flag}: two crates are both named `{}`: {} and {}",
                extra.package,
                other.dir.display(),
                extra.dir.display()
            ))
            .into());
        }
        crates.push(extra);
    }
    Ok(crates)
}

/// `{ path = "…" }`.
pub fn path_dependency(path: &Path) -> toml::Value {
    let mut table = toml::Table::new();
    table.insert(
        "path".into(),
        toml::Value::String(path.display().to_string()),
    );
    toml::Value::Table(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_section_is_the_workspace_profile() {
        let text = profile_section(&crate::reproduce::repo_root()).unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(table["profile"]["dev"]["opt-level"].as_integer(), Some(3));
    }

    #[test]
    fn a_folder_without_a_method_crate_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = ExtraCrate::open(dir.path(), "--with").unwrap_err();
        assert!(err.to_string().contains("no Cargo.toml"), "{err}");
        std::fs::write(dir.path().join("Cargo.toml"), "[package\n").unwrap();
        let err = ExtraCrate::open(dir.path(), "--with").unwrap_err();
        assert!(err.to_string().contains("Cargo.toml"), "{err}");
        std::fs::write(
            dir.path().join("Cargo.toml"),
            "[package]\nname = \"x\"\n[dependencies]\nserde = \"1\"\n",
        )
        .unwrap();
        let err = ExtraCrate::open(dir.path(), "--with").unwrap_err();
        assert!(
            err.to_string().contains("does not depend on kd-core"),
            "{err}"
        );
    }
}

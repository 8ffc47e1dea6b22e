//! `cargo xtask build-dynamic --plugin DIR…`: a `kd` host that loads method plugins at run time
//! (`plugins.load` in a config), and those plugins, built together.
//!
//! Loading Rust code at run time is sound only when host and plugin share one copy of kd-core,
//! burn and std, compiled by one compiler from one lockfile. So this command builds, in one cargo
//! invocation of a generated workspace (`target/kd-dynamic/workspace/`, git-ignored):
//!
//! - kd-core as a Rust `dylib` (`libkd_core.so`) holding burn and every other dependency;
//! - `kd-dynamic`: kd's command line with the built-in methods (kd-plugins' list), linked
//!   against that library;
//! - each plugin as a `dylib` linked against it too, with its `dynamic` feature, which exports
//!   the fingerprint and the registration function instead of registering at link time.
//!
//! The generated workspace mirrors kd's crates with manifests that point at the real sources
//! (nothing is copied, nothing in the repository is edited) and differ only in kd-core's crate
//! type. The link-time flags (`-C prefer-dynamic`, an rpath to the libraries, `--cfg kd_dynamic`
//! for kd-core's fingerprint) are added per crate by this program acting as cargo's rustc
//! wrapper (`rustc_wrapper.rs`); flags given to every crate through `RUSTFLAGS` would also
//! rebuild burn (ten minutes here), whereas this way the dependencies come from kd's own build
//! cache and only kd's crates are compiled again. The default `cargo build` is untouched and
//! stays fully static.
//!
//! The results are copied to `target/kd-dynamic/`: the `kd-dynamic` binary and one
//! `lib<plugin>.so` per plugin.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::manifest::{self, ExtraCrate};
use crate::rustc_wrapper;

/// Arguments of `cargo xtask build-dynamic`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The folder of a method crate to build as a loadable plugin (repeat for several).
    #[arg(long = "plugin", value_name = "DIR")]
    pub plugins: Vec<PathBuf>,
}

/// What a build produced.
#[derive(Debug)]
pub struct Built {
    /// The host binary.
    pub host: PathBuf,
    /// One loadable library per plugin, in the order given.
    pub plugins: Vec<PathBuf>,
}

/// Makes a manifest's relative paths absolute (they are resolved from a generated folder).
fn absolutize(table: &mut toml::Table, base: &Path) {
    for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
        if let Some(toml::Value::Table(deps)) = table.get_mut(section) {
            for (_, dependency) in deps.iter_mut() {
                if let Some(toml::Value::String(path)) = dependency.get_mut("path") {
                    *path = base.join(&*path).display().to_string();
                }
            }
        }
    }
    if let Some(toml::Value::Table(package)) = table.get_mut("package")
        && let Some(toml::Value::String(build)) = package.get_mut("build")
    {
        *build = base.join(&*build).display().to_string();
    }
}

/// A member of the generated workspace: the crate's manifest, its library pointed at the real
/// source, tests and binaries dropped (only libraries are built here).
fn mirror(dir: &Path, crate_type: Option<&[&str]>) -> anyhow::Result<toml::Table> {
    let mut table = manifest::read(&dir.join("Cargo.toml"))?;
    absolutize(&mut table, dir);
    let lib_path = table
        .get("lib")
        .and_then(|l| l.get("path"))
        .and_then(|p| p.as_str())
        .map(|p| dir.join(p))
        .unwrap_or_else(|| dir.join("src").join("lib.rs"));
    if dir.join("build.rs").is_file()
        && let Some(toml::Value::Table(package)) = table.get_mut("package")
    {
        package
            .entry("build")
            .or_insert_with(|| dir.join("build.rs").display().to_string().into());
    }
    let mut lib = toml::Table::new();
    lib.insert("path".into(), lib_path.display().to_string().into());
    if let Some(types) = crate_type {
        lib.insert(
            "crate-type".into(),
            toml::Value::Array(types.iter().map(|t| (*t).into()).collect()),
        );
    }
    table.insert("lib".into(), toml::Value::Table(lib));
    for key in [
        "bin",
        "test",
        "bench",
        "example",
        "dev-dependencies",
        "workspace",
        "profile",
    ] {
        table.remove(key);
    }
    if let Some(toml::Value::Table(package)) = table.get_mut("package") {
        // Targets found by convention next to the manifest would be looked for in the
        // generated folder: there are none, and none are wanted.
        package.insert("autobins".into(), false.into());
        package.insert("autotests".into(), false.into());
        package.insert("autobenches".into(), false.into());
        package.insert("autoexamples".into(), false.into());
    }
    Ok(table)
}

/// kd-core, built as a Rust `dylib` as well as the usual `rlib`.
fn mirror_core(repo: &Path) -> anyhow::Result<toml::Table> {
    mirror(
        &repo.join("crates").join("kd-core"),
        Some(&["rlib", "dylib"]),
    )
}

/// Writes the generated workspace; returns its root manifest.
pub fn generate(repo: &Path, root: &Path, plugins: &[ExtraCrate]) -> anyhow::Result<PathBuf> {
    const HEADER: &str = "# Generated by `cargo xtask build-dynamic`; regenerated on every build.";
    let mut members = Vec::new();
    let mut mirrored: Vec<(String, PathBuf)> = Vec::new();

    let core_dir = root.join("crates").join("kd-core");
    manifest::write(&core_dir.join("Cargo.toml"), &mirror_core(repo)?, HEADER)?;
    mirrored.push(("kd-core".into(), core_dir));
    let mirror_crate = |name: &str| -> anyhow::Result<PathBuf> {
        let dir = root.join("crates").join(name);
        let table = mirror(&repo.join("crates").join(name), None)?;
        manifest::write(&dir.join("Cargo.toml"), &table, HEADER)?;
        Ok(dir)
    };
    let cli_dir = mirror_crate("kd-cli")?;
    members.push(cli_dir.clone());
    // kd-cli links the built-in methods through kd-plugins; its mirror keeps them on the
    // mirrored kd-core.
    mirrored.push(("kd-plugins".into(), mirror_crate("kd-plugins")?));
    for kind in manifest::builtin_kinds(repo)? {
        let source = repo.join("plugins").join(&kind);
        let table = mirror(&source, None)?;
        let name = table["package"]["name"]
            .as_str()
            .context("a plugin without a name")?
            .to_string();
        let dir = root.join("plugins").join(&kind);
        manifest::write(&dir.join("Cargo.toml"), &table, HEADER)?;
        mirrored.push((name, dir));
    }
    for plugin in plugins {
        let mut table = mirror(&plugin.dir, Some(&["dylib"]))?;
        if let Some(toml::Value::Table(deps)) = table.get_mut("dependencies") {
            deps.insert(
                "kd-core".into(),
                manifest::path_dependency(&root.join("crates").join("kd-core")),
            );
        }
        let dir = root.join("ext").join(&plugin.package);
        manifest::write(&dir.join("Cargo.toml"), &table, HEADER)?;
        members.push(dir);
    }

    let host_dir = root.join("host");
    std::fs::create_dir_all(host_dir.join("src"))?;
    std::fs::write(
        host_dir.join("Cargo.toml"),
        format!(
            "{HEADER}\n[package]\nname = \"kd-dynamic\"\nversion = \"0.1.0\"\nedition = \
             \"2024\"\npublish = false\n\n[dependencies]\nkd-cli = {{ path = \"{}\" }}\n",
            cli_dir.display()
        ),
    )?;
    std::fs::write(
        host_dir.join("src").join("main.rs"),
        "//! kd that loads method plugins at run time. Generated by `cargo xtask \
         build-dynamic`.\n\nfn main() -> std::process::ExitCode {\n    kd_cli::main()\n}\n",
    )?;
    members.push(host_dir);
    members.extend(mirrored.iter().map(|(_, dir)| dir.clone()));

    // The workspace: kd's root manifest with its members replaced and its path dependencies
    // redirected to the mirrors.
    let mut workspace_root = manifest::read(&repo.join("Cargo.toml"))?;
    let workspace = workspace_root
        .get_mut("workspace")
        .and_then(|w| w.as_table_mut())
        .context("kd's root manifest has no [workspace]")?;
    workspace.insert(
        "members".into(),
        toml::Value::Array(
            members
                .iter()
                .map(|m| {
                    m.strip_prefix(root)
                        .unwrap_or(m)
                        .display()
                        .to_string()
                        .into()
                })
                .collect(),
        ),
    );
    workspace.remove("default-members");
    if let Some(toml::Value::Table(deps)) = workspace.get_mut("dependencies") {
        for (_, dependency) in deps.iter_mut() {
            if let Some(toml::Value::String(path)) = dependency.get_mut("path") {
                *path = repo.join(&*path).display().to_string();
            }
        }
        for (name, dir) in &mirrored {
            if let Some(toml::Value::Table(dependency)) = deps.get_mut(name) {
                dependency.insert("path".into(), dir.display().to_string().into());
            }
        }
    }
    let root_manifest = root.join("Cargo.toml");
    manifest::write(&root_manifest, &workspace_root, HEADER)?;
    std::fs::copy(repo.join("Cargo.lock"), root.join("Cargo.lock"))
        .context("copying Cargo.lock")?;
    Ok(root_manifest)
}

/// Builds the host and the plugins and copies them to `target/kd-dynamic/`.
pub fn run(args: Args) -> anyhow::Result<Built> {
    let repo = crate::reproduce::repo_root();
    let plugins = manifest::open_all(&args.plugins, "--plugin")?;
    for plugin in &plugins {
        crate::build_kd::check_core(plugin, &repo)?;
        let has_feature = plugin
            .manifest
            .get("features")
            .and_then(|f| f.get("dynamic"))
            .is_some();
        if !has_feature {
            return Err(crate::BadInput(format!(
                "{}: no `dynamic` feature; a loadable plugin exports its registration under \
                 `#[cfg(feature = \"dynamic\")]` (see `cargo xtask new-method`)",
                plugin.dir.join("Cargo.toml").display()
            ))
            .into());
        }
    }
    let out = repo.join("target").join("kd-dynamic");
    let root = out.join("workspace");
    let manifest_path = generate(&repo, &root, &plugins)?;

    let target = repo.join("target");
    let deps = target.join("debug").join("deps");
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        .arg("build")
        .arg("--manifest-path")
        .arg(&manifest_path)
        .arg("--target-dir")
        .arg(&target)
        .args(["-p", "kd-dynamic"]);
    for plugin in &plugins {
        command
            .args(["-p", &plugin.package])
            .arg("--features")
            .arg(format!("{}/dynamic", plugin.package));
    }
    let mut linked = vec!["kd_dynamic".to_string()];
    linked.extend(plugins.iter().map(|p| p.lib_name()));
    rustc_wrapper::configure(
        &mut command,
        &rustc_wrapper::Plan {
            dynamic_core: "kd_core".into(),
            linked,
            rpath: vec![deps.clone(), rustc_wrapper::std_library_dir()?],
        },
    )?;
    eprintln!(
        "$ cargo build --manifest-path {} (dynamic)",
        manifest_path.display()
    );
    let status = command.status().context("running cargo")?;
    if !status.success() {
        bail!("the dynamic build failed ({status})");
    }

    let host = out.join(format!("kd-dynamic{}", std::env::consts::EXE_SUFFIX));
    copy_fresh(
        &target
            .join("debug")
            .join(format!("kd-dynamic{}", std::env::consts::EXE_SUFFIX)),
        &host,
    )?;
    let mut libraries = Vec::new();
    for plugin in &plugins {
        let file = format!(
            "{}{}{}",
            std::env::consts::DLL_PREFIX,
            plugin.lib_name(),
            std::env::consts::DLL_SUFFIX
        );
        let copy = out.join(&file);
        copy_fresh(&target.join("debug").join(&file), &copy)?;
        libraries.push(copy);
    }
    eprintln!("built {}", host.display());
    for library in &libraries {
        eprintln!("  plugin {}", library.display());
    }
    Ok(Built {
        host,
        plugins: libraries,
    })
}

/// Replaces `to` with a copy of `from` (never writing into a library a process may have mapped).
fn copy_fresh(from: &Path, to: &Path) -> anyhow::Result<()> {
    let staging = to.with_extension("partial");
    std::fs::copy(from, &staging)
        .with_context(|| format!("copying {} to {}", from.display(), staging.display()))?;
    std::fs::rename(&staging, to).with_context(|| format!("renaming to {}", to.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirrors_point_at_the_real_sources() {
        let repo = crate::reproduce::repo_root();
        let core = mirror_core(&repo).unwrap();
        assert_eq!(
            core["lib"]["path"].as_str().unwrap(),
            repo.join("crates/kd-core/src/lib.rs").display().to_string()
        );
        assert_eq!(
            core["lib"]["crate-type"].as_array().unwrap(),
            &vec![toml::Value::from("rlib"), toml::Value::from("dylib")]
        );
        assert!(
            core["package"]["build"]
                .as_str()
                .unwrap()
                .ends_with("kd-core/build.rs")
        );
        assert!(core.get("dev-dependencies").is_none());
        let cli = mirror(&repo.join("crates/kd-cli"), None).unwrap();
        assert!(cli.get("bin").is_none());
        assert!(
            cli["lib"]["path"]
                .as_str()
                .unwrap()
                .ends_with("kd-cli/src/lib.rs")
        );
    }

    #[test]
    fn the_generated_workspace_redirects_kd_core() {
        let repo = crate::reproduce::repo_root();
        let dir = tempfile::tempdir().unwrap();
        let root = generate(&repo, dir.path(), &[]).unwrap();
        let table = manifest::read(&root).unwrap();
        let deps = &table["workspace"]["dependencies"];
        assert_eq!(
            deps["kd-core"]["path"].as_str().unwrap(),
            dir.path().join("crates/kd-core").display().to_string()
        );
        assert_eq!(
            deps["kd-plot"]["path"].as_str().unwrap(),
            repo.join("crates/kd-plot").display().to_string()
        );
        assert_eq!(deps["burn"]["version"].as_str(), Some("=0.22.1"));
        assert!(dir.path().join("host/src/main.rs").is_file());
        assert_eq!(
            deps["kd-plugins"]["path"].as_str().unwrap(),
            dir.path().join("crates/kd-plugins").display().to_string()
        );
        assert!(dir.path().join("plugins/kd/Cargo.toml").is_file());
    }
}

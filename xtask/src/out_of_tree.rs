//! `cargo xtask test-out-of-tree`: the end-to-end check of both routes for methods written
//! outside this repository, as CI runs it.
//!
//! 1. scaffold `logit-match` with `new-method` and run the tests it was generated with;
//! 2. compile it into `kd-custom` (`build-kd`) and train a teacher and then the method a few
//!    steps on the shipped subset;
//! 3. build it as a loadable plugin with a `kd-dynamic` host (`build-dynamic`), train the same
//!    run with `plugins.load`, and require exactly the compiled-in run's numbers (same seed,
//!    same code: a plugin sharing the host's kd-core must compute the very same steps);
//! 4. build it a third time as a self-contained `cdylib` against the static kd-core, whose
//!    fingerprint differs from the dynamic host's (`linkage`), and require the host to refuse
//!    it with exit 2 naming the file and the difference; likewise a file that is not a library
//!    and a library that is not a plugin; and the static `kd-custom` to refuse any plugin.
//!
//! Everything is written under `target/out-of-tree/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, bail, ensure};

/// The kind the check scaffolds.
const KIND: &str = "logit-match";

/// Flags that keep every run a few steps long: 20 images per class, one epoch, batch 32.
const SHORT: [&str; 10] = [
    "--set",
    "run.epochs=1",
    "--set",
    "data.train_per_class=20",
    "--set",
    "data.test_per_class=20",
    "--set",
    "data.batch_size=32",
    "--set",
    "run.log_every=1",
];

fn run_output(program: &Path, dir: &Path, args: &[&str]) -> anyhow::Result<Output> {
    eprintln!("$ {} {}", program.display(), args.join(" "));
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("KD_LOG", "warn")
        .output()
        .with_context(|| format!("running {}", program.display()))
}

fn succeed(program: &Path, dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = run_output(program, dir, args)?;
    if !out.status.success() {
        bail!(
            "{} {} failed ({}):\n{}",
            program.display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Requires exit status 2 and every `needle` in stderr.
fn refuse(program: &Path, dir: &Path, args: &[&str], needles: &[&str]) -> anyhow::Result<()> {
    let out = run_output(program, dir, args)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.code() == Some(2),
        "expected exit 2, got {}:\n{stderr}",
        out.status
    );
    for needle in needles {
        ensure!(
            stderr.contains(needle),
            "stderr lacks `{needle}`:\n{stderr}"
        );
    }
    eprintln!("  refused as expected: {}", stderr.trim());
    Ok(())
}

fn kinds(program: &Path, dir: &Path, load: &[&Path]) -> anyhow::Result<Vec<String>> {
    let mut args = vec!["methods", "--json"];
    let load: Vec<String> = load.iter().map(|p| p.display().to_string()).collect();
    for library in &load {
        args.extend(["--load", library]);
    }
    let json: serde_json::Value = serde_json::from_str(&succeed(program, dir, &args)?)?;
    Ok(json
        .as_array()
        .context("methods --json is an array")?
        .iter()
        .filter_map(|row| row["kind"].as_str().map(str::to_string))
        .collect())
}

/// The step rows of a run's metrics: `(loss, term)` per logged step.
fn steps(run: &Path) -> anyhow::Result<Vec<(f64, f64)>> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl"))
        .with_context(|| format!("reading {}/metrics.jsonl", run.display()))?;
    let term = format!("{}/l2", KIND.replace('-', "_"));
    let mut rows = Vec::new();
    for line in text.lines() {
        let row: serde_json::Value = serde_json::from_str(line)?;
        if row["kind"] == "step" {
            let loss = row["loss"].as_f64().context("a step without loss")?;
            let value = row[&term]
                .as_f64()
                .with_context(|| format!("a step without `{term}`: {line}"))?;
            rows.push((loss, value));
        }
    }
    ensure!(!rows.is_empty(), "{}: no steps logged", run.display());
    Ok(rows)
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Runs the whole check.
pub fn run() -> anyhow::Result<()> {
    let repo = crate::reproduce::repo_root();
    let target = repo.join("target");
    let work = target.join("out-of-tree");
    if work.exists() {
        std::fs::remove_dir_all(&work).context("clearing target/out-of-tree")?;
    }
    std::fs::create_dir_all(&work)?;
    let krate: PathBuf = work.join(format!("kd-method-{KIND}"));

    // 1. Scaffold, and its own tests as generated.
    crate::new_method::run(crate::new_method::Args {
        name: KIND.into(),
        out: Some(krate.clone()),
        in_tree: false,
    })?;
    eprintln!(
        "$ cargo test --manifest-path {}/Cargo.toml",
        krate.display()
    );
    let status = cargo()
        .arg("test")
        .arg("--manifest-path")
        .arg(krate.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .status()?;
    ensure!(status.success(), "the scaffolded crate's tests failed");

    // 2. Compiled in.
    let custom = crate::build_kd::run(crate::build_kd::Args {
        with: vec![krate.clone()],
    })?;
    let listed = kinds(&custom, &krate, &[])?;
    ensure!(
        listed.iter().any(|k| k == KIND) && listed.iter().any(|k| k == "kd"),
        "kd-custom lists {listed:?}"
    );
    let mut teacher = vec!["train", "teacher.toml"];
    teacher.extend(SHORT);
    succeed(&custom, &krate, &teacher)?;
    let mut compiled = vec!["train", "example.toml", "--set", "run.name=compiled-in"];
    compiled.extend(SHORT);
    succeed(&custom, &krate, &compiled)?;
    let compiled_steps = steps(&krate.join("runs").join("compiled-in"))?;

    // 4a. A self-contained build of the same crate: the wrong kind of library for a dynamic host.
    eprintln!("$ cargo rustc --lib --crate-type cdylib --features dynamic (static kd-core)");
    let status = cargo()
        .arg("rustc")
        .arg("--manifest-path")
        .arg(krate.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .args(["--lib", "--crate-type", "cdylib", "--features", "dynamic"])
        .status()?;
    ensure!(status.success(), "the cdylib build failed");
    let file = format!(
        "{}kd_method_{}{}",
        std::env::consts::DLL_PREFIX,
        KIND.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    );
    let static_dir = work.join("static");
    std::fs::create_dir_all(&static_dir)?;
    let static_lib = static_dir.join(&file);
    std::fs::copy(target.join("debug").join(&file), &static_lib)?;

    // 3. Loaded at run time.
    let built = crate::build_dynamic::run(crate::build_dynamic::Args {
        plugins: vec![krate.clone()],
    })?;
    let plugin = &built.plugins[0];
    let builtin = kinds(&built.host, &krate, &[])?;
    ensure!(
        !builtin.iter().any(|k| k == KIND) && builtin.iter().any(|k| k == "kd"),
        "kd-dynamic without plugins lists {builtin:?}"
    );
    // Named twice, loaded once.
    let listed = kinds(&built.host, &krate, &[plugin, plugin])?;
    ensure!(
        listed.iter().filter(|k| *k == KIND).count() == 1 && listed.len() == builtin.len() + 1,
        "kd-dynamic lists {listed:?}"
    );
    let load = format!("plugins.load=[\"{}\"]", plugin.display());
    let mut dynamic = vec![
        "train",
        "example.toml",
        "--set",
        "run.name=loaded",
        "--set",
        &load,
    ];
    dynamic.extend(SHORT);
    succeed(&built.host, &krate, &dynamic)?;
    let loaded_steps = steps(&krate.join("runs").join("loaded"))?;
    ensure!(
        loaded_steps == compiled_steps,
        "the loaded plugin's run differs from the compiled-in one:\n{loaded_steps:?}\n\
         {compiled_steps:?}"
    );
    eprintln!(
        "  {} steps logged, identical both ways (last loss {:.6})",
        loaded_steps.len(),
        loaded_steps.last().map(|s| s.0).unwrap_or_default()
    );

    // 4b. Fingerprints that differ are refused before anything else in the library runs.
    let wrong = format!("plugins.load=[\"{}\"]", static_lib.display());
    let mut refused = vec![
        "train",
        "example.toml",
        "--set",
        "run.name=refused",
        "--set",
        &wrong,
    ];
    refused.extend(SHORT);
    refuse(
        &built.host,
        &krate,
        &refused,
        &[
            &static_lib.display().to_string(),
            "linkage: library static, host dylib",
        ],
    )?;
    ensure!(
        !krate.join("runs").join("refused").exists(),
        "a refused run wrote its folder"
    );
    let plugin_text = plugin.display().to_string();
    refuse(
        &custom,
        &krate,
        &["methods", "--load", &plugin_text],
        &[&plugin_text, "this kd is a static build"],
    )?;
    let not_a_library = krate.join("example.toml").display().to_string();
    refuse(
        &built.host,
        &krate,
        &["methods", "--load", &not_a_library],
        &[&not_a_library, "not a loadable library"],
    )?;
    // A real shared library that is no plugin: kd-core's own.
    let core = target
        .join("debug")
        .join("deps")
        .join(format!(
            "{}kd_core{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        ))
        .display()
        .to_string();
    refuse(
        &built.host,
        &krate,
        &["methods", "--load", &core],
        &[&core, "exports no `kd_plugin_fingerprint`"],
    )?;
    eprintln!("out-of-tree methods: scaffold, compiled in, loaded at run time, refused: all good");
    Ok(())
}

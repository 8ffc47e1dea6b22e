//! xtask as cargo's `RUSTC_WRAPPER` for `build-dynamic`: adds link-time flags to the few crates
//! that need them and passes every other compiler call through unchanged.
//!
//! cargo runs `$RUSTC_WRAPPER rustc <args>`. When the environment carries a plan
//! (`KDXTASK_RUSTC_PLAN`, JSON), [`main_if_wrapping`] takes over before the command line is
//! parsed:
//!
//! - the crate named `dynamic_core` (kd-core) gets `--cfg kd_dynamic` (its fingerprint says
//!   `linkage=dylib`) and `-C prefer-dynamic` (its `.so` links std dynamically);
//! - each crate in `linked` (the host binary, the plugins) gets `-C prefer-dynamic` and an rpath
//!   to kd-core's and std's shared libraries, so that it runs without `LD_LIBRARY_PATH`.
//!
//! Why a wrapper and not `RUSTFLAGS`: flags in `RUSTFLAGS` reach every crate and enter cargo's
//! fingerprints, so burn and all its dependencies would be rebuilt (ten minutes here) into
//! artifacts identical to the ones kd already has. The wrapper changes only kd's own crates,
//! which the generated workspace gives other package paths, hence other artifacts: the default
//! build's artifacts are never overwritten.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// The environment variable that carries the plan.
pub const PLAN_VAR: &str = "KDXTASK_RUSTC_PLAN";

/// Which crates get which flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The crate built as the shared kd-core.
    pub dynamic_core: String,
    /// Crates whose outputs link against it (binaries, plugins).
    pub linked: Vec<String>,
    /// Folders the linked outputs look in for shared libraries.
    pub rpath: Vec<PathBuf>,
}

/// The flags to add for a compiler call with these arguments.
pub fn extra_flags(plan: &Plan, args: &[String]) -> Vec<String> {
    let name = args
        .iter()
        .position(|a| a == "--crate-name")
        .and_then(|i| args.get(i + 1));
    let Some(name) = name else {
        return Vec::new(); // cargo probing the compiler (`-vV`, `--print`)
    };
    let rpath = || {
        let joined = plan
            .rpath
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        format!("link-arg=-Wl,-rpath,{joined}")
    };
    if *name == plan.dynamic_core {
        vec![
            "--cfg".into(),
            "kd_dynamic".into(),
            "-C".into(),
            "prefer-dynamic".into(),
            "-C".into(),
            rpath(),
        ]
    } else if plan.linked.contains(name) {
        vec!["-C".into(), "prefer-dynamic".into(), "-C".into(), rpath()]
    } else {
        Vec::new()
    }
}

/// Sets up `command` (a cargo invocation) to use this program as its compiler wrapper.
pub fn configure(command: &mut Command, plan: &Plan) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    command
        .env("RUSTC_WRAPPER", exe)
        .env(PLAN_VAR, serde_json::to_string(plan)?);
    Ok(())
}

/// The folder of std's shared library: `<sysroot>/lib/rustlib/<host>/lib`, where rustup puts
/// `libstd-*.so`.
pub fn std_library_dir() -> anyhow::Result<PathBuf> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let ask = |args: &[&str]| -> anyhow::Result<String> {
        let out = Command::new(&rustc)
            .args(args)
            .output()
            .with_context(|| format!("running `{rustc} {}`", args.join(" ")))?;
        if !out.status.success() {
            bail!("`{rustc} {}` failed", args.join(" "));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let sysroot = PathBuf::from(ask(&["--print", "sysroot"])?.trim());
    let host = ask(&["-vV"])?
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .context("`rustc -vV` names no host")?;
    Ok(sysroot.join("lib").join("rustlib").join(host).join("lib"))
}

/// When this process was started as the compiler wrapper, runs the compiler and exits with its
/// status; otherwise returns.
pub fn main_if_wrapping() {
    let Ok(text) = std::env::var(PLAN_VAR) else {
        return;
    };
    let mut args = std::env::args().skip(1);
    let Some(rustc) = args.next() else {
        return; // started by hand with the variable set: behave as xtask
    };
    let args: Vec<String> = args.collect();
    let plan: Plan = match serde_json::from_str(&text) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("xtask rustc wrapper: {PLAN_VAR} is not a plan: {e}");
            std::process::exit(101);
        }
    };
    let extra = extra_flags(&plan, &args);
    let status = Command::new(&rustc).args(&args).args(&extra).status();
    match status {
        Ok(status) => std::process::exit(status.code().unwrap_or(101)),
        Err(e) => {
            eprintln!("xtask rustc wrapper: cannot run {rustc}: {e}");
            std::process::exit(101);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            dynamic_core: "kd_core".into(),
            linked: vec!["kd_dynamic".into(), "kd_method_x".into()],
            rpath: vec![PathBuf::from("/t/deps"), PathBuf::from("/sys/lib")],
        }
    }

    fn args(name: &str) -> Vec<String> {
        [
            "--edition=2024",
            "--crate-name",
            name,
            "--crate-type",
            "lib",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    #[test]
    fn only_the_planned_crates_get_flags() {
        let p = plan();
        assert_eq!(
            extra_flags(&p, &args("kd_core")),
            [
                "--cfg",
                "kd_dynamic",
                "-C",
                "prefer-dynamic",
                "-C",
                "link-arg=-Wl,-rpath,/t/deps:/sys/lib"
            ]
        );
        assert_eq!(
            extra_flags(&p, &args("kd_method_x")),
            [
                "-C",
                "prefer-dynamic",
                "-C",
                "link-arg=-Wl,-rpath,/t/deps:/sys/lib"
            ]
        );
        assert!(extra_flags(&p, &args("burn_tensor")).is_empty());
        assert!(extra_flags(&p, &["-vV".to_string()]).is_empty());
    }

    #[test]
    fn the_plan_survives_the_environment() {
        let p = plan();
        let back: Plan = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}

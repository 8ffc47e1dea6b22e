//! `cargo xtask`: repository automation. It drives `cargo` and the `kd` binary and never depends
//! on burn, so it builds in seconds in its own target directory.
//!
//! - `validate`: `cargo fmt --check`, `cargo clippy -D warnings`, `cargo test --workspace`.

use std::process::Command;

use anyhow::{Context, bail};

fn cargo(args: &[&str]) -> anyhow::Result<()> {
    eprintln!("$ cargo {}", args.join(" "));
    let status = Command::new(env!("CARGO"))
        .args(args)
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("`cargo {}` failed with {status}", args.join(" "));
    }
    Ok(())
}

fn validate() -> anyhow::Result<()> {
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    cargo(&["test", "--workspace"])
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("validate") => validate(),
        Some(other) => bail!("unknown xtask command `{other}`; known: validate"),
        None => bail!("usage: cargo xtask validate"),
    }
}

//! `cargo xtask`: repository automation. It drives `cargo` and the `kd` binary and never depends
//! on burn, so it builds in seconds in its own target directory.
//!
//! - `validate`: `cargo fmt --check`, `cargo clippy -D warnings`, `cargo test --workspace`;
//! - `reproduce <table>`: a paper table from its manifest (see `reproduce/`).

mod reproduce;

use std::process::Command;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

/// Repository automation for kd.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Formatting, clippy with warnings denied, and the tests.
    Validate,
    /// Run (or resume) a table's cells and write docs/results/<table>.{md,csv,png}.
    Reproduce(reproduce::Args),
}

fn cargo(args: &[&str]) -> anyhow::Result<()> {
    eprintln!("$ cargo {}", args.join(" "));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(args)
        .current_dir(reproduce::repo_root())
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
    match Cli::parse().command {
        Task::Validate => validate(),
        Task::Reproduce(args) => reproduce::run(args),
    }
}

//! `cargo xtask`: repository automation. It drives `cargo` and the `kd` binary and never depends
//! on burn, so it builds in seconds in its own target directory.
//!
//! - `validate`: `cargo fmt --check`, `cargo clippy -D warnings`, `cargo test --workspace`;
//! - `reproduce <table>`: a paper table from its manifest (see `reproduce/`);
//! - `new-method NAME [--in-tree]`: scaffold a method crate, outside the repository or as
//!   `plugins/NAME` registered in kd-plugins' list (`new_method.rs`, `shipped.rs`);
//! - `build-kd --with DIR…`: `kd` with extra method crates compiled in (`build_kd.rs`);
//! - `build-dynamic --plugin DIR…`: a host that loads plugins at run time, and the plugins
//!   (`build_dynamic.rs`, `rustc_wrapper.rs`);
//! - `test-out-of-tree`: both routes end to end, as CI runs them (`out_of_tree.rs`);
//! - `bench [--quick] [--vs-pytorch]`: throughput, overhead, memory (`bench/`).
//!
//! Bad input (a name, a folder, a manifest) exits with status 2 and says which; anything else
//! that fails exits with status 1.

mod bench;
mod build_dynamic;
mod build_kd;
mod manifest;
mod new_method;
mod out_of_tree;
mod reproduce;
mod rustc_wrapper;
mod shipped;

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
    /// Scaffold a method crate outside this repository, or in it with `--in-tree`.
    NewMethod(new_method::Args),
    /// Build `kd` with extra method crates compiled in: target/debug/kd-custom.
    BuildKd(build_kd::Args),
    /// Build a `kd` host that loads plugins at run time, and plugins for it: target/kd-dynamic/.
    BuildDynamic(build_dynamic::Args),
    /// Scaffold, build both ways, train and check refusals: the out-of-tree check CI runs.
    TestOutOfTree,
    /// Throughput of every zoo model, runtime overhead, data pipeline, memory:
    /// docs/results/bench.md.
    Bench(bench::Args),
}

/// Input the user got wrong: the message names it; the exit status is 2.
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

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

fn main() -> std::process::ExitCode {
    rustc_wrapper::main_if_wrapping();
    let result = match Cli::parse().command {
        Task::Validate => validate(),
        Task::Reproduce(args) => reproduce::run(args),
        Task::NewMethod(args) => new_method::run(args).map(drop),
        Task::BuildKd(args) => build_kd::run(args).map(drop),
        Task::BuildDynamic(args) => build_dynamic::run(args).map(drop),
        Task::TestOutOfTree => out_of_tree::run(),
        Task::Bench(args) => bench::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<BadInput>().is_some() {
                std::process::ExitCode::from(2)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}

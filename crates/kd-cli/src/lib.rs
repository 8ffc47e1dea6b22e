//! kd-cli: the `kd` command line as a library, so a binary built with extra method crates
//! (`cargo xtask build-kd --with …`) is the same program with more plugins linked in.
//!
//! [`main`] parses the command line (clap), sets up logging (`KD_LOG`, default `warn`, to
//! stderr) and dispatches to one file per subcommand under `commands/`. User errors (bad config,
//! bad data, an impossible plan, a plugin library that does not fit) exit with status 2 and a
//! message naming the key or file; anything else exits with status 1.

mod commands;
mod exit;
mod plugins;
mod progress;
mod report;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Knowledge distillation: model zoo, methods as plugins, reproducible runs.
#[derive(Debug, Parser)]
#[command(name = "kd", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List every zoo architecture with its parameter count and tap shapes.
    Models(commands::models::Args),
    /// Inspect datasets.
    #[command(subcommand)]
    Data(commands::data::DataCommand),
    /// Print the resolved configuration and the source of every key.
    PrintConfig(commands::print_config::Args),
    /// List the registered distillation methods.
    Methods(commands::methods::Args),
    /// Resolve and check a run (roles, taps, shapes, files) before training; a PyTorch teacher
    /// named in the config is imported here, once.
    Plan(commands::plan::Args),
    /// Time a few steps of a run on synthetic batches and estimate its duration.
    Time(commands::time::Args),
    /// Train (or, with --resume, continue) a run.
    Train(commands::train::Args),
    /// Evaluate a checkpoint on a dataset: top-1, top-5 and per-class accuracy.
    Eval(commands::eval::Args),
    /// Run a list of experiments in order and compare their results.
    Suite(commands::suite::Args),
    /// Runs side by side: their students as a table (or JSON), their curves in one PNG.
    Compare(commands::compare::Args),
    /// Import a PyTorch checkpoint (.pth) as a kd checkpoint, e.g. a published teacher.
    Import(commands::import::Args),
    /// Export a checkpoint's network as a PyTorch state dict (.safetensors or .pth).
    Export(commands::export::Args),
    /// Print a checkpoint's evaluation-mode logits for every image of a dataset.
    Predict(commands::predict::Args),
    /// Measure throughput (JSON): zoo models, runtime steps, the data pipeline.
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
    /// Which backends this binary has, which can open a device here, and the CPU the kernels use.
    Backends(commands::backends::Args),
}

/// Runs `kd` with the process's arguments.
pub fn main() -> ExitCode {
    // Freed training buffers are reused instead of unmapped and faulted back in every step.
    let _ = kd_core::backend::keep_freed_memory();
    let filter = tracing_subscriber::EnvFilter::try_from_env("KD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Models(args) => commands::models::run(args),
        Command::Data(command) => commands::data::run(command),
        Command::PrintConfig(args) => commands::print_config::run(args),
        Command::Methods(args) => commands::methods::run(args),
        Command::Plan(args) => commands::plan::run(args),
        Command::Time(args) => commands::time::run(args),
        Command::Train(args) => commands::train::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Suite(args) => commands::suite::run(args),
        Command::Compare(args) => commands::compare::run(args),
        Command::Import(args) => commands::import::run(args),
        Command::Export(args) => commands::export::run(args),
        Command::Predict(args) => commands::predict::run(args),
        Command::Bench(command) => commands::bench::run(command),
        Command::Backends(args) => commands::backends::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => exit::report(&error),
    }
}

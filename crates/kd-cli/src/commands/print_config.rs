//! `kd print-config`: the resolved configuration with the source of every key (or, with
//! `--resolved`, alone, as a run writes it to its `config.toml`).

use std::io::Write;
use std::path::PathBuf;

use kd_core::config;

/// Arguments of `kd print-config`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The experiment file (layered over the built-in defaults and configs/base.toml).
    config: Option<PathBuf>,
    /// Override a key: `--set run.seed=3` (repeatable; applied last).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Print JSON: an array of `{key, value, source}`.
    #[arg(long)]
    json: bool,
    /// Print the resolved configuration alone, exactly as a run writes it to
    /// `<run dir>/config.toml` (no sources): what `cargo xtask reproduce` compares a finished
    /// cell against.
    #[arg(long, conflicts_with = "json")]
    resolved: bool,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let loaded = config::load(args.config.as_deref(), &args.sets)?;
    if args.resolved {
        write!(out, "{}", toml::to_string(&loaded.config)?)?;
    } else if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&loaded.provenance())?
        )?;
    } else {
        write!(out, "{}", loaded.provenance_toml())?;
    }
    Ok(())
}

//! `kd methods`: every registered method kind with its summary, paper, crate and defaults.

use std::io::Write;

use kd_core::method::Registry;
use serde::Serialize;

/// Arguments of `kd methods`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print a JSON array of `{kind, summary, paper, crate, defaults}`.
    #[arg(long)]
    json: bool,
    /// Load a plugin library first (repeatable; a dynamic host only).
    #[arg(long = "load", value_name = "LIBRARY")]
    load: Vec<std::path::PathBuf>,
}

#[derive(Serialize)]
struct Row {
    kind: &'static str,
    summary: &'static str,
    paper: &'static str,
    #[serde(rename = "crate")]
    crate_name: &'static str,
    defaults: serde_json::Value,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    kd_core::dynamic::load_plugins(&args.load)?;
    let registry = Registry::global()?;
    let rows: Vec<Row> = registry
        .entries()
        .map(|r| Row {
            kind: r.kind,
            summary: r.summary,
            paper: r.paper,
            crate_name: r.crate_name,
            defaults: (r.defaults)(),
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(());
    }
    for row in rows {
        writeln!(out, "{:<10} {}", row.kind, row.summary)?;
        writeln!(out, "{:<10} paper: {}", "", row.paper)?;
        writeln!(
            out,
            "{:<10} crate: {}; keys: {}",
            "", row.crate_name, row.defaults
        )?;
    }
    Ok(())
}

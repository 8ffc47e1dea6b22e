//! `kd backends`: which backends this binary was built with, which can open a device on this
//! machine now (the CUDA driver probe's reason when not), and the CPU the flex kernels use: its
//! model, vector extensions, matrix-multiply path and thread count. `--json` prints the same.

use std::io::Write;

use kd_core::backend::BackendReport;

/// Arguments of `kd backends`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the report as JSON: `{backends: [{kind, compiled, available, detail}], cpu: {…}}`.
    #[arg(long)]
    json: bool,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let report = BackendReport::detect();
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    writeln!(out, "backends")?;
    for b in &report.backends {
        let state = match (b.compiled, b.available) {
            (false, _) => "absent",
            (true, true) => "available",
            (true, false) => "unavailable",
        };
        let kind = serde_json::to_value(b.kind)?;
        let kind = kind.as_str().unwrap_or("?");
        writeln!(out, "  {kind:<5} {state:<12} {}", b.detail)?;
    }
    let cpu = &report.cpu;
    writeln!(out, "cpu")?;
    writeln!(
        out,
        "  model           {} ({})",
        cpu.model, cpu.architecture
    )?;
    let extensions = if cpu.extensions.is_empty() {
        "none detected".to_string()
    } else {
        cpu.extensions.join(" ")
    };
    writeln!(out, "  extensions      {extensions}")?;
    writeln!(out, "  matrix kernels  {}", cpu.matrix_kernels)?;
    if let Some(unused) = &cpu.unused {
        writeln!(out, "  unused          {unused}")?;
    }
    writeln!(out, "  threads         {}", cpu.threads)?;
    Ok(())
}

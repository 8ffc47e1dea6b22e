//! Printing run summaries.

use std::io::Write;
use std::path::Path;

use kd_core::runtime::Summary;

/// One line per evaluated output of a finished run.
pub fn print_summary(dir: &Path, summary: &Summary) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "run `{}` finished: {} epochs, {} steps, {:.0} s; results in {}",
        summary.run,
        summary.epochs,
        summary.steps,
        summary.wall_seconds,
        dir.display()
    )?;
    writeln!(
        out,
        "  {:<16} {:>10} {:>10} {:>10}",
        "output", "best top-1", "last top-1", "last top-5"
    )?;
    for (name, o) in &summary.outputs {
        writeln!(
            out,
            "  {:<16} {:>10.2} {:>10.2} {:>10.2}",
            name, o.best_top1, o.last_top1, o.last_top5
        )?;
    }
    Ok(())
}

//! `cargo xtask bench [--quick] [--vs-pytorch] [--rounds N]`: throughput of every zoo model, the
//! runtime's
//! overhead on KD and DML steps, the data pipeline and the peak memory of a KD run, written to
//! docs/results/bench.md (and bench.json) with the machine, commit and command.
//!
//! Every measurement is a `kd bench …` process of its own (`measure.rs`), run one after the
//! other so nothing shares the cores; `--vs-pytorch` runs `scripts/reference/pytorch_bench.py`
//! the same way for the same models, batch and iteration counts, so each row carries its ratio
//! to PyTorch measured in the same run. `--rounds N` repeats each model's and each distillation
//! step's measurement N times, kd's and PyTorch's processes alternating (and taking turns to go
//! first), and keeps the median of the rounds' medians; the data pipeline and the memory of a
//! run are measured once. The hand-written part of bench.md, after the line `<!-- notes -->`,
//! is kept when the file is rewritten.

mod measure;
mod report;

use std::path::PathBuf;

use anyhow::Context;

use crate::reproduce::report::Provenance;
use crate::reproduce::{build_kd, repo_root};

/// Arguments of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A few models and iterations, written to docs/results/bench-quick.md (a smoke test).
    #[arg(long)]
    quick: bool,
    /// Also run scripts/reference/pytorch_bench.py and show each ratio to PyTorch.
    #[arg(long)]
    vs_pytorch: bool,
    /// The Python with `torch` installed (for --vs-pytorch).
    #[arg(long, default_value = "python3")]
    python: String,
    /// A checkout of HobbitLong/RepDistiller, whose `models/` PyTorch runs (for --vs-pytorch).
    #[arg(long)]
    repdistiller: Option<PathBuf>,
    /// Only these zoo models (comma-separated).
    #[arg(long, value_delimiter = ',')]
    models: Option<Vec<String>>,
    /// Images per batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Rounds of each model's and distillation step's measurement, kd's and PyTorch's
    /// processes alternating: each figure is the median of the rounds' medians, so a drift of
    /// the machine's speed over minutes weighs on both sides of a ratio alike.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=20))]
    rounds: u16,
}

/// Models measured by `--quick`: the two the performance targets name, and the smallest.
const QUICK_MODELS: &[&str] = &["resnet8", "resnet20", "MobileNetV2"];

/// Runs the task.
pub fn run(args: Args) -> anyhow::Result<()> {
    let repo = repo_root();
    if args.vs_pytorch && args.repdistiller.is_none() {
        return Err(crate::BadInput(
            "--vs-pytorch needs --repdistiller <checkout of HobbitLong/RepDistiller>".into(),
        )
        .into());
    }
    let kd = build_kd(&repo)?;
    let (warmup, iterations) = if args.quick { (1, 3) } else { (3, 7) };
    let models: Vec<String> = match (&args.models, args.quick) {
        (Some(list), _) => list.clone(),
        (None, true) => QUICK_MODELS.iter().map(|m| m.to_string()).collect(),
        (None, false) => measure::zoo_names(&kd)?,
    };
    let setup = measure::Setup {
        kd,
        repo: repo.clone(),
        batch: args.batch,
        warmup,
        iterations,
        rounds: usize::from(args.rounds),
    };
    let pytorch = args.vs_pytorch.then(|| measure::Python {
        python: args.python.clone(),
        repdistiller: args.repdistiller.clone().expect("checked above"),
    });
    let results = measure::everything(&setup, &models, pytorch.as_ref())?;

    let mut command = "cargo xtask bench".to_string();
    if args.quick {
        command.push_str(" --quick");
    }
    if args.vs_pytorch {
        command.push_str(" --vs-pytorch");
    }
    if let Some(list) = &args.models {
        command.push_str(&format!(" --models {}", list.join(",")));
    }
    if args.rounds > 1 {
        command.push_str(&format!(" --rounds {}", args.rounds));
    }
    let provenance = Provenance::here(&repo, command);
    let stem = if args.quick { "bench-quick" } else { "bench" };
    let dir = repo.join("docs").join("results");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let md = dir.join(format!("{stem}.md"));
    let notes = std::fs::read_to_string(&md).ok().and_then(|text| {
        text.split_once(report::NOTES_MARKER)
            .map(|(_, n)| n.to_string())
    });
    std::fs::write(
        &md,
        report::markdown(&results, &provenance, notes.as_deref()),
    )
    .with_context(|| format!("writing {}", md.display()))?;
    let json = dir.join(format!("{stem}.json"));
    std::fs::write(&json, serde_json::to_string_pretty(&results)?)
        .with_context(|| format!("writing {}", json.display()))?;
    eprintln!("wrote {} and {}", md.display(), json.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: super::Args,
    }

    /// `--rounds` takes 1 to 20 and defaults to 1.
    #[test]
    fn rounds_run_from_one_to_twenty() {
        let rounds = |given: &[&str]| {
            Cli::try_parse_from([&["bench"], given].concat()).map(|cli| cli.args.rounds)
        };
        assert_eq!(rounds(&[]).unwrap(), 1);
        assert_eq!(rounds(&["--rounds", "1"]).unwrap(), 1);
        assert_eq!(rounds(&["--rounds", "20"]).unwrap(), 20);
        for refused in ["0", "21", "-1", "two"] {
            assert!(rounds(&["--rounds", refused]).is_err(), "{refused}");
        }
    }
}

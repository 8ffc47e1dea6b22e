//! docs/results/bench.md from the measurements; the hand-written notes after
//! [`NOTES_MARKER`] are carried over.

use super::measure::{Results, Throughput};
use crate::reproduce::report::Provenance;

/// Everything after this line of bench.md is written by hand and kept.
pub const NOTES_MARKER: &str = "<!-- notes -->";

fn rate(t: &Throughput) -> String {
    format!("{:.0} ({:.0}–{:.0})", t.median, t.min, t.max)
}

fn ratio(ours: Option<&Throughput>, theirs: Option<&Throughput>) -> String {
    match (ours, theirs) {
        (Some(a), Some(b)) => format!("{:.2}x", a.median / b.median),
        _ => "—".into(),
    }
}

/// The whole file.
pub fn markdown(results: &Results, provenance: &Provenance, notes: Option<&str>) -> String {
    let mut md = String::new();
    md.push_str("# Benchmarks\n\n");
    md.push_str(&format!(
        "Made by `{}` on {}, {} (commit {}). burn 0.22.1, flex backend (CPU).",
        provenance.command, provenance.machine, provenance.date, provenance.commit
    ));
    let cpu = &results.cpu;
    md.push_str(&format!(
        "\n\nCPU: {}, {} threads; vector extensions {}; kd's matrix kernels use {}.",
        cpu.model,
        cpu.threads,
        cpu.extensions.join(", "),
        cpu.matrix_kernels
    ));
    if let (Some(version), Some(threads)) = (&results.torch_version, results.torch_threads) {
        md.push_str(&format!(
            " PyTorch {version} with {threads} threads, measured in the same run, one process at a time."
        ));
    }
    let timing = if results.rounds > 1 {
        let alternating = if results.torch_version.is_some() {
            " (kd's and PyTorch's processes alternating)"
        } else {
            ""
        };
        format!(
            "the median of {} rounds' medians{alternating}, each over {} timed iterations after \
             {} of warm-up, (slowest–fastest iteration of any round) in brackets; the data \
             pipeline and the memory below are one run each",
            results.rounds, results.iterations, results.warmup
        )
    } else {
        format!(
            "median over {} timed iterations after {} of warm-up, (slowest–fastest) in brackets",
            results.iterations, results.warmup
        )
    };
    md.push_str(&format!(
        "\n\nImages per second, batch {}, 3x32x32 inputs, 100 classes: {timing}. A training \
         step is forward, cross-entropy, backward and an SGD step (momentum 0.9, weight decay \
         5e-4); inference is a forward pass in evaluation mode. Ratio = kd ÷ PyTorch.\n\n",
        results.batch
    ));
    md.push_str("## Zoo models\n\n");
    md.push_str("| model | params | train img/s | PyTorch train | ratio | inference img/s | PyTorch inference | ratio |\n");
    md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for row in &results.models {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            row.model,
            row.params,
            row.train.as_ref().map(rate).unwrap_or_else(|| "—".into()),
            row.torch_train
                .as_ref()
                .map(rate)
                .unwrap_or_else(|| "—".into()),
            ratio(row.train.as_ref(), row.torch_train.as_ref()),
            rate(&row.inference),
            row.torch_inference
                .as_ref()
                .map(rate)
                .unwrap_or_else(|| "—".into()),
            ratio(Some(&row.inference), row.torch_inference.as_ref()),
        ));
    }
    md.push_str("\n## Distillation steps\n\n");
    md.push_str("A whole runtime step (every method term, one backward, every optimiser, metrics bookkeeping) against the bare steps it contains, measured with the same harness (overhead target: at most 5%), and against the same step written in PyTorch (scripts/reference/pytorch_bench.py `--steps`; ratio = kd ÷ PyTorch).\n\n");
    md.push_str(
        "| step | img/s | bare steps | their img/s | overhead | PyTorch img/s | ratio |\n|---|---:|---|---:|---:|---:|---:|\n",
    );
    for o in &results.overheads {
        md.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:+.1}% | {} | {} |\n",
            o.step,
            rate(&o.measured),
            o.reference,
            o.reference_rate,
            o.overhead_percent,
            o.torch.as_ref().map(rate).unwrap_or_else(|| "—".into()),
            ratio(Some(&o.measured), o.torch.as_ref()),
        ));
    }
    let p = &results.pipeline;
    md.push_str(&format!(
        "\n## Data pipeline\n\n{}: {} img/s per batch of {} (read from memory, augmented, \
         normalised), against {:.0} img/s for a {} training step, the fastest step it feeds: \
         {:.0}x headroom. In a run the pipeline also works ahead on its own threads.\n",
        p.data,
        rate(&p.throughput),
        results.batch,
        p.train_rate,
        p.train_model,
        p.throughput.median / p.train_rate
    ));
    md.push_str(&format!(
        "\n## Memory\n\nPeak resident memory of {}: {:.0} MiB.\n",
        results.memory.run, results.memory.peak_mib
    ));
    md.push('\n');
    md.push_str(NOTES_MARKER);
    match notes {
        Some(notes) => md.push_str(notes),
        None => {
            md.push_str("\n\n## Notes\n\n(Written by hand: what was tried, with its numbers.)\n")
        }
    }
    md
}

//! `kd models`: the zoo, with trainable parameter counts and tap shapes.
//!
//! Nothing is allocated: parameters are lazily initialised and reported by shape, and tap shapes
//! come from each architecture's arithmetic.

use burn::tensor::Device;
use kd_core::zoo::{self, ModelSpec, TapShape};
use serde::Serialize;
use std::io::Write;

/// The largest `--num-classes` (and `kd bench models --classes`): far above any zoo dataset,
/// small enough that no parameter count overflows.
pub const MAX_CLASSES: u64 = 100_000;
/// The largest `--in-channels`.
pub const MAX_CHANNELS: u64 = 64;
/// The largest `--input-size` (tap shapes are arithmetic only, nothing is allocated).
pub const MAX_INPUT_SIZE: u64 = 4096;

/// A flag parser for a count from `low` to `high` inclusive: anything else is a usage error
/// naming the flag and the range (exit status 2, from clap).
pub fn in_range(low: u64, high: u64) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(low..=high)
}

/// Arguments of `kd models`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Classifier outputs (1 to 100000).
    #[arg(long, default_value_t = 100, value_parser = in_range(1, MAX_CLASSES))]
    num_classes: usize,
    /// Input image channels (1 to 64).
    #[arg(long, default_value_t = 3, value_parser = in_range(1, MAX_CHANNELS))]
    in_channels: usize,
    /// Input side in pixels, images being square (1 to 4096).
    #[arg(long, default_value_t = 32, value_parser = in_range(1, MAX_INPUT_SIZE))]
    input_size: usize,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Row {
    name: &'static str,
    family: &'static str,
    paper: &'static str,
    params: usize,
    taps: Vec<TapShape>,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let device = Device::flex();
    let spec = ModelSpec {
        num_classes: args.num_classes,
        in_channels: args.in_channels,
    };
    let rows: Vec<Row> = zoo::ZOO
        .iter()
        .map(|entry| {
            let arch = (entry.arch)(spec);
            Row {
                name: entry.name,
                family: entry.family,
                paper: entry.paper,
                params: zoo::trainable_params(&arch.init(&device)),
                taps: arch.tap_shapes(args.input_size, args.input_size),
            }
        })
        .collect();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{} architectures, {} classes, {} input channel(s), {}x{} input",
        rows.len(),
        args.num_classes,
        args.in_channels,
        args.input_size,
        args.input_size
    )?;
    writeln!(out, "{:<12} {:>12}  taps", "name", "params")?;
    for row in rows {
        let taps: Vec<String> = row
            .taps
            .iter()
            .map(|t| {
                let dims: Vec<String> = t.shape.iter().map(usize::to_string).collect();
                format!("{} {}", t.name, dims.join("x"))
            })
            .collect();
        writeln!(
            out,
            "{:<12} {:>12}  {}",
            row.name,
            group_thousands(row.params),
            taps.join(", ")
        )?;
    }
    Ok(())
}

fn group_thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

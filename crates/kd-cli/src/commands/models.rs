//! `kd models`: the zoo, with trainable parameter counts and tap shapes.
//!
//! Nothing is allocated: parameters are lazily initialised and reported by shape, and tap shapes
//! come from each architecture's arithmetic.

use burn::tensor::Device;
use kd_core::zoo::{self, ModelSpec, TapShape};
use serde::Serialize;
use std::io::Write;

/// Arguments of `kd models`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Classifier outputs.
    #[arg(long, default_value_t = 100)]
    num_classes: usize,
    /// Input image channels.
    #[arg(long, default_value_t = 3)]
    in_channels: usize,
    /// Input side (images are square).
    #[arg(long, default_value_t = 32)]
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
    anyhow::ensure!(
        args.num_classes > 0 && args.in_channels > 0,
        "sizes must be positive"
    );
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

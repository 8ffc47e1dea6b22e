//! `kd import`: a PyTorch checkpoint (`.pth`) into a kd checkpoint usable as a teacher. The
//! report says where the state dict was found, and which tensors were converted to float32
//! (a file saved in float16, bfloat16 or float64).

use std::io::Write;
use std::path::PathBuf;

use kd_core::backend::{self, BackendKind};
use kd_core::import::{self, ImportOptions};

/// Arguments of `kd import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Zoo architecture the checkpoint was trained as (`kd models` lists them).
    #[arg(long)]
    arch: String,
    /// The PyTorch checkpoint: a bare state dict, `{"model": …}`, `{"state_dict": …}` or any
    /// other top-level entry (`{"teacher": …, "student": …}`), with or without DataParallel's
    /// `module.` prefix, in float32, float16, bfloat16 or float64.
    #[arg(long)]
    from: PathBuf,
    /// The kd checkpoint to write (written whole or not at all).
    #[arg(long)]
    out: PathBuf,
    /// Classifier outputs (default: read from the checkpoint's classifier).
    #[arg(long)]
    num_classes: Option<usize>,
    /// Input channels (default: read from the checkpoint's first convolution).
    #[arg(long)]
    in_channels: Option<usize>,
    /// Top-level key holding the state dict (default: the entry that fits the architecture,
    /// found by matching parameter names and shapes).
    #[arg(long)]
    key: Option<String>,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let device = backend::device(BackendKind::Flex)?;
    let options = ImportOptions {
        num_classes: args.num_classes,
        in_channels: args.in_channels,
        key: args.key.clone(),
    };
    let (imported, notes) =
        import::import_pytorch_noted(&args.from, &args.arch, &options, &device)?;
    import::write_imported(&args.out, &imported, &args.from)?;
    let notes = notes
        .describe()
        .map(|n| format!("\n{n}"))
        .unwrap_or_default();
    writeln!(
        std::io::stdout().lock(),
        "imported {}{notes}\nwrote {} (role `{}`: use it as `checkpoint = \"{}\"`)",
        imported.describe(),
        args.out.display(),
        import::IMPORTED_ROLE,
        args.out.display()
    )?;
    Ok(())
}

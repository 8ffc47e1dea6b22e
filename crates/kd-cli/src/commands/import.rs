//! `kd import`: a PyTorch checkpoint (`.pth`) into a kd checkpoint usable as a teacher. The
//! report says where the state dict was found, which tensors were converted to float32
//! (a file saved in float16, bfloat16 or float64), and the input preparation recorded from
//! the flags (`--format`, `--mean/--std`, `--input-size`, `--image-size`, `--class-names`),
//! with what was assumed for the flags not given.

use std::io::Write;
use std::path::PathBuf;

use kd_core::backend::{self, BackendKind};
use kd_core::checkpoint::{InputPreparation, NetworkEntry, recordable_class_names};
use kd_core::data::DataFormat;
use kd_core::import::{self, ImportOptions};

use crate::exit::UsageError;

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
    /// The kd checkpoint to write (written whole or not at all; an existing file only with
    /// --force, and never the --from file itself).
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing --out file.
    #[arg(long)]
    force: bool,
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
    /// Data format the network was trained on (`idx`, `cifar10`, `cifar100`, `folder`): recorded,
    /// and the default of --mean/--std, the image size and the class names.
    #[arg(long, value_parser = |s: &str| s.parse::<DataFormat>())]
    format: Option<DataFormat>,
    /// Per-channel mean the network's inputs were normalised with, e.g. `0.5071,0.4867,0.4408`.
    #[arg(long, value_delimiter = ',')]
    mean: Option<Vec<f32>>,
    /// Per-channel std the network's inputs were normalised with.
    #[arg(long, value_delimiter = ',')]
    std: Option<Vec<f32>>,
    /// Side of the square network input (default: 32).
    #[arg(long)]
    input_size: Option<usize>,
    /// Side of the source images, padded centrally to --input-size (default: the format's
    /// standard images, else --input-size).
    #[arg(long)]
    image_size: Option<usize>,
    /// Class names by label, comma-separated (default: the format's standard names, if any).
    #[arg(long, value_delimiter = ',')]
    class_names: Option<Vec<String>>,
}

impl Args {
    /// The input preparation the flags describe for `entry`, and what was assumed for the flags
    /// not given; `None` when no --format and no --mean/--std were given (nothing to record).
    ///
    /// # Errors
    /// A [`UsageError`] naming the flag: preparation flags without --format or --mean/--std,
    /// --mean without --std (or the reverse) and no --format, a format whose images have other
    /// than the network's channels, a value count other than the network's channels or
    /// classes, values not finite, a std not positive, images larger than the input.
    fn preparation(
        &self,
        entry: &NetworkEntry,
    ) -> Result<Option<(InputPreparation, Vec<String>)>, UsageError> {
        let given_other = [
            ("--input-size", self.input_size.is_some()),
            ("--image-size", self.image_size.is_some()),
            ("--class-names", self.class_names.is_some()),
        ];
        if self.format.is_none() && self.mean.is_none() && self.std.is_none() {
            if let Some((flag, _)) = given_other.iter().find(|(_, given)| *given) {
                return Err(UsageError(format!(
                    "{flag} describes the input preparation: give --format or --mean and --std \
                     with it"
                )));
            }
            return Ok(None);
        }
        let channels = entry.in_channels;
        let mut assumed = Vec::new();
        let standard = self
            .format
            .and_then(|f| f.standard_geometry(kd_core::data::Split::Train));
        if let (Some(format), Some(geometry)) = (self.format, standard)
            && geometry.channels != channels
        {
            return Err(UsageError(format!(
                "--format {format} has {}-channel images, but the {} takes {channels}",
                geometry.channels, entry.arch
            )));
        }
        let (mean, std) = match (&self.mean, &self.std, self.format) {
            (Some(mean), Some(std), _) => (mean.clone(), std.clone()),
            (mean, std, Some(format)) => {
                let (standard_mean, standard_std) = format.normalisation(channels);
                if mean.is_none() {
                    assumed.push(format!("mean {standard_mean:?} ({format}'s standard)"));
                }
                if std.is_none() {
                    assumed.push(format!("std {standard_std:?} ({format}'s standard)"));
                }
                (
                    mean.clone().unwrap_or(standard_mean),
                    std.clone().unwrap_or(standard_std),
                )
            }
            (Some(_), None, None) => {
                return Err(UsageError(
                    "--mean needs --std (or --format, whose standard std is then assumed)".into(),
                ));
            }
            (None, _, None) => {
                return Err(UsageError(
                    "--std needs --mean (or --format, whose standard mean is then assumed)".into(),
                ));
            }
        };
        let input_size = self.input_size.unwrap_or_else(|| {
            assumed.push("input size 32".into());
            32
        });
        let image_size = match (self.image_size, standard) {
            (Some(side), _) => [side, side],
            (None, Some(geometry)) => {
                assumed.push(format!(
                    "{}x{} images (the {} standard)",
                    geometry.height,
                    geometry.width,
                    self.format.map(DataFormat::name).unwrap_or_default()
                ));
                [geometry.height, geometry.width]
            }
            (None, None) => {
                assumed.push(format!("{input_size}x{input_size} images (the input size)"));
                [input_size, input_size]
            }
        };
        let class_names = match (&self.class_names, self.format) {
            (Some(names), _) => Some(names.clone()),
            (None, Some(format)) => {
                let numbered: Vec<String> = (0..entry.num_classes).map(|c| c.to_string()).collect();
                let names = recordable_class_names(format.name(), &numbered);
                if names.is_some() {
                    assumed.push(format!("the {format} class names"));
                }
                names
            }
            (None, None) => None,
        };
        if let Some(names) = &class_names
            && names.len() != entry.num_classes
        {
            return Err(UsageError(format!(
                "--class-names gives {} name(s), but the {} has {} outputs",
                names.len(),
                entry.arch,
                entry.num_classes
            )));
        }
        let preparation = InputPreparation {
            format: self.format.map(|f| f.name().to_string()),
            channels,
            image_size,
            input_size,
            mean,
            std,
            class_names,
        };
        preparation.check().map_err(|issue| {
            let flag = match issue.field {
                "mean" => "--mean",
                "std" => "--std",
                "input_size" => "--input-size",
                "image_size" => "--image-size",
                "class_names" => "--class-names",
                other => other,
            };
            let message = issue
                .message
                .replace("channel(s)", &format!("channel(s) of the {}", entry.arch));
            UsageError(format!("{flag} {message}"))
        })?;
        Ok(Some((preparation, assumed)))
    }
}

/// Refuses an --out that would destroy something: the --from file itself (under any
/// spelling), a directory, or an existing file without --force. Checked before anything is read.
fn check_out(args: &Args) -> Result<(), UsageError> {
    let same = match (args.from.canonicalize(), args.out.canonicalize()) {
        (Ok(from), Ok(out)) => from == out,
        _ => false,
    };
    if same {
        return Err(UsageError(format!(
            "--out {} is the --from file itself: importing would replace the PyTorch checkpoint; \
             choose another --out",
            args.out.display()
        )));
    }
    if args.out.is_dir() {
        return Err(UsageError(format!(
            "--out {} is a directory; name the .kdc file to write",
            args.out.display()
        )));
    }
    if args.out.exists() && !args.force {
        return Err(UsageError(format!(
            "--out {} exists: pass --force to replace it",
            args.out.display()
        )));
    }
    Ok(())
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    check_out(&args)?;
    let device = backend::device(BackendKind::Flex)?;
    let options = ImportOptions {
        num_classes: args.num_classes,
        in_channels: args.in_channels,
        key: args.key.clone(),
    };
    let (imported, notes) =
        import::import_pytorch_noted(&args.from, &args.arch, &options, &device)?;
    let preparation = args.preparation(&imported.entry)?;
    import::write_imported_prepared(
        &args.out,
        &imported,
        &args.from,
        preparation.as_ref().map(|(p, _)| p),
    )?;
    let notes = notes
        .describe()
        .map(|n| format!("\n{n}"))
        .unwrap_or_default();
    let recorded = match &preparation {
        Some((p, assumed)) if assumed.is_empty() => {
            format!("recorded input preparation: {}", p.describe())
        }
        Some((p, assumed)) => format!(
            "recorded input preparation: {}\n  assumed (no flag given): {}",
            p.describe(),
            assumed.join(", ")
        ),
        None => "recorded no input preparation (give --format or --mean/--std to record one): \
                 `kd eval` and `kd predict` will need --format"
            .to_string(),
    };
    writeln!(
        std::io::stdout().lock(),
        "imported {}{notes}\n{recorded}\nwrote {} (role `{}`: use it as `checkpoint = \"{}\"`)",
        imported.describe(),
        args.out.display(),
        import::IMPORTED_ROLE,
        args.out.display()
    )?;
    Ok(())
}

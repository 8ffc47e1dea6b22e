//! What `kd eval` and `kd predict` share: the network from a checkpoint (kd's own, or a PyTorch
//! file imported in memory) with the input preparation it records, and the dataset flags
//! turned into an image set and its transform: a flag overrides the record (with a warning
//! when they disagree), the record overrides the format's defaults.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::Device;
use kd_core::checkpoint::{self, InputPreparation, NetworkEntry};
use kd_core::data::{self, DataFormat, ImageSet, Split, Transform};
use kd_core::import::{self, ImportOptions};
use kd_core::runtime::{self, TrainError};
use kd_core::zoo::Network;

use crate::exit::UsageError;

/// The dataset flags. Where a flag is not given, the checkpoint's recorded input preparation
/// decides (and, for a checkpoint that records none, the format's defaults); a flag that
/// disagrees with the record is used, with a warning naming both.
#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// A data file or dataset folder.
    #[arg(long)]
    pub data: PathBuf,
    /// Layout of the data (default: the format the checkpoint records).
    #[arg(long, value_parser = |s: &str| s.parse::<DataFormat>())]
    pub format: Option<DataFormat>,
    /// Split to read when --data is a dataset folder.
    #[arg(long, default_value = "test", value_parser = ["train", "test"])]
    pub split: String,
    /// Network input side; smaller images are zero-padded centrally (default: the checkpoint's,
    /// else 32).
    #[arg(long, value_parser = super::models::in_range(1, 1024))]
    pub input_size: Option<usize>,
    /// Per-channel mean, e.g. `0.5,0.5,0.5` (default: the checkpoint's, else the format's
    /// standard constants).
    #[arg(long, value_delimiter = ',')]
    pub mean: Option<Vec<f32>>,
    /// Per-channel std (default: the checkpoint's, else the format's standard constants).
    #[arg(long, value_delimiter = ',')]
    pub std: Option<Vec<f32>>,
    /// Batch size.
    #[arg(long, default_value_t = 256, value_parser = super::models::in_range(1, 4096))]
    pub batch_size: usize,
}

/// The input side when neither a flag nor the checkpoint gives one.
const DEFAULT_INPUT_SIZE: usize = 32;

/// Where a setting came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The command line.
    Flag,
    /// The checkpoint's recorded preparation.
    Recorded,
    /// kd's default (the format's constants, input side 32).
    Default,
}

/// A flag's value, else the recorded one, else the default; warns when a flag disagrees with
/// the record, naming both (the flag is used).
fn choose<T: PartialEq + std::fmt::Debug>(
    flag_name: &str,
    flag: Option<T>,
    recorded: Option<T>,
    checkpoint: &Path,
    default: impl FnOnce() -> T,
) -> (T, Source) {
    match (flag, recorded) {
        (Some(flag), Some(recorded)) => {
            if flag != recorded {
                tracing::warn!(
                    "{flag_name} {flag:?} disagrees with the {recorded:?} recorded in {} (the \
                     preparation it was trained with); using {flag_name} {flag:?}",
                    checkpoint.display()
                );
            }
            (flag, Source::Flag)
        }
        (Some(flag), None) => (flag, Source::Flag),
        (None, Some(recorded)) => (recorded, Source::Recorded),
        (None, None) => (default(), Source::Default),
    }
}

/// Whether a reader named its classes only by number (`0 … n-1`).
fn numbered(names: &[String]) -> bool {
    names.iter().enumerate().all(|(i, n)| *n == i.to_string())
}

impl DataArgs {
    /// The data format: `--format`, else the one `preparation` records.
    ///
    /// # Errors
    /// A [`UsageError`] naming the checkpoint when neither says, or when it records a format
    /// this kd does not read.
    fn data_format(
        &self,
        checkpoint: &Path,
        preparation: Option<&InputPreparation>,
    ) -> anyhow::Result<DataFormat> {
        let recorded = preparation.and_then(|p| p.format.as_deref());
        let parsed = match recorded.map(str::parse::<DataFormat>) {
            Some(Ok(format)) => Some(format),
            Some(Err(e)) if self.format.is_none() => {
                return Err(UsageError(format!(
                    "{}: its recorded input preparation names {e}: give --format",
                    checkpoint.display()
                ))
                .into());
            }
            _ => None,
        };
        if let (Some(flag), Some(recorded)) = (self.format, recorded)
            && parsed != Some(flag)
        {
            tracing::warn!(
                "--format {flag} disagrees with the format `{recorded}` recorded in {} (the \
                 preparation it was trained with); using --format {flag}",
                checkpoint.display()
            );
        }
        self.format.or(parsed).ok_or_else(|| {
            let known: Vec<&str> = DataFormat::ALL.iter().map(|f| f.name()).collect();
            UsageError(format!(
                "{} does not record its data format: give --format ({})",
                checkpoint.display(),
                known.join(", ")
            ))
            .into()
        })
    }

    /// Reads the set (its first `limit` images if given), checks it against the network
    /// described by `entry` (loaded from `checkpoint`) and prepares images as `preparation`
    /// (the checkpoint's record, if any) says, flags overriding it.
    ///
    /// # Errors
    /// A [`UsageError`] for data that does not fit the network, an input side smaller than the
    /// images, or normalisation values of the wrong count, not finite, or (std) not positive,
    /// naming the flag or the checkpoint they came from; data errors as they come.
    pub fn load(
        &self,
        entry: &NetworkEntry,
        checkpoint: &Path,
        preparation: Option<&InputPreparation>,
        limit: Option<usize>,
    ) -> anyhow::Result<(Arc<ImageSet>, Transform)> {
        let format = self.data_format(checkpoint, preparation)?;
        let split = if self.split == "train" {
            Split::Train
        } else {
            Split::Test
        };
        let mut set = data::load_path(&self.data, format, split)?;
        if let Some(n) = limit {
            set = set.head(n);
        }
        if (entry.num_classes, entry.in_channels) != (set.num_classes, set.channels) {
            return Err(UsageError(format!(
                "{} holds a {} for {} classes and {} channel(s), but {} has {} classes and {} channel(s)",
                checkpoint.display(),
                entry.arch,
                entry.num_classes,
                entry.in_channels,
                self.data.display(),
                set.num_classes,
                set.channels
            ))
            .into());
        }
        if let Some(p) = preparation
            && p.image_size != [set.height, set.width]
        {
            tracing::warn!(
                "{} holds {}x{} images, but {} was trained on {}x{} images",
                self.data.display(),
                set.height,
                set.width,
                checkpoint.display(),
                p.image_size[0],
                p.image_size[1]
            );
        }
        let (input_size, size_source) = choose(
            "--input-size",
            self.input_size,
            preparation.map(|p| p.input_size),
            checkpoint,
            || DEFAULT_INPUT_SIZE,
        );
        if input_size < set.height.max(set.width) {
            let from = match size_source {
                Source::Flag => format!("--input-size {input_size}"),
                Source::Recorded => format!(
                    "the input size {input_size} recorded in {}",
                    checkpoint.display()
                ),
                Source::Default => format!("the default input size {input_size}"),
            };
            return Err(UsageError(format!(
                "{from} is smaller than the {}x{} images of {}; give a larger --input-size",
                set.height,
                set.width,
                self.data.display()
            ))
            .into());
        }
        let (standard_mean, standard_std) = format.normalisation(set.channels);
        let (mean, mean_source) = choose(
            "--mean",
            self.mean.clone(),
            preparation.map(|p| p.mean.clone()),
            checkpoint,
            || standard_mean,
        );
        let (std, std_source) = choose(
            "--std",
            self.std.clone(),
            preparation.map(|p| p.std.clone()),
            checkpoint,
            || standard_std,
        );
        for (name, values, source) in [("mean", &mean, mean_source), ("std", &std, std_source)] {
            let from = match source {
                Source::Flag => format!("--{name}"),
                _ => format!("the {name} recorded in {}", checkpoint.display()),
            };
            if values.len() != set.channels {
                if source == Source::Flag {
                    return Err(UsageError(format!(
                        "--mean and --std need {} value(s) each",
                        set.channels
                    ))
                    .into());
                }
                return Err(UsageError(format!(
                    "{from} has {} value(s), but {} has {} channel(s)",
                    values.len(),
                    self.data.display(),
                    set.channels
                ))
                .into());
            }
            if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
                return Err(UsageError(format!("{from} holds {bad}, not a finite number")).into());
            }
        }
        if let Some(bad) = std.iter().find(|s| **s <= 0.0) {
            let from = if std_source == Source::Flag {
                "--std".to_string()
            } else {
                format!("the std recorded in {}", checkpoint.display())
            };
            return Err(
                UsageError(format!("{from} holds {bad}: std values must be positive")).into(),
            );
        }
        self.name_classes(&mut set, checkpoint, preparation);
        if preparation.is_none() {
            tracing::warn!(
                "{} does not record its input preparation (a PyTorch file, or written before kd \
                 recorded it): using format {format}, input size {input_size}, mean {mean:?}, \
                 std {std:?} from flags and defaults",
                checkpoint.display()
            );
        }
        let transform = Transform {
            channels: set.channels,
            height: set.height,
            width: set.width,
            size: input_size,
            mean,
            std,
        };
        Ok((Arc::new(set), transform))
    }

    /// Names the set's classes as the checkpoint does where the data names them only by
    /// number; warns when both name them and the names differ (label `i` of the data is still
    /// output `i` of the network).
    fn name_classes(
        &self,
        set: &mut ImageSet,
        checkpoint: &Path,
        preparation: Option<&InputPreparation>,
    ) {
        let Some(recorded) = preparation.and_then(|p| p.class_names.as_ref()) else {
            return;
        };
        if recorded.len() != set.num_classes {
            tracing::warn!(
                "{} names {} class(es) but its network has {} outputs; its class names are not \
                 used",
                checkpoint.display(),
                recorded.len(),
                set.num_classes
            );
        } else if numbered(&set.class_names) {
            set.class_names = recorded.clone();
        } else if set.class_names != *recorded {
            let differing: Vec<String> = (0..recorded.len())
                .filter(|&i| set.class_names[i] != recorded[i])
                .take(5)
                .map(|i| {
                    format!(
                        "{i}: `{}` here, `{}` in training",
                        set.class_names[i], recorded[i]
                    )
                })
                .collect();
            tracing::warn!(
                "the classes of {} are not those {} was trained on ({}); label i of the data is \
                 scored as output i of the network",
                self.data.display(),
                checkpoint.display(),
                differing.join(", ")
            );
        }
    }

    /// The batch size, at least 1.
    pub fn batch_size(&self) -> usize {
        self.batch_size.max(1)
    }
}

/// The network a checkpoint holds for `role` and the input preparation the checkpoint
/// records: a kd checkpoint, or a PyTorch file (by its extension) imported in memory as `arch`
/// (which records none). Where `arch` is given it must match.
pub fn load_network(
    checkpoint: &Path,
    role: &str,
    arch: Option<&str>,
    device: &Device,
) -> anyhow::Result<(Network, NetworkEntry, Option<InputPreparation>)> {
    if import::is_pytorch_checkpoint(checkpoint) {
        let Some(arch) = arch else {
            return Err(UsageError(format!(
                "{} is a PyTorch checkpoint: name its architecture with --arch",
                checkpoint.display()
            ))
            .into());
        };
        let imported = import::import_pytorch(checkpoint, arch, &ImportOptions::default(), device)?;
        return Ok((imported.network, imported.entry, None));
    }
    let (network, entry) = runtime::load_network(checkpoint, role, device)?;
    if let Some(arch) = arch
        && !arch.eq_ignore_ascii_case(&entry.arch)
    {
        return Err(UsageError(format!(
            "--arch {arch}, but {} holds a {} for role `{role}`",
            checkpoint.display(),
            entry.arch
        ))
        .into());
    }
    // The header was read (and checked) just now; read it again for its record.
    let preparation = checkpoint::read_header(checkpoint)
        .map_err(TrainError::from)?
        .preparation;
    Ok((network, entry, preparation))
}

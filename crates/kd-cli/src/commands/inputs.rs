//! What `kd eval` and `kd predict` share: the network from a checkpoint (kd's own, or a PyTorch
//! file imported in memory) and the dataset flags turned into an image set and its transform.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::Device;
use kd_core::checkpoint::NetworkEntry;
use kd_core::data::{self, DataFormat, ImageSet, Split, Transform};
use kd_core::import::{self, ImportOptions};
use kd_core::runtime;
use kd_core::zoo::Network;

use crate::exit::UsageError;

/// The dataset flags.
#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// A data file or dataset folder.
    #[arg(long)]
    pub data: PathBuf,
    /// Layout of the data.
    #[arg(long, value_parser = |s: &str| s.parse::<DataFormat>())]
    pub format: DataFormat,
    /// Split to read when --data is a dataset folder.
    #[arg(long, default_value = "test", value_parser = ["train", "test"])]
    pub split: String,
    /// Network input side (smaller images are zero-padded).
    #[arg(long, default_value_t = 32)]
    pub input_size: usize,
    /// Per-channel mean (default: the format's standard constants), e.g. `0.5,0.5,0.5`.
    #[arg(long, value_delimiter = ',')]
    pub mean: Option<Vec<f32>>,
    /// Per-channel std.
    #[arg(long, value_delimiter = ',')]
    pub std: Option<Vec<f32>>,
    /// Batch size.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
}

impl DataArgs {
    /// Reads the set (its first `limit` images if given) and checks it against the network
    /// described by `entry` (loaded from `checkpoint`).
    pub fn load(
        &self,
        entry: &NetworkEntry,
        checkpoint: &Path,
        limit: Option<usize>,
    ) -> anyhow::Result<(Arc<ImageSet>, Transform)> {
        let split = if self.split == "train" {
            Split::Train
        } else {
            Split::Test
        };
        let mut set = data::load_path(&self.data, self.format, split)?;
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
        if self.input_size < set.height.max(set.width) {
            return Err(UsageError(format!(
                "--input-size {} is smaller than the {}x{} images",
                self.input_size, set.height, set.width
            ))
            .into());
        }
        let (mean, std) = self.format.normalisation(set.channels);
        let (mean, std) = (
            self.mean.clone().unwrap_or(mean),
            self.std.clone().unwrap_or(std),
        );
        if mean.len() != set.channels || std.len() != set.channels {
            return Err(UsageError(format!(
                "--mean and --std need {} value(s) each",
                set.channels
            ))
            .into());
        }
        if std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(UsageError("--std values must be positive".into()).into());
        }
        let transform = Transform {
            channels: set.channels,
            height: set.height,
            width: set.width,
            size: self.input_size,
            mean,
            std,
        };
        Ok((Arc::new(set), transform))
    }

    /// The batch size, at least 1.
    pub fn batch_size(&self) -> usize {
        self.batch_size.max(1)
    }
}

/// The network a checkpoint holds for `role`: a kd checkpoint, or a PyTorch file (by its
/// extension) imported in memory as `arch`. Where `arch` is given it must match.
pub fn load_network(
    checkpoint: &Path,
    role: &str,
    arch: Option<&str>,
    device: &Device,
) -> anyhow::Result<(Network, NetworkEntry)> {
    if import::is_pytorch_checkpoint(checkpoint) {
        let Some(arch) = arch else {
            return Err(UsageError(format!(
                "{} is a PyTorch checkpoint: name its architecture with --arch",
                checkpoint.display()
            ))
            .into());
        };
        let imported = import::import_pytorch(checkpoint, arch, &ImportOptions::default(), device)?;
        return Ok((imported.network, imported.entry));
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
    Ok((network, entry))
}

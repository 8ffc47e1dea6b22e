//! Dataset presets: the published normalisation statistics and the training augmentation of
//! the standard datasets, chosen in a config with `data.preset`.
//!
//! A preset fills only what the user did not set: `data.mean`, `data.std` and
//! `data.augment.flip` written anywhere win over it. The plan (`runtime/plan/data.rs`) resolves
//! the statistics; [`crate::config::DataSection::augment_spec`] resolves the flip. A preset
//! belongs to one on-disk format ([`Preset::format`]), and the plan refuses a preset whose
//! format is not `data.format`.
//!
//! The constants and where they come from:
//! - `mnist`: mean 0.1307, std 0.3081 (the PyTorch MNIST example's, the training split's
//!   statistics); no horizontal flip, since a mirrored digit is another symbol or none.
//! - `fashion-mnist`: mean 0.2860, std 0.3530, the training split's statistics (what
//!   `kd data stats` gives on the 60,000 training images, and the constants kd used for every
//!   IDX dataset before presets); flips, as clothes are left-right symmetric.
//! - `cifar10`: (0.4914, 0.4822, 0.4465) / (0.2470, 0.2435, 0.2616), the training split's
//!   per-channel mean and population std; flips.
//! - `cifar100`: (0.5071, 0.4867, 0.4408) / (0.2675, 0.2565, 0.2761), RepDistiller's
//!   `cifar100.py` constants; flips.
//!
//! Every preset keeps the random crop with padding 4 (zero fill), as `data.augment`'s defaults.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::base::DataFormat;

/// A standard dataset whose statistics and augmentation kd knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Preset {
    /// MNIST handwritten digits (LeCun et al. 1998), IDX files.
    #[serde(rename = "mnist")]
    Mnist,
    /// Fashion-MNIST (Xiao et al. 2017), IDX files.
    #[serde(rename = "fashion-mnist")]
    FashionMnist,
    /// CIFAR-10 (Krizhevsky 2009), binary batches.
    #[serde(rename = "cifar10")]
    Cifar10,
    /// CIFAR-100 (Krizhevsky 2009), binary files.
    #[serde(rename = "cifar100")]
    Cifar100,
}

impl Preset {
    /// Every preset, in the order messages list them.
    pub const ALL: [Preset; 4] = [
        Preset::Mnist,
        Preset::FashionMnist,
        Preset::Cifar10,
        Preset::Cifar100,
    ];

    /// The name used in configs (`data.preset = "fashion-mnist"`).
    pub fn name(self) -> &'static str {
        match self {
            Preset::Mnist => "mnist",
            Preset::FashionMnist => "fashion-mnist",
            Preset::Cifar10 => "cifar10",
            Preset::Cifar100 => "cifar100",
        }
    }

    /// The on-disk format the dataset is distributed in.
    pub fn format(self) -> DataFormat {
        match self {
            Preset::Mnist | Preset::FashionMnist => DataFormat::Idx,
            Preset::Cifar10 => DataFormat::Cifar10,
            Preset::Cifar100 => DataFormat::Cifar100,
        }
    }

    /// Per-channel mean of pixel/255 over the training split (one value per channel).
    pub fn mean(self) -> Vec<f32> {
        match self {
            Preset::Mnist => vec![0.1307],
            Preset::FashionMnist => vec![0.2860],
            Preset::Cifar10 => vec![0.4914, 0.4822, 0.4465],
            Preset::Cifar100 => vec![0.5071, 0.4867, 0.4408],
        }
    }

    /// Per-channel standard deviation of pixel/255 over the training split.
    pub fn std(self) -> Vec<f32> {
        match self {
            Preset::Mnist => vec![0.3081],
            Preset::FashionMnist => vec![0.3530],
            Preset::Cifar10 => vec![0.2470, 0.2435, 0.2616],
            Preset::Cifar100 => vec![0.2675, 0.2565, 0.2761],
        }
    }

    /// Whether training flips images horizontally (not for digits).
    pub fn flip(self) -> bool {
        !matches!(self, Preset::Mnist)
    }

    /// The dataset a format's files can only be: the CIFAR binary layouts are specific to
    /// their dataset; IDX files and image folders hold many datasets, so `None`.
    pub fn implied_by(format: DataFormat) -> Option<Preset> {
        match format {
            DataFormat::Cifar10 => Some(Preset::Cifar10),
            DataFormat::Cifar100 => Some(Preset::Cifar100),
            DataFormat::Idx | DataFormat::Folder => None,
        }
    }

    /// The known names, comma-separated, for messages.
    pub fn known() -> String {
        let names: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
        names.join(", ")
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Preset {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown preset `{s}` (known: {})", Preset::known()))
    }
}

/// How `data.normalisation` chooses the per-channel statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalisation {
    /// Computed from the whole training split (before any per-class limit) when the run is
    /// planned, as `kd data stats` computes them.
    Auto,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Split;

    #[test]
    fn every_preset_has_one_value_per_channel_of_its_format() {
        for preset in Preset::ALL {
            let channels = preset
                .format()
                .standard_geometry(Split::Train)
                .expect("a preset's format has a standard geometry")
                .channels;
            assert_eq!(preset.mean().len(), channels, "{preset}");
            assert_eq!(preset.std().len(), channels, "{preset}");
            assert!(preset.std().iter().all(|&s| s > 0.0), "{preset}");
            assert_eq!(preset.name().parse::<Preset>(), Ok(preset));
        }
    }

    #[test]
    fn digits_are_not_flipped_and_the_others_are() {
        assert!(!Preset::Mnist.flip());
        assert!(Preset::FashionMnist.flip() && Preset::Cifar10.flip() && Preset::Cifar100.flip());
        assert_eq!(Preset::Mnist.mean(), [0.1307]);
        assert_eq!(Preset::Mnist.std(), [0.3081]);
    }

    #[test]
    fn an_unknown_name_lists_the_known_ones() {
        assert_eq!(
            "emnist".parse::<Preset>(),
            Err("unknown preset `emnist` (known: mnist, fashion-mnist, cifar10, cifar100)".into())
        );
    }

    #[test]
    fn only_the_cifar_formats_imply_their_dataset() {
        assert_eq!(
            Preset::implied_by(DataFormat::Cifar10),
            Some(Preset::Cifar10)
        );
        assert_eq!(
            Preset::implied_by(DataFormat::Cifar100),
            Some(Preset::Cifar100)
        );
        assert_eq!(Preset::implied_by(DataFormat::Idx), None);
        assert_eq!(Preset::implied_by(DataFormat::Folder), None);
    }
}

//! [`ImageSet`]: a whole split of a dataset in memory, as 8-bit planar images and labels.
//!
//! Every reader (`idx.rs`, `cifar.rs`, `folder.rs`) returns one; `stats.rs` summarises it and
//! `loader.rs` turns it into augmented, normalised batches.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::geometry::Geometry;
use super::preset::Preset;

/// On-disk layout of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataFormat {
    /// IDX files (MNIST, Fashion-MNIST), raw or gzip-compressed.
    Idx,
    /// CIFAR-10 binary batches: 3073-byte records.
    Cifar10,
    /// CIFAR-100 binary files: 3074-byte records (coarse then fine label).
    Cifar100,
    /// One folder per class holding PNG or JPEG files.
    Folder,
}

impl DataFormat {
    /// Every format, in the order help texts list them.
    pub const ALL: [DataFormat; 4] = [
        DataFormat::Idx,
        DataFormat::Cifar10,
        DataFormat::Cifar100,
        DataFormat::Folder,
    ];

    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DataFormat::Idx => "idx",
            DataFormat::Cifar10 => "cifar10",
            DataFormat::Cifar100 => "cifar100",
            DataFormat::Folder => "folder",
        }
    }

    /// The normalisation constants kd used for a format before `data.preset` existed: the
    /// CIFAR presets' for CIFAR, Fashion-MNIST's for every IDX dataset, 0.5 for image folders.
    ///
    /// Only for data that records nothing better (a checkpoint written before checkpoints
    /// recorded their input preparation, a throughput benchmark); a run's plan takes
    /// `data.mean`/`data.std`, a preset or the training split's own statistics instead.
    pub fn normalisation(self, channels: usize) -> (Vec<f32>, Vec<f32>) {
        let preset = match self {
            DataFormat::Idx => Preset::FashionMnist,
            DataFormat::Cifar10 => Preset::Cifar10,
            DataFormat::Cifar100 => Preset::Cifar100,
            DataFormat::Folder => return (vec![0.5; channels], vec![0.5; channels]),
        };
        (preset.mean(), preset.std())
    }

    /// The published size of a format's standard dataset (Fashion-MNIST for IDX), for planning a
    /// run whose data is not on this machine.
    pub fn standard_geometry(self, split: Split) -> Option<Geometry> {
        let count = |train: usize, test: usize| if split == Split::Train { train } else { test };
        match self {
            DataFormat::Idx => Some(Geometry {
                count: count(60_000, 10_000),
                channels: 1,
                height: 28,
                width: 28,
                num_classes: 10,
            }),
            DataFormat::Cifar10 => Some(Geometry {
                count: count(50_000, 10_000),
                channels: 3,
                height: 32,
                width: 32,
                num_classes: 10,
            }),
            DataFormat::Cifar100 => Some(Geometry {
                count: count(50_000, 10_000),
                channels: 3,
                height: 32,
                width: 32,
                num_classes: 100,
            }),
            DataFormat::Folder => None,
        }
    }
}

impl fmt::Display for DataFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DataFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DataFormat::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let known: Vec<_> = DataFormat::ALL.iter().map(|f| f.name()).collect();
                format!("unknown data format `{s}` (known: {})", known.join(", "))
            })
    }
}

/// A training or test split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// The training split.
    Train,
    /// The held-out split used for evaluation.
    Test,
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Test => "test",
        })
    }
}

/// Images and labels of one split, held in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    /// `len × channels × height × width` bytes, each image planar (all of channel 0 first).
    pub pixels: Vec<u8>,
    /// One label per image, below `num_classes`.
    pub labels: Vec<u16>,
    /// Number of classes of the dataset (not only those present).
    pub num_classes: usize,
    /// Channels per image (1 grey, 3 RGB).
    pub channels: usize,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Class names where the format has them (folder names), else `0 … n-1`.
    pub class_names: Vec<String>,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes per image.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The planar bytes of image `index`.
    pub fn image(&self, index: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[index * n..(index + 1) * n]
    }

    /// The first `n` images in file order (all of them if there are fewer).
    pub fn head(&self, n: usize) -> ImageSet {
        let n = n.min(self.len());
        ImageSet {
            pixels: self.pixels[..n * self.image_len()].to_vec(),
            labels: self.labels[..n].to_vec(),
            num_classes: self.num_classes,
            channels: self.channels,
            height: self.height,
            width: self.width,
            class_names: self.class_names.clone(),
        }
    }

    /// Images per class.
    pub fn class_histogram(&self) -> Vec<usize> {
        let mut histogram = vec![0; self.num_classes];
        for &label in &self.labels {
            histogram[label as usize] += 1;
        }
        histogram
    }

    /// Class names `0 … n-1`.
    pub fn numbered_classes(num_classes: usize) -> Vec<String> {
        (0..num_classes).map(|c| c.to_string()).collect()
    }

    /// Keeps the first `per_class` images of every class, in order (a balanced subset).
    pub fn balanced_prefix(&self, per_class: usize) -> ImageSet {
        let mut taken = vec![0usize; self.num_classes];
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for (index, &label) in self.labels.iter().enumerate() {
            if taken[label as usize] < per_class {
                taken[label as usize] += 1;
                pixels.extend_from_slice(self.image(index));
                labels.push(label);
            }
        }
        ImageSet {
            pixels,
            labels,
            ..self.clone_header()
        }
    }

    fn clone_header(&self) -> ImageSet {
        ImageSet {
            pixels: Vec::new(),
            labels: Vec::new(),
            num_classes: self.num_classes,
            channels: self.channels,
            height: self.height,
            width: self.width,
            class_names: self.class_names.clone(),
        }
    }
}

//! Where a dataset lives and how to load one of its splits.
//!
//! A [`DataSource`] is a format and a root. The root comes from, in order: the config's
//! `data.root`, the `KD_DATA` environment variable, or the location Debian's
//! `dataset-fashion-mnist` package installs to (for IDX). The plan calls [`DataSource::split_paths`]
//! to check files before any tensor exists; the runtime calls [`DataSource::load`];
//! `kd data stats` calls [`load_path`] on whatever file or folder the user names.

use std::path::{Path, PathBuf};

use super::base::{DataFormat, ImageSet, Split};
use super::cifar::{self, CifarKind};
use super::error::DataError;
use super::{folder, idx};

/// Where Debian's `dataset-fashion-mnist` package installs Fashion-MNIST.
pub const DEBIAN_FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

/// The environment variable naming a dataset root when the config names none.
pub const DATA_ENV: &str = "KD_DATA";

/// A dataset on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSource {
    /// Its layout.
    pub format: DataFormat,
    /// The folder holding its splits.
    pub root: PathBuf,
}

impl DataSource {
    /// The files (or, for folders, the directory) making up `split`, checked to exist.
    pub fn split_paths(&self, split: Split) -> Result<Vec<PathBuf>, DataError> {
        match self.format {
            DataFormat::Idx => {
                let (images, labels) = idx::split_files(&self.root, split)?;
                Ok(vec![images, labels])
            }
            DataFormat::Cifar10 => cifar::split_files(&self.root, split, CifarKind::Cifar10),
            DataFormat::Cifar100 => cifar::split_files(&self.root, split, CifarKind::Cifar100),
            DataFormat::Folder => Ok(vec![folder::split_dir(&self.root, split)?]),
        }
    }

    /// Reads `split` into memory. Every split of an image folder dataset is labelled by the
    /// training split's class list.
    pub fn load(&self, split: Split) -> Result<ImageSet, DataError> {
        let paths = self.split_paths(split)?;
        match self.format {
            DataFormat::Idx => idx::read_pair(&paths[0], &paths[1], idx::IDX_CLASSES),
            DataFormat::Cifar10 => cifar::read_files(&paths, CifarKind::Cifar10),
            DataFormat::Cifar100 => cifar::read_files(&paths, CifarKind::Cifar100),
            DataFormat::Folder => {
                folder::read_split(&paths[0], &folder::Classes::for_split(&self.root, split)?)
            }
        }
    }
}

/// The root to use when the config names none: `KD_DATA`, else Debian's Fashion-MNIST for IDX.
pub fn default_root(format: DataFormat) -> Option<PathBuf> {
    if let Some(root) = std::env::var_os(DATA_ENV).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(root));
    }
    (format == DataFormat::Idx).then(|| PathBuf::from(DEBIAN_FASHION_MNIST))
}

/// Loads whatever `path` is: one data file (an IDX image file, whose label file must sit beside
/// it; one CIFAR batch file) or a dataset folder (its `split`).
pub fn load_path(path: &Path, format: DataFormat, split: Split) -> Result<ImageSet, DataError> {
    if !path.exists() {
        return Err(DataError::Missing {
            path: path.into(),
            message: "no such file or folder".into(),
        });
    }
    match format {
        DataFormat::Idx if path.is_file() => {
            idx::read_pair(path, &idx::labels_beside(path)?, idx::IDX_CLASSES)
        }
        DataFormat::Cifar10 if path.is_file() => cifar::read_file(path, CifarKind::Cifar10),
        DataFormat::Cifar100 if path.is_file() => cifar::read_file(path, CifarKind::Cifar100),
        DataFormat::Folder if !path.join(split.to_string()).is_dir() => folder::read_folder(path),
        _ => DataSource {
            format,
            root: path.into(),
        }
        .load(split),
    }
}

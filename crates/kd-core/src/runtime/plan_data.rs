//! The dataset half of the plan: where the files are, what the images look like (from headers
//! only), and the normalisation constants.

use super::plan::DataPlan;
use crate::config::{ConfigIssue, LoadedConfig, source_of};
use crate::data::{DataError, DataFormat, DataSource, Geometry, Split, default_root};

/// The standard normalisation constants of a format (the dataset's own statistics).
pub fn default_normalisation(format: DataFormat, channels: usize) -> (Vec<f32>, Vec<f32>) {
    match format {
        DataFormat::Idx => (vec![0.2860], vec![0.3530]),
        DataFormat::Cifar10 => (vec![0.4914, 0.4822, 0.4465], vec![0.2470, 0.2435, 0.2616]),
        DataFormat::Cifar100 => (vec![0.5071, 0.4867, 0.4408], vec![0.2675, 0.2565, 0.2761]),
        DataFormat::Folder => (vec![0.5; channels], vec![0.5; channels]),
    }
}

/// Problems found so far, each with its key's source.
pub(super) struct Issues<'a> {
    pub(super) loaded: &'a LoadedConfig,
    pub(super) list: Vec<ConfigIssue>,
}

impl Issues<'_> {
    pub(super) fn push(&mut self, key: &str, message: impl Into<String>) {
        let source = source_of(&self.loaded.figment, key);
        self.list.push(ConfigIssue {
            key: Some(key.to_string()),
            source,
            message: message.into(),
        });
    }
}

/// The published size of a format's standard dataset (Fashion-MNIST for IDX), for planning a
/// run whose data is not on this machine.
pub fn standard_geometry(format: DataFormat, split: Split) -> Option<Geometry> {
    let count = |train: usize, test: usize| if split == Split::Train { train } else { test };
    match format {
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

pub(super) fn plan_data(
    loaded: &LoadedConfig,
    issues: &mut Issues<'_>,
    warnings: &mut Vec<String>,
    allow_missing: bool,
) -> Option<DataPlan> {
    let c = &loaded.config.data;
    let root = c.root.clone().or_else(|| default_root(c.format));
    let root = match root {
        Some(root) => root,
        None if allow_missing && standard_geometry(c.format, Split::Train).is_some() => {
            warnings.push(format!(
                "data.root: not set (nor {}); planned with the standard {} geometry",
                crate::data::DATA_ENV,
                c.format
            ));
            std::path::PathBuf::from("<not set>")
        }
        None => {
            issues.push(
                "data.root",
                format!(
                    "no dataset root: set data.root or the {} variable",
                    crate::data::DATA_ENV
                ),
            );
            return None;
        }
    };
    let source = DataSource {
        format: c.format,
        root,
    };
    let mut split = |split: Split| match source
        .split_paths(split)
        .and_then(|files| Ok((files, source.geometry(split)?)))
    {
        Ok(found) => Some(found),
        Err(DataError::Missing { path, .. })
            if allow_missing && standard_geometry(c.format, split).is_some() =>
        {
            warnings.push(format!(
                "data.root: no {split} split at {}; planned with the standard {} geometry",
                path.display(),
                c.format
            ));
            standard_geometry(c.format, split).map(|g| (Vec::new(), g))
        }
        Err(e) => {
            issues.push("data.root", e.to_string());
            None
        }
    };
    let (train_files, train) = split(Split::Train)?;
    let (test_files, test) = split(Split::Test)?;
    if c.batch_size == 0 {
        issues.push("data.batch_size", "must be at least 1");
    }
    if c.eval_batch_size == 0 {
        issues.push("data.eval_batch_size", "must be at least 1");
    }
    if c.input_size < train.height.max(train.width) {
        issues.push(
            "data.input_size",
            format!(
                "{} is smaller than the {}x{} images",
                c.input_size, train.height, train.width
            ),
        );
    }
    if (train.channels, train.height, train.width) != (test.channels, test.height, test.width) {
        issues.push("data.root", "train and test images differ in shape");
    }
    let (default_mean, default_std) = default_normalisation(c.format, train.channels);
    let mean = c.mean.clone().unwrap_or(default_mean);
    let std = c.std.clone().unwrap_or(default_std);
    for (key, values) in [("data.mean", &mean), ("data.std", &std)] {
        if values.len() != train.channels {
            issues.push(
                key,
                format!(
                    "has {} values but the images have {} channel(s)",
                    values.len(),
                    train.channels
                ),
            );
        }
    }
    if std.iter().any(|&s| s <= 0.0) {
        issues.push("data.std", "every value must be positive");
    }
    Some(DataPlan {
        source,
        train,
        test,
        train_files,
        test_files,
        input_size: c.input_size,
        mean,
        std,
    })
}

//! The dataset half of the plan: where the files are, what the images look like (from headers
//! only), and the normalisation constants.

use std::path::PathBuf;

use crate::config::{Issues, LoadedConfig};
use crate::data::{DataError, DataSource, Geometry, Split, default_root};

/// The dataset side of a plan.
#[derive(Debug, Clone)]
pub struct DataPlan {
    /// Format and root.
    pub source: DataSource,
    /// Training split geometry (before any per-class limit).
    pub train: Geometry,
    /// Test split geometry (before any per-class limit).
    pub test: Geometry,
    /// Files of the training split.
    pub train_files: Vec<PathBuf>,
    /// Files of the test split.
    pub test_files: Vec<PathBuf>,
    /// Network input side.
    pub input_size: usize,
    /// Per-channel mean.
    pub mean: Vec<f32>,
    /// Per-channel std.
    pub std: Vec<f32>,
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
        None if allow_missing && c.format.standard_geometry(Split::Train).is_some() => {
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
            if allow_missing && c.format.standard_geometry(split).is_some() =>
        {
            warnings.push(format!(
                "data.root: no {split} split at {}; planned with the standard {} geometry",
                path.display(),
                c.format
            ));
            c.format.standard_geometry(split).map(|g| (Vec::new(), g))
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
    let (default_mean, default_std) = c.format.normalisation(train.channels);
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

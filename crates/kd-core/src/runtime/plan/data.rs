//! The dataset half of the plan: where the files are, what the images look like (from headers
//! only), how many images each class keeps under the per-class limits (from labels and folder
//! listings), and the normalisation constants.
//!
//! A plan that would train nothing or evaluate nothing is refused here, naming the keys and the
//! numbers: a per-class limit of 0, an empty split, a batch larger than the training split with
//! `data.drop_last`. The run checks the loaded splits again ([`DataPlan::check_loaded`]) before
//! its first step, so a run never reports success for work it did not do. The normalisation
//! statistics (explicit, a preset's, or computed from the training split) are resolved in
//! `data/statistics.rs`.

mod statistics;

use std::path::{Path, PathBuf};

use crate::config::{DataSection, Issues, LoadedConfig};
use crate::data::{
    DataError, DataFormat, DataSource, Geometry, ImageSet, Split, batches_per_epoch, default_root,
    folder,
};

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
    /// Where `mean` and `std` came from (`preset mnist`, `computed from the 60000 training
    /// images (...)`), for the plan's description.
    pub normalisation: String,
    /// Training images per class (index = label), after `data.train_per_class`.
    pub train_classes: Vec<usize>,
    /// Test images per class (index = label), after `data.test_per_class`.
    pub test_classes: Vec<usize>,
}

impl DataPlan {
    /// Training images the run uses (after `data.train_per_class`).
    pub fn train_images(&self) -> usize {
        self.train_classes.iter().sum()
    }

    /// Test images every evaluation reads (after `data.test_per_class`).
    pub fn test_images(&self) -> usize {
        self.test_classes.iter().sum()
    }

    /// Checks the splits a run loaded against the data settings before its first step: the
    /// training split must give an epoch at least one step, the test split at least one image.
    /// Returns the batches (steps) per epoch.
    ///
    /// # Errors
    /// [`DataError::NothingToDo`] naming the split's file and the keys involved.
    pub fn check_loaded(
        &self,
        train: &ImageSet,
        test: &ImageSet,
        c: &DataSection,
    ) -> Result<usize, DataError> {
        let at = |files: &[PathBuf]| {
            files
                .first()
                .cloned()
                .unwrap_or_else(|| self.source.root.clone())
        };
        if let Some((key, message)) = no_step(train.len(), c) {
            return Err(DataError::NothingToDo {
                path: at(&self.train_files),
                message: format!("{key}: {message}"),
            });
        }
        if let Some((key, message)) = no_evaluation(test.len(), c) {
            return Err(DataError::NothingToDo {
                path: at(&self.test_files),
                message: format!("{key}: {message}"),
            });
        }
        Ok(batches_per_epoch(train.len(), c.batch_size, c.drop_last))
    }
}

/// Why `images` training images give an epoch no step under `c`: the key to change and the
/// message, with the numbers. `None` when an epoch takes at least one step (or the batch size
/// is 0, an error of its own).
fn no_step(images: usize, c: &DataSection) -> Option<(&'static str, String)> {
    if images == 0 {
        return Some(match c.train_per_class {
            Some(0) => (
                "data.train_per_class",
                "is 0: no training image is kept, so no step would be taken".into(),
            ),
            _ => (
                "data.root",
                "the training split holds no image, so no step would be taken".into(),
            ),
        });
    }
    if c.batch_size == 0 || batches_per_epoch(images, c.batch_size, c.drop_last) > 0 {
        return None;
    }
    let limit = c
        .train_per_class
        .map(|n| format!(" (data.train_per_class = {n})"))
        .unwrap_or_default();
    Some((
        "data.batch_size",
        format!(
            "{} > {images} training images{limit} with data.drop_last = true: every epoch would \
             take 0 steps; lower data.batch_size or set data.drop_last = false",
            c.batch_size
        ),
    ))
}

/// Why `images` test images leave nothing to evaluate: the key and the message. `None` when
/// there is at least one.
fn no_evaluation(images: usize, c: &DataSection) -> Option<(&'static str, String)> {
    (images == 0).then(|| match c.test_per_class {
        Some(0) => (
            "data.test_per_class",
            "is 0: no test image is kept, so no accuracy could be measured".into(),
        ),
        _ => (
            "data.root",
            "the test split holds no image, so no accuracy could be measured".into(),
        ),
    })
}

/// Each class's count under a per-class limit.
fn limited(counts: &[usize], per_class: Option<usize>) -> Vec<usize> {
    counts
        .iter()
        .map(|&n| per_class.map_or(n, |limit| n.min(limit)))
        .collect()
}

/// The published per-class counts of a standard dataset (balanced).
fn standard_counts(geometry: &Geometry) -> Vec<usize> {
    vec![geometry.count / geometry.num_classes.max(1); geometry.num_classes]
}

/// Refuses a plan that would take no step or evaluate no image; warns of training classes
/// without an image.
fn check_counts(
    plan: &DataPlan,
    c: &DataSection,
    issues: &mut RootIssues<'_, '_>,
    warnings: &mut Vec<String>,
) {
    if let Some((key, message)) = no_step(plan.train_images(), c) {
        issues.push(key, message);
    }
    if let Some((key, message)) = no_evaluation(plan.test_images(), c) {
        issues.push(key, message);
    }
    let empty: Vec<usize> = (0..plan.train_classes.len())
        .filter(|&class| plan.train_classes[class] == 0)
        .collect();
    if empty.is_empty() || plan.train_images() == 0 {
        return;
    }
    let names = class_names(
        &plan.source.root,
        plan.source.format,
        plan.train.num_classes,
    );
    let mut listed: Vec<String> = empty
        .iter()
        .take(10)
        .map(|&class| format!("`{}`", names[class]))
        .collect();
    if empty.len() > listed.len() {
        listed.push("…".into());
    }
    warnings.push(format!(
        "data.root: {} of the {} classes have no training image ({}): the network never learns \
         them",
        empty.len(),
        plan.train.num_classes,
        listed.join(", ")
    ));
}

/// Class names for messages: an image folder's folder names, else the labels' numbers.
fn class_names(root: &Path, format: DataFormat, num_classes: usize) -> Vec<String> {
    let names = (format == DataFormat::Folder)
        .then(|| folder::Classes::for_split(root, Split::Train).ok())
        .flatten()
        .map(|classes| classes.names)
        .unwrap_or_default();
    if names.len() == num_classes {
        names
    } else {
        ImageSet::numbered_classes(num_classes)
    }
}

/// The plan's issues, with a note on where the root came from added to every issue at
/// `data.root` when `data.root` itself did not set it.
struct RootIssues<'i, 'a> {
    issues: &'i mut Issues<'a>,
    origin: Option<&'i str>,
}

impl RootIssues<'_, '_> {
    fn push(&mut self, key: &str, message: impl Into<String>) {
        let message = message.into();
        match self.origin {
            Some(origin) if key == "data.root" => {
                self.issues.push(key, format!("{message} ({origin})"))
            }
            _ => self.issues.push(key, message),
        }
    }
}

/// Where a root that `data.root` did not set came from: the `KD_DATA` variable or the format's
/// default location. `None` when `data.root` set it (or there is none).
fn root_origin(set_by_key: bool, root: Option<&Path>) -> Option<String> {
    if set_by_key {
        return None;
    }
    let root = root?;
    let from_variable =
        std::env::var_os(crate::data::DATA_ENV).is_some_and(|v| v == root.as_os_str());
    Some(if from_variable {
        format!(
            "data.root is not set; the root {} comes from the {} variable",
            root.display(),
            crate::data::DATA_ENV
        )
    } else {
        format!(
            "data.root is not set; {} is the format's default root",
            root.display()
        )
    })
}

/// The image geometry against the settings: the input holds the images, train and test images
/// have one shape (both named with a file when they differ), and there are classes to tell apart.
fn check_geometry(
    c: &DataSection,
    (train, train_files): (&Geometry, &[PathBuf]),
    (test, test_files): (&Geometry, &[PathBuf]),
    issues: &mut RootIssues<'_, '_>,
) {
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
        let file = |files: &[PathBuf]| {
            files
                .first()
                .map_or_else(|| "<standard geometry>".into(), |f| f.display().to_string())
        };
        issues.push(
            "data.root",
            format!(
                "train and test images differ in shape: {}x{}x{} (channels x height x width) in \
                 {}, {}x{}x{} in {}",
                train.channels,
                train.height,
                train.width,
                file(train_files),
                test.channels,
                test.height,
                test.width,
                file(test_files)
            ),
        );
    }
    if train.num_classes < 2 {
        issues.push(
            "data.root",
            format!(
                "the dataset has {} class(es): classification needs at least 2",
                train.num_classes
            ),
        );
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
    // Where the root came from, when data.root did not set it: every message about the data
    // then names the variable (or default) the user has to look at.
    let origin = root_origin(c.root.is_some(), root.as_deref());
    let mut issues = RootIssues {
        issues,
        origin: origin.as_deref(),
    };
    let issues = &mut issues;
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
    let mut split = |split: Split| match source.split_paths(split).and_then(|files| {
        let geometry = source.geometry(split)?;
        Ok((files, geometry, source.class_counts(split)?))
    }) {
        Ok(found) => Some(found),
        Err(DataError::Missing { path, .. })
            if allow_missing && c.format.standard_geometry(split).is_some() =>
        {
            warnings.push(format!(
                "data.root: no {split} split at {}; planned with the standard {} geometry",
                path.display(),
                c.format
            ));
            c.format
                .standard_geometry(split)
                .map(|g| (Vec::new(), g, standard_counts(&g)))
        }
        Err(e) => {
            issues.push("data.root", e.to_string());
            None
        }
    };

    let train_split = split(Split::Train);
    let test_split = split(Split::Test);
    let ((train_files, train, train_counts), (test_files, test, test_counts)) =
        (train_split?, test_split?);
    // Batch sizes of 0 and a std that is not positive are domain problems (`domains.rs`).
    check_geometry(c, (&train, &train_files), (&test, &test_files), issues);
    let present = !train_files.is_empty();
    let stats = statistics::resolve(c, &source, train.channels, present, issues, warnings);
    let plan = DataPlan {
        source,
        train,
        test,
        train_files,
        test_files,
        input_size: c.input_size,
        mean: stats.mean,
        std: stats.std,
        normalisation: stats.origin,
        train_classes: limited(&train_counts, c.train_per_class),
        test_classes: limited(&test_counts, c.test_per_class),
    };
    check_counts(&plan, c, issues, warnings);
    Some(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(
        batch_size: usize,
        drop_last: bool,
        train_per_class: Option<usize>,
        test_per_class: Option<usize>,
    ) -> DataSection {
        DataSection {
            batch_size,
            drop_last,
            train_per_class,
            test_per_class,
            ..DataSection::default()
        }
    }

    fn set(len: usize) -> ImageSet {
        ImageSet {
            pixels: vec![0; len * 4],
            labels: vec![0; len],
            num_classes: 2,
            channels: 1,
            height: 2,
            width: 2,
            class_names: ImageSet::numbered_classes(2),
        }
    }

    fn plan() -> DataPlan {
        let geometry = Geometry {
            count: 4,
            channels: 1,
            height: 2,
            width: 2,
            num_classes: 2,
        };
        DataPlan {
            source: DataSource {
                format: DataFormat::Idx,
                root: "root".into(),
            },
            train: geometry,
            test: geometry,
            train_files: vec!["root/train-images".into()],
            test_files: vec!["root/t10k-images".into()],
            input_size: 2,
            mean: vec![0.5],
            std: vec![0.5],
            normalisation: "set in the config".into(),
            train_classes: vec![2, 2],
            test_classes: vec![2, 2],
        }
    }

    #[test]
    fn a_batch_larger_than_the_split_with_drop_last_takes_no_step() {
        let (key, message) = no_step(200, &section(500, true, Some(20), None)).unwrap();
        assert_eq!(key, "data.batch_size");
        assert!(
            message.starts_with(
                "500 > 200 training images (data.train_per_class = 20) with data.drop_last = \
                 true: every epoch would take 0 steps"
            ),
            "{message}"
        );
        // Without drop_last the smaller batch is a step; an exact fit is one step.
        assert_eq!(no_step(200, &section(500, false, None, None)), None);
        assert_eq!(no_step(500, &section(500, true, None, None)), None);
        // A batch size of 0 is reported by its own check, not as a stepless epoch.
        assert_eq!(no_step(200, &section(0, true, None, None)), None);
    }

    #[test]
    fn empty_splits_name_the_limit_or_the_root() {
        let limit = no_step(0, &section(16, false, Some(0), None)).unwrap();
        assert_eq!(limit.0, "data.train_per_class");
        assert!(
            limit.1.starts_with("is 0: no training image"),
            "{}",
            limit.1
        );
        assert_eq!(
            no_step(0, &section(16, false, None, None)).unwrap().0,
            "data.root"
        );
        let test = no_evaluation(0, &section(16, false, None, Some(0))).unwrap();
        assert_eq!(test.0, "data.test_per_class");
        assert!(
            test.1.contains("no accuracy could be measured"),
            "{}",
            test.1
        );
        assert_eq!(
            no_evaluation(0, &section(16, false, None, None)).unwrap().0,
            "data.root"
        );
        assert_eq!(no_evaluation(1, &section(16, false, None, Some(0))), None);
    }

    #[test]
    fn per_class_limits_count_what_each_class_has() {
        // A class with fewer images than the limit keeps what it has; an absent one none.
        assert_eq!(limited(&[5, 0, 30], Some(10)), [5, 0, 10]);
        assert_eq!(limited(&[5, 0, 30], None), [5, 0, 30]);
        let g = DataFormat::Cifar100.standard_geometry(Split::Test).unwrap();
        assert_eq!(standard_counts(&g), vec![100; 100]);
    }

    #[test]
    fn loaded_splits_are_checked_before_the_first_step() {
        let plan = plan();
        assert_eq!(
            plan.check_loaded(&set(5), &set(1), &section(2, true, None, None))
                .unwrap(),
            2
        );
        assert_eq!(
            plan.check_loaded(&set(5), &set(1), &section(2, false, None, None))
                .unwrap(),
            3
        );
        let err = plan
            .check_loaded(&set(3), &set(1), &section(4, true, None, None))
            .unwrap_err();
        assert!(matches!(err, DataError::NothingToDo { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "root/train-images: data.batch_size: 4 > 3 training images with data.drop_last = \
             true: every epoch would take 0 steps; lower data.batch_size or set data.drop_last \
             = false"
        );
        let err = plan
            .check_loaded(&set(3), &set(0), &section(2, true, None, Some(0)))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("root/t10k-images: data.test_per_class: is 0"),
            "{err}"
        );
    }
}

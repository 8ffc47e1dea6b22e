//! Image folders: one sub-folder per class holding PNG or JPEG files (torchvision's
//! `ImageFolder` layout).
//!
//! A dataset has one class list, the training split's: its class folders' names in sorted order
//! ([`Classes`]). Every other split is labelled by that list, so a test folder lacking a class
//! keeps the others' labels; a folder the training split lacks is an error naming it (its
//! images' labels would mean nothing to a network trained on the others). Hidden entries (names
//! starting with a dot: `.DS_Store`, `.ipynb_checkpoints`) are never a class and never an image.
//! Files are read in sorted order; every image must have the size of the first; the set is grey
//! (1 channel) when every image is grey, RGB otherwise (grey images are then replicated to three
//! planes). A split lives in `ROOT/train` and `ROOT/test`, or ROOT itself holds the class folders
//! ([`read_folder`], for `kd data stats`).
//!
//! The plan calls [`Classes::of`] and [`list_images`] (names only, no pixel read) to size the
//! network and count images; [`DataSource::load`](super::DataSource::load) calls [`read_split`].

use std::path::{Path, PathBuf};

use super::base::{ImageSet, Split};
use super::error::DataError;

const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .map(|entry| entry.map(|e| e.path()).map_err(|e| DataError::io(dir, e)))
        .collect::<Result<_, _>>()?;
    entries.retain(|p| !is_hidden(p));
    entries.sort();
    Ok(entries)
}

/// Whether an entry is hidden (its name starts with a dot): never a class, never an image.
pub fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

fn is_image(path: &Path) -> bool {
    path.is_file()
        && path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The class list of a dataset: the class folders of one split folder (the training split's),
/// sorted by name. A class's label is its position in [`Classes::names`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classes {
    /// The split folder the list was read from (named in errors).
    pub from: PathBuf,
    /// Class names, sorted.
    pub names: Vec<String>,
}

impl Classes {
    /// The (non-hidden) sub-folders of `dir`, sorted.
    ///
    /// # Errors
    /// [`DataError::Io`] if `dir` cannot be listed, [`DataError::Missing`] if it holds no class
    /// folder.
    pub fn of(dir: &Path) -> Result<Classes, DataError> {
        let names: Vec<String> = sorted_entries(dir)?
            .into_iter()
            .filter(|p| p.is_dir())
            .map(|p| name_of(&p))
            .collect();
        if names.is_empty() {
            return Err(DataError::Missing {
                path: dir.into(),
                message: "no class folders".into(),
            });
        }
        Ok(Classes {
            from: dir.into(),
            names,
        })
    }

    /// The class list a split of the dataset at `root` is labelled by: the training split's
    /// when there is a `ROOT/train` folder, else (a lone test folder) the split's own.
    ///
    /// # Errors
    /// As [`Classes::of`].
    pub fn for_split(root: &Path, split: Split) -> Result<Classes, DataError> {
        match split_dir(root, Split::Train) {
            Ok(train) => Classes::of(&train),
            Err(_) => Classes::of(&split_dir(root, split)?),
        }
    }
}

/// Every image file of the split folder `dir` (sorted by class folder, then by name), each with
/// its label in `classes`. A class of `classes` without a folder here has no image.
///
/// # Errors
/// [`DataError::UnknownClass`] naming a class folder `classes` lacks; [`DataError::Io`] if a
/// folder cannot be listed.
pub fn list_images(dir: &Path, classes: &Classes) -> Result<Vec<(PathBuf, u16)>, DataError> {
    let mut files = Vec::new();
    for class_dir in sorted_entries(dir)?.into_iter().filter(|p| p.is_dir()) {
        let name = name_of(&class_dir);
        let Some(label) = classes.names.iter().position(|c| *c == name) else {
            return Err(DataError::UnknownClass {
                path: class_dir,
                train: classes.from.clone(),
                known: classes.names.join(", "),
            });
        };
        for file in sorted_entries(&class_dir)?
            .into_iter()
            .filter(|p| is_image(p))
        {
            files.push((file, label as u16));
        }
    }
    Ok(files)
}

/// Reads every class folder under `root`, labelled by its own class folders (a folder of class
/// folders outside any dataset, as `kd data stats` reads one).
///
/// # Errors
/// As [`read_split`], and [`DataError::Missing`] when `root` holds no class folder.
pub fn read_folder(root: &Path) -> Result<ImageSet, DataError> {
    read_split(root, &Classes::of(root)?)
}

/// Reads the split folder `dir`, labelled by `classes` (the training split's list).
///
/// # Errors
/// [`DataError::UnknownClass`] for a class folder `classes` lacks, [`DataError::Decode`] for a
/// file that is not an image, [`DataError::SizeMismatch`] for an image of another size than the
/// first, [`DataError::Missing`] when no image is found.
pub fn read_split(dir: &Path, classes: &Classes) -> Result<ImageSet, DataError> {
    let mut decoded = Vec::new();
    for (file, label) in list_images(dir, classes)? {
        let image = image::open(&file).map_err(|e| DataError::Decode {
            path: file.clone(),
            message: e.to_string(),
        })?;
        decoded.push((file, label, image));
    }
    let Some((_, _, first)) = decoded.first() else {
        return Err(DataError::Missing {
            path: dir.into(),
            message: "no PNG or JPEG files in class folders".into(),
        });
    };
    let (width, height) = (first.width(), first.height());
    let grey = decoded.iter().all(|(_, _, img)| !img.color().has_color());
    let channels = if grey { 1 } else { 3 };
    let plane = (width * height) as usize;
    let mut pixels = Vec::with_capacity(decoded.len() * channels * plane);
    let mut labels = Vec::with_capacity(decoded.len());
    for (path, label, image) in decoded {
        if (image.width(), image.height()) != (width, height) {
            return Err(DataError::SizeMismatch {
                path,
                found_w: image.width(),
                found_h: image.height(),
                width,
                height,
            });
        }
        if grey {
            pixels.extend_from_slice(image.to_luma8().as_raw());
        } else {
            let rgb = image.to_rgb8();
            for c in 0..3 {
                pixels.extend(rgb.as_raw().iter().skip(c).step_by(3));
            }
        }
        labels.push(label);
    }
    Ok(ImageSet {
        pixels,
        labels,
        num_classes: classes.names.len(),
        channels,
        height: height as usize,
        width: width as usize,
        class_names: classes.names.clone(),
    })
}

/// The folder holding `split`: `ROOT/train` or `ROOT/test`.
///
/// # Errors
/// [`DataError::Missing`] naming `root` when the folder is not there.
pub fn split_dir(root: &Path, split: Split) -> Result<PathBuf, DataError> {
    let dir = root.join(split.to_string());
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(DataError::Missing {
            path: root.into(),
            message: format!("no `{split}` folder of class folders"),
        })
    }
}

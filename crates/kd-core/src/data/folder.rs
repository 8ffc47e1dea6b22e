//! Image folders: one sub-folder per class holding PNG or JPEG files (torchvision's
//! `ImageFolder` layout).
//!
//! Classes are the sub-folder names in sorted order; files are read in sorted order. Every image
//! must have the size of the first; the set is grey (1 channel) when every image is grey, RGB
//! otherwise (grey images are then replicated to three planes). A split lives in `ROOT/train`
//! and `ROOT/test`, or ROOT itself holds the class folders.

use std::path::{Path, PathBuf};

use super::base::{ImageSet, Split};
use super::error::DataError;

const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .map(|entry| entry.map(|e| e.path()).map_err(|e| DataError::io(dir, e)))
        .collect::<Result<_, _>>()?;
    entries.sort();
    Ok(entries)
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Reads every class folder under `root`.
pub fn read_folder(root: &Path) -> Result<ImageSet, DataError> {
    let classes: Vec<PathBuf> = sorted_entries(root)?
        .into_iter()
        .filter(|p| p.is_dir())
        .collect();
    if classes.is_empty() {
        return Err(DataError::Missing {
            path: root.into(),
            message: "no class folders".into(),
        });
    }
    let mut decoded = Vec::new();
    for (label, class_dir) in classes.iter().enumerate() {
        for file in sorted_entries(class_dir)?
            .into_iter()
            .filter(|p| is_image(p))
        {
            let image = image::open(&file).map_err(|e| DataError::Decode {
                path: file.clone(),
                message: e.to_string(),
            })?;
            decoded.push((file, label as u16, image));
        }
    }
    let Some((_, _, first)) = decoded.first() else {
        return Err(DataError::Missing {
            path: root.into(),
            message: "no PNG or JPEG files".into(),
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
    let class_names = classes
        .iter()
        .map(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    Ok(ImageSet {
        pixels,
        labels,
        num_classes: classes.len(),
        channels,
        height: height as usize,
        width: width as usize,
        class_names,
    })
}

/// The folder holding `split`: `ROOT/train` or `ROOT/test`.
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

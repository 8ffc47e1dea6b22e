//! CIFAR-10 and CIFAR-100 binary files (A. Krizhevsky, "Learning Multiple Layers of Features from
//! Tiny Images", 2009; the "binary version" on the dataset page).
//!
//! CIFAR-10: 3073-byte records, a label byte then 3072 pixel bytes: the R, G and B planes, each
//! 32x32 row-major. CIFAR-100: 3074-byte records, a coarse (20-class) then a fine (100-class)
//! label byte, then the same planes; the fine label is the class. Splits: `data_batch_1.bin` …
//! `data_batch_5.bin` and `test_batch.bin` (CIFAR-10), `train.bin` and `test.bin` (CIFAR-100),
//! directly under the root or in the archive's `cifar-10-batches-bin/` / `cifar-100-binary/`.

use std::path::{Path, PathBuf};

use super::base::{ImageSet, Split};
use super::error::DataError;
use super::idx::checked_labels;
use super::read::read_maybe_gz;

const PLANE: usize = 32 * 32;
const IMAGE: usize = 3 * PLANE;

/// Which CIFAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CifarKind {
    /// 10 classes, one label byte.
    Cifar10,
    /// 100 fine classes, a coarse and a fine label byte.
    Cifar100,
}

impl CifarKind {
    /// Bytes per record.
    pub fn record_len(self) -> usize {
        match self {
            CifarKind::Cifar10 => 1 + IMAGE,
            CifarKind::Cifar100 => 2 + IMAGE,
        }
    }

    /// Number of classes.
    pub fn num_classes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 10,
            CifarKind::Cifar100 => 100,
        }
    }

    fn name(self) -> &'static str {
        match self {
            CifarKind::Cifar10 => "CIFAR-10",
            CifarKind::Cifar100 => "CIFAR-100",
        }
    }
}

/// The number of records in `size` bytes, or the error naming where a partial record starts.
fn record_count(path: &Path, size: u64, kind: CifarKind) -> Result<usize, DataError> {
    let record = kind.record_len() as u64;
    if size == 0 || !size.is_multiple_of(record) {
        return Err(DataError::RecordSize {
            path: path.into(),
            size,
            record,
            format: kind.name(),
            offset: size / record * record,
        });
    }
    Ok((size / record) as usize)
}

/// The class label of every record of one binary file, read without its pixels (a plain file
/// is read one label byte per record; a gzip-compressed one is inflated).
///
/// # Errors
/// As [`read_file`]: the file's size and every label are checked.
pub fn read_labels(path: &Path, kind: CifarKind) -> Result<Vec<u16>, DataError> {
    use std::io::{Read, Seek, SeekFrom};
    let record = kind.record_len();
    let label_at = record - IMAGE - 1;
    let io = |e| DataError::io(path, e);
    let mut file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut magic = [0u8; 2];
    let gzip = size >= 2 && file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    let label_bytes: Vec<u8> = if gzip {
        let bytes = read_maybe_gz(path)?;
        let n = record_count(path, bytes.len() as u64, kind)?;
        (0..n).map(|i| bytes[i * record + label_at]).collect()
    } else {
        let n = record_count(path, size, kind)?;
        let mut labels = vec![0u8; n];
        for (i, label) in labels.iter_mut().enumerate() {
            file.seek(SeekFrom::Start((i * record + label_at) as u64))
                .map_err(io)?;
            file.read_exact(std::slice::from_mut(label)).map_err(io)?;
        }
        labels
    };
    checked_labels(path, &label_bytes, label_at, record, kind.num_classes())
}

/// Reads one binary file.
pub fn read_file(path: &Path, kind: CifarKind) -> Result<ImageSet, DataError> {
    let bytes = read_maybe_gz(path)?;
    let record = kind.record_len();
    let n = record_count(path, bytes.len() as u64, kind)?;
    let label_at = record - IMAGE - 1; // the fine label for CIFAR-100
    if kind == CifarKind::Cifar100 {
        let coarse: Vec<u8> = (0..n).map(|i| bytes[i * record]).collect();
        checked_labels(path, &coarse, 0, record, 20)?;
    }
    let label_bytes: Vec<u8> = (0..n).map(|i| bytes[i * record + label_at]).collect();
    let labels = checked_labels(path, &label_bytes, label_at, record, kind.num_classes())?;
    let mut pixels = Vec::with_capacity(n * IMAGE);
    for i in 0..n {
        let start = i * record + record - IMAGE;
        pixels.extend_from_slice(&bytes[start..start + IMAGE]);
    }
    Ok(ImageSet {
        pixels,
        labels,
        num_classes: kind.num_classes(),
        channels: 3,
        height: 32,
        width: 32,
        class_names: ImageSet::numbered_classes(kind.num_classes()),
    })
}

/// Reads several files into one set, in order.
pub fn read_files(paths: &[PathBuf], kind: CifarKind) -> Result<ImageSet, DataError> {
    let mut sets = paths.iter().map(|p| read_file(p, kind));
    let mut all = sets.next().unwrap_or_else(|| {
        Err(DataError::Missing {
            path: PathBuf::new(),
            message: "no CIFAR file given".into(),
        })
    })?;
    for set in sets {
        let set = set?;
        all.pixels.extend(set.pixels);
        all.labels.extend(set.labels);
    }
    Ok(all)
}

/// The files of `split` under `root`.
pub fn split_files(root: &Path, split: Split, kind: CifarKind) -> Result<Vec<PathBuf>, DataError> {
    let names: Vec<String> = match (kind, split) {
        (CifarKind::Cifar10, Split::Train) => {
            (1..=5).map(|i| format!("data_batch_{i}.bin")).collect()
        }
        (CifarKind::Cifar10, Split::Test) => vec!["test_batch.bin".into()],
        (CifarKind::Cifar100, Split::Train) => vec!["train.bin".into()],
        (CifarKind::Cifar100, Split::Test) => vec!["test.bin".into()],
    };
    let subdir = match kind {
        CifarKind::Cifar10 => "cifar-10-batches-bin",
        CifarKind::Cifar100 => "cifar-100-binary",
    };
    for dir in [root.to_path_buf(), root.join(subdir)] {
        let paths: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
        if paths.iter().all(|p| p.is_file()) {
            return Ok(paths);
        }
    }
    Err(DataError::Missing {
        path: root.into(),
        message: format!(
            "no {} {split} files ({}) here or in {subdir}/",
            kind.name(),
            names.join(", ")
        ),
    })
}

//! IDX files: MNIST and Fashion-MNIST (Y. LeCun's format), raw or `.gz`.
//!
//! Layout: a big-endian magic `00 00 08 D` (unsigned bytes, `D` dimensions), `D` big-endian
//! 32-bit sizes, then the data row-major. Images are `idx3` (`N × rows × cols`), labels `idx1`
//! (`N`). A split is a pair of files named `train-…` or `t10k-…`, as the distributions ship
//! them.

use std::path::{Path, PathBuf};

use super::base::{ImageSet, Split};
use super::error::DataError;
use super::read::read_maybe_gz;

/// Classes of MNIST and Fashion-MNIST.
pub const IDX_CLASSES: usize = 10;

/// A decoded IDX array of unsigned bytes.
#[derive(Debug)]
pub struct IdxArray {
    /// Sizes of each dimension.
    pub dims: Vec<usize>,
    /// Byte offset of the data in the (decompressed) file.
    pub header_len: usize,
    /// The data, row-major.
    pub data: Vec<u8>,
}

/// Reads an IDX file holding unsigned bytes with `expected_dims` dimensions.
pub fn read_idx(path: &Path, expected_dims: usize) -> Result<IdxArray, DataError> {
    let bytes = read_maybe_gz(path)?;
    let expected =
        format!("00 00 08 {expected_dims:02x} (IDX, unsigned bytes, {expected_dims} dimensions)");
    if bytes.len() < 4 {
        return Err(DataError::Truncated {
            path: path.into(),
            offset: bytes.len() as u64,
            expected: 4,
            found: bytes.len() as u64,
        });
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if magic != 0x0000_0800 | expected_dims as u32 {
        return Err(DataError::BadMagic {
            path: path.into(),
            found: magic,
            expected,
        });
    }
    let header_len = 4 + 4 * expected_dims;
    if bytes.len() < header_len {
        return Err(DataError::Truncated {
            path: path.into(),
            offset: bytes.len() as u64,
            expected: header_len as u64,
            found: bytes.len() as u64,
        });
    }
    let dims: Vec<usize> = (0..expected_dims)
        .map(|d| {
            let at = 4 + 4 * d;
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize
        })
        .collect();
    if expected_dims == 3 {
        zero_sized_images(path, dims[1], dims[2])?;
    }
    // Three u32 dimensions can multiply past u64: such a header promises more than any file.
    let total = dims
        .iter()
        .try_fold(1u64, |product, &d| product.checked_mul(d as u64))
        .and_then(|data| data.checked_add(header_len as u64))
        .unwrap_or(u64::MAX);
    let found = bytes.len() as u64;
    if found < total {
        return Err(DataError::Truncated {
            path: path.into(),
            offset: found,
            expected: total,
            found,
        });
    }
    if found > total {
        return Err(DataError::Oversized {
            path: path.into(),
            offset: total,
            expected: total,
            found,
        });
    }
    let data = bytes[header_len..].to_vec();
    Ok(IdxArray {
        dims,
        header_len,
        data,
    })
}

/// The error for an image file whose header (bytes 8 to 15) gives its images 0 rows or 0
/// columns: such a file holds no pixel to train on, whatever its image count says.
pub(crate) fn zero_sized_images(path: &Path, rows: usize, cols: usize) -> Result<(), DataError> {
    if rows == 0 || cols == 0 {
        return Err(DataError::Decode {
            path: path.into(),
            message: format!(
                "the header (bytes 8 to 15) gives {rows}x{cols} images: rows and columns must \
                 be at least 1"
            ),
        });
    }
    Ok(())
}

/// Reads an image file and its label file into one set; every label must be below
/// `num_classes`.
pub fn read_pair(images: &Path, labels: &Path, num_classes: usize) -> Result<ImageSet, DataError> {
    let image_array = read_idx(images, 3)?;
    let label_array = read_idx(labels, 1)?;
    let (n_images, n_labels) = (image_array.dims[0], label_array.dims[0]);
    if n_images != n_labels {
        return Err(DataError::CountMismatch {
            images: images.into(),
            labels: labels.into(),
            n_images: n_images as u64,
            n_labels: n_labels as u64,
        });
    }
    let labels_u16 = checked_labels(
        labels,
        &label_array.data,
        label_array.header_len,
        1,
        num_classes,
    )?;
    Ok(ImageSet {
        pixels: image_array.data,
        labels: labels_u16,
        num_classes,
        channels: 1,
        height: image_array.dims[1],
        width: image_array.dims[2],
        class_names: ImageSet::numbered_classes(num_classes),
    })
}

/// Converts label bytes found every `stride` bytes from `first_offset` on, checking the range.
pub(crate) fn checked_labels(
    path: &Path,
    bytes: &[u8],
    first_offset: usize,
    stride: usize,
    num_classes: usize,
) -> Result<Vec<u16>, DataError> {
    bytes
        .iter()
        .enumerate()
        .map(|(i, &label)| {
            if (label as usize) < num_classes {
                Ok(label as u16)
            } else {
                Err(DataError::LabelOutOfRange {
                    path: path.into(),
                    offset: (first_offset + i * stride) as u64,
                    label: label as u32,
                    num_classes,
                })
            }
        })
        .collect()
}

/// The image and label files of `split` under `root`: `train-images-idx3-ubyte[.gz]` and
/// `train-labels-idx1-ubyte[.gz]`, or `t10k-…` for the test split (`-images.idx3-ubyte`, with a
/// dot, is accepted too).
pub fn split_files(root: &Path, split: Split) -> Result<(PathBuf, PathBuf), DataError> {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let find = |kind: &str, dims: &str| -> Result<PathBuf, DataError> {
        for separator in ["-", "."] {
            for suffix in ["", ".gz"] {
                let candidate =
                    root.join(format!("{prefix}-{kind}{separator}{dims}-ubyte{suffix}"));
                if candidate.is_file() {
                    return Ok(candidate);
                }
            }
        }
        Err(DataError::Missing {
            path: root.into(),
            message: format!("no {prefix}-{kind}-{dims}-ubyte[.gz] file for the {split} split"),
        })
    };
    Ok((find("images", "idx3")?, find("labels", "idx1")?))
}

/// The label file beside an image file (`…-images-idx3-ubyte…` → `…-labels-idx1-ubyte…`).
pub fn labels_beside(images: &Path) -> Result<PathBuf, DataError> {
    let name = images
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    for (from, to) in [
        ("images-idx3", "labels-idx1"),
        ("images.idx3", "labels.idx1"),
    ] {
        if name.contains(from) {
            let candidate = images.with_file_name(name.replace(from, to));
            if candidate.is_file() {
                return Ok(candidate);
            }
            return Err(DataError::Missing {
                path: candidate,
                message: format!("label file for {} not found", images.display()),
            });
        }
    }
    Err(DataError::Missing {
        path: images.into(),
        message: "not an IDX image file name (expected `…-images-idx3-ubyte[.gz]`)".into(),
    })
}

//! Errors of the dataset readers. Every variant names the file; those about bytes name the
//! offset (into the decompressed stream for `.gz` files).

use std::path::PathBuf;

/// Why a dataset could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file ended before the header said it would.
    #[error("{path}: truncated at byte {offset}: expected {expected} bytes in all, found {found}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Where the data stops.
        offset: u64,
        /// Bytes the header promises.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// The file goes on after the end its header announces.
    #[error(
        "{path}: {found} bytes, but the header announces {expected}: unexpected data from byte {offset}"
    )]
    Oversized {
        /// The file.
        path: PathBuf,
        /// Where the unexpected data starts.
        offset: u64,
        /// Bytes the header announces.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// The file does not start with the magic number of the expected format.
    #[error("{path}: bad magic number 0x{found:08x} at byte 0 (expected {expected})")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The four bytes found.
        found: u32,
        /// What was expected, in words.
        expected: String,
    },
    /// A fixed-record file whose size is not a whole number of records.
    #[error(
        "{path}: size {size} bytes is not a multiple of the {record}-byte {format} record \
         (a partial record starts at byte {offset})"
    )]
    RecordSize {
        /// The file.
        path: PathBuf,
        /// File size in bytes.
        size: u64,
        /// Record size in bytes.
        record: u64,
        /// Format name.
        format: &'static str,
        /// Where the partial record starts.
        offset: u64,
    },
    /// A label not below the number of classes.
    #[error(
        "{path}: label {label} at byte {offset} is out of range (the dataset has {num_classes} classes)"
    )]
    LabelOutOfRange {
        /// The file.
        path: PathBuf,
        /// Where the label byte is.
        offset: u64,
        /// The label found.
        label: u32,
        /// Number of classes.
        num_classes: usize,
    },
    /// An image file and its label file disagree on the count.
    #[error("{images} holds {n_images} images but {labels} holds {n_labels} labels")]
    CountMismatch {
        /// The image file.
        images: PathBuf,
        /// The label file.
        labels: PathBuf,
        /// Images in the image file.
        n_images: u64,
        /// Labels in the label file.
        n_labels: u64,
    },
    /// An image in a folder dataset could not be decoded.
    #[error("{path}: cannot decode image: {message}")]
    Decode {
        /// The image.
        path: PathBuf,
        /// The decoder's message.
        message: String,
    },
    /// An image in a folder dataset has another size than the first one.
    #[error("{path}: image is {found_w}x{found_h}, but the dataset's images are {width}x{height}")]
    SizeMismatch {
        /// The image.
        path: PathBuf,
        /// Its width.
        found_w: u32,
        /// Its height.
        found_h: u32,
        /// The dataset's width.
        width: u32,
        /// The dataset's height.
        height: u32,
    },
    /// A class folder of a split that the training split lacks: labelled by the training
    /// split's class list, its images would have no class.
    #[error(
        "{path}: class folder `{}` is not a class of the training split {train} (its classes: \
         {known}); remove or rename it",
        path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
    )]
    UnknownClass {
        /// The class folder.
        path: PathBuf,
        /// The training split's folder.
        train: PathBuf,
        /// The training split's classes, comma-separated.
        known: String,
    },
    /// A split that, with the run's settings, leaves the run nothing to do: no training step in
    /// an epoch, or no image to evaluate. The message names the config keys involved.
    #[error("{path}: {message}")]
    NothingToDo {
        /// The split's file or folder.
        path: PathBuf,
        /// What is missing, with the keys and numbers involved.
        message: String,
    },
    /// A path that should hold a dataset does not.
    #[error("{path}: {message}")]
    Missing {
        /// Where we looked.
        path: PathBuf,
        /// What was missing.
        message: String,
    },
}

impl DataError {
    /// Wraps an I/O error with the file it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}

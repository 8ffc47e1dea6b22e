//! Datasets: readers for IDX, CIFAR binary and image folders, their statistics, and the
//! augmented batch stream the runtime trains on.
//!
//! `base.rs` holds [`ImageSet`] and the format names, `error.rs` the errors (every one names
//! its file, and the byte offset where it has one), `source.rs` where a dataset lives,
//! `augment.rs`, `rotation.rs` and `loader.rs` the path from bytes to batches, `preset.rs` the
//! standard datasets' statistics and augmentation.

mod augment;
mod base;
pub mod cifar;
mod error;
pub mod folder;
mod geometry;
pub mod idx;
mod loader;
mod preset;
mod read;
mod rotation;
mod source;
mod stats;

pub use augment::{Augment, Draw, PadMode, Transform};
pub use base::{DataFormat, ImageSet, Split};
pub use error::DataError;
pub use geometry::Geometry;
pub use loader::{
    Batch, BatchStream, StreamSpec, batches_per_epoch, build_batch, derive_seed, epoch_order, mix,
};
pub use preset::{Normalisation, Preset};
pub use rotation::{Interpolation, Rotation, rotate};
pub use source::{DATA_ENV, DEBIAN_FASHION_MNIST, DataSource, default_root, load_path};
pub use stats::{Stats, stats};

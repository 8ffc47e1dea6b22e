//! Networks from the PyTorch world: `.pth` checkpoints read into zoo networks without Python.
//!
//! The published CIFAR teachers (RepDistiller's, mdistiller's) are PyTorch checkpoints.
//! [`import_pytorch`] reads one with burn's own PyTorch reader, finds the state dict inside the
//! usual wrappers, checks every key and shape against the zoo architecture and loads it;
//! [`write_imported`] stores the result as a kd checkpoint (`kd import`), with the input
//! preparation the user gave ([`write_imported_prepared`]). When a config names a
//! `.pth` file as a network's checkpoint, the plan runs [`check_pytorch`] and [`cache_path`],
//! and the run [`import_cached`] (once: a later run reuses the file); the `_prepared` variants
//! record the input preparation the config declares (`networks.<role>.trained_on`).

mod cache;
mod error;
mod pytorch;

pub use cache::{
    PYTORCH_EXTENSIONS, cache_path, cache_path_prepared, import_cached, import_cached_prepared,
    is_pytorch_checkpoint,
};
pub use error::{ImportError, KeyMismatch};
pub use pytorch::{
    IMPORTED_ROLE, ImportNotes, ImportOptions, Imported, StateDictMatch, check_pytorch,
    import_pytorch, import_pytorch_noted, write_imported, write_imported_prepared,
};

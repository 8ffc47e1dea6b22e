//! What a run leaves on disk to be continued or reused: the checkpoint file format
//! (`format.rs`: a header naming every network, then the blobs it indexes) and the training
//! state it carries (`state.rs`: loop position, epoch sums, history, best epoch), the input
//! preparation its networks were trained with (`preparation.rs`), and the check every load of
//! weights runs for NaN and infinity (`finite.rs`).
//!
//! Below the runtime and the PyTorch import, which both write checkpoints, and below the plan,
//! which reads headers to check a teacher without touching a tensor. It knows no network type:
//! blobs are bytes, networks are named by their zoo name.

mod finite;
mod format;
mod preparation;
mod state;

pub use finite::first_non_finite;
pub use format::{
    Blob, BlobEntry, CheckpointError, CheckpointHeader, FORMAT_VERSION, NetworkEntry, read,
    read_header, role_module_blob, split_reference, write,
};
pub use preparation::{
    InputPreparation, PreparationIssue, recordable_class_names, standard_class_names,
};
pub use state::{Accuracy, Best, EpochRecord, TrainState};

//! Errors of a training run. [`TrainError::is_user_error`] tells the CLI which ones the user can
//! fix (exit status 2) from failures of the run itself (exit status 1).

use std::path::PathBuf;

use crate::backend::BackendError;
use crate::checkpoint::CheckpointError;
use crate::data::DataError;
use crate::import::ImportError;
use crate::method::{MethodError, PartError};

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A fresh run would overwrite an earlier one.
    #[error(
        "{dir} already holds a run ({found} exists): pass --resume to continue it, or choose another run.name"
    )]
    RunExists {
        /// The run directory.
        dir: PathBuf,
        /// What shows it, relative to the directory (`checkpoints/last.kdc`, ...).
        found: String,
    },
    /// `--resume` without a checkpoint.
    #[error("nothing to resume: {dir}/checkpoints/last.kdc does not exist")]
    NothingToResume {
        /// The run directory.
        dir: PathBuf,
    },
    /// `--resume` with a configuration other than the one the run started with.
    #[error(
        "the configuration differs from the one {dir} was started with, at: {keys}; resume with the same configuration"
    )]
    ConfigChanged {
        /// The run directory.
        dir: PathBuf,
        /// The differing keys.
        keys: String,
    },
    /// Another process holds the run directory's lock (`.lock`): it is training or resuming
    /// the same run.
    #[error(
        "{dir} is in use by another kd run{holder} (its lock file {dir}/.lock is held); wait for \
         it to end, or choose another run.name"
    )]
    RunLocked {
        /// The run directory.
        dir: PathBuf,
        /// ` (process <pid>)` when the lock file names its holder, else empty.
        holder: String,
    },
    /// The run directory (`run.output_dir`/`run.name`) could not be created, locked or written
    /// when the run started.
    #[error("run.output_dir: cannot write the run directory {dir}: {path}: {source}")]
    RunDirUnwritable {
        /// The run directory.
        dir: PathBuf,
        /// The file or folder that could not be created or written.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file `--resume` needs from the run directory is missing or unreadable.
    #[error("cannot resume: {path}: {source}; the run directory is damaged, start the run afresh")]
    ResumeFileUnreadable {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A metrics file cannot be cut back to the length saved in the checkpoint `--resume`
    /// continues from (it is never padded).
    #[error(
        "cannot resume: {path} was {saved} bytes when the last checkpoint was saved, but \
         {detail}; restore the file or start the run afresh"
    )]
    MetricsDamaged {
        /// The metrics file.
        path: PathBuf,
        /// Its length saved in the checkpoint, in bytes.
        saved: u64,
        /// What is wrong with it now (missing, its length, a byte offset).
        detail: String,
    },
    /// A checkpoint could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A checkpoint does not fit the network it should load into.
    #[error("{path}: {message}")]
    CheckpointMismatch {
        /// The checkpoint.
        path: PathBuf,
        /// What does not fit.
        message: String,
    },
    /// A checkpoint holds weights that are NaN or infinite.
    #[error("{path}: {what} holds NaN or infinite values; the checkpoint cannot be loaded")]
    NonFiniteWeights {
        /// The checkpoint.
        path: PathBuf,
        /// The part (`role:student`), or the tensor and its role.
        what: String,
    },
    /// A checkpoint to resume from claims a loop position the run cannot be at.
    #[error("{path}: cannot resume from it: {message}")]
    ResumePosition {
        /// The checkpoint.
        path: PathBuf,
        /// What is impossible.
        message: String,
    },
    /// The dataset could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The device could not be opened.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A file of the run directory could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A loss term became NaN or infinite; the last checkpoint written is the last good one.
    #[error(
        "loss term `{term}` is {value} at {at}; stopped. The last good checkpoint is {last_good}"
    )]
    NonFinite {
        /// The term (`ce/student`, `kd/kl`, ...).
        term: String,
        /// Its value.
        value: f64,
        /// The step it happened at.
        at: RunPosition,
        /// Where the last good checkpoint is, or "none (no checkpoint was written yet)".
        last_good: String,
    },
    /// A method failed.
    #[error("method `{instance}`: {source}")]
    Method {
        /// The instance.
        instance: String,
        /// Its error.
        source: MethodError,
    },
    /// A module could not be saved or restored.
    #[error(transparent)]
    Part(#[from] PartError),
    /// A PyTorch checkpoint could not be imported.
    #[error(transparent)]
    Import(#[from] ImportError),
}

/// A step of a run, counted from 1 as progress lines and `metrics.jsonl`/`metrics.csv` count
/// (the training state counts epochs and batches from 0); shown as
/// `epoch 2/3, batch 5/7 (step 12)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunPosition {
    /// Epoch, from 1.
    pub epoch: usize,
    /// Epochs of the run.
    pub epochs: usize,
    /// Batch within the epoch, from 1.
    pub batch: usize,
    /// Batches per epoch.
    pub batches: usize,
    /// Step of the run, from 1.
    pub step: usize,
}

impl RunPosition {
    /// The position of a step from the loop's 0-based epoch, batch and steps taken before it.
    pub fn of_step(
        epoch: usize,
        epochs: usize,
        batch: usize,
        batches: usize,
        steps_before: usize,
    ) -> Self {
        RunPosition {
            epoch: epoch + 1,
            epochs,
            batch: batch + 1,
            batches,
            step: steps_before + 1,
        }
    }
}

impl std::fmt::Display for RunPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "epoch {}/{}, batch {}/{} (step {})",
            self.epoch, self.epochs, self.batch, self.batches, self.step
        )
    }
}

impl TrainError {
    /// Whether the user can fix it by changing the command, config or data.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            TrainError::RunExists { .. }
                | TrainError::NothingToResume { .. }
                | TrainError::ConfigChanged { .. }
                | TrainError::RunLocked { .. }
                | TrainError::RunDirUnwritable { .. }
                | TrainError::ResumeFileUnreadable { .. }
                | TrainError::MetricsDamaged { .. }
                | TrainError::Checkpoint(_)
                | TrainError::CheckpointMismatch { .. }
                | TrainError::NonFiniteWeights { .. }
                | TrainError::ResumePosition { .. }
                | TrainError::Data(_)
                | TrainError::Backend(_)
                | TrainError::Import(_)
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
        let path = path.into();
        move |source| TrainError::Io { path, source }
    }
}

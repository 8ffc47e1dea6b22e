//! A role's checkpoint, checked at plan time without building a tensor: it exists, holds the
//! role named, that network has the planned architecture, classes and channels (from the
//! header), and every blob passes its checksum.
//! A PyTorch file is checked from its keys and shapes (nothing is imported or allocated here), so
//! a key that does not fit is a plan error like any other; the run imports it once, when it builds
//! its roles, into `<run.output_dir>/imports/` (`import/cache.rs`), and uses the cached file as
//! any kd checkpoint.

use std::path::{Path, PathBuf};

use crate::checkpoint::{self, CheckpointError, CheckpointHeader};
use crate::config::{Issues, RunConfig, display_path};
use crate::import;
use crate::method::PlannedNetwork;

use super::roles::RoleUse;
use super::{DataPlan, PlanOptions};

/// Checks checkpoints for one plan, collecting problems and warnings.
pub(super) struct Checker<'p, 'i> {
    pub(super) config: &'p RunConfig,
    pub(super) options: PlanOptions,
    /// The run's data, when planned: a teacher prepared otherwise is worth a warning.
    pub(super) data: Option<&'p DataPlan>,
    pub(super) issues: &'p mut Issues<'i>,
    pub(super) warnings: &'p mut Vec<String>,
}

/// Where a role's weights come from.
#[derive(Default)]
pub(super) struct Start {
    /// The kd checkpoint file and the role inside it.
    pub(super) checkpoint: Option<(PathBuf, String)>,
    /// The PyTorch file that checkpoint is imported from when the run builds its roles.
    pub(super) imported_from: Option<PathBuf>,
}

impl Checker<'_, '_> {
    /// Where a role starts from; problems are recorded.
    pub(super) fn check(
        &mut self,
        role: &str,
        reference: Option<&Path>,
        uses: &RoleUse,
        planned: &PlannedNetwork,
    ) -> Start {
        let key = format!("networks.{role}.checkpoint");
        match reference {
            None => {
                for need in &uses.pretrained {
                    self.issues.push(
                        &key,
                        format!(
                            "role `{role}` must start from a checkpoint ({need} needs a trained \
                             network); set {key}"
                        ),
                    );
                }
                Start::default()
            }
            Some(reference) if import::is_pytorch_checkpoint(reference) => {
                match self.check_pytorch(&key, reference, planned) {
                    Some(cached) => Start {
                        checkpoint: Some((cached, import::IMPORTED_ROLE.to_string())),
                        imported_from: Some(reference.to_path_buf()),
                    },
                    None => Start::default(),
                }
            }
            Some(reference) => {
                let (path, inner) = checkpoint::split_reference(reference);
                match checkpoint::read_header(&path) {
                    Err(CheckpointError::Io { source, .. })
                        if self.options.allow_missing_checkpoints
                            && source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        self.warn_missing(&key, &path);
                    }
                    Err(e) => self.issues.push(&key, e.to_string()),
                    Ok(header) => match header_mismatch(&header, &path, &inner, planned) {
                        Some(message) => self.issues.push(&key, message),
                        // The header fits: the weights must be what it says too, so a damaged
                        // teacher stops the plan, not a run (or a suite) hours later. Reading
                        // the file verifies every blob's checksum; no tensor is built.
                        None => {
                            if let Err(e) = checkpoint::read(&path) {
                                self.issues.push(&key, e.to_string());
                            }
                            self.warn_other_preparation(&key, &path, &header);
                        }
                    },
                }
                Start {
                    checkpoint: Some((path, inner)),
                    imported_from: None,
                }
            }
        }
    }

    /// A PyTorch file: its keys and shapes checked against the planned network (architecture,
    /// classes, channels); the path of the kd checkpoint the run will import it into.
    fn check_pytorch(
        &mut self,
        key: &str,
        reference: &Path,
        planned: &PlannedNetwork,
    ) -> Option<PathBuf> {
        if self.options.allow_missing_checkpoints && !reference.exists() {
            self.warn_missing(key, reference);
            return None;
        }
        let dir = self.config.run.output_dir.join("imports");
        let options = import::ImportOptions {
            num_classes: Some(planned.spec.num_classes),
            in_channels: Some(planned.spec.in_channels),
            key: None,
        };
        let checked = import::check_pytorch(reference, &planned.arch_name, &options)
            .and_then(|_| import::cache_path(reference, &planned.arch_name, planned.spec, &dir));
        match checked {
            Ok(cached) => Some(cached),
            Err(e) => {
                self.issues.push(key, e.to_string());
                None
            }
        }
    }

    /// Warns when the checkpoint records an input preparation other than this run's: a
    /// teacher fed images normalised otherwise than it was trained on sees shifted inputs.
    fn warn_other_preparation(&mut self, key: &str, path: &Path, header: &CheckpointHeader) {
        let (Some(recorded), Some(data)) = (&header.preparation, self.data) else {
            return;
        };
        let differs = recorded.mean != data.mean
            || recorded.std != data.std
            || recorded.input_size != data.input_size;
        if differs {
            self.warnings.push(format!(
                "{key}: {} was trained on inputs prepared as {}, but this run feeds it mean \
                 {:?}, std {:?}, input {}x{}",
                display_path(path),
                recorded.describe(),
                data.mean,
                data.std,
                data.input_size,
                data.input_size
            ));
        }
    }

    fn warn_missing(&mut self, key: &str, path: &Path) {
        self.warnings.push(format!(
            "{key}: {} does not exist yet; assumed to be produced before training",
            display_path(path)
        ));
    }
}

/// Why a checkpoint's entry for `inner` does not fit the planned network, if it does not.
fn header_mismatch(
    header: &CheckpointHeader,
    path: &Path,
    inner: &str,
    planned: &PlannedNetwork,
) -> Option<String> {
    let (num_classes, in_channels) = (planned.spec.num_classes, planned.spec.in_channels);
    let Some(stored) = header.network(inner) else {
        let have: Vec<&str> = header.networks.iter().map(|n| n.role.as_str()).collect();
        return Some(format!(
            "{} holds no role `{inner}` (it holds {})",
            display_path(path),
            have.join(", ")
        ));
    };
    if stored.arch != planned.arch_name {
        return Some(format!(
            "{} holds a {} for role `{inner}`, but networks.{}.arch is {}",
            display_path(path),
            stored.arch,
            planned.role,
            planned.arch_name
        ));
    }
    if (stored.num_classes, stored.in_channels) != (num_classes, in_channels) {
        return Some(format!(
            "{} holds a network for {} classes and {} channel(s); the data has {num_classes} and \
             {in_channels}",
            display_path(path),
            stored.num_classes,
            stored.in_channels
        ));
    }
    None
}

//! A role's checkpoint, checked at plan time without building a tensor: it exists, holds the
//! role named, that network has the planned architecture, classes and channels (from the
//! header), and every blob passes its checksum.
//! A PyTorch file is checked from its keys and shapes (nothing is imported or allocated here), so
//! a key that does not fit is a plan error like any other; the run imports it once, when it builds
//! its roles, into `<run.output_dir>/imports/` (`import/cache.rs`), and uses the cached file as
//! any kd checkpoint. The preparation the weights were trained with is compared with the run's
//! (`preparation.rs`).

use std::path::{Path, PathBuf};

use crate::checkpoint::{self, CheckpointError, CheckpointHeader, InputPreparation};
use crate::config::{Issues, RunConfig, display_path};
use crate::import;
use crate::method::PlannedNetwork;

use super::preparation::Recorded;
use super::roles::{RoleUse, table_key};
use super::{DataPlan, PlanOptions};

/// Checks checkpoints for one plan, collecting problems and warnings.
pub(super) struct Checker<'p, 'i> {
    pub(super) config: &'p RunConfig,
    pub(super) options: PlanOptions,
    /// The run's data, when planned: weights trained on inputs prepared otherwise are refused.
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
    /// The preparation `networks.<role>.trained_on` declares, recorded in that import.
    pub(super) preparation: Option<InputPreparation>,
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
                // The keys about a checkpoint's preparation apply only to a role loaded from one.
                let network = &self.config.networks[&planned.role];
                let role = table_key(role);
                let about_checkpoint = [
                    (network.trained_on.is_some(), "trained_on", "declares what"),
                    (
                        network.allow_other_preparation,
                        "allow_other_preparation",
                        "allows feeding inputs prepared otherwise than",
                    ),
                ];
                for (_, name, what) in about_checkpoint.iter().filter(|(set, ..)| *set) {
                    self.issues.push(
                        &format!("networks.{role}.{name}"),
                        format!(
                            "{what} networks.{role}.checkpoint was trained on, but the role has \
                             no checkpoint (the key applies only to a role loaded from one); \
                             remove it or set the checkpoint"
                        ),
                    );
                }
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
                match self.check_pytorch(&key, reference, uses, planned) {
                    Some((cached, preparation)) => Start {
                        checkpoint: Some((cached, import::IMPORTED_ROLE.to_string())),
                        imported_from: Some(reference.to_path_buf()),
                        preparation,
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
                        self.check_preparation(&path, Recorded::NotYet, uses, planned);
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
                            let recorded = header
                                .preparation
                                .as_ref()
                                .map_or(Recorded::Nothing, Recorded::Record);
                            self.check_preparation(&path, recorded, uses, planned);
                        }
                    },
                }
                Start {
                    checkpoint: Some((path, inner)),
                    imported_from: None,
                    preparation: None,
                }
            }
        }
    }

    /// A PyTorch file: its keys and shapes checked against the planned network (architecture,
    /// classes, channels), its declared preparation against the run's; the path of the kd
    /// checkpoint the run will import it into, and the preparation that import records.
    fn check_pytorch(
        &mut self,
        key: &str,
        reference: &Path,
        uses: &RoleUse,
        planned: &PlannedNetwork,
    ) -> Option<(PathBuf, Option<InputPreparation>)> {
        if self.options.allow_missing_checkpoints && !reference.exists() {
            self.warn_missing(key, reference);
            self.check_preparation(reference, Recorded::Nothing, uses, planned);
            return None;
        }
        let dir = self.config.run.output_dir.join("imports");
        let options = import::ImportOptions {
            num_classes: Some(planned.spec.num_classes),
            in_channels: Some(planned.spec.in_channels),
            key: None,
        };
        if let Err(e) = import::check_pytorch(reference, &planned.arch_name, &options) {
            self.issues.push(key, e.to_string());
            return None;
        }
        let preparation = self.check_preparation(reference, Recorded::Nothing, uses, planned);
        let (arch, spec) = (&planned.arch_name, planned.spec);
        match import::cache_path_prepared(reference, arch, spec, &dir, preparation.as_ref()) {
            Ok(cached) => Some((cached, preparation)),
            Err(e) => {
                self.issues.push(key, e.to_string());
                None
            }
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

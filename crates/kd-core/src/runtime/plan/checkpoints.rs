//! A role's checkpoint, checked at plan time from the file's header alone: it exists, holds the
//! role named, and that network has the planned architecture, classes and channels. A PyTorch
//! file is imported once into `<run.output_dir>/imports/` (`import/cache.rs`), so a key that
//! does not fit is a plan error like any other; the cached file is then used as any kd
//! checkpoint.

use std::path::{Path, PathBuf};

use crate::checkpoint::{self, CheckpointError, CheckpointHeader};
use crate::config::{Issues, RunConfig, display_path};
use crate::import;
use crate::method::PlannedNetwork;

use super::PlanOptions;
use super::roles::RoleUse;

/// Checks checkpoints for one plan, collecting problems and warnings.
pub(super) struct Checker<'p, 'i> {
    pub(super) config: &'p RunConfig,
    pub(super) options: PlanOptions,
    pub(super) issues: &'p mut Issues<'i>,
    pub(super) warnings: &'p mut Vec<String>,
}

impl Checker<'_, '_> {
    /// The checkpoint file and inner role a role starts from, if any; problems are recorded.
    pub(super) fn check(
        &mut self,
        role: &str,
        reference: Option<&Path>,
        uses: &RoleUse,
        planned: &PlannedNetwork,
    ) -> Option<(PathBuf, String)> {
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
                None
            }
            Some(reference) if import::is_pytorch_checkpoint(reference) => {
                self.import_pytorch(&key, reference, planned)
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
                    Ok(header) => {
                        if let Some(message) = header_mismatch(&header, &path, &inner, planned) {
                            self.issues.push(&key, message);
                        }
                    }
                }
                Some((path, inner))
            }
        }
    }

    /// A PyTorch file: imported once into the run root's cache, then used as any kd checkpoint
    /// (the import checks architecture, classes and channels).
    fn import_pytorch(
        &mut self,
        key: &str,
        reference: &Path,
        planned: &PlannedNetwork,
    ) -> Option<(PathBuf, String)> {
        if self.options.allow_missing_checkpoints && !reference.exists() {
            self.warn_missing(key, reference);
            return None;
        }
        let dir = self.config.run.output_dir.join("imports");
        let device = burn::tensor::Device::flex();
        match import::cached_import(reference, &planned.arch_name, planned.spec, &dir, &device) {
            Ok(cached) => Some((cached, import::IMPORTED_ROLE.to_string())),
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

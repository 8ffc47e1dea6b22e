//! A run's checkpoints: every part (role networks as `role:<name>`, method modules as
//! `part:<name>`) with its optimiser state and the training state, written in the format of
//! [`crate::checkpoint`] and restored from it; and one role's weights loaded from another run's
//! checkpoint.

use std::collections::HashMap;
use std::path::Path;

use super::error::TrainError;
use super::plan::MethodInstance;
use crate::checkpoint::{self, CheckpointHeader, NetworkEntry, TrainState};
use crate::method::{Part, Roles};

/// Every part of the run by checkpoint name: roles as `role:<name>`, method modules as
/// `part:<name>`.
pub(super) fn parts_mut<'a>(
    roles: &'a mut Roles,
    methods: &'a mut [MethodInstance],
) -> Vec<(String, bool, &'a mut dyn Part)> {
    let mut parts: Vec<(String, bool, &'a mut dyn Part)> = roles
        .iter_mut()
        .map(|r| {
            let trained = r.trained_in.is_some();
            (
                format!("role:{}", r.name),
                trained,
                &mut r.net as &mut dyn Part,
            )
        })
        .collect();
    for m in methods.iter_mut() {
        for part in m.method.parts() {
            let trained = part.is_trained();
            parts.push((format!("part:{}", part.name()), trained, part));
        }
    }
    parts
}

pub(super) fn save_checkpoint(
    path: &Path,
    plan_name: &str,
    roles: &mut Roles,
    methods: &mut [MethodInstance],
    state: &TrainState,
) -> Result<(), TrainError> {
    // Finite losses can still send non-finite gradients into the weights; never let such weights
    // replace the last good checkpoint.
    for (name, _, part) in parts_mut(roles, methods) {
        if !part.is_finite() {
            return Err(TrainError::NonFinite {
                term: format!("weights of {name}"),
                value: f64::NAN,
                epoch: state.epoch,
                batch: state.next_batch.saturating_sub(1),
                step: state.global_step,
                last_good: if path.is_file() {
                    path.display().to_string()
                } else {
                    "none (no checkpoint was written yet)".into()
                },
            });
        }
    }
    let networks = roles
        .iter()
        .map(|r| NetworkEntry {
            role: r.name.clone(),
            arch: r.arch_name.clone(),
            num_classes: r.spec.num_classes,
            in_channels: r.spec.in_channels,
        })
        .collect();
    let mut blobs = Vec::new();
    for (name, trained, part) in parts_mut(roles, methods) {
        blobs.push((format!("{name}/module"), part.module_bytes()?));
        if trained {
            blobs.push((format!("{name}/optimizer"), part.optimizer_bytes()?));
        }
    }
    let header = CheckpointHeader {
        format: checkpoint::FORMAT_VERSION,
        kd_version: env!("CARGO_PKG_VERSION").into(),
        run: plan_name.into(),
        networks,
        state: state.clone(),
        blobs: Vec::new(),
    };
    checkpoint::write(path, header, blobs)?;
    Ok(())
}

pub(super) fn restore_checkpoint(
    path: &Path,
    roles: &mut Roles,
    methods: &mut [MethodInstance],
) -> Result<TrainState, TrainError> {
    let (header, blobs) = checkpoint::read(path)?;
    let mut blobs: HashMap<String, Vec<u8>> = blobs.into_iter().collect();
    for (name, _, part) in parts_mut(roles, methods) {
        let module = blobs.remove(&format!("{name}/module")).ok_or_else(|| {
            TrainError::CheckpointMismatch {
                path: path.into(),
                message: format!("holds no `{name}`; was it written by another configuration?"),
            }
        })?;
        let optimizer = blobs.remove(&format!("{name}/optimizer"));
        part.restore(module, optimizer)
            .map_err(|e| TrainError::CheckpointMismatch {
                path: path.into(),
                message: e.to_string(),
            })?;
    }
    Ok(header.state)
}

/// Loads the network stored for `inner` in a checkpoint file into a role's part.
pub(super) fn load_role_weights(
    part: &mut dyn Part,
    path: &Path,
    inner: &str,
) -> Result<(), TrainError> {
    let (_, blobs) = checkpoint::read(path)?;
    let name = checkpoint::role_module_blob(inner);
    let bytes = blobs
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| b)
        .ok_or_else(|| TrainError::CheckpointMismatch {
            path: path.into(),
            message: format!("holds no weights for role `{inner}`"),
        })?;
    part.restore(bytes, None)
        .map_err(|e| TrainError::CheckpointMismatch {
            path: path.into(),
            message: e.to_string(),
        })
}

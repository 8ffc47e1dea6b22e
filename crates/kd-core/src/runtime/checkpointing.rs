//! A run's checkpoints: every part (role networks as `role:<name>`, method modules as
//! `part:<name>`) with its optimiser state and the training state, written in the format of
//! [`crate::checkpoint`] and restored from it; and one role's weights loaded from another run's
//! checkpoint.
//!
//! Every load is checked before the run relies on it: the file's checksums (by
//! [`checkpoint::read`]), every weight finite (a NaN or infinity names the part, or the tensor
//! of a role's network), and, when resuming, a loop position the run can reach
//! ([`check_position`]): a state claiming batch 1000 of a 32-batch epoch would otherwise skip
//! the rest of the epoch silently. Only a checkpoint that passed [`checkpoint::read`] is ever
//! called the last good one.

use std::collections::HashMap;
use std::path::Path;

use super::error::{RunPosition, TrainError};
use super::plan::MethodInstance;
use crate::checkpoint::{self, CheckpointHeader, InputPreparation, NetworkEntry, TrainState};
use crate::data::{DataFormat, Transform};
use crate::method::{Part, Roles, Trainable};
use crate::zoo::Network;

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

/// The input preparation a run records in its checkpoints: the format, the geometry and
/// normalisation of its `transform` (the plan's `data.input_size`, `data.mean`, `data.std`),
/// and its training split's class names where they are more than numbers
/// ([`checkpoint::recordable_class_names`]).
pub(super) fn input_preparation(
    format: DataFormat,
    transform: &Transform,
    class_names: &[String],
) -> InputPreparation {
    InputPreparation {
        format: Some(format.name().to_string()),
        channels: transform.channels,
        image_size: [transform.height, transform.width],
        input_size: transform.size,
        mean: transform.mean.clone(),
        std: transform.std.clone(),
        class_names: checkpoint::recordable_class_names(format.name(), class_names),
    }
}

/// Writes every part of the run, its training state and the input `preparation` its networks
/// are trained with to `path`.
///
/// # Errors
/// [`TrainError::NonFinite`] when a part holds NaN or infinity (nothing is written: the last
/// good checkpoint stays), [`TrainError::Checkpoint`] when the file cannot be written.
pub(super) fn save_checkpoint(
    path: &Path,
    plan_name: &str,
    roles: &mut Roles,
    methods: &mut [MethodInstance],
    state: &TrainState,
    preparation: InputPreparation,
    last_step: RunPosition,
) -> Result<(), TrainError> {
    // Finite losses can still send non-finite gradients into the weights; never let such weights
    // replace the last good checkpoint.
    for (name, _, part) in parts_mut(roles, methods) {
        if !part.is_finite() {
            return Err(TrainError::NonFinite {
                term: format!("weights of {name}"),
                value: f64::NAN,
                at: last_step,
                last_good: last_good(path),
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
        preparation: Some(preparation),
    };
    checkpoint::write(path, header, blobs)?;
    Ok(())
}

/// How an error names the checkpoint at `path` as the last good one: only a file that reads
/// back whole, checksums verified, is called good.
fn last_good(path: &Path) -> String {
    if !path.exists() {
        return "none (no checkpoint was written yet)".into();
    }
    match checkpoint::read(path) {
        Ok(_) => path.display().to_string(),
        Err(e) => format!(
            "none ({} exists but fails verification: {e})",
            path.display()
        ),
    }
}

/// The epochs of the run a checkpoint is resumed into: what a training state's position must
/// fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct EpochShape {
    /// Epochs of the run.
    pub(super) epochs: usize,
    /// Batches per epoch.
    pub(super) batches: usize,
    /// Images per batch (the last may have fewer).
    pub(super) batch_size: usize,
    /// Training images per epoch.
    pub(super) images: usize,
}

impl EpochShape {
    /// Images in the first `batches` batches of an epoch.
    fn images_before(&self, batches: usize) -> Option<usize> {
        batches
            .checked_mul(self.batch_size)
            .map(|n| n.min(self.images))
    }
}

/// Restores every part of a run and returns the training state from the checkpoint at
/// `path`, for a run of `shape`'s epochs. A state written before epoch means were weighted by
/// images (no `epoch_images`) is brought to the new form: every batch before `next_batch` is a
/// full one, so its sums scale by the batch size exactly.
///
/// # Errors
/// [`TrainError::Checkpoint`] for an unreadable or damaged file,
/// [`TrainError::ResumePosition`] for a loop position the run cannot be at,
/// [`TrainError::CheckpointMismatch`] for a part the file lacks or does not fit, and
/// [`TrainError::NonFiniteWeights`] for a part holding NaN or infinity.
pub(super) fn restore_checkpoint(
    path: &Path,
    roles: &mut Roles,
    methods: &mut [MethodInstance],
    shape: &EpochShape,
) -> Result<TrainState, TrainError> {
    let (mut header, blobs) = checkpoint::read(path)?;
    check_position(&header.state, shape).map_err(|message| TrainError::ResumePosition {
        path: path.into(),
        message,
    })?;
    for role in roles.iter() {
        let fits = header.network(&role.name).is_some_and(|n| {
            (n.arch.as_str(), n.num_classes, n.in_channels)
                == (
                    role.arch_name.as_str(),
                    role.spec.num_classes,
                    role.spec.in_channels,
                )
        });
        if !fits {
            return Err(TrainError::CheckpointMismatch {
                path: path.into(),
                message: format!(
                    "its header does not describe role `{}` as this run builds it ({}, {} classes, \
                     {} channel(s)); was it written by another configuration?",
                    role.name, role.arch_name, role.spec.num_classes, role.spec.in_channels
                ),
            });
        }
    }
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
        if !part.is_finite() {
            return Err(TrainError::NonFiniteWeights {
                path: path.into(),
                what: format!("`{name}`"),
            });
        }
    }
    let state = &mut header.state;
    if state.epoch_images == 0 && state.epoch_batches > 0 {
        state.epoch_images = shape.images_before(state.epoch_batches).unwrap_or(0);
        for sum in state.epoch_sums.values_mut() {
            *sum *= shape.batch_size as f64;
        }
    }
    Ok(header.state)
}

/// Whether a training state is a position a run of `epochs` epochs of `batches` batches can
/// stand at, as the trainer writes it: `epoch` at most `epochs` (equal only between epochs),
/// `next_batch` at most `batches` and equal to the epoch's batch count, `global_step` the
/// batches of the epochs before plus `next_batch`, one history record per finished epoch and
/// a best epoch among them. The error says what is impossible.
pub(super) fn check_position(state: &TrainState, shape: &EpochShape) -> Result<(), String> {
    let EpochShape {
        epochs, batches, ..
    } = *shape;
    let TrainState {
        epoch, next_batch, ..
    } = *state;
    if epoch > epochs || (epoch == epochs && next_batch > 0) {
        return Err(format!(
            "its training state stands at epoch {epoch}, batch {next_batch} (from 0), past the \
             end of a run of {epochs} epoch(s)"
        ));
    }
    if next_batch > batches {
        return Err(format!(
            "its training state stands at batch {next_batch} (from 0) of epoch {epoch}, but an \
             epoch has {batches} batches"
        ));
    }
    if state.epoch_batches != next_batch {
        return Err(format!(
            "its training state counts {} batch(es) trained in epoch {epoch} but stands at \
             batch {next_batch}",
            state.epoch_batches
        ));
    }
    let steps = epoch
        .checked_mul(batches)
        .and_then(|s| s.checked_add(next_batch));
    if steps != Some(state.global_step) {
        return Err(format!(
            "its training state counts {} step(s), but epoch {epoch}, batch {next_batch} (from \
             0) of {batches}-batch epochs comes after {}",
            state.global_step,
            steps.map_or("more than can be counted".into(), |s| s.to_string())
        ));
    }
    if state.history.len() != epoch {
        return Err(format!(
            "its training state records {} finished epoch(s) but stands at epoch {epoch}",
            state.history.len()
        ));
    }
    // 0: a state from before images were counted (`restore_checkpoint` converts it).
    let images = shape.images_before(next_batch);
    if state.epoch_images != 0 && Some(state.epoch_images) != images {
        return Err(format!(
            "its training state counts {} image(s) trained in epoch {epoch}, but {next_batch} \
             batch(es) of {} hold {}",
            state.epoch_images,
            shape.batch_size,
            images.map_or("more than can be counted".into(), |n| n.to_string())
        ));
    }
    if let Some(best) = state.best
        && best.epoch >= epoch
    {
        return Err(format!(
            "its best epoch is {} but only {epoch} epoch(s) are finished",
            best.epoch
        ));
    }
    Ok(())
}

/// Loads the network stored for `inner` in a checkpoint file into a role's part, checksums
/// verified and every weight finite.
///
/// # Errors
/// [`TrainError::Checkpoint`] for an unreadable or damaged file,
/// [`TrainError::CheckpointMismatch`] when it holds no such role or it does not fit, and
/// [`TrainError::NonFiniteWeights`] naming the first tensor holding NaN or infinity.
pub(super) fn load_role_weights(
    part: &mut Trainable<Network>,
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
        })?;
    match checkpoint::first_non_finite(part.module()) {
        Some(tensor) => Err(TrainError::NonFiniteWeights {
            path: path.into(),
            what: format!("tensor `{tensor}` of role `{inner}`"),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::{EpochShape, check_position};
    use crate::checkpoint::{Best, EpochRecord, TrainState};

    /// Two epochs of 32 batches of 4 images, the last batch holding 2.
    const SHAPE: EpochShape = EpochShape {
        epochs: 2,
        batches: 32,
        batch_size: 4,
        images: 126,
    };

    /// The state the trainer writes after `epoch` finished epochs and `next_batch` batches.
    fn state(epoch: usize, next_batch: usize, batches: usize) -> TrainState {
        TrainState {
            epoch,
            next_batch,
            epoch_batches: next_batch,
            global_step: epoch * batches + next_batch,
            history: (0..epoch)
                .map(|e| EpochRecord {
                    epoch: e,
                    lr_factor: 1.0,
                    train: Default::default(),
                    eval: Default::default(),
                })
                .collect(),
            best: (epoch > 0).then_some(Best {
                epoch: 0,
                top1: 1.0,
            }),
            ..TrainState::default()
        }
    }

    #[test]
    fn positions_the_trainer_writes_are_accepted() {
        for (epoch, next_batch) in [(0, 0), (0, 5), (1, 0), (1, 31), (2, 0)] {
            assert_eq!(
                check_position(&state(epoch, next_batch, 32), &SHAPE),
                Ok(())
            );
        }
    }

    #[test]
    fn impossible_positions_say_what_is_impossible() {
        let error = |s: &TrainState| check_position(s, &SHAPE).unwrap_err();
        let mut s = state(0, 5, 32);
        s.next_batch = 1000;
        s.epoch_batches = 1000;
        s.global_step = 1000;
        assert!(
            error(&s).contains("batch 1000 (from 0) of epoch 0, but an epoch has 32 batches"),
            "{}",
            error(&s)
        );
        let message = error(&state(3, 0, 32));
        assert!(
            message.contains("past the end of a run of 2 epoch(s)"),
            "{message}"
        );
        let message = error(&state(2, 4, 32));
        assert!(message.contains("past the end"), "{message}");

        let mut s = state(1, 5, 32);
        s.global_step = 7;
        let message = error(&s);
        assert!(
            message.contains("counts 7 step(s)") && message.contains("after 37"),
            "{message}"
        );
        s.global_step = usize::MAX;
        assert!(error(&s).contains("counts 18446744073709551615 step(s)"));

        let mut s = state(1, 5, 32);
        s.epoch_batches = 2;
        assert!(error(&s).contains("counts 2 batch(es) trained in epoch 1"));

        let mut s = state(1, 5, 32);
        s.history.clear();
        assert!(error(&s).contains("records 0 finished epoch(s) but stands at epoch 1"));

        let mut s = state(1, 5, 32);
        s.best = Some(Best {
            epoch: 1,
            top1: 2.0,
        });
        assert!(error(&s).contains("best epoch is 1"));
    }

    #[test]
    fn image_counts_must_fit_the_batches_trained() {
        let mut s = state(0, 5, 32);
        s.epoch_images = 20;
        assert_eq!(check_position(&s, &SHAPE), Ok(()));
        s.epoch_images = 0; // written before images were counted: converted on restore
        assert_eq!(check_position(&s, &SHAPE), Ok(()));
        for wrong in [19, 21, usize::MAX] {
            s.epoch_images = wrong;
            let message = check_position(&s, &SHAPE).unwrap_err();
            assert!(
                message.contains(&format!("counts {wrong} image(s)"))
                    && message.contains("hold 20"),
                "{message}"
            );
        }
        // At an epoch's end the last, short batch counts what it holds.
        let mut s = state(0, 32, 32);
        s.epoch_images = 126;
        assert_eq!(check_position(&s, &SHAPE), Ok(()));
        s.epoch_images = 128;
        assert!(check_position(&s, &SHAPE).is_err());
    }

    #[test]
    fn huge_epochs_do_not_overflow() {
        let mut s = state(0, 0, 32);
        s.epoch = usize::MAX;
        assert!(
            check_position(
                &s,
                &EpochShape {
                    epochs: usize::MAX,
                    batches: usize::MAX,
                    batch_size: usize::MAX,
                    images: usize::MAX,
                }
            )
            .is_err()
        );
    }
}

//! Networks out of checkpoints, for evaluation and prediction outside a run (`kd eval`,
//! `kd predict`).

use std::path::Path;
use std::sync::Arc;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

use super::checkpointing::load_role_weights;
use super::error::TrainError;
use super::evaluate::Tally;
use crate::checkpoint::{self, NetworkEntry};
use crate::data::{Augment, BatchStream, ImageSet, StreamSpec, Transform};
use crate::method::{MAIN_PHASE, SgdSettings, Trainable};
use crate::zoo::{self, ModelSpec, Network, Staged};

/// Loads the network stored for `role` in a checkpoint, on `device`, in evaluation mode.
///
/// # Errors
/// [`TrainError::Checkpoint`] for a directory, a file that is not a kd checkpoint or one that
/// is damaged (checksum mismatch, lengths past the end of the file);
/// [`TrainError::CheckpointMismatch`] when it holds no such role or an unknown architecture;
/// [`TrainError::NonFiniteWeights`] naming a tensor that holds NaN or infinity.
pub fn load_network(
    path: &Path,
    role: &str,
    device: &Device,
) -> Result<(Network, NetworkEntry), TrainError> {
    let header = checkpoint::read_header(path)?;
    let entry = header.network(role).cloned().ok_or_else(|| {
        let have: Vec<&str> = header.networks.iter().map(|n| n.role.as_str()).collect();
        TrainError::CheckpointMismatch {
            path: path.into(),
            message: format!("holds no role `{role}` (it holds {})", have.join(", ")),
        }
    })?;
    let zoo_entry = zoo::find(&entry.arch).ok_or_else(|| TrainError::CheckpointMismatch {
        path: path.into(),
        message: format!("holds an unknown architecture `{}`", entry.arch),
    })?;
    let spec = ModelSpec {
        num_classes: entry.num_classes,
        in_channels: entry.in_channels,
    };
    let network = (zoo_entry.arch)(spec).init(device);
    let sgd = SgdSettings {
        momentum: 0.0,
        nesterov: false,
        weight_decay: 0.0,
    };
    let mut part = Trainable::new(role, MAIN_PHASE, network, 0.0, &sgd);
    load_role_weights(&mut part, path, role)?;
    Ok((part.module().valid(), entry))
}

/// Runs `network` over `set` in file order (evaluation mode, no augmentation) and hands each
/// batch's logits (`[batch × classes]`, row-major), class count and labels to `visit`.
fn for_each_batch(
    network: &Network,
    set: &Arc<ImageSet>,
    transform: &Transform,
    batch_size: usize,
    device: &Device,
    mut visit: impl FnMut(Vec<f32>, usize, &[i64]),
) {
    let spec = StreamSpec {
        batch_size,
        shuffle: false,
        drop_last: false,
        augment: Augment::NONE,
        seed: 0,
        epoch: 0,
        start_batch: 0,
        prefetch: 2,
    };
    for batch in BatchStream::start(set.clone(), transform.clone(), spec) {
        let images = Tensor::<4>::from_data(TensorData::new(batch.images, batch.shape), device);
        let logits = network.forward(images);
        let [_, classes] = logits.dims();
        let values = logits
            .into_data()
            .try_to_vec::<f32>()
            .expect("logits are f32");
        visit(values, classes, &batch.labels);
    }
}

/// Evaluates one network on a set (evaluation mode, no augmentation).
pub fn evaluate_network(
    network: &Network,
    set: &Arc<ImageSet>,
    transform: &Transform,
    batch_size: usize,
    device: &Device,
) -> Tally {
    let mut tally = Tally::default();
    for_each_batch(
        network,
        set,
        transform,
        batch_size,
        device,
        |values, classes, labels| tally.add(&values, classes, labels),
    );
    tally
}

/// The logits of every image of a set, in file order (evaluation mode, no augmentation).
pub fn predict_logits(
    network: &Network,
    set: &Arc<ImageSet>,
    transform: &Transform,
    batch_size: usize,
    device: &Device,
) -> Vec<Vec<f32>> {
    let mut rows = Vec::with_capacity(set.len());
    for_each_batch(
        network,
        set,
        transform,
        batch_size,
        device,
        |values, classes, _| rows.extend(values.chunks(classes).map(<[f32]>::to_vec)),
    );
    rows
}

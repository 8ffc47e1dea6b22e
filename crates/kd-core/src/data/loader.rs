//! Batches for training and evaluation, assembled on a background thread.
//!
//! Determinism and resumption come from the design rather than from saved generator state: the
//! order of an epoch is a pure function of `(seed, epoch)` and the augmentation of a batch a pure
//! function of `(seed, epoch, batch index)`. A run resumed at batch `b` of epoch `e` therefore
//! sees exactly the batches it would have seen, whatever happened before, and the checkpoint only
//! needs `(e, b)`. The runtime creates one [`BatchStream`] per epoch and per evaluation.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::augment::{Augment, Draw, Transform};
use super::base::ImageSet;

/// One batch, ready to become a tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Position of the batch in its epoch.
    pub index: usize,
    /// `[batch, channels, size, size]`.
    pub shape: [usize; 4],
    /// Normalised pixels, row-major in `shape`.
    pub images: Vec<f32>,
    /// Class of each image.
    pub labels: Vec<i64>,
    /// Index of each image in its [`ImageSet`].
    pub indices: Vec<usize>,
}

/// What a stream yields and in which order.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// Images per batch.
    pub batch_size: usize,
    /// Shuffle the order (training) or keep file order (evaluation).
    pub shuffle: bool,
    /// Drop a last, smaller batch.
    pub drop_last: bool,
    /// Augmentation ([`Augment::NONE`] for evaluation).
    pub augment: Augment,
    /// Run seed.
    pub seed: u64,
    /// Epoch number (0-based), which picks the order and the draws.
    pub epoch: usize,
    /// First batch to produce (to resume inside an epoch).
    pub start_batch: usize,
    /// Batches kept ready ahead of the consumer.
    pub prefetch: usize,
}

/// SplitMix64: a bijective mixer turning structured seeds into well-spread ones.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seed for an independent stream named `label` (an extra phase's own batches, say).
pub fn derive_seed(seed: u64, label: &str) -> u64 {
    label
        .bytes()
        .fold(mix(seed ^ 0x5eed), |h, b| mix(h ^ b as u64))
}

/// The order in which an epoch visits the set.
pub fn epoch_order(len: usize, seed: u64, epoch: usize, shuffle: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    if shuffle {
        let mut rng = ChaCha8Rng::seed_from_u64(mix(mix(seed) ^ epoch as u64));
        order.shuffle(&mut rng);
    }
    order
}

/// Number of batches in an epoch.
pub fn batches_per_epoch(len: usize, batch_size: usize, drop_last: bool) -> usize {
    if drop_last {
        len / batch_size
    } else {
        len.div_ceil(batch_size)
    }
}

/// Builds batch `index` of the epoch described by `spec`.
pub fn build_batch(
    set: &ImageSet,
    transform: &Transform,
    spec: &StreamSpec,
    order: &[usize],
    index: usize,
) -> Batch {
    let start = index * spec.batch_size;
    let indices: Vec<usize> = order[start..(start + spec.batch_size).min(order.len())].to_vec();
    let per_image = transform.channels * transform.size * transform.size;
    let mut images = vec![0.0f32; indices.len() * per_image];
    let batch_seed = mix(mix(mix(spec.seed) ^ spec.epoch as u64)
        ^ (index as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
    let mut rng = ChaCha8Rng::seed_from_u64(batch_seed);
    let mut scratch = Vec::new(); // the rotation's 8-bit buffers, sized once per batch
    for (slot, &i) in indices.iter().enumerate() {
        let draw = if spec.augment == Augment::NONE {
            Draw::default()
        } else {
            Draw::sample(&spec.augment, &mut rng)
        };
        let out = &mut images[slot * per_image..(slot + 1) * per_image];
        transform.augment(set.image(i), &spec.augment, draw, &mut scratch, out);
    }
    Batch {
        index,
        shape: [
            indices.len(),
            transform.channels,
            transform.size,
            transform.size,
        ],
        images,
        labels: indices.iter().map(|&i| set.labels[i] as i64).collect(),
        indices,
    }
}

/// A background producer of one epoch's batches.
pub struct BatchStream {
    receiver: Receiver<Batch>,
    worker: Option<JoinHandle<()>>,
    len: usize,
}

impl BatchStream {
    /// Starts producing the batches of one epoch from `spec.start_batch` on.
    pub fn start(set: Arc<ImageSet>, transform: Transform, spec: StreamSpec) -> BatchStream {
        let total = batches_per_epoch(set.len(), spec.batch_size, spec.drop_last);
        let (sender, receiver) = sync_channel(spec.prefetch.max(1));
        let first = spec.start_batch.min(total);
        let worker = std::thread::Builder::new()
            .name("kd-batches".into())
            .spawn(move || {
                let order = epoch_order(set.len(), spec.seed, spec.epoch, spec.shuffle);
                for index in first..total {
                    let batch = build_batch(&set, &transform, &spec, &order, index);
                    if sender.send(batch).is_err() {
                        return; // the consumer stopped early
                    }
                }
            })
            .expect("spawning the batch thread");
        BatchStream {
            receiver,
            worker: Some(worker),
            len: total - first,
        }
    }

    /// Batches this stream will yield in all.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the stream yields nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Iterator for BatchStream {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        self.receiver.recv().ok()
    }
}

impl Drop for BatchStream {
    fn drop(&mut self) {
        // Unblock a producer waiting on a full channel, then wait for it.
        let (_, empty) = sync_channel(0);
        drop(std::mem::replace(&mut self.receiver, empty));
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

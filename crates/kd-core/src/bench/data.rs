//! The batch pipeline's throughput: decoding, augmentation (random crop and flip) and
//! normalisation of a real image set into training batches, as the runtime consumes them.

use std::sync::Arc;
use std::time::Instant;

use super::Throughput;
use crate::data::{Augment, BatchStream, ImageSet, PadMode, Rotation, StreamSpec, Transform};

/// Images per second the training pipeline delivers from `set` (augmented like a training
/// epoch), timed per batch after `warmup` batches; the set is cycled as needed.
pub fn pipeline_throughput(
    set: &Arc<ImageSet>,
    transform: &Transform,
    batch: usize,
    warmup: usize,
    iterations: usize,
) -> Throughput {
    let mut seconds = Vec::with_capacity(iterations);
    let mut epoch = 0;
    let mut seen = 0;
    while seconds.len() < iterations.max(1) {
        let spec = StreamSpec {
            batch_size: batch,
            shuffle: true,
            drop_last: true,
            augment: Augment {
                crop_padding: 4,
                pad_mode: PadMode::Zero,
                flip: true,
                rotation: Rotation::NONE,
            },
            seed: 0,
            epoch,
            start_batch: 0,
            prefetch: 2,
        };
        let mut stream = BatchStream::start(set.clone(), transform.clone(), spec);
        loop {
            let start = Instant::now();
            let Some(next) = stream.next() else { break };
            std::hint::black_box(&next.images);
            if seen >= warmup {
                seconds.push(start.elapsed().as_secs_f64());
            }
            seen += 1;
            if seconds.len() >= iterations.max(1) {
                break;
            }
        }
        epoch += 1;
        if seen == 0 {
            break; // fewer images than one batch
        }
    }
    Throughput::from_seconds(&seconds, batch)
}

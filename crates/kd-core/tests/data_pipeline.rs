//! From bytes to batches: padding, crop, flip, normalisation, and the stream's determinism and
//! resumability.

use std::sync::Arc;

use kd_core::data::{
    Augment, BatchStream, Draw, ImageSet, PadMode, Rotation, StreamSpec, Transform,
    batches_per_epoch,
};

fn transform(channels: usize, side: usize, size: usize) -> Transform {
    Transform {
        channels,
        height: side,
        width: side,
        size,
        mean: vec![0.0; channels],
        std: vec![1.0; channels],
    }
}

fn run(t: &Transform, image: &[u8], padding: usize, mode: PadMode, draw: Draw) -> Vec<f32> {
    let mut out = vec![f32::NAN; t.channels * t.size * t.size];
    t.apply(image, padding, mode, draw, &mut out);
    out
}

#[test]
fn small_images_are_zero_padded_to_the_centre() {
    let t = transform(1, 28, 32);
    let out = run(&t, &[255; 28 * 28], 0, PadMode::Zero, Draw::default());
    for y in 0..32 {
        for x in 0..32 {
            let inside = (2..30).contains(&y) && (2..30).contains(&x);
            assert_eq!(out[y * 32 + x], if inside { 1.0 } else { 0.0 }, "({y},{x})");
        }
    }
}

#[test]
fn normalisation_is_per_channel_and_applies_to_padding_too() {
    let mut t = transform(2, 1, 3);
    t.mean = vec![0.5, 0.25];
    t.std = vec![0.5, 0.25];
    let out = run(&t, &[255, 0], 0, PadMode::Zero, Draw::default());
    // Channel 0: centre 1.0 → (1-0.5)/0.5 = 1, padding 0 → -1; channel 1: centre 0 → -1.
    assert_eq!(
        &out[..9],
        &[-1.0, -1.0, -1.0, -1.0, 1.0, -1.0, -1.0, -1.0, -1.0]
    );
    assert!(out[9..].iter().all(|&v| v == -1.0));
}

fn ramp(side: usize) -> Vec<u8> {
    (0..side * side).map(|i| i as u8).collect()
}

#[test]
fn centred_crop_is_the_identity_and_corner_crop_shifts() {
    let t = transform(1, 8, 8);
    let image = ramp(8);
    let plain = run(&t, &image, 0, PadMode::Zero, Draw::default());
    let centred = run(
        &t,
        &image,
        2,
        PadMode::Zero,
        Draw {
            dy: 2,
            dx: 2,
            flip: false,
            angle: 0.0,
        },
    );
    assert_eq!(plain, centred);
    // dy = dx = 0 reads the canvas 2 rows up and 2 columns left.
    let corner = run(
        &t,
        &image,
        2,
        PadMode::Zero,
        Draw {
            dy: 0,
            dx: 0,
            flip: false,
            angle: 0.0,
        },
    );
    assert_eq!(corner[0], 0.0);
    assert_eq!(corner[2 * 8 + 2], image[0] as f32 / 255.0);
    assert_eq!(corner[7 * 8 + 7], image[5 * 8 + 5] as f32 / 255.0);
}

#[test]
fn reflect_padding_mirrors_without_repeating_the_edge() {
    let t = transform(1, 8, 8);
    let image = ramp(8);
    let out = run(
        &t,
        &image,
        2,
        PadMode::Reflect,
        Draw {
            dy: 2,
            dx: 0,
            flip: false,
            angle: 0.0,
        },
    );
    // Column x reads canvas column x - 2: -2 → 2, -1 → 1, 0 → 0.
    let row: Vec<f32> = out[..3].to_vec();
    let expect: Vec<f32> = [2u8, 1, 0].iter().map(|&v| v as f32 / 255.0).collect();
    assert_eq!(row, expect);
}

#[test]
fn flip_mirrors_columns() {
    let t = transform(1, 8, 8);
    let image = ramp(8);
    let plain = run(&t, &image, 0, PadMode::Zero, Draw::default());
    let flipped = run(
        &t,
        &image,
        0,
        PadMode::Zero,
        Draw {
            dy: 0,
            dx: 0,
            flip: true,
            angle: 0.0,
        },
    );
    for y in 0..8 {
        for x in 0..8 {
            assert_eq!(flipped[y * 8 + x], plain[y * 8 + 7 - x]);
        }
    }
}

fn toy_set(n: usize) -> Arc<ImageSet> {
    Arc::new(ImageSet {
        pixels: (0..n * 16).map(|i| (i % 251) as u8).collect(),
        labels: (0..n).map(|i| (i % 10) as u16).collect(),
        num_classes: 10,
        channels: 1,
        height: 4,
        width: 4,
        class_names: ImageSet::numbered_classes(10),
    })
}

fn spec(epoch: usize, start_batch: usize) -> StreamSpec {
    StreamSpec {
        batch_size: 8,
        shuffle: true,
        drop_last: false,
        augment: Augment {
            crop_padding: 1,
            pad_mode: PadMode::Zero,
            flip: true,
            rotation: Rotation::NONE,
        },
        seed: 17,
        epoch,
        start_batch,
        prefetch: 2,
    }
}

#[test]
fn streams_are_deterministic_resumable_and_vary_by_epoch() {
    let set = toy_set(50);
    let t = transform(1, 4, 4);
    let full: Vec<_> = BatchStream::start(set.clone(), t.clone(), spec(3, 0)).collect();
    assert_eq!(full.len(), batches_per_epoch(50, 8, false));
    assert_eq!(full.len(), 7);
    assert_eq!(full.last().unwrap().labels.len(), 2);
    let again: Vec<_> = BatchStream::start(set.clone(), t.clone(), spec(3, 0)).collect();
    assert_eq!(full, again);
    let resumed: Vec<_> = BatchStream::start(set.clone(), t.clone(), spec(3, 4)).collect();
    assert_eq!(&full[4..], &resumed[..]);
    let next_epoch: Vec<_> = BatchStream::start(set.clone(), t.clone(), spec(4, 0)).collect();
    assert_ne!(full[0].indices, next_epoch[0].indices);
    let mut seen: Vec<usize> = full.iter().flat_map(|b| b.indices.clone()).collect();
    seen.sort();
    assert_eq!(
        seen,
        (0..50).collect::<Vec<_>>(),
        "every image exactly once per epoch"
    );
}

#[test]
fn dropping_a_stream_early_stops_its_thread() {
    let set = toy_set(500);
    let mut stream = BatchStream::start(set, transform(1, 4, 4), spec(0, 0));
    assert!(stream.next().is_some());
    drop(stream); // must not hang on the producer blocked on a full channel
}

#[test]
fn a_batch_larger_than_the_set_with_drop_last_yields_no_batch() {
    // What the plan refuses (`DataPlan::check_loaded` at run time): such an epoch is empty.
    let set = toy_set(5);
    let t = transform(1, 4, 4);
    let dropped = StreamSpec {
        drop_last: true,
        ..spec(0, 0)
    };
    assert_eq!(batches_per_epoch(5, 8, true), 0);
    assert_eq!(
        BatchStream::start(set.clone(), t.clone(), dropped).count(),
        0
    );
    // Kept, the last smaller batch is the epoch's one step.
    let kept: Vec<_> = BatchStream::start(set, t, spec(0, 0)).collect();
    assert_eq!((kept.len(), kept[0].labels.len()), (1, 5));
    assert_eq!(batches_per_epoch(8, 8, true), 1);
}

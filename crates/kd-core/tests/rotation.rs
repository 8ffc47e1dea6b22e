//! The random rotation: kd's rotation against Pillow's on known images (the fixtures of
//! `scripts/reference/rotation_golden.py`), its place in the augmentation (after crop and flip,
//! before normalisation), batches without rotation unchanged bit for bit, and the
//! `data.augment.rotation_*` keys: carried into the augmentation, bad values reported at their
//! keys.
// `Jail::expect_with` closures return figment's (large) error type; that is its API.
#![allow(clippy::result_large_err)]

use std::path::PathBuf;

use figment::Jail;
use kd_core::config::{self, ConfigIssue};
use kd_core::data::{
    Augment, Draw, ImageSet, Interpolation, PadMode, Rotation, StreamSpec, Transform, build_batch,
    epoch_order, rotate,
};
use kd_core::method::Registry;
use kd_core::runtime;
use rand::SeedableRng;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rotation")
}

#[derive(serde::Deserialize)]
struct Case {
    image: String,
    shape: [usize; 3],
    angle: f64,
    angle_bits: String,
    fill: u8,
    interpolation: Interpolation,
    offset: usize,
}

#[derive(serde::Deserialize)]
struct Cases {
    cases: Vec<Case>,
}

#[test]
fn every_rotation_equals_pillows_byte_for_byte() {
    let text = std::fs::read_to_string(fixtures().join("cases.json")).unwrap();
    let cases: Cases = serde_json::from_str(&text).unwrap();
    assert_eq!(cases.cases.len(), 96, "the fixture's case count");
    let mut compared = 0;
    for case in &cases.cases {
        let source = std::fs::read(fixtures().join(format!("{}.bin", case.image))).unwrap();
        let outputs = std::fs::read(fixtures().join(format!("{}.out.bin", case.image))).unwrap();
        let n: usize = case.shape.iter().product();
        assert_eq!(source.len(), n, "{}", case.image);
        let expected = &outputs[case.offset..case.offset + n];
        // The double Pillow was given, whatever the JSON float parser makes of `angle`.
        let angle = f64::from_bits(u64::from_str_radix(&case.angle_bits, 16).unwrap());
        assert!((angle - case.angle).abs() <= 1e-12 * case.angle.abs().max(1.0));
        let mut out = vec![0xa5; n];
        rotate(
            &source,
            case.shape,
            angle,
            case.fill,
            case.interpolation,
            &mut out,
        );
        let wrong: Vec<usize> = (0..n).filter(|&i| out[i] != expected[i]).collect();
        assert!(
            wrong.is_empty(),
            "{} rotated {}° ({:?}, fill {}): {} of {n} bytes differ, first at {} (kd {}, Pillow {})",
            case.image,
            angle,
            case.interpolation,
            case.fill,
            wrong.len(),
            wrong[0],
            out[wrong[0]],
            expected[wrong[0]]
        );
        compared += 1;
    }
    assert_eq!(compared, 96);
}

#[test]
fn a_quarter_turn_keeps_every_pixel_and_a_turn_of_45_degrees_fills_the_corners() {
    // 3x3 ramp, counter-clockwise: the top row becomes the left column, read upwards.
    let image: Vec<u8> = (1..=9).collect();
    let mut out = vec![0; 9];
    rotate(&image, [1, 3, 3], 90.0, 0, Interpolation::Nearest, &mut out);
    assert_eq!(out, [3, 6, 9, 2, 5, 8, 1, 4, 7]);
    rotate(
        &image,
        [1, 3, 3],
        -450.0,
        0,
        Interpolation::Nearest,
        &mut out,
    );
    assert_eq!(out, [7, 4, 1, 8, 5, 2, 9, 6, 3]);
    let image = vec![200; 2 * 16 * 16];
    let mut out = vec![0; 2 * 16 * 16];
    rotate(
        &image,
        [2, 16, 16],
        45.0,
        7,
        Interpolation::Bilinear,
        &mut out,
    );
    for c in 0..2 {
        let plane = &out[c * 256..(c + 1) * 256];
        assert_eq!(
            (plane[0], plane[15], plane[255]),
            (7, 7, 7),
            "corners, channel {c}"
        );
        assert_eq!(plane[8 * 16 + 8], 200, "centre, channel {c}");
    }
}

fn fnv(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

fn image_set(channels: usize, side: usize, n: usize) -> ImageSet {
    ImageSet {
        pixels: (0..n * channels * side * side)
            .map(|i| ((i * 7919) % 256) as u8)
            .collect(),
        labels: (0..n).map(|i| (i % 10) as u16).collect(),
        num_classes: 10,
        channels,
        height: side,
        width: side,
        class_names: ImageSet::numbered_classes(10),
    }
}

fn transform(channels: usize, side: usize) -> Transform {
    Transform {
        channels,
        height: side,
        width: side,
        size: 32,
        mean: vec![0.5; channels],
        std: vec![0.25; channels],
    }
}

fn stream(augment: Augment) -> StreamSpec {
    StreamSpec {
        batch_size: 16,
        shuffle: true,
        drop_last: false,
        augment,
        seed: 7,
        epoch: 2,
        start_batch: 0,
        prefetch: 1,
    }
}

/// Hashes of three batches and of 200 draws, for an augmentation without rotation.
fn hashes(channels: usize, side: usize, augment: Augment) -> (u64, u64) {
    let (set, t, spec) = (
        image_set(channels, side, 40),
        transform(channels, side),
        stream(augment),
    );
    let order = epoch_order(40, 7, 2, true);
    let images = (0..3).flat_map(|b| build_batch(&set, &t, &spec, &order, b).images);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let draws = (0..200).flat_map(|_| {
        let d = Draw::sample(&spec.augment, &mut rng);
        assert_eq!(d.angle, 0.0);
        [d.dy as u8, d.dx as u8, d.flip as u8]
    });
    (fnv(images.flat_map(f32::to_le_bytes)), fnv(draws))
}

#[test]
fn without_rotation_batches_and_draws_are_bit_identical_to_before_the_rotation_existed() {
    // Golden hashes computed with kd before rotation was added (the one-pass crop, flip and
    // normalisation, three random numbers per image at most): a rotation of 0 must keep them,
    // whatever its fill and interpolation.
    let rotation = |fill, interpolation| Rotation {
        degrees: 0.0,
        fill,
        interpolation,
    };
    for r in [Rotation::NONE, rotation(128, Interpolation::Bilinear)] {
        let augment = |crop_padding, pad_mode, flip| Augment {
            crop_padding,
            pad_mode,
            flip,
            rotation: r,
        };
        assert_eq!(
            hashes(3, 32, augment(4, PadMode::Zero, true)),
            (0xfdae_f94b_7948_b171, 0x480d_85a5_cbe9_361d)
        );
        assert_eq!(
            hashes(3, 32, augment(4, PadMode::Reflect, true)),
            (0xc53b_cead_7dec_b314, 0x480d_85a5_cbe9_361d)
        );
        assert_eq!(
            hashes(1, 28, augment(4, PadMode::Zero, false)),
            (0x7e1b_c28e_d4c8_b897, 0x5dc2_2e7f_48f2_e8e2)
        );
    }
}

#[test]
fn rotation_turns_the_flipped_crop_and_fills_before_normalisation() {
    let t = Transform {
        channels: 2,
        height: 8,
        width: 8,
        size: 8,
        mean: vec![0.5, 0.25],
        std: vec![0.5, 0.25],
    };
    let image: Vec<u8> = (0..128).map(|i| (i * 2) as u8).collect();
    let augment = Augment {
        crop_padding: 2,
        pad_mode: PadMode::Reflect,
        flip: true,
        rotation: Rotation {
            degrees: 90.0,
            fill: 51,
            interpolation: Interpolation::Nearest,
        },
    };
    let draw = Draw {
        dy: 1,
        dx: 3,
        flip: true,
        angle: 0.0,
    };
    let mut scratch = Vec::new();
    let mut plain = vec![f32::NAN; 128];
    t.augment(&image, &augment, draw, &mut scratch, &mut plain);
    let mut reference = vec![f32::NAN; 128];
    t.apply(&image, 2, PadMode::Reflect, draw, &mut reference);
    assert_eq!(plain, reference, "angle 0 is the plain crop and flip");
    // A quarter turn of the normalised crop and flip: output (r, c) is crop (c, 7 − r).
    let mut turned = vec![f32::NAN; 128];
    let quarter = Draw {
        angle: 90.0,
        ..draw
    };
    t.augment(&image, &augment, quarter, &mut scratch, &mut turned);
    for c in 0..2 {
        for r in 0..8 {
            for col in 0..8 {
                assert_eq!(
                    turned[c * 64 + r * 8 + col],
                    plain[c * 64 + col * 8 + 7 - r]
                );
            }
        }
    }
    // At 45° the corners are the fill, 51 = 0.2 of 255, normalised per channel.
    let mut tilted = vec![f32::NAN; 128];
    let eighth = Draw {
        angle: 45.0,
        ..draw
    };
    t.augment(&image, &augment, eighth, &mut scratch, &mut tilted);
    assert_eq!(tilted[0], (51.0 / 255.0 - 0.5) / 0.5);
    assert_eq!(tilted[64], (51.0 / 255.0 - 0.25) / 0.25);
}

#[test]
fn rotated_batches_are_deterministic_and_differ_from_unrotated_ones() {
    let (set, t) = (image_set(3, 32, 40), transform(3, 32));
    let order = epoch_order(40, 7, 2, true);
    let plain = Augment {
        crop_padding: 4,
        pad_mode: PadMode::Zero,
        flip: true,
        rotation: Rotation::NONE,
    };
    let rotated = Augment {
        rotation: Rotation {
            degrees: 15.0,
            fill: 0,
            interpolation: Interpolation::Bilinear,
        },
        ..plain
    };
    let batch = |a| build_batch(&set, &t, &stream(a), &order, 1);
    assert_eq!(batch(rotated), batch(rotated));
    assert_ne!(batch(rotated).images, batch(plain).images);
    assert!(batch(rotated).images.iter().all(|v| v.is_finite()));
    // Angles are drawn in [-15, 15), one per image, after its crop and flip.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let angles: Vec<f64> = (0..500)
        .map(|_| Draw::sample(&rotated, &mut rng).angle)
        .collect();
    assert!(angles.iter().all(|a| (-15.0..15.0).contains(a)));
    assert!(angles.iter().any(|&a| a < -10.0) && angles.iter().any(|&a| a > 10.0));
}

fn data_root() -> String {
    format!(
        "{}/../../data/fashion-mnist-subset",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn config_text(augment: &str) -> String {
    format!(
        "[run]\nepochs = 1\n[networks.student]\narch = \"resnet8\"\n[data]\nroot = \"{}\"\n\
         [data.augment]\n{augment}\n",
        data_root()
    )
}

#[test]
fn rotation_keys_reach_the_augmentation_and_leave_the_saved_config_when_unset() {
    Jail::expect_with(|jail| {
        let text =
            "rotation_degrees = 15\nrotation_fill = 128\nrotation_interpolation = \"bilinear\"";
        jail.create_file("r.toml", &config_text(text))?;
        let loaded = config::load(Some("r.toml".as_ref()), &[]).unwrap();
        let plan = runtime::plan(&loaded, Registry::global().expect("registry")).unwrap();
        let spec = plan.config.data.augment_spec();
        assert_eq!(
            spec.rotation,
            Rotation {
                degrees: 15.0,
                fill: 128,
                interpolation: Interpolation::Bilinear
            }
        );
        let description = plan.describe();
        assert!(
            description.contains("rotation ±15° (Bilinear, fill 128), flip true"),
            "{description}"
        );
        // Without rotation keys the saved configuration is what it was before they existed.
        jail.create_file("n.toml", &config_text(""))?;
        let loaded = config::load(Some("n.toml".as_ref()), &[]).unwrap();
        assert_eq!(loaded.config.data.augment_spec().rotation, Rotation::NONE);
        let saved = toml::to_string(&loaded.config).unwrap();
        assert!(!saved.contains("rotation"), "{saved}");
        Ok(())
    });
}

fn plan_issues(jail: &mut Jail, augment: &str) -> Vec<ConfigIssue> {
    jail.create_file("bad.toml", &config_text(augment)).unwrap();
    let loaded = match config::load(Some("bad.toml".as_ref()), &[]) {
        Ok(loaded) => loaded,
        Err(e) => return e.issues,
    };
    match runtime::plan(&loaded, Registry::global().expect("registry")) {
        Ok(_) => panic!("expected errors for {augment}"),
        Err(e) => e.issues,
    }
}

fn message_at(issues: &[ConfigIssue], key: &str) -> String {
    let at: Vec<&ConfigIssue> = issues
        .iter()
        .filter(|i| i.key.as_deref() == Some(key))
        .collect();
    assert_eq!(at.len(), 1, "one issue at {key}: {issues:?}");
    assert_eq!(at[0].source.as_deref(), Some("file bad.toml"), "{key}");
    at[0].message.clone()
}

#[test]
fn bad_rotation_values_are_reported_at_their_keys() {
    Jail::expect_with(|jail| {
        for degrees in ["-5", "nan", "180.5", "inf"] {
            let issues = plan_issues(jail, &format!("rotation_degrees = {degrees}"));
            let message = message_at(&issues, "data.augment.rotation_degrees");
            assert_eq!(message, "must be between 0 and 180 (degrees)", "{degrees}");
        }
        for fill in ["256", "-1"] {
            let issues = plan_issues(
                jail,
                &format!("rotation_degrees = 15\nrotation_fill = {fill}"),
            );
            let message = message_at(&issues, "data.augment.rotation_fill");
            assert_eq!(
                message,
                format!("must be a pixel value from 0 to 255, got {fill}")
            );
        }
        let issues = plan_issues(jail, "rotation_interpolation = \"bicubic\"");
        let message = message_at(&issues, "data.augment.rotation_interpolation");
        assert!(
            message.contains("must be one of `nearest`, `bilinear`"),
            "{message}"
        );
        // 180 and 255 are the largest allowed values.
        jail.create_file(
            "ok.toml",
            &config_text("rotation_degrees = 180\nrotation_fill = 255"),
        )?;
        let loaded = config::load(Some("ok.toml".as_ref()), &[]).unwrap();
        assert!(runtime::plan(&loaded, Registry::global().expect("registry")).is_ok());
        Ok(())
    });
}

//! Turning 8-bit images into normalised network inputs, with the papers' training augmentation.
//!
//! One pass per image does, in torchvision's order: zero-pad a smaller image centrally to the
//! network's input size (28x28 Fashion-MNIST → 32x32, as `transforms.Pad(2)`), random crop
//! with padding (`RandomCrop(32, padding=4)`, zero or reflect fill), horizontal flip with
//! probability ½, then, when `data.augment.rotation_degrees` is set, a random rotation of the
//! 8-bit crop (`RandomRotation(15)`, exact to Pillow: see `rotation.rs`), and last scale to
//! [0, 1] and normalise per channel (`ToTensor`, `Normalize`): the order of SKD-RSL's
//! `dataloader/data_loader_common.py`. Without rotation the crop, flip and normalisation are
//! one pass and no angle is drawn, so such runs see the batches they always did. The loader
//! calls it off the training thread.

use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::rotation::{Rotation, rotate};

/// How the crop padding is filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PadMode {
    /// Zeros (RepDistiller's `RandomCrop(32, padding=4)`).
    Zero,
    /// Mirror without repeating the edge (SOKD's `padding_mode='reflect'`).
    Reflect,
}

/// Training-time augmentation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    /// Padding of the random crop (0 disables cropping).
    pub crop_padding: usize,
    /// How the padding is filled.
    pub pad_mode: PadMode,
    /// Random horizontal flips.
    pub flip: bool,
    /// Random rotation after the flip ([`Rotation::NONE`]: none).
    pub rotation: Rotation,
}

impl Augment {
    /// No augmentation (evaluation).
    pub const NONE: Augment = Augment {
        crop_padding: 0,
        pad_mode: PadMode::Zero,
        flip: false,
        rotation: Rotation::NONE,
    };
}

/// Geometry and normalisation shared by every image of a split.
#[derive(Debug, Clone, PartialEq)]
pub struct Transform {
    /// Channels of the source images and of the output.
    pub channels: usize,
    /// Source height.
    pub height: usize,
    /// Source width.
    pub width: usize,
    /// Output side (square).
    pub size: usize,
    /// Per-channel mean subtracted after scaling to [0, 1].
    pub mean: Vec<f32>,
    /// Per-channel std divided by after subtracting the mean.
    pub std: Vec<f32>,
}

/// Random choices for one image.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Draw {
    /// Crop offset, rows, in `0 ..= 2·padding`.
    pub dy: usize,
    /// Crop offset, columns.
    pub dx: usize,
    /// Mirror left-right.
    pub flip: bool,
    /// Rotation, degrees counter-clockwise (0: none).
    pub angle: f64,
}

impl Draw {
    /// Draws crop offsets, a flip and, only when the rotation is active, an angle (after the
    /// others, so runs without rotation draw exactly what they always did).
    pub fn sample(augment: &Augment, rng: &mut impl rand::Rng) -> Draw {
        let span = 2 * augment.crop_padding + 1;
        let dy = rng.random_range(0..span);
        let dx = rng.random_range(0..span);
        let flip = augment.flip && rng.random_bool(0.5);
        let angle = if augment.rotation.is_active() {
            augment.rotation.sample(rng)
        } else {
            0.0
        };
        Draw {
            dy,
            dx,
            flip,
            angle,
        }
    }
}

fn reflect(i: isize, n: isize) -> isize {
    if i < 0 {
        -i
    } else if i >= n {
        2 * (n - 1) - i
    } else {
        i
    }
}

impl Transform {
    /// Writes one image into `out` (`channels × size × size`) with the crop and flip of `draw`
    /// and no rotation.
    ///
    /// `padding` is the crop padding the draw was made with; an identity draw for evaluation is
    /// `Draw { dy: padding, dx: padding, flip: false }` with padding 0.
    pub fn apply(&self, image: &[u8], padding: usize, mode: PadMode, draw: Draw, out: &mut [f32]) {
        let plane = self.size * self.size;
        self.crop(image, padding, mode, draw, |c, i, v| {
            out[c * plane + i] = self.normalise(c, v)
        });
    }

    /// Writes one augmented image into `out` (`channels × size × size`): crop and flip, then
    /// the rotation of `draw.angle` when it is not 0 (on the 8-bit crop, in `scratch`, which
    /// is resized once and reused), then normalisation.
    pub fn augment(
        &self,
        image: &[u8],
        augment: &Augment,
        draw: Draw,
        scratch: &mut Vec<u8>,
        out: &mut [f32],
    ) {
        if draw.angle == 0.0 {
            return self.apply(image, augment.crop_padding, augment.pad_mode, draw, out);
        }
        let plane = self.size * self.size;
        let n = self.channels * plane;
        scratch.resize(2 * n, 0);
        let (crop, rotated) = scratch.split_at_mut(n);
        self.crop(
            image,
            augment.crop_padding,
            augment.pad_mode,
            draw,
            |c, i, v| crop[c * plane + i] = v,
        );
        let shape = [self.channels, self.size, self.size];
        let r = augment.rotation;
        rotate(crop, shape, draw.angle, r.fill, r.interpolation, rotated);
        let planes = rotated.chunks_exact(plane).zip(out.chunks_exact_mut(plane));
        for (c, (source, target)) in planes.enumerate() {
            for (o, &v) in target.iter_mut().zip(source) {
                *o = self.normalise(c, v);
            }
        }
    }

    /// A pixel value scaled to [0, 1] and normalised with channel `c`'s statistics.
    fn normalise(&self, c: usize, value: u8) -> f32 {
        (value as f32 / 255.0 - self.mean[c]) / self.std[c]
    }

    /// Calls `put(channel, index in the output plane, pixel)` for every output pixel: the image
    /// centred on a size×size canvas (zeros around it), cropped at the draw's offsets with
    /// zero or reflected padding, mirrored when the draw flips.
    fn crop(
        &self,
        image: &[u8],
        padding: usize,
        mode: PadMode,
        draw: Draw,
        mut put: impl FnMut(usize, usize, u8),
    ) {
        let s = self.size as isize;
        let (oy, ox) = (
            (self.size - self.height) as isize / 2,
            (self.size - self.width) as isize / 2,
        );
        let p = padding as isize;
        let plane = self.height * self.width;
        for c in 0..self.channels {
            let source = &image[c * plane..(c + 1) * plane];
            for y in 0..s {
                for x in 0..s {
                    let xc = if draw.flip { s - 1 - x } else { x };
                    // Coordinates on the canvas (the image centred on a size×size field).
                    let (mut cy, mut cx) = (y + draw.dy as isize - p, xc + draw.dx as isize - p);
                    let outside = cy < 0 || cy >= s || cx < 0 || cx >= s;
                    let index = (y * s + x) as usize;
                    if outside {
                        if mode == PadMode::Zero {
                            put(c, index, 0);
                            continue;
                        }
                        cy = reflect(cy, s);
                        cx = reflect(cx, s);
                    }
                    let (iy, ix) = (cy - oy, cx - ox);
                    let value = if iy < 0
                        || ix < 0
                        || iy >= self.height as isize
                        || ix >= self.width as isize
                    {
                        0
                    } else {
                        source[iy as usize * self.width + ix as usize]
                    };
                    put(c, index, value);
                }
            }
        }
    }
}

//! Turning 8-bit images into normalised network inputs, with the papers' training augmentation.
//!
//! One pass per image does, in torchvision's order: zero-pad a smaller image centrally to the
//! network's input size (28x28 Fashion-MNIST → 32x32, as `transforms.Pad(2)`), random crop
//! with padding (`RandomCrop(32, padding=4)`, zero or reflect fill), horizontal flip with
//! probability ½, scale to [0, 1] and normalise per channel. The loader calls it off the
//! training thread.

use rand::RngExt;
use serde::{Deserialize, Serialize};

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
}

impl Augment {
    /// No augmentation (evaluation).
    pub const NONE: Augment = Augment {
        crop_padding: 0,
        pad_mode: PadMode::Zero,
        flip: false,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Draw {
    /// Crop offset, rows, in `0 ..= 2·padding`.
    pub dy: usize,
    /// Crop offset, columns.
    pub dx: usize,
    /// Mirror left-right.
    pub flip: bool,
}

impl Draw {
    /// Draws crop offsets and a flip.
    pub fn sample(augment: &Augment, rng: &mut impl rand::Rng) -> Draw {
        let span = 2 * augment.crop_padding + 1;
        let dy = rng.random_range(0..span);
        let dx = rng.random_range(0..span);
        Draw {
            dy,
            dx,
            flip: augment.flip && rng.random_bool(0.5),
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
    /// Writes one image into `out` (`channels × size × size`).
    ///
    /// `padding` is the crop padding the draw was made with; an identity draw for evaluation is
    /// `Draw { dy: padding, dx: padding, flip: false }` with padding 0.
    pub fn apply(&self, image: &[u8], padding: usize, mode: PadMode, draw: Draw, out: &mut [f32]) {
        let s = self.size as isize;
        let (oy, ox) = (
            (self.size - self.height) as isize / 2,
            (self.size - self.width) as isize / 2,
        );
        let p = padding as isize;
        let plane = self.height * self.width;
        for c in 0..self.channels {
            let (mean, std) = (self.mean[c], self.std[c]);
            let zero = (0.0 - mean) / std;
            let source = &image[c * plane..(c + 1) * plane];
            let target = &mut out[c * self.size * self.size..(c + 1) * self.size * self.size];
            for y in 0..s {
                for x in 0..s {
                    let xc = if draw.flip { s - 1 - x } else { x };
                    // Coordinates on the canvas (the image centred on a size×size field).
                    let (mut cy, mut cx) = (y + draw.dy as isize - p, xc + draw.dx as isize - p);
                    let outside = cy < 0 || cy >= s || cx < 0 || cx >= s;
                    if outside {
                        if mode == PadMode::Zero {
                            target[(y * s + x) as usize] = zero;
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
                        zero
                    } else {
                        (source[iy as usize * self.width + ix as usize] as f32 / 255.0 - mean) / std
                    };
                    target[(y * s + x) as usize] = value;
                }
            }
        }
    }
}

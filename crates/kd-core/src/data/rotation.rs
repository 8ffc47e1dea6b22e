//! Random rotation of 8-bit images, bit for bit as torchvision's `RandomRotation` rotates a PIL
//! image.
//!
//! torchvision's `RandomRotation(d)` draws `angle = uniform(-d, d)` and calls Pillow's
//! `img.rotate(angle, resample, expand=False, center=None, fillcolor=fill)`: counter-clockwise
//! about the image centre `(w/2, h/2)`, the same size out, uncovered pixels set to `fill` on every
//! channel. [`rotate`] reproduces Pillow's code path for path (Pillow `Image.rotate` in
//! `PIL/Image.py` and `ImagingTransformAffine` in `libImaging/Geometry.c`):
//!
//! - the angle is taken modulo 360; 0 copies the image, 180 turns it (`ROTATE_180`), and on a
//!   square image 90 and 270 transpose it (`ROTATE_90`, `ROTATE_270`), without resampling;
//! - otherwise the inverse affine matrix (output pixel → source point) is built in `f64` from
//!   `cos`/`sin` of the angle rounded to 15 decimals, as `Image.rotate` does;
//! - nearest neighbour walks the matrix in 16.16 fixed point (`affine_fixed`), or, when the
//!   rounded sine is 0, by the scaling shortcut (`ImagingScaleAffine`);
//! - bilinear maps each pixel centre `(x + ½, y + ½)` in `f64`, rejects points outside
//!   `[0, w) × [0, h)`, interpolates the four neighbours (edge-clamped) in `f64` and truncates to
//!   an integer (`bilinear_filter8` / `bilinear_filter32RGB`).
//!
//! The golden test (`crates/kd-core/tests/rotation.rs`) compares every path with Pillow's output
//! on fixtures written by `scripts/reference/rotation_golden.py`. Pillow falls back to a
//! floating-point nearest walk when a coordinate reaches 32768; kd's images (sides up to
//! 1024) never do. The augmentation (`augment.rs`) calls [`rotate`] once per training image on
//! the loader thread; it allocates nothing.

use rand::RngExt;
use serde::{Deserialize, Serialize};

/// How a rotated image samples its source (torchvision's `InterpolationMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    /// The source pixel under the point (torchvision's default, `InterpolationMode.NEAREST`).
    #[default]
    Nearest,
    /// Linear in both axes between the four nearest pixels (`InterpolationMode.BILINEAR`).
    Bilinear,
}

/// A random rotation: torchvision's `RandomRotation(degrees, interpolation, fill=fill)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rotation {
    /// Largest angle, in degrees (0 to 180); the angle is drawn uniformly in `[-degrees,
    /// degrees)`. 0 disables the rotation and draws no random number.
    pub degrees: f64,
    /// Value of the uncovered pixels, on every channel, before normalisation.
    pub fill: u8,
    /// Sampling of the rotated image.
    pub interpolation: Interpolation,
}

impl Rotation {
    /// No rotation.
    pub const NONE: Rotation = Rotation {
        degrees: 0.0,
        fill: 0,
        interpolation: Interpolation::Nearest,
    };

    /// Whether images are rotated at all.
    pub fn is_active(&self) -> bool {
        self.degrees != 0.0
    }

    /// Draws an angle in degrees, uniform in `[-degrees, degrees)`, as torch's
    /// `uniform_(-d, d)` computes it (`u · (to − from) + from`, `u` uniform in `[0, 1)`).
    pub fn sample(&self, rng: &mut impl rand::Rng) -> f64 {
        let u: f64 = rng.random();
        u * (2.0 * self.degrees) - self.degrees
    }
}

/// Python's `round(x, 15)`: the nearest double to `x` rounded to 15 decimals. Rust formats the
/// exact binary value with round-half-even and parses correctly rounded, as CPython's
/// `double_round` does; a stack buffer keeps it free of allocation.
fn round15(x: f64) -> f64 {
    use std::io::Write;
    let mut buffer = [0u8; 64];
    let mut cursor = std::io::Cursor::new(&mut buffer[..]);
    write!(cursor, "{x:.15}").expect("a rounded cosine or sine fits in 64 bytes");
    let len = cursor.position() as usize;
    std::str::from_utf8(&buffer[..len])
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("Rust parses the decimal it formatted")
}

/// What `Image.rotate` does for an angle and a size.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Route {
    /// `self.copy()`.
    Copy,
    /// `Transpose.ROTATE_90` (square images).
    Turn90,
    /// `Transpose.ROTATE_180`.
    Turn180,
    /// `Transpose.ROTATE_270` (square images).
    Turn270,
    /// `self.transform(size, AFFINE, matrix)`, the inverse matrix `[a, b, c, d, e, f]` mapping
    /// output `(x, y)` to source `(a·x + b·y + c, d·x + e·y + f)`.
    Affine([f64; 6]),
}

/// `Image.rotate(angle, expand=False, center=None, translate=None)` up to the transform call.
fn route(angle: f64, width: usize, height: usize) -> Route {
    // Python's float `%` takes the divisor's sign: `rem_euclid` for a positive divisor.
    let angle = angle.rem_euclid(360.0);
    if angle == 0.0 {
        return Route::Copy;
    }
    if angle == 180.0 {
        return Route::Turn180;
    }
    if width == height && (angle == 90.0 || angle == 270.0) {
        return if angle == 90.0 {
            Route::Turn90
        } else {
            Route::Turn270
        };
    }
    let (cx, cy) = (width as f64 / 2.0, height as f64 / 2.0);
    // `math.radians` multiplies by the constant pi/180.
    let radians = -(angle * (std::f64::consts::PI / 180.0));
    let mut m = [
        round15(radians.cos()),
        round15(radians.sin()),
        0.0,
        round15(-radians.sin()),
        round15(radians.cos()),
        0.0,
    ];
    // transform(-cx, -cy, matrix), then the centre added back.
    m[2] = m[0] * -cx + m[1] * -cy + m[2] + cx;
    m[5] = m[3] * -cx + m[4] * -cy + m[5] + cy;
    Route::Affine(m)
}

/// C's `(int)` of Pillow's `COORD(v)`: -1 below zero, else truncation.
fn coord(v: f64) -> i64 {
    if v < 0.0 { -1 } else { v as i64 }
}

/// Pillow's `FLOOR(v)`.
fn floor(v: f64) -> i64 {
    if v < 0.0 { v.floor() as i64 } else { v as i64 }
}

/// A planar image's geometry, and the copy of one source pixel to one output pixel.
#[derive(Debug, Clone, Copy)]
struct Planes {
    channels: usize,
    width: usize,
    height: usize,
}

impl Planes {
    fn copy(&self, source: &[u8], from: usize, out: &mut [u8], to: usize) {
        let plane = self.width * self.height;
        for c in 0..self.channels {
            out[c * plane + to] = source[c * plane + from];
        }
    }
}

/// Rotates a planar image (`shape = [channels, height, width]`, bytes in channel, row, column
/// order) by `angle` degrees counter-clockwise about its centre into `out` (same shape), as
/// Pillow's `img.rotate(angle, resample, expand=False, fillcolor=fill)`: see the module
/// documentation for the exact arithmetic.
///
/// # Panics
/// When `image` or `out` is shorter than the shape (an internal invariant: the loader sizes
/// both from the split's geometry).
pub fn rotate(
    image: &[u8],
    shape: [usize; 3],
    angle: f64,
    fill: u8,
    interpolation: Interpolation,
    out: &mut [u8],
) {
    let [channels, height, width] = shape;
    let planes = Planes {
        channels,
        width,
        height,
    };
    let n = channels * height * width;
    let (image, out) = (&image[..n], &mut out[..n]);
    let (w, h) = (width, height);
    match route(angle, width, height) {
        Route::Copy => out.copy_from_slice(image),
        Route::Turn180 => {
            for y in 0..h {
                for x in 0..w {
                    planes.copy(image, y * w + x, out, (h - 1 - y) * w + (w - 1 - x));
                }
            }
        }
        // Square images only: output row w−1−x, column y holds source (y, x).
        Route::Turn90 => {
            for y in 0..h {
                for x in 0..w {
                    planes.copy(image, y * w + x, out, (w - 1 - x) * h + y);
                }
            }
        }
        // Output row x, column h−1−y holds source (y, x).
        Route::Turn270 => {
            for y in 0..h {
                for x in 0..w {
                    planes.copy(image, y * w + x, out, x * h + (h - 1 - y));
                }
            }
        }
        Route::Affine(m) => {
            out.fill(fill);
            match interpolation {
                Interpolation::Nearest if m[1] == 0.0 && m[3] == 0.0 => {
                    nearest_scale(planes, image, &m, out)
                }
                Interpolation::Nearest => nearest_fixed(planes, image, &m, out),
                Interpolation::Bilinear => bilinear(planes, image, &m, out),
            }
        }
    }
}

/// Pillow's `affine_fixed`: 16.16 fixed point, the matrix rounded once, walked by addition.
fn nearest_fixed(p: Planes, image: &[u8], m: &[f64; 6], out: &mut [u8]) {
    let fix = |v: f64| floor(v * 65536.0 + 0.5);
    let (a0, a1, a3, a4) = (fix(m[0]), fix(m[1]), fix(m[3]), fix(m[4]));
    let (mut a2, mut a5) = (
        fix(m[2] + m[0] * 0.5 + m[1] * 0.5),
        fix(m[5] + m[3] * 0.5 + m[4] * 0.5),
    );
    let (w, h) = (p.width as i64, p.height as i64);
    for y in 0..p.height {
        let (mut xx, mut yy) = (a2, a5);
        for x in 0..p.width {
            let (xin, yin) = (xx >> 16, yy >> 16);
            if (0..w).contains(&xin) && (0..h).contains(&yin) {
                p.copy(image, (yin * w + xin) as usize, out, y * p.width + x);
            }
            xx += a0;
            yy += a3;
        }
        a2 += a1;
        a5 += a4;
    }
}

/// Pillow's `ImagingScaleAffine`, taken when the rounded sine is 0 (an angle within about
/// 3·10⁻¹⁴ degrees of 0 or 360): columns mapped by a running `f64` sum, rows likewise. Pillow
/// tabulates the columns once (`xintab`, zeroed, so a column between the first and last valid
/// ones that maps outside reads column 0); each row recomputes the same sums instead, which
/// allocates nothing.
fn nearest_scale(p: Planes, image: &[u8], m: &[f64; 6], out: &mut [u8]) {
    let (w, h) = (p.width as i64, p.height as i64);
    let (mut xmin, mut xmax) = (p.width, 0);
    let mut xo = m[2] + m[0] * 0.5;
    for x in 0..p.width {
        if (0..w).contains(&coord(xo)) {
            xmax = x + 1;
            xmin = xmin.min(x);
        }
        xo += m[0];
    }
    let mut yo = m[5] + m[4] * 0.5;
    for y in 0..p.height {
        let yi = coord(yo);
        if (0..h).contains(&yi) {
            let mut xo = m[2] + m[0] * 0.5;
            for x in 0..xmax {
                let xin = coord(xo);
                if x >= xmin {
                    let xin = if (0..w).contains(&xin) { xin } else { 0 };
                    p.copy(image, (yi * w + xin) as usize, out, y * p.width + x);
                }
                xo += m[0];
            }
        }
        yo += m[4];
    }
}

/// Pillow's generic transform with `affine_transform` and the bilinear filters.
fn bilinear(p: Planes, image: &[u8], m: &[f64; 6], out: &mut [u8]) {
    let (w, h) = (p.width as i64, p.height as i64);
    let plane = p.width * p.height;
    let clip_x = |x: i64| x.clamp(0, w - 1) as usize;
    let lerp = |a: f64, b: f64, d: f64| a + (b - a) * d;
    for y in 0..p.height {
        let yc = y as f64 + 0.5;
        for x in 0..p.width {
            let xc = x as f64 + 0.5;
            let xin = m[0] * xc + m[1] * yc + m[2];
            let yin = m[3] * xc + m[4] * yc + m[5];
            if xin < 0.0 || xin >= p.width as f64 || yin < 0.0 || yin >= p.height as f64 {
                continue;
            }
            let (xin, yin) = (xin - 0.5, yin - 0.5);
            let (x0, y0) = (floor(xin), floor(yin));
            let (dx, dy) = (xin - x0 as f64, yin - y0 as f64);
            let (left, right) = (clip_x(x0), clip_x(x0 + 1));
            let top = y0.clamp(0, h - 1) as usize * p.width;
            let below = (y0 + 1 >= 0 && y0 + 1 < h).then(|| (y0 + 1) as usize * p.width);
            for c in 0..p.channels {
                let source = &image[c * plane..(c + 1) * plane];
                let row = |start: usize| {
                    lerp(
                        source[start + left] as f64,
                        source[start + right] as f64,
                        dx,
                    )
                };
                let v1 = row(top);
                let v2 = below.map_or(v1, row);
                out[c * plane + y * p.width + x] = lerp(v1, v2, dy) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round15_is_pythons_round_to_15_decimals() {
        // CPython: math.cos(-math.radians(15)) = 0.9659258262890683, rounded
        // 0.965925826289068; math.sin(…) = -0.25881904510252074, rounded -0.258819045102521;
        // math.cos(-math.radians(90)) = 6.123233995736766e-17, rounded 0.0.
        assert_eq!(round15(0.965_925_826_289_068_3), 0.965_925_826_289_068);
        assert_eq!(round15(-0.258_819_045_102_520_74), -0.258_819_045_102_521);
        assert_eq!(round15(6.123_233_995_736_766e-17), 0.0);
        assert_eq!(round15(1.0), 1.0);
    }

    #[test]
    fn the_route_follows_image_rotate() {
        assert_eq!(route(0.0, 4, 4), Route::Copy);
        assert_eq!(route(-360.0, 4, 4), Route::Copy);
        assert_eq!(route(-180.0, 4, 6), Route::Turn180);
        assert_eq!(route(90.0, 4, 4), Route::Turn90);
        assert_eq!(route(-90.0, 4, 4), Route::Turn270);
        assert!(matches!(route(90.0, 4, 6), Route::Affine(_)));
        // 15°: cos and sin rounded to 15 decimals, the centre (2, 2) fixed.
        let Route::Affine(m) = route(15.0, 4, 4) else {
            panic!("15° is an affine transform")
        };
        assert_eq!(m[..2], [0.965_925_826_289_068, -0.258_819_045_102_521]);
        assert!((m[0] * 2.0 + m[1] * 2.0 + m[2] - 2.0).abs() < 1e-12);
    }

    #[test]
    fn samples_cover_the_range_and_zero_degrees_draws_nothing() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let rotation = Rotation {
            degrees: 15.0,
            ..Rotation::NONE
        };
        let angles: Vec<f64> = (0..1000).map(|_| rotation.sample(&mut rng)).collect();
        assert!(angles.iter().all(|a| (-15.0..15.0).contains(a)));
        assert!(angles.iter().any(|&a| a < -14.0) && angles.iter().any(|&a| a > 14.0));
        assert!(!Rotation::NONE.is_active() && rotation.is_active());
    }
}

//! kd-plot: what every chart of kd shares, without burn (so `xtask` can use it).
//!
//! Text needs a font and none is shipped: the first of `KD_FONT` and the usual DejaVu/Arial
//! paths that exists is registered with plotters once (Debian's `fonts-dejavu-core` provides
//! one); without a font, charts are drawn with no text. Charts render into an RGB buffer encoded
//! with `image`, so plotters' own bitmap encoder (and a second `image` version) stays out.

use std::path::Path;
use std::sync::OnceLock;

use plotters::style::{FontStyle, RGBColor};

const FONT_PATHS: [&str; 5] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// Registers a system font as plotters' `sans-serif` once; whether one was found.
pub fn font_available() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let candidates = std::env::var("KD_FONT")
            .into_iter()
            .chain(FONT_PATHS.iter().map(|s| s.to_string()));
        for path in candidates {
            if let Ok(bytes) = std::fs::read(&path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

/// The categorical palette (matplotlib's tab10).
pub const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// An RGB buffer of `size` for `BitMapBackend::with_buffer`, white.
pub fn buffer(size: (u32, u32)) -> Vec<u8> {
    vec![255u8; (size.0 * size.1 * 3) as usize]
}

/// Encodes a buffer from [`buffer`] as PNG.
pub fn save_png(path: &Path, buffer: &[u8], size: (u32, u32)) -> Result<(), String> {
    image::save_buffer(path, buffer, size.0, size.1, image::ExtendedColorType::Rgb8)
        .map_err(|e| e.to_string())
}

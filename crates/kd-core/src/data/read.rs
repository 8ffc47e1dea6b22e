//! Whole-file reads with transparent gzip: the readers see plain bytes whatever is on disk.

use std::io::Read;
use std::path::Path;

use super::error::DataError;

/// Reads `path`, inflating it if it starts with the gzip magic `1f 8b`. Byte offsets in later
/// errors count decompressed bytes.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| DataError::io(path, e))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

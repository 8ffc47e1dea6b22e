//! Checkpoint files: one file per checkpoint holding every network's and method module's
//! tensors, their optimiser states and the training position, written atomically and checked
//! for damage when read.
//!
//! Layout (format 2): the 8-byte magic `KDCKPT\0\x02`, a little-endian `u64` header length, the
//! little-endian CRC-32 of those 8 length bytes and the header, a JSON [`CheckpointHeader`],
//! then the blobs it indexes (burnpack bytes from burn's own stores), each with the CRC-32 of its
//! bytes in its [`BlobEntry`]. [`read_header`] verifies the header's checksum only, so the plan
//! can check a teacher checkpoint without reading a tensor; [`read`] verifies every blob's too.
//! A mismatch, a length that runs past the file or overflows, or a truncated file is a
//! [`CheckpointError::Damaged`] naming the file and the byte offset.
//!
//! Format 1 (magic `KDCKPT\0\x01`, no checksum field, blob entries without checksums) is still
//! read, with a warning that its integrity cannot be verified; kd writes format 2 only.
//!
//! Writes go to `<file>.tmp`, are flushed to disk, then renamed over the target: a crash leaves
//! either the old or the new checkpoint, never half of one. Why not burn's file recorders alone:
//! a run's state spans several modules, several optimisers and the loop position, and must be
//! replaced as one unit.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::preparation::InputPreparation;
use super::state::TrainState;

/// The magic of every format: `KDCKPT\0` then the layout's version byte.
const MAGIC_PREFIX: &[u8; 7] = b"KDCKPT\0";

/// A named blob: `(name, bytes)`.
pub type Blob = (String, Vec<u8>);

/// The most classes a network in a checkpoint may have: a header claiming more is damaged (a
/// network is never built from an implausible count; ImageNet-21k has 21,841).
pub const MAX_CLASSES: usize = 1_000_000;

/// The most input channels a network in a checkpoint may have.
pub const MAX_CHANNELS: usize = 64;

/// Checkpoint format version written in every header (and as the magic's last byte).
pub const FORMAT_VERSION: u32 = 2;

/// Byte offsets of format 2: the header length at 8, its checksum at 16, the header at 20.
const LEN_AT: u64 = 8;
const CRC_AT: u64 = 16;

/// What a checkpoint says about one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkEntry {
    /// Role name in the run that wrote it.
    pub role: String,
    /// Zoo name.
    pub arch: String,
    /// Classifier outputs.
    pub num_classes: usize,
    /// Input channels.
    pub in_channels: usize,
}

/// One stored blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobEntry {
    /// `<part>/module` or `<part>/optimizer`.
    pub name: String,
    /// Offset from the start of the blob area, in bytes.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// CRC-32 (IEEE) of the blob's bytes; absent in format 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32: Option<u32>,
}

/// The JSON header of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointHeader {
    /// [`FORMAT_VERSION`] (1 for files of the older layout).
    pub format: u32,
    /// kd version that wrote it.
    pub kd_version: String,
    /// Name of the run that wrote it.
    pub run: String,
    /// Networks by role.
    pub networks: Vec<NetworkEntry>,
    /// Where the loop stood.
    pub state: TrainState,
    /// Stored blobs.
    pub blobs: Vec<BlobEntry>,
    /// How images were prepared for its networks; `None` in files written before kd recorded
    /// it and in imports given no preparation. Checked for consistency when read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preparation: Option<InputPreparation>,
}

impl CheckpointHeader {
    /// The network stored for `role`.
    pub fn network(&self, role: &str) -> Option<&NetworkEntry> {
        self.networks.iter().find(|n| n.role == role)
    }
}

/// Why a checkpoint could not be read or written. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// I/O failure.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A directory was named where a checkpoint file was expected.
    #[error("{path}: is a directory, not a checkpoint file")]
    Directory {
        /// The directory.
        path: PathBuf,
    },
    /// Not a kd checkpoint (no magic number), or of a format this kd does not read.
    #[error("{path}: not a kd checkpoint ({reason})")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A kd checkpoint whose bytes disagree with themselves: a checksum mismatch, a length or
    /// offset past the end of the file (or past any file), a header that does not parse.
    #[error("{path}: the checkpoint is damaged: {reason}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the byte offset.
        reason: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.into(),
        source,
    }
}

/// The CRC-32 of a format 2 header: its 8 length bytes, then the JSON.
fn header_crc(len: &[u8; 8], json: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(len);
    hasher.update(json);
    hasher.finalize()
}

/// Writes a checkpoint atomically, in format [`FORMAT_VERSION`] (whatever `header.format`
/// says): the blob index and every checksum are computed here.
///
/// # Errors
/// [`CheckpointError::Io`] when the file cannot be written (any earlier file at `path` is then
/// left as it was).
pub fn write(
    path: &Path,
    mut header: CheckpointHeader,
    blobs: Vec<(String, Vec<u8>)>,
) -> Result<(), CheckpointError> {
    let mut offset = 0u64;
    header.format = FORMAT_VERSION;
    header.blobs = blobs
        .iter()
        .map(|(name, bytes)| {
            let entry = BlobEntry {
                name: name.clone(),
                offset,
                len: bytes.len() as u64,
                crc32: Some(crc32fast::hash(bytes)),
            };
            offset += bytes.len() as u64;
            entry
        })
        .collect();
    let json = serde_json::to_vec(&header).map_err(|e| CheckpointError::Format {
        path: path.into(),
        reason: format!("cannot encode header: {e}"),
    })?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let tmp = path.with_extension("tmp");
    let written = write_file(&tmp, &json, &blobs)
        .and_then(|()| std::fs::rename(&tmp, path).map_err(io(path)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp); // never leave half a checkpoint behind
    }
    written
}

fn write_file(tmp: &Path, json: &[u8], blobs: &[Blob]) -> Result<(), CheckpointError> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(tmp).map_err(io(tmp))?);
    let len = (json.len() as u64).to_le_bytes();
    let version = u8::try_from(FORMAT_VERSION).expect("the format version fits the magic's byte");
    file.write_all(MAGIC_PREFIX).map_err(io(tmp))?;
    file.write_all(&[version]).map_err(io(tmp))?;
    file.write_all(&len).map_err(io(tmp))?;
    file.write_all(&header_crc(&len, json).to_le_bytes())
        .map_err(io(tmp))?;
    file.write_all(json).map_err(io(tmp))?;
    for (_, bytes) in blobs {
        file.write_all(bytes).map_err(io(tmp))?;
    }
    let file = file.into_inner().map_err(|e| CheckpointError::Io {
        path: tmp.into(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io(tmp))
}

/// An open checkpoint whose header was read (and, in format 2, verified).
struct Opened {
    file: std::fs::File,
    header: CheckpointHeader,
    /// Where the blob area starts.
    start: u64,
}

fn open_header(path: &Path) -> Result<Opened, CheckpointError> {
    let metadata = std::fs::metadata(path).map_err(io(path))?;
    if metadata.is_dir() {
        return Err(CheckpointError::Directory { path: path.into() });
    }
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let size = file.metadata().map_err(io(path))?.len();
    let format = |reason: String| CheckpointError::Format {
        path: path.into(),
        reason,
    };
    let damaged = |reason: String| CheckpointError::Damaged {
        path: path.into(),
        reason,
    };
    let mut magic = [0u8; 8];
    if size < magic.len() as u64 {
        return Err(format(format!(
            "{size} bytes, shorter than its 8-byte magic number"
        )));
    }
    file.read_exact(&mut magic).map_err(io(path))?;
    if magic[..7] != MAGIC_PREFIX[..] {
        return Err(format("bad magic number at byte 0".into()));
    }
    let version = u32::from(magic[7]);
    if version != 1 && version != FORMAT_VERSION {
        return Err(format(format!(
            "format version {version} at byte 7; this kd reads 1 and {FORMAT_VERSION}"
        )));
    }
    // Everything up to the header: length, then (format 2) its checksum.
    let fixed = if version == 1 { 16 } else { 20 };
    if size < fixed {
        return Err(damaged(format!(
            "truncated at byte {size}, inside the {fixed}-byte preamble"
        )));
    }
    let mut len_bytes = [0u8; 8];
    file.read_exact(&mut len_bytes).map_err(io(path))?;
    let len = u64::from_le_bytes(len_bytes);
    let mut stored_crc = None;
    if version != 1 {
        let mut crc = [0u8; 4];
        file.read_exact(&mut crc).map_err(io(path))?;
        stored_crc = Some(u32::from_le_bytes(crc));
    }
    let start = fixed
        .checked_add(len)
        .filter(|end| *end <= size)
        .ok_or_else(|| {
            damaged(format!(
                "the header length at byte {LEN_AT} says {len} bytes, past the end of the \
                 {size}-byte file"
            ))
        })?;
    let json_len = usize::try_from(len).expect("the header fits in the file, so in memory");
    let mut json = vec![0u8; json_len];
    file.read_exact(&mut json).map_err(io(path))?;
    if let Some(stored) = stored_crc {
        let computed = header_crc(&len_bytes, &json);
        if computed != stored {
            return Err(damaged(format!(
                "checksum mismatch in the header (its length at byte {LEN_AT}, the header at \
                 bytes {fixed}..{start}, the checksum at byte {CRC_AT}): stored {stored:08x}, \
                 computed {computed:08x}"
            )));
        }
    } else {
        tracing::warn!(
            "{}: a format 1 checkpoint carries no checksums; its integrity cannot be verified \
             (a run resumed from it writes format {FORMAT_VERSION})",
            path.display()
        );
    }
    let header: CheckpointHeader = serde_json::from_slice(&json)
        .map_err(|e| damaged(format!("the header at byte {fixed} does not parse: {e}")))?;
    if header.format != version {
        return Err(damaged(format!(
            "the header says format {} but the magic number says {version}",
            header.format
        )));
    }
    if let Some(preparation) = &header.preparation {
        preparation.check().map_err(|issue| {
            damaged(format!(
                "the header's input preparation (at byte {fixed}) is inconsistent: {issue}"
            ))
        })?;
        if let Some(network) = header
            .networks
            .iter()
            .find(|n| n.in_channels != preparation.channels)
        {
            return Err(damaged(format!(
                "the header's input preparation (at byte {fixed}) has {} channel(s), but its \
                 network `{}` takes {}",
                preparation.channels, network.role, network.in_channels
            )));
        }
    }
    for network in &header.networks {
        if !(1..=MAX_CLASSES).contains(&network.num_classes)
            || !(1..=MAX_CHANNELS).contains(&network.in_channels)
        {
            return Err(damaged(format!(
                "the header (at byte {fixed}) says network `{}` has {} classes and {} input \
                 channel(s); a network has 1 to {MAX_CLASSES} and 1 to {MAX_CHANNELS}",
                network.role, network.num_classes, network.in_channels
            )));
        }
    }
    let mut blobs_end = start;
    for blob in &header.blobs {
        let end = blob
            .offset
            .checked_add(blob.len)
            .and_then(|end| end.checked_add(start))
            .ok_or_else(|| {
                damaged(format!(
                    "blob `{}` claims {} bytes at offset {} of the blob area (byte {start}): \
                     past any file",
                    blob.name, blob.len, blob.offset
                ))
            })?;
        if end > size {
            return Err(damaged(format!(
                "truncated: blob `{}` ends at byte {end}, the file has {size} bytes",
                blob.name
            )));
        }
        if version != 1 && blob.crc32.is_none() {
            return Err(damaged(format!(
                "blob `{}` carries no checksum in a format {version} header",
                blob.name
            )));
        }
        blobs_end = blobs_end.max(end);
    }
    if blobs_end < size {
        return Err(damaged(format!(
            "{} byte(s) follow the last blob, from byte {blobs_end}: the file is not what its \
             header describes",
            size - blobs_end
        )));
    }
    Ok(Opened {
        file,
        header,
        start,
    })
}

/// Reads only the header, verifying its checksum (not the blobs'): cheap, for the plan.
///
/// # Errors
/// [`CheckpointError::Directory`] for a directory, [`CheckpointError::Format`] for a file that
/// is not a kd checkpoint of a known format, [`CheckpointError::Damaged`] for a header that fails
/// its checksum or indexes blobs past the end of the file, [`CheckpointError::Io`] otherwise.
pub fn read_header(path: &Path) -> Result<CheckpointHeader, CheckpointError> {
    open_header(path).map(|opened| opened.header)
}

/// Reads the header and every blob, verifying every checksum.
///
/// # Errors
/// As [`read_header`], and [`CheckpointError::Damaged`] for a blob whose bytes fail their
/// checksum (naming the blob and its bytes in the file).
pub fn read(path: &Path) -> Result<(CheckpointHeader, Vec<Blob>), CheckpointError> {
    let Opened {
        mut file,
        header,
        start,
    } = open_header(path)?;
    let mut blobs = Vec::with_capacity(header.blobs.len());
    for entry in &header.blobs {
        // `open_header` checked that every blob lies inside the file.
        let at = start + entry.offset;
        file.seek(SeekFrom::Start(at)).map_err(io(path))?;
        let len = usize::try_from(entry.len).expect("a blob inside the file fits in memory");
        let mut bytes = vec![0u8; len];
        file.read_exact(&mut bytes).map_err(io(path))?;
        if let Some(stored) = entry.crc32 {
            let computed = crc32fast::hash(&bytes);
            if computed != stored {
                return Err(CheckpointError::Damaged {
                    path: path.into(),
                    reason: format!(
                        "checksum mismatch in blob `{}` (bytes {at}..{}): stored {stored:08x}, \
                         computed {computed:08x}",
                        entry.name,
                        at + entry.len
                    ),
                });
            }
        }
        blobs.push((entry.name.clone(), bytes));
    }
    Ok((header, blobs))
}

/// The blob holding the module of role `role`: `role:<role>/module`.
pub fn role_module_blob(role: &str) -> String {
    format!("role:{role}/module")
}

/// A checkpoint reference as configs write it: `path` or `path#role` (the role inside the
/// checkpoint; `student` by default).
pub fn split_reference(reference: &Path) -> (PathBuf, String) {
    let text = reference.to_string_lossy();
    match text.rsplit_once('#') {
        Some((path, role)) if !role.is_empty() && !role.contains('/') => {
            (PathBuf::from(path), role.to_string())
        }
        _ => (reference.to_path_buf(), "student".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> CheckpointHeader {
        CheckpointHeader {
            format: FORMAT_VERSION,
            kd_version: "test".into(),
            run: "r".into(),
            networks: vec![NetworkEntry {
                role: "student".into(),
                arch: "resnet8".into(),
                num_classes: 10,
                in_channels: 3,
            }],
            state: TrainState::default(),
            blobs: Vec::new(),
            preparation: None,
        }
    }

    fn preparation() -> InputPreparation {
        InputPreparation {
            format: Some("cifar10".into()),
            channels: 3,
            image_size: [32, 32],
            input_size: 32,
            mean: vec![0.5, 0.25, 0.125],
            std: vec![0.2, 0.3, 0.4],
            class_names: Some(vec!["a".into(), "b".into()]),
        }
    }

    fn blobs() -> Vec<Blob> {
        vec![
            ("role:student/module".into(), (0..200u8).collect()),
            ("role:student/optimizer".into(), vec![7u8; 50]),
        ]
    }

    /// A checkpoint written by [`write`] in a fresh directory.
    fn written() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.kdc");
        write(&path, header(), blobs()).unwrap();
        (dir, path)
    }

    /// The header length and where the blob area starts.
    fn layout(bytes: &[u8]) -> (usize, usize) {
        let len = u64::from_le_bytes(bytes[8..16].try_into().unwrap()) as usize;
        (len, 20 + len)
    }

    /// Rewrites the header JSON of a format 2 file (checksum recomputed).
    fn rewrite_header(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
        let bytes = std::fs::read(path).unwrap();
        let (len, start) = layout(&bytes);
        let mut value: serde_json::Value = serde_json::from_slice(&bytes[20..start]).unwrap();
        edit(&mut value);
        let json = serde_json::to_vec(&value).unwrap();
        let len_bytes = (json.len() as u64).to_le_bytes();
        let mut out = bytes[..8].to_vec();
        out.extend(len_bytes);
        out.extend(header_crc(&len_bytes, &json).to_le_bytes());
        out.extend(&json);
        out.extend(&bytes[20 + len..]);
        std::fs::write(path, out).unwrap();
    }

    fn damaged(result: Result<impl std::fmt::Debug, CheckpointError>) -> String {
        match result {
            Err(e @ CheckpointError::Damaged { .. }) => e.to_string(),
            other => panic!("expected a damaged checkpoint, got {other:?}"),
        }
    }

    #[test]
    fn a_written_checkpoint_reads_back_with_its_checksums() {
        let (_dir, path) = written();
        let (header, read_blobs) = read(&path).unwrap();
        assert_eq!(read_blobs, blobs());
        assert_eq!(header.format, 2);
        assert_eq!(header.blobs[1].offset, 200);
        assert_eq!(header.blobs[0].crc32, Some(crc32fast::hash(&blobs()[0].1)));
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"KDCKPT\0\x02");
    }

    #[test]
    fn a_flipped_byte_in_a_blob_fails_read_but_not_read_header() {
        let (_dir, path) = written();
        let mut bytes = std::fs::read(&path).unwrap();
        let (_, start) = layout(&bytes);
        bytes[start + 210] ^= 0x40; // inside the optimizer blob
        std::fs::write(&path, &bytes).unwrap();
        assert!(
            read_header(&path).is_ok(),
            "header-only reads skip the blobs"
        );
        let message = damaged(read(&path));
        assert!(message.contains("c.kdc"), "{message}");
        assert!(
            message.contains("checksum mismatch in blob `role:student/optimizer`"),
            "{message}"
        );
        assert!(
            message.contains(&format!("(bytes {}..{})", start + 200, start + 250)),
            "{message}"
        );
    }

    #[test]
    fn a_flipped_byte_in_the_header_fails_even_a_header_read() {
        let (_dir, path) = written();
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.windows(7).position(|w| w == b"resnet8").unwrap();
        bytes[at + 6] = b'9'; // still valid JSON: only the checksum can tell
        std::fs::write(&path, &bytes).unwrap();
        let message = damaged(read_header(&path));
        assert!(
            message.contains("checksum mismatch in the header"),
            "{message}"
        );
    }

    #[test]
    fn implausible_network_sizes_and_trailing_bytes_are_damage() {
        let (_dir, path) = written();
        let good = std::fs::read(&path).unwrap();
        for (field, value) in [
            ("num_classes", u64::MAX),
            ("num_classes", 100_000_000),
            ("num_classes", 0),
            ("in_channels", 1 << 33),
        ] {
            std::fs::write(&path, &good).unwrap();
            rewrite_header(&path, |h| h["networks"][0][field] = value.into());
            let message = damaged(read_header(&path));
            assert!(
                message.contains("says network `student` has") && message.contains("1 to"),
                "{field} = {value}: {message}"
            );
        }
        let mut bytes = good.clone();
        bytes.extend([0u8; 3]);
        std::fs::write(&path, &bytes).unwrap();
        let message = damaged(read_header(&path));
        assert!(
            message.contains(&format!(
                "3 byte(s) follow the last blob, from byte {}",
                good.len()
            )),
            "{message}"
        );
    }

    #[test]
    fn lengths_near_u64_max_are_errors_with_the_offset() {
        let (_dir, path) = written();
        let good = std::fs::read(&path).unwrap();
        for len in [u64::MAX, u64::MAX - 19, u64::MAX - 20, 1 << 40] {
            let mut bytes = good.clone();
            bytes[8..16].copy_from_slice(&len.to_le_bytes());
            std::fs::write(&path, &bytes).unwrap();
            let message = damaged(read_header(&path));
            assert!(
                message.contains(&format!("header length at byte 8 says {len} bytes")),
                "{message}"
            );
        }
        for (offset, len) in [(u64::MAX, 1), (1, u64::MAX), (u64::MAX - 100, 50)] {
            std::fs::write(&path, &good).unwrap();
            rewrite_header(&path, |h| {
                h["blobs"][1]["offset"] = offset.into();
                h["blobs"][1]["len"] = len.into();
            });
            let message = damaged(read(&path));
            assert!(
                message.contains("blob `role:student/optimizer`")
                    && (message.contains("past any file") || message.contains("truncated")),
                "{message}"
            );
        }
    }

    #[test]
    fn truncation_and_missing_checksums_are_damage() {
        let (_dir, path) = written();
        let good = std::fs::read(&path).unwrap();
        std::fs::write(&path, &good[..good.len() - 1]).unwrap();
        let message = damaged(read_header(&path));
        assert!(
            message.contains(&format!(
                "blob `role:student/optimizer` ends at byte {}, the file has {} bytes",
                good.len(),
                good.len() - 1
            )),
            "{message}"
        );
        std::fs::write(&path, &good[..18]).unwrap();
        assert!(damaged(read_header(&path)).contains("truncated at byte 18"));
        std::fs::write(&path, &good).unwrap();
        rewrite_header(&path, |h| {
            h["blobs"][0].as_object_mut().unwrap().remove("crc32");
        });
        assert!(damaged(read(&path)).contains("carries no checksum"));
    }

    #[test]
    fn format_1_files_are_still_read() {
        let (_dir, path) = written();
        let bytes = std::fs::read(&path).unwrap();
        let (len, start) = layout(&bytes);
        let mut value: serde_json::Value = serde_json::from_slice(&bytes[20..start]).unwrap();
        value["format"] = 1.into();
        for blob in value["blobs"].as_array_mut().unwrap() {
            blob.as_object_mut().unwrap().remove("crc32");
        }
        let json = serde_json::to_vec(&value).unwrap();
        let mut old = b"KDCKPT\0\x01".to_vec();
        old.extend((json.len() as u64).to_le_bytes());
        old.extend(&json);
        old.extend(&bytes[20 + len..]);
        std::fs::write(&path, &old).unwrap();
        let (header, read_blobs) = read(&path).unwrap();
        assert_eq!(header.format, 1);
        assert_eq!(read_blobs, blobs());
        // Its lengths are checked all the same.
        old[8..16].copy_from_slice(&(u64::MAX - 15).to_le_bytes());
        std::fs::write(&path, &old).unwrap();
        assert!(damaged(read_header(&path)).contains("past the end"));
    }

    #[test]
    fn directories_short_files_and_other_formats_say_what_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let error = read_header(dir.path()).unwrap_err();
        assert!(
            matches!(error, CheckpointError::Directory { .. }),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .ends_with("is a directory, not a checkpoint file")
        );
        let path = dir.path().join("short.kdc");
        std::fs::write(&path, b"KDC").unwrap();
        let message = read_header(&path).unwrap_err().to_string();
        assert!(
            message.contains("not a kd checkpoint (3 bytes, shorter than its 8-byte magic"),
            "{message}"
        );
        std::fs::write(&path, b"KDCKPT\0\x07 and more").unwrap();
        let message = read_header(&path).unwrap_err().to_string();
        assert!(message.contains("format version 7 at byte 7"), "{message}");
    }

    #[test]
    fn the_input_preparation_round_trips_through_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.kdc");
        let mut with = header();
        with.preparation = Some(preparation());
        write(&path, with, blobs()).unwrap();
        let (read_back, read_blobs) = read(&path).unwrap();
        assert_eq!(read_back.preparation, Some(preparation()));
        assert_eq!(read_blobs, blobs());
        // Without one, the header holds no `preparation` key at all.
        let (_dir, path) = written();
        let bytes = std::fs::read(&path).unwrap();
        let (_, start) = layout(&bytes);
        let json = String::from_utf8_lossy(&bytes[20..start]).into_owned();
        assert!(!json.contains("preparation"), "{json}");
        assert_eq!(read_header(&path).unwrap().preparation, None);
    }

    #[test]
    fn headers_written_before_the_preparation_was_recorded_still_read() {
        // A format 2 header exactly as kd wrote it before: no `preparation` key.
        let (_dir, path) = written();
        rewrite_header(&path, |h| {
            h.as_object_mut().unwrap().remove("preparation");
            h["kd_version"] = "0.1.0".into();
        });
        let (old, read_blobs) = read(&path).unwrap();
        assert_eq!(old.preparation, None);
        assert_eq!(old.kd_version, "0.1.0");
        assert_eq!(read_blobs, blobs());
    }

    #[test]
    fn an_inconsistent_preparation_is_damage_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.kdc");
        let mut with = header();
        with.preparation = Some(preparation());
        write(&path, with, blobs()).unwrap();
        rewrite_header(&path, |h| {
            h["preparation"]["std"] = serde_json::json!([0.2, 0.0, 0.4]);
        });
        let message = damaged(read_header(&path));
        assert!(message.contains("c.kdc"), "{message}");
        assert!(
            message.contains(
                "the header's input preparation (at byte 20) is inconsistent: `std` holds 0; \
                 every value must be positive"
            ),
            "{message}"
        );
        rewrite_header(&path, |h| {
            h["preparation"]["std"] = serde_json::json!([0.2, 0.3, 0.4]);
            h["preparation"]["channels"] = 1.into();
            h["preparation"]["mean"] = serde_json::json!([0.5]);
            h["preparation"]["std"] = serde_json::json!([0.5]);
        });
        let message = damaged(read_header(&path));
        assert!(
            message.contains("has 1 channel(s), but its network `student` takes 3"),
            "{message}"
        );
        rewrite_header(&path, |h| {
            h["preparation"]["channels"] = "three".into();
        });
        let message = damaged(read_header(&path));
        assert!(message.contains("does not parse"), "{message}");
    }
}

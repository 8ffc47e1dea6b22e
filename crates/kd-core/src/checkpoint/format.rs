//! Checkpoint files: one file per checkpoint holding every network's and method module's
//! tensors, their optimiser states and the training position, written atomically.
//!
//! Layout: the 8-byte magic `KDCKPT\0\x01`, a little-endian `u64` header length, a JSON
//! [`CheckpointHeader`], then the blobs it indexes (burnpack bytes from burn's own stores). The
//! header alone tells which architecture each role holds, so the plan can check a teacher
//! checkpoint without reading a tensor. Writes go to `<file>.tmp`, are flushed to disk, then
//! renamed over the target: a crash leaves either the old or the new checkpoint, never half of
//! one. Why not burn's file recorders alone: a run's state spans several modules, several
//! optimisers and the loop position, and must be replaced as one unit.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::state::TrainState;

const MAGIC: &[u8; 8] = b"KDCKPT\0\x01";

/// A named blob: `(name, bytes)`.
pub type Blob = (String, Vec<u8>);

/// Checkpoint format version written in every header.
pub const FORMAT_VERSION: u32 = 1;

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
    /// Offset from the start of the blob area.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

/// The JSON header of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointHeader {
    /// [`FORMAT_VERSION`].
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
}

impl CheckpointHeader {
    /// The network stored for `role`.
    pub fn network(&self, role: &str) -> Option<&NetworkEntry> {
        self.networks.iter().find(|n| n.role == role)
    }
}

/// Why a checkpoint could not be read or written.
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
    /// Not a kd checkpoint, or damaged.
    #[error("{path}: not a kd checkpoint ({reason})")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.into(),
        source,
    }
}

/// Writes a checkpoint atomically.
pub fn write(
    path: &Path,
    mut header: CheckpointHeader,
    blobs: Vec<(String, Vec<u8>)>,
) -> Result<(), CheckpointError> {
    let mut offset = 0u64;
    header.blobs = blobs
        .iter()
        .map(|(name, bytes)| {
            let entry = BlobEntry {
                name: name.clone(),
                offset,
                len: bytes.len() as u64,
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
    file.write_all(MAGIC).map_err(io(tmp))?;
    file.write_all(&(json.len() as u64).to_le_bytes())
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

fn open_header(path: &Path) -> Result<(std::fs::File, CheckpointHeader, u64), CheckpointError> {
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let format = |reason: &str| CheckpointError::Format {
        path: path.into(),
        reason: reason.into(),
    };
    let mut magic = [0u8; 8];
    file.read_exact(&mut magic)
        .map_err(|_| format("shorter than its magic number"))?;
    if &magic != MAGIC {
        return Err(format("bad magic number at byte 0"));
    }
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| format("truncated at byte 8"))?;
    let len = u64::from_le_bytes(len);
    let size = file.metadata().map_err(io(path))?.len();
    if 16 + len > size {
        return Err(format(&format!(
            "header of {len} bytes runs past the end of the file at byte {size}"
        )));
    }
    let mut json = vec![0u8; len as usize];
    file.read_exact(&mut json).map_err(io(path))?;
    let header: CheckpointHeader =
        serde_json::from_slice(&json).map_err(|e| format(&format!("header at byte 16: {e}")))?;
    if header.format != FORMAT_VERSION {
        return Err(format(&format!(
            "format version {}, this kd reads {FORMAT_VERSION}",
            header.format
        )));
    }
    let end = header
        .blobs
        .iter()
        .map(|b| b.offset + b.len)
        .max()
        .unwrap_or(0);
    if 16 + len + end > size {
        return Err(format(&format!(
            "truncated: blobs end at byte {}, file has {size}",
            16 + len + end
        )));
    }
    Ok((file, header, 16 + len))
}

/// Reads only the header.
pub fn read_header(path: &Path) -> Result<CheckpointHeader, CheckpointError> {
    open_header(path).map(|(_, header, _)| header)
}

/// Reads the header and every blob.
pub fn read(path: &Path) -> Result<(CheckpointHeader, Vec<Blob>), CheckpointError> {
    let (mut file, header, start) = open_header(path)?;
    let mut blobs = Vec::with_capacity(header.blobs.len());
    for entry in &header.blobs {
        file.seek(SeekFrom::Start(start + entry.offset))
            .map_err(io(path))?;
        let mut bytes = vec![0u8; entry.len as usize];
        file.read_exact(&mut bytes).map_err(io(path))?;
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

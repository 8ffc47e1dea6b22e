//! Zoo networks out to the PyTorch world (`kd export`): the state dict of the reference
//! definition (HobbitLong/RepDistiller's `models/`), written as safetensors or as a `torch.save`
//! file, so `model.load_state_dict(...)` on that definition loads it with no key missing or left
//! over.
//!
//! [`torch_state_dict`] renames and transposes (the inverse of what `kd import` undoes) and adds
//! the `num_batches_tracked` counters burn does not keep; [`export_network`] writes it in an
//! [`ExportFormat`]. A `.safetensors` file carries metadata saying what it holds (architecture,
//! classes, input channels, kd version, source checkpoint and role); a `.pth` file holds a bare
//! state dict, as `torch.save(model.state_dict(), path)` writes one. Files are written to a
//! temporary file beside the target and renamed over it, so a failed export leaves whatever was
//! at the target as it was.

mod pth;
mod state_dict;

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub use state_dict::{TorchTensor, TorchValues, torch_state_dict};

use crate::checkpoint::{InputPreparation, NetworkEntry};
use crate::zoo::Network;

/// The file format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// safetensors (`safetensors.torch.load_file`), with metadata.
    Safetensors,
    /// PyTorch's zip checkpoint (`torch.load`), a bare state dict.
    Pth,
}

impl ExportFormat {
    /// The name used on the command line and in messages.
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Safetensors => "safetensors",
            ExportFormat::Pth => "pth",
        }
    }

    /// The format a file name asks for: `.pth` and `.pt` are PyTorch checkpoints, anything else
    /// safetensors.
    pub fn for_path(path: &Path) -> Self {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("pth" | "pt") => ExportFormat::Pth,
            _ => ExportFormat::Safetensors,
        }
    }
}

/// Why an export failed. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The target cannot be written (a missing folder, a directory, no permission, a full
    /// disk); whatever was at the target is left as it was.
    #[error("{path}: cannot write the export: {message}")]
    Write {
        /// The target file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The target is the checkpoint being exported.
    #[error(
        "{path}: is the checkpoint being exported; writing there would replace it, so choose \
         another output file"
    )]
    SameFile {
        /// The file.
        path: PathBuf,
    },
    /// The format's encoder refused the tensors (none of the zoo's should be refused).
    #[error("{path}: cannot encode the {format} file: {message}")]
    Encode {
        /// The target file.
        path: PathBuf,
        /// The format's name.
        format: &'static str,
        /// The encoder's report.
        message: String,
    },
}

impl ExportError {
    /// Whether the user can fix it (a path to choose or a folder to create: exit status 2 in
    /// `kd`); an encoder refusing the tensors is kd's fault.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            ExportError::Write { .. } | ExportError::SameFile { .. }
        )
    }
}

/// What [`export_network`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// State-dict entries written (parameters, running statistics and counters).
    pub tensors: usize,
    /// Size of the file in bytes.
    pub bytes: u64,
}

/// The metadata a safetensors export carries, as `safetensors` stores it (strings), by key.
pub fn metadata(
    entry: &NetworkEntry,
    source: &Path,
    preparation: Option<&InputPreparation>,
) -> BTreeMap<String, String> {
    let mut metadata = BTreeMap::from([
        // `pt`: the tensors are laid out for PyTorch (what Hugging Face's loaders check).
        ("format".to_string(), "pt".to_string()),
        ("architecture".to_string(), entry.arch.clone()),
        ("num_classes".to_string(), entry.num_classes.to_string()),
        ("in_channels".to_string(), entry.in_channels.to_string()),
        (
            "kd_version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        (
            "source_checkpoint".to_string(),
            source.display().to_string(),
        ),
        ("source_role".to_string(), entry.role.clone()),
    ]);
    // How the network's inputs must be prepared (the checkpoint's record, as JSON), so a
    // deployed model carries it.
    if let Some(preparation) = preparation
        && let Ok(json) = serde_json::to_string(preparation)
    {
        metadata.insert("input_preparation".to_string(), json);
    }
    metadata
}

/// Writes `network` (described by `entry`, read from the checkpoint `source`) to `out` as the
/// PyTorch state dict of its reference definition, in `format`; atomically.
///
/// # Errors
/// [`ExportError::SameFile`] when `out` is `source`; [`ExportError::Write`] when `out` is a
/// directory or cannot be written (naming why; the file at `out`, if any, is unchanged);
/// [`ExportError::Encode`] if the encoder refuses the tensors.
pub fn export_network(
    network: &Network,
    entry: &NetworkEntry,
    source: &Path,
    out: &Path,
    format: ExportFormat,
    preparation: Option<&InputPreparation>,
) -> Result<Exported, ExportError> {
    check_target(source, out)?;
    let tensors = torch_state_dict(network);
    let encode = |message: String| ExportError::Encode {
        path: out.into(),
        format: format.name(),
        message,
    };
    let bytes = match format {
        ExportFormat::Safetensors => {
            let data: Vec<Vec<u8>> = tensors.iter().map(|t| t.values.to_le_bytes()).collect();
            let views = tensors
                .iter()
                .zip(&data)
                .map(|(t, bytes)| {
                    let dtype = match t.values {
                        TorchValues::F32(_) => safetensors::Dtype::F32,
                        TorchValues::I64(_) => safetensors::Dtype::I64,
                    };
                    safetensors::tensor::TensorView::new(dtype, t.shape.clone(), bytes)
                        .map(|view| (t.key.clone(), view))
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| encode(e.to_string()))?;
            let bytes =
                safetensors_bytes(views, &metadata(entry, source, preparation)).map_err(encode)?;
            write_atomically(out, |file| file.write_all(&bytes))?
        }
        ExportFormat::Pth => write_atomically(out, |file| {
            pth::write_pth(BufWriter::new(file), &tensors)
                .map_err(std::io::Error::other)?
                .flush()
        })?,
    };
    tracing::info!(
        "exported {} ({} tensors) from {} to {} as {}",
        entry.arch,
        tensors.len(),
        source.display(),
        out.display(),
        format.name()
    );
    Ok(Exported {
        tensors: tensors.len(),
        bytes,
    })
}

/// The safetensors file of `views` with `metadata` as the header's first entry, in key order.
///
/// `safetensors::serialize` takes metadata as a `HashMap` and writes it in that map's iteration
/// order, which changes from run to run: the same checkpoint would give files of different
/// bytes (and digests). So the tensors are serialised without metadata, and the metadata object,
/// written from a sorted map, is spliced in at the start of the JSON header, which is re-padded
/// with spaces to a multiple of 8 bytes as the format requires. Tensor data and offsets (relative
/// to the end of the header) are untouched.
///
/// # Errors
/// What the encoder says when it refuses the tensors, or a header that is not a JSON object.
fn safetensors_bytes<'a>(
    views: Vec<(String, safetensors::tensor::TensorView<'a>)>,
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>, String> {
    let bare = safetensors::serialize(views, None).map_err(|e| e.to_string())?;
    let not_object = || "the encoder wrote a header that is not a JSON object".to_string();
    let len = bare
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(not_object)?;
    let header = bare
        .get(8..8usize.saturating_add(len))
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(not_object)?;
    let rest = header.trim_end().strip_prefix('{').ok_or_else(not_object)?;
    let object = serde_json::to_string(metadata).map_err(|e| e.to_string())?;
    let mut spliced = format!("{{\"__metadata__\":{object}");
    if rest.trim_start() != "}" {
        spliced.push(',');
    }
    spliced.push_str(rest);
    while spliced.len() % 8 != 0 {
        spliced.push(' ');
    }
    let data = &bare[8 + len..];
    let mut bytes = Vec::with_capacity(8 + spliced.len() + data.len());
    bytes.extend_from_slice(&(spliced.len() as u64).to_le_bytes());
    bytes.extend_from_slice(spliced.as_bytes());
    bytes.extend_from_slice(data);
    Ok(bytes)
}

/// Refuses a target that is the source checkpoint or a directory, before anything is computed.
fn check_target(source: &Path, out: &Path) -> Result<(), ExportError> {
    if out.is_dir() {
        return Err(ExportError::Write {
            path: out.into(),
            message: "it is a directory; name a file".into(),
        });
    }
    if let (Ok(a), Ok(b)) = (source.canonicalize(), out.canonicalize())
        && a == b
    {
        return Err(ExportError::SameFile { path: out.into() });
    }
    Ok(())
}

/// Writes a file through `fill` to a temporary file beside `out`, flushes it to disk and renames
/// it over `out`; on any failure the temporary file is removed and `out` left as it was.
/// Returns the file's size.
fn write_atomically(
    out: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<u64, ExportError> {
    let error = |message: String| ExportError::Write {
        path: out.into(),
        message,
    };
    let folder = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !folder.is_dir() {
        return Err(error(format!(
            "its folder {} does not exist",
            folder.display()
        )));
    }
    let name = out.file_name().unwrap_or_default().to_string_lossy();
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    // A file to hand on, readable like any other (temporary files are private by default).
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let mut temp = builder
        .tempfile_in(folder)
        .map_err(|e| error(format!("cannot create a file in {}: {e}", folder.display())))?;
    fill(temp.as_file_mut()).map_err(|e| error(e.to_string()))?;
    temp.as_file()
        .sync_all()
        .map_err(|e| error(e.to_string()))?;
    let bytes = temp
        .as_file()
        .metadata()
        .map_err(|e| error(e.to_string()))?
        .len();
    temp.persist(out)
        .map_err(|e| error(format!("cannot put it in place: {}", e.error)))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests;

//! [`ImportError`]: why a foreign checkpoint could not become a zoo network.

use std::path::PathBuf;

/// How many names each list of an error shows before "and N more".
const SHOWN: usize = 12;

/// Why a PyTorch checkpoint could not be imported. Every variant names the file; all are the
/// user's to fix (exit status 2 in `kd`).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be opened or is not a PyTorch checkpoint.
    #[error("{path}: not a readable PyTorch checkpoint: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The reader's own message.
        message: String,
    },
    /// The file holds no tensor named like a parameter of the architecture.
    #[error("{path}: holds no state dict of a {arch}: {found}")]
    NoStateDict {
        /// The file.
        path: PathBuf,
        /// The zoo name.
        arch: String,
        /// What the file holds instead.
        found: String,
    },
    /// The architecture is not in the zoo.
    #[error("unknown architecture `{arch}`; `kd models` lists: {known}")]
    UnknownArch {
        /// The name asked for.
        arch: String,
        /// The zoo's names.
        known: String,
    },
    /// The state dict does not fit the architecture key for key.
    #[error("{path}: does not fit {mismatch}")]
    Keys {
        /// The file.
        path: PathBuf,
        /// Every key that does not fit.
        mismatch: Box<KeyMismatch>,
    },
    /// A tensor holds NaN or infinity (after conversion to float32).
    #[error(
        "{path}: tensor `{tensor}` holds NaN or infinite values; a network with non-finite \
         weights cannot be evaluated or trained"
    )]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// The tensor's key, as PyTorch names it.
        tensor: String,
    },
    /// burn refused a tensor after the keys matched (a dtype it cannot convert, say).
    #[error("{path}: {message}")]
    Load {
        /// The file.
        path: PathBuf,
        /// burn's report.
        message: String,
    },
    /// The imported network could not be written.
    #[error("{path}: cannot write the imported checkpoint: {message}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// How a state dict differs from an architecture's parameters (PyTorch names throughout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMismatch {
    /// The zoo name.
    pub arch: String,
    /// Classifier outputs of the network it was matched against.
    pub classes: usize,
    /// Input channels of that network.
    pub channels: usize,
    /// The top-level entry compared (`None`: the file's own top level).
    pub entry: Option<String>,
    /// Parameters of the network the file lacks.
    pub missing: Vec<String>,
    /// Tensors of the file the network has no place for.
    pub unexpected: Vec<String>,
    /// `key: file [..], network [..]` for every shape that differs.
    pub misshaped: Vec<String>,
    /// Other entries of the file that do fit the architecture (`None`: the file's own top
    /// level), each shown with how to choose it.
    pub fitting: Vec<Option<String>>,
}

impl std::fmt::Display for KeyMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} classes, {} input channel(s))",
            self.arch, self.classes, self.channels
        )?;
        if let Some(entry) = &self.entry {
            write!(f, ", compared with the state dict under `{entry}`")?;
        }
        for (title, list) in [
            ("missing from the file", &self.missing),
            ("unexpected in the file", &self.unexpected),
            ("wrongly shaped", &self.misshaped),
        ] {
            if list.is_empty() {
                continue;
            }
            let shown: Vec<&str> = list.iter().take(SHOWN).map(String::as_str).collect();
            write!(f, "\n  {} {title}: {}", list.len(), shown.join(", "))?;
            if list.len() > SHOWN {
                write!(f, " and {} more", list.len() - SHOWN)?;
            }
        }
        for other in &self.fitting {
            write!(f, "\n  {}", fitting_hint(other.as_deref(), &self.arch))?;
        }
        Ok(())
    }
}

/// How to choose an entry of a PyTorch file that fits `arch` (`None`: the file's own top level).
pub(crate) fn fitting_hint(entry: Option<&str>, arch: &str) -> String {
    match entry {
        Some(key) => {
            format!("the state dict under `{key}` fits {arch}: choose it with --key {key}")
        }
        None => format!("the file's top-level state dict fits {arch}: leave out --key"),
    }
}

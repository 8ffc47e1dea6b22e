//! A PyTorch `.pth` checkpoint read into a zoo network with burn's own PyTorch reader
//! (`burn::store::PytorchStore`): no Python involved.
//!
//! The file may hold a bare state dict or wrap it the common ways: RepDistiller's and
//! mdistiller's `{"model": ...}` (next to `epoch`, `optimizer`, `best_acc`), `{"state_dict": ...}`,
//! and the `module.` prefix `nn.DataParallel` adds to every key. The wrapper is found by
//! matching the file's tensor names against the architecture's parameter names (the zoo names
//! its parameters exactly as the reference state dicts do), so no flag is needed; `key` forces
//! one. The classifier width and input channels default to what the file's classifier and
//! stem convolution say. Before a tensor is copied, every key is checked: the error lists every
//! missing, unexpected and wrongly shaped key at once. BatchNorm's `num_batches_tracked` counters
//! have no counterpart in burn and are skipped. Layout differences (Linear weights transposed,
//! BatchNorm `weight`/`bias` named `gamma`/`beta`) are burn's adapter's business.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::store::pytorch::PytorchReader;
use burn::store::{ModuleSnapshot, PytorchStore};
use burn::tensor::Device;

use super::error::{ImportError, KeyMismatch};
use crate::checkpoint::TrainState;
use crate::checkpoint::{self, CheckpointHeader, NetworkEntry};
use crate::zoo::{self, ModelSpec, Network, ParamInfo, param_inventory, torch_key};

/// The role an imported network is stored under: the one a checkpoint reference without
/// `#role` names, so `checkpoint = "teacher.kdc"` works as it is.
pub const IMPORTED_ROLE: &str = "student";

/// Top-level keys tried as wrappers, in this order when several fit equally.
const WRAPPERS: &[&str] = &["model", "state_dict", "model_state_dict", "net", "student"];

/// The prefix `nn.DataParallel` and `DistributedDataParallel` put before every key.
const DATA_PARALLEL: &str = "module.";

/// What to import, beyond the file.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Classifier outputs (default: the file's classifier).
    pub num_classes: Option<usize>,
    /// Input channels (default: the file's stem convolution).
    pub in_channels: Option<usize>,
    /// The top-level key holding the state dict (default: found by matching names).
    pub key: Option<String>,
}

/// A network read from a PyTorch checkpoint.
#[derive(Debug)]
pub struct Imported {
    /// The network, in evaluation mode on the device it was read on.
    pub network: Network,
    /// Architecture, classes and channels (role [`IMPORTED_ROLE`]).
    pub entry: NetworkEntry,
    /// Tensors copied into the network.
    pub tensors: usize,
    /// Where the state dict sat: `None` for a bare one, else the top-level key.
    pub wrapper: Option<String>,
    /// Whether a `module.` prefix was stripped.
    pub data_parallel: bool,
}

impl Imported {
    /// One line for people: what was found where.
    pub fn describe(&self) -> String {
        let place = match &self.wrapper {
            None => "a bare state dict".to_string(),
            Some(key) => format!("the state dict under `{key}`"),
        };
        let prefix = if self.data_parallel {
            ", `module.` prefix stripped"
        } else {
            ""
        };
        format!(
            "{} tensors from {place}{prefix} into {} ({} classes, {} input channel(s))",
            self.tensors, self.entry.arch, self.entry.num_classes, self.entry.in_channels
        )
    }
}

/// One state dict found in the file: its tensors' shapes by PyTorch key, keys as the model
/// names them (wrapper and `module.` removed).
struct Found {
    wrapper: Option<String>,
    data_parallel: bool,
    shapes: BTreeMap<String, Vec<usize>>,
}

fn read_error(path: &Path, e: impl std::fmt::Display) -> ImportError {
    ImportError::Read {
        path: path.into(),
        message: e.to_string(),
    }
}

/// The parameters of `arch` as PyTorch names and lays them out.
fn expected_keys(params: &[ParamInfo]) -> BTreeMap<String, Vec<usize>> {
    params
        .iter()
        .map(|p| {
            let mut shape = p.shape.clone();
            if shape.len() == 2 {
                shape.reverse(); // burn stores Linear weights [in, out], PyTorch [out, in]
            }
            (torch_key(&p.name), shape)
        })
        .collect()
}

/// Every way of reading the file's keys as a state dict; the one matching most names wins.
fn find_state_dict(
    path: &Path,
    all: &BTreeMap<String, Vec<usize>>,
    expected: &BTreeMap<String, Vec<usize>>,
    arch: &str,
    forced: Option<&str>,
) -> Result<Found, ImportError> {
    let mut candidates: Vec<Option<String>> = Vec::new();
    match forced {
        Some(key) => candidates.push(Some(key.to_string())),
        None => {
            candidates.push(None);
            candidates.extend(WRAPPERS.iter().map(|w| Some(w.to_string())));
        }
    }
    let mut best: Option<(usize, Found)> = None;
    for wrapper in candidates {
        let prefix = wrapper
            .as_ref()
            .map(|w| format!("{w}."))
            .unwrap_or_default();
        let inner: BTreeMap<String, Vec<usize>> = all
            .iter()
            .filter_map(|(k, s)| k.strip_prefix(&prefix).map(|k| (k.to_string(), s.clone())))
            .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
            .collect();
        let data_parallel = !inner.is_empty() && inner.keys().all(|k| k.starts_with(DATA_PARALLEL));
        let shapes: BTreeMap<String, Vec<usize>> = if data_parallel {
            inner
                .into_iter()
                .map(|(k, s)| (k[DATA_PARALLEL.len()..].to_string(), s))
                .collect()
        } else {
            inner
        };
        let score = shapes.keys().filter(|k| expected.contains_key(*k)).count();
        if score > 0 && best.as_ref().is_none_or(|(s, _)| score > *s) {
            best = Some((
                score,
                Found {
                    wrapper,
                    data_parallel,
                    shapes,
                },
            ));
        }
    }
    best.map(|(_, found)| found).ok_or_else(|| {
        let top: BTreeSet<&str> = all
            .keys()
            .map(|k| k.split('.').next().unwrap_or(k))
            .collect();
        let found = if all.is_empty() {
            "it has no tensors at all".to_string()
        } else if let Some(key) = forced {
            format!(
                "nothing under `{key}` is named like its parameters (top-level names: {})",
                top.into_iter().collect::<Vec<_>>().join(", ")
            )
        } else {
            let sample: Vec<&str> = all.keys().take(5).map(String::as_str).collect();
            format!(
                "none of its {} tensors is named like its parameters (e.g. {})",
                all.len(),
                sample.join(", ")
            )
        };
        ImportError::NoStateDict {
            path: path.into(),
            arch: arch.into(),
            found,
        }
    })
}

/// A state dict of a PyTorch file that fits a zoo network, found from the file's keys and
/// shapes alone (no tensor is read or allocated): what [`check_pytorch`] returns and
/// [`import_pytorch`] loads.
pub struct StateDictMatch {
    arch: &'static str,
    /// The classes and channels of the network the file fits.
    pub spec: ModelSpec,
    expected: usize,
    found: Found,
}

/// Checks that a PyTorch checkpoint holds a state dict for a zoo network of `arch`: every key
/// and shape, the classifier width and input channels (from `options`, else from the file).
/// Reads the file's index, not its tensors; the plan calls it.
///
/// # Errors
/// An unknown architecture, an unreadable file, no state dict named like the network's
/// parameters, or keys missing, unexpected or misshaped (all listed).
pub fn check_pytorch(
    path: &Path,
    arch: &str,
    options: &ImportOptions,
) -> Result<StateDictMatch, ImportError> {
    // Networks here only name their parameters: lazily initialised, nothing is drawn.
    let device = Device::flex();
    let device = &device;
    let zoo_entry = zoo::find(arch).ok_or_else(|| ImportError::UnknownArch {
        arch: arch.into(),
        known: zoo::names().join(", "),
    })?;
    let reader = PytorchReader::new(path).map_err(|e| read_error(path, e))?;
    let all: BTreeMap<String, Vec<usize>> = reader
        .tensors()
        .iter()
        .map(|(k, t)| (k.clone(), t.shape().to_vec()))
        .collect();
    drop(reader);

    // Names do not depend on the classes or channels: match them on a default network, then
    // read the classifier width and input channels from the file unless given.
    let probe = (zoo_entry.arch)(ModelSpec {
        num_classes: 100,
        in_channels: 3,
    })
    .init(device);
    let probe_params = param_inventory(&probe);
    drop(probe);
    let probe_keys = expected_keys(&probe_params);
    let found = find_state_dict(
        path,
        &all,
        &probe_keys,
        zoo_entry.name,
        options.key.as_deref(),
    )?;
    let classifier = probe_params.iter().rev().find(|p| p.shape.len() == 2);
    let stem = probe_params.iter().find(|p| p.shape.len() == 4);
    let from_file = |param: Option<&ParamInfo>, dim: usize| {
        param
            .and_then(|p| found.shapes.get(&torch_key(&p.name)))
            .and_then(|shape| shape.get(dim).copied())
    };
    let spec = ModelSpec {
        num_classes: options
            .num_classes
            .or_else(|| from_file(classifier, 0))
            .unwrap_or(100),
        in_channels: options
            .in_channels
            .or_else(|| from_file(stem, 1))
            .unwrap_or(3),
    };

    let network = (zoo_entry.arch)(spec).init(device);
    let expected = expected_keys(&param_inventory(&network));
    drop(network);
    let missing: Vec<String> = expected
        .keys()
        .filter(|k| !found.shapes.contains_key(*k))
        .cloned()
        .collect();
    let unexpected: Vec<String> = found
        .shapes
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .cloned()
        .collect();
    let misshaped: Vec<String> = expected
        .iter()
        .filter_map(|(k, shape)| {
            let theirs = found.shapes.get(k)?;
            (theirs != shape).then(|| format!("{k}: file {theirs:?}, network {shape:?}"))
        })
        .collect();
    if !(missing.is_empty() && unexpected.is_empty() && misshaped.is_empty()) {
        return Err(ImportError::Keys {
            path: path.into(),
            mismatch: Box::new(KeyMismatch {
                arch: zoo_entry.name.into(),
                classes: spec.num_classes,
                channels: spec.in_channels,
                missing,
                unexpected,
                misshaped,
            }),
        });
    }
    Ok(StateDictMatch {
        arch: zoo_entry.name,
        spec,
        expected: expected.len(),
        found,
    })
}

/// Reads a PyTorch checkpoint into a zoo network of `arch` on `device`, after
/// [`check_pytorch`].
///
/// # Errors
/// As [`check_pytorch`], or burn failing to load a tensor.
pub fn import_pytorch(
    path: &Path,
    arch: &str,
    options: &ImportOptions,
    device: &Device,
) -> Result<Imported, ImportError> {
    let StateDictMatch {
        arch,
        spec,
        expected,
        found,
    } = check_pytorch(path, arch, options)?;
    let zoo_entry = zoo::find(arch).expect("check_pytorch found the architecture");
    let mut network = (zoo_entry.arch)(spec).init(device);
    let mut store = PytorchStore::from_file(path)
        .map_indices_contiguous(false) // the zoo keeps PyTorch's indices, gaps included
        .allow_partial(false)
        .validate(true);
    if let Some(key) = &found.wrapper {
        store = store.with_top_level_key(key.as_str());
    }
    if found.data_parallel {
        store = store.with_key_remapping(r"^module\.", "");
    }
    let result = network
        .load_from(&mut store)
        .map_err(|e| ImportError::Load {
            path: path.into(),
            message: e.to_string(),
        })?;
    if result.applied.len() != expected {
        return Err(ImportError::Load {
            path: path.into(),
            message: format!(
                "burn applied {} of the {} tensors the keys promised:\n{result}",
                result.applied.len(),
                expected
            ),
        });
    }
    tracing::info!(
        "{}: {} tensors applied, {} skipped",
        path.display(),
        result.applied.len(),
        result.unused.len()
    );
    Ok(Imported {
        network,
        entry: NetworkEntry {
            role: IMPORTED_ROLE.into(),
            arch: zoo_entry.name.into(),
            num_classes: spec.num_classes,
            in_channels: spec.in_channels,
        },
        tensors: expected,
        wrapper: found.wrapper,
        data_parallel: found.data_parallel,
    })
}

/// Writes an imported network as a kd checkpoint holding one network (role
/// [`IMPORTED_ROLE`]); atomically, so a failure leaves any earlier file at `out` untouched.
pub fn write_imported(out: &Path, imported: &Imported, source: &Path) -> Result<(), ImportError> {
    let error = |message: String| ImportError::Write {
        path: PathBuf::from(out),
        message,
    };
    let bytes = burn::module::Module::into_record(imported.network.clone())
        .into_bytes()
        .map_err(|e| error(e.to_string()))?;
    let header = CheckpointHeader {
        format: checkpoint::FORMAT_VERSION,
        kd_version: env!("CARGO_PKG_VERSION").into(),
        run: format!(
            "import:{}",
            source.file_name().unwrap_or_default().to_string_lossy()
        ),
        networks: vec![imported.entry.clone()],
        state: TrainState::default(),
        blobs: Vec::new(),
    };
    checkpoint::write(
        out,
        header,
        vec![(checkpoint::role_module_blob(IMPORTED_ROLE), bytes.to_vec())],
    )
    .map_err(|e| error(e.to_string()))
}

//! A PyTorch `.pth` checkpoint read into a zoo network with burn's own PyTorch reader
//! (`burn::store::PytorchStore`): no Python involved.
//!
//! The file may hold a bare state dict or wrap it the common ways: RepDistiller's and
//! mdistiller's `{"model": ...}` (next to `epoch`, `optimizer`, `best_acc`), `{"state_dict": ...}`,
//! and the `module.` prefix `nn.DataParallel` adds to every key. The wrapper is found by
//! matching the file's tensor names against the architecture's parameter names (the zoo names
//! its parameters exactly as the reference state dicts do), so no flag is needed; `key` forces
//! one. Every other top-level entry is tried too (training scripts that save `{"teacher": ...,
//! "student": ...}`): an entry that fits the architecture key for key wins over one that only
//! shares names, and when the entry chosen (or forced with `key`) does not fit, the error names
//! the entries that do. The classifier width and input channels default to what the file's
//! classifier and stem convolution say. Before a tensor is copied, every key is checked: the
//! error lists every missing, unexpected and wrongly shaped key at once. BatchNorm's
//! `num_batches_tracked` counters have no counterpart in burn and are skipped. Layout
//! differences (Linear weights transposed, BatchNorm `weight`/`bias` named `gamma`/`beta`) are
//! burn's adapter's business.
//!
//! Weights saved in float16, bfloat16 or float64 (a model saved after `.half()`) are converted
//! to float32, the precision every zoo network computes in, and the import says so
//! ([`ImportNotes::converted`], a warning). A tensor holding NaN or infinity (after conversion) is
//! refused, naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, Param};
use burn::store::pytorch::PytorchReader;
use burn::store::{ModuleSnapshot, PytorchStore};
use burn::tensor::{DType, Device, FloatDType, Tensor};

use super::error::{ImportError, KeyMismatch, fitting_hint};
use crate::checkpoint::TrainState;
use crate::checkpoint::{self, CheckpointHeader, InputPreparation, NetworkEntry};
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

/// What an import changed or chose beyond the file's own layout, for its report (kept apart
/// from [`Imported`], which describes the network and where it came from).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportNotes {
    /// Tensors converted to float32, by the precision the file stored them in (`float16`,
    /// `bfloat16`, `float64`); empty when the file held float32 throughout.
    pub converted: BTreeMap<String, usize>,
    /// Other top-level entries of the file that fit the architecture as well (the first in
    /// [`check_pytorch`]'s order was imported; `key` picks another).
    pub also_fitting: Vec<String>,
}

impl ImportNotes {
    /// One line for people (`converted to float32: 47 from float16`), or `None` when there is
    /// nothing to say.
    pub fn describe(&self) -> Option<String> {
        let mut notes = Vec::new();
        if !self.converted.is_empty() {
            let from: Vec<String> = self
                .converted
                .iter()
                .map(|(dtype, n)| format!("{n} from {dtype}"))
                .collect();
            notes.push(format!("converted to float32: {}", from.join(", ")));
        }
        if !self.also_fitting.is_empty() {
            let others: Vec<String> = self.also_fitting.iter().map(|k| format!("`{k}`")).collect();
            notes.push(format!(
                "{} fit(s) too (choose with --key)",
                others.join(", ")
            ));
        }
        (!notes.is_empty()).then(|| notes.join("; "))
    }
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

impl Found {
    /// The file's own keys of its tensors (wrapper and `module.` included).
    fn file_keys(&self) -> BTreeSet<String> {
        let wrapper = self
            .wrapper
            .as_ref()
            .map(|w| format!("{w}."))
            .unwrap_or_default();
        let parallel = if self.data_parallel {
            DATA_PARALLEL
        } else {
            ""
        };
        self.shapes
            .keys()
            .map(|k| format!("{wrapper}{parallel}{k}"))
            .collect()
    }
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

/// Every entry of the file that could hold the state dict, in the order ties are broken: a
/// forced key first; then the file itself, the usual wrappers and every other top-level name.
fn candidate_entries(
    all: &BTreeMap<String, Vec<usize>>,
    forced: Option<&str>,
) -> Vec<Option<String>> {
    let mut candidates: Vec<Option<String>> = Vec::new();
    if let Some(key) = forced {
        candidates.push(Some(key.to_string()));
    }
    candidates.push(None);
    candidates.extend(WRAPPERS.iter().map(|w| Some(w.to_string())));
    let top: BTreeSet<&str> = all
        .keys()
        .filter_map(|k| k.split_once('.'))
        .map(|(t, _)| t)
        .collect();
    candidates.extend(top.into_iter().map(|t| Some(t.to_string())));
    let mut seen = BTreeSet::new();
    candidates.retain(|c| seen.insert(c.clone()));
    candidates
}

/// The file's keys read as the state dict under `wrapper` (`None`: the file's own top level),
/// with a `module.` prefix on every key removed.
fn entry(all: &BTreeMap<String, Vec<usize>>, wrapper: Option<String>) -> Found {
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
    let shapes = if data_parallel {
        inner
            .into_iter()
            .map(|(k, s)| (k[DATA_PARALLEL.len()..].to_string(), s))
            .collect()
    } else {
        inner
    };
    Found {
        wrapper,
        data_parallel,
        shapes,
    }
}

/// The error for a file where no entry (or not the one forced) is named like the
/// architecture's parameters, with how to choose an entry that fits, if one does.
fn no_state_dict(
    path: &Path,
    all: &BTreeMap<String, Vec<usize>>,
    arch: &str,
    forced: Option<&str>,
    hint: Option<String>,
) -> ImportError {
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
        found: match hint {
            Some(hint) => format!("{found}; {hint}"),
            None => found,
        },
    }
}

/// One entry of the file compared with the architecture.
struct Fit {
    found: Found,
    spec: ModelSpec,
    /// Parameters of the network its classes and channels give.
    expected: usize,
    /// Keys shared with the architecture's parameter names.
    score: usize,
    mismatch: KeyMismatch,
}

impl Fit {
    fn fits(&self) -> bool {
        let m = &self.mismatch;
        m.missing.is_empty() && m.unexpected.is_empty() && m.misshaped.is_empty()
    }
}

/// Compares one entry with the architecture: its classes and channels (from `options`, else
/// from the entry's classifier and stem convolution) and every key and shape.
fn fit(
    zoo_entry: &zoo::ZooEntry,
    probe_params: &[ParamInfo],
    found: Found,
    score: usize,
    options: &ImportOptions,
    device: &Device,
) -> Fit {
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
    let mismatch = KeyMismatch {
        arch: zoo_entry.name.into(),
        classes: spec.num_classes,
        channels: spec.in_channels,
        entry: found.wrapper.clone(),
        missing,
        unexpected,
        misshaped,
        fitting: Vec::new(),
    };
    Fit {
        found,
        spec,
        expected: expected.len(),
        score,
        mismatch,
    }
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
    /// Other top-level entries that fit as well.
    also_fitting: Vec<String>,
}

/// Checks that a PyTorch checkpoint holds a state dict for a zoo network of `arch`: every key
/// and shape, the classifier width and input channels (from `options`, else from the file).
/// Every top-level entry is compared; the first that fits key for key is chosen (`options.key`
/// forces one). Reads the file's index, not its tensors; the plan calls it.
///
/// # Errors
/// An unknown architecture, an unreadable file (or a directory), no state dict named like the
/// network's parameters, or keys missing, unexpected or misshaped (all listed, with the
/// entries of the file that do fit).
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
    if path.is_dir() {
        return Err(read_error(path, "it is a directory, not a file"));
    }
    let reader = PytorchReader::new(path).map_err(|e| read_error(path, e))?;
    let all: BTreeMap<String, Vec<usize>> = reader
        .tensors()
        .iter()
        .map(|(k, t)| (k.clone(), t.shape().to_vec()))
        .collect();
    drop(reader);

    // Names do not depend on the classes or channels: match them on a default network, then
    // read the classifier width and input channels from each entry unless given.
    let probe = (zoo_entry.arch)(ModelSpec {
        num_classes: 100,
        in_channels: 3,
    })
    .init(device);
    let probe_params = param_inventory(&probe);
    drop(probe);
    let probe_keys = expected_keys(&probe_params);
    let forced = options.key.as_deref();
    let mut fits: Vec<Fit> = Vec::new();
    for wrapper in candidate_entries(&all, forced) {
        let is_forced = forced.is_some() && wrapper.as_deref() == forced;
        let found = entry(&all, wrapper);
        let score = found
            .shapes
            .keys()
            .filter(|k| probe_keys.contains_key(*k))
            .count();
        // The same tensors reached another way (`module` as a wrapper, say) are one entry.
        if (score == 0 && !is_forced)
            || fits
                .iter()
                .any(|f| f.found.file_keys() == found.file_keys())
        {
            continue;
        }
        fits.push(fit(zoo_entry, &probe_params, found, score, options, device));
    }
    let chosen = match forced {
        Some(_) => fits
            .first()
            .filter(|f| f.found.wrapper.as_deref() == forced && f.score > 0),
        None => fits
            .iter()
            .find(|f| f.fits())
            // The first of the best-scoring entries (`max_by_key` keeps the last maximum).
            .or_else(|| fits.iter().rev().max_by_key(|f| f.score)),
    };
    let Some(chosen) = chosen else {
        let hint = fits
            .iter()
            .find(|f| f.fits())
            .map(|f| fitting_hint(f.found.wrapper.as_deref(), zoo_entry.name));
        return Err(no_state_dict(path, &all, zoo_entry.name, forced, hint));
    };
    let chosen_wrapper = chosen.found.wrapper.clone();
    let others: Vec<Option<String>> = fits
        .iter()
        .filter(|f| f.fits() && f.found.wrapper != chosen_wrapper)
        .map(|f| f.found.wrapper.clone())
        .collect();
    let index = fits
        .iter()
        .position(|f| f.found.wrapper == chosen_wrapper)
        .expect("the chosen entry is one of the fits");
    let chosen = fits.swap_remove(index);
    if !chosen.fits() {
        let mut mismatch = chosen.mismatch;
        mismatch.fitting = others;
        return Err(ImportError::Keys {
            path: path.into(),
            mismatch: Box::new(mismatch),
        });
    }
    let also_fitting: Vec<String> = others.into_iter().flatten().collect();
    if !also_fitting.is_empty() {
        tracing::warn!(
            "{}: {} fit(s) {} as well as the state dict imported ({}); choose with --key",
            path.display(),
            also_fitting.join(", "),
            zoo_entry.name,
            chosen_wrapper.as_deref().unwrap_or("the file's top level"),
        );
    }
    Ok(StateDictMatch {
        arch: zoo_entry.name,
        spec: chosen.spec,
        expected: chosen.expected,
        found: chosen.found,
        also_fitting,
    })
}

/// Float tensors converted to float32, by the precision they were loaded in.
struct ToF32 {
    converted: BTreeMap<String, usize>,
}

impl ModuleMapper for ToF32 {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let dtype = param.val().dtype();
        if dtype == DType::F32 {
            return param;
        }
        let name = match dtype {
            DType::F16 => "float16".to_string(),
            DType::BF16 => "bfloat16".to_string(),
            DType::F64 => "float64".to_string(),
            other => format!("{other:?}"),
        };
        *self.converted.entry(name).or_default() += 1;
        param.map(|tensor| tensor.cast(FloatDType::F32))
    }
}

/// Reads a PyTorch checkpoint into a zoo network of `arch` on `device`, after
/// [`check_pytorch`]; [`import_pytorch_noted`] without the notes.
///
/// # Errors
/// As [`import_pytorch_noted`].
pub fn import_pytorch(
    path: &Path,
    arch: &str,
    options: &ImportOptions,
    device: &Device,
) -> Result<Imported, ImportError> {
    import_pytorch_noted(path, arch, options, device).map(|(imported, _)| imported)
}

/// Reads a PyTorch checkpoint into a zoo network of `arch` on `device`, after
/// [`check_pytorch`]: every tensor converted to float32 and checked finite. Returns what the
/// import converted or chose besides (also logged as warnings).
///
/// # Errors
/// As [`check_pytorch`], burn failing to load a tensor, or [`ImportError::NonFinite`] naming
/// the first tensor holding NaN or infinity.
pub fn import_pytorch_noted(
    path: &Path,
    arch: &str,
    options: &ImportOptions,
    device: &Device,
) -> Result<(Imported, ImportNotes), ImportError> {
    let StateDictMatch {
        arch,
        spec,
        expected,
        found,
        also_fitting,
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
    // Zoo networks compute in float32; a tensor kept in the file's precision would meet float32
    // activations in the first forward.
    let mut to_f32 = ToF32 {
        converted: BTreeMap::new(),
    };
    let network = network.map(&mut to_f32);
    let converted = to_f32.converted;
    if !converted.is_empty() {
        let from: Vec<String> = converted
            .iter()
            .map(|(dtype, n)| format!("{n} tensor(s) from {dtype}"))
            .collect();
        tracing::warn!(
            "{}: converted {} to float32",
            path.display(),
            from.join(", ")
        );
    }
    if let Some(name) = checkpoint::first_non_finite(&network) {
        return Err(ImportError::NonFinite {
            path: path.into(),
            tensor: torch_key(&name),
        });
    }
    let imported = Imported {
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
    };
    let notes = ImportNotes {
        converted,
        also_fitting,
    };
    Ok((imported, notes))
}

/// Writes an imported network as a kd checkpoint holding one network (role
/// [`IMPORTED_ROLE`]) and no input preparation; atomically, so a failure leaves any earlier
/// file at `out` untouched.
///
/// # Errors
/// As [`write_imported_prepared`].
pub fn write_imported(out: &Path, imported: &Imported, source: &Path) -> Result<(), ImportError> {
    write_imported_prepared(out, imported, source, None)
}

/// [`write_imported`], recording `preparation` (what the user said the network was trained
/// with) in the checkpoint's header.
///
/// # Errors
/// [`ImportError::Write`] naming `out` when the preparation is inconsistent (the field and
/// values, or channels other than the network's) or the file cannot be written; nothing is
/// written then.
pub fn write_imported_prepared(
    out: &Path,
    imported: &Imported,
    source: &Path,
    preparation: Option<&InputPreparation>,
) -> Result<(), ImportError> {
    let error = |message: String| ImportError::Write {
        path: PathBuf::from(out),
        message,
    };
    if let Some(preparation) = preparation {
        preparation
            .check()
            .map_err(|issue| error(format!("its input preparation: {issue}")))?;
        if preparation.channels != imported.entry.in_channels {
            return Err(error(format!(
                "its input preparation has {} channel(s), but the {} takes {}",
                preparation.channels, imported.entry.arch, imported.entry.in_channels
            )));
        }
        if let Some(names) = &preparation.class_names
            && names.len() != imported.entry.num_classes
        {
            return Err(error(format!(
                "its input preparation names {} class(es), but the {} has {} outputs",
                names.len(),
                imported.entry.arch,
                imported.entry.num_classes
            )));
        }
    }
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
        preparation: preparation.cloned(),
    };
    checkpoint::write(
        out,
        header,
        vec![(checkpoint::role_module_blob(IMPORTED_ROLE), bytes.to_vec())],
    )
    .map_err(|e| error(e.to_string()))
}

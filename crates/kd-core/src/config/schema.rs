//! The user-facing configuration: plain serde structs, every field defaulted, unknown keys
//! rejected.
//!
//! This is the raw half of the two-phase configuration (ripgrep's habit): it says what the user
//! wrote, merged over the defaults; the plan turns it into something checked and buildable.
//! Method tables stay free-form here (`method.<instance>` holds `kind`, `weight` and the
//! method's own keys) because only the method's plugin knows its keys; the plan hands each
//! table to its plugin, which rejects unknown keys with the same rigour.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;
use crate::data::{DataFormat, Interpolation, Normalisation, PadMode, Preset};

/// A whole run, as the layered sources describe it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Files merged before this one (paths relative to the file that names them), e.g. the
    /// method presets `configs/methods/kd.toml`. Read by the loader, not by the runtime.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<PathBuf>,
    /// Seed, length, output location, backend.
    pub run: RunSection,
    /// Dataset, batching and augmentation.
    pub data: DataSection,
    /// Networks by role: `student` always; `teacher`, peers and others as methods need them.
    pub networks: BTreeMap<String, NetworkConfig>,
    /// The optimiser every trainable network gets unless its role overrides the learning rate.
    pub optim: OptimConfig,
    /// Learning-rate schedule, in epochs.
    pub schedule: ScheduleConfig,
    /// The task loss.
    pub loss: LossConfig,
    /// Method instances in the order their terms are computed and logged.
    pub stack: Vec<String>,
    /// One table per instance named in `stack`: `kind`, `weight` and the method's own keys.
    pub method: BTreeMap<String, serde_json::Value>,
    /// Method plugins loaded from dynamic libraries.
    pub plugins: PluginsSection,
}

/// `[plugins]`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginsSection {
    /// Dynamic libraries to load before the method registry is built (only a dynamic host can
    /// load them: `cargo xtask build-dynamic`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub load: Vec<PathBuf>,
}

impl Default for RunConfig {
    fn default() -> Self {
        let mut networks = BTreeMap::new();
        networks.insert("student".to_string(), NetworkConfig::new("resnet8"));
        RunConfig {
            include: Vec::new(),
            run: RunSection::default(),
            data: DataSection::default(),
            networks,
            optim: OptimConfig::default(),
            schedule: ScheduleConfig::default(),
            loss: LossConfig::default(),
            stack: Vec::new(),
            method: BTreeMap::new(),
            plugins: PluginsSection::default(),
        }
    }
}

/// `[run]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunSection {
    /// Name of the run; its directory is `output_dir/name`.
    pub name: String,
    /// Seeds initialisation, data order and augmentation.
    pub seed: u64,
    /// Training epochs.
    pub epochs: usize,
    /// Where run directories are created. Like every path key: relative to the file that sets
    /// it, or to the working directory when a `--set` argument or variable does (`paths.rs`).
    pub output_dir: PathBuf,
    /// Device family.
    pub backend: BackendKind,
    /// Log a metrics row every this many steps (0: only per epoch).
    pub log_every: usize,
    /// Also checkpoint every this many steps inside an epoch (0: only at epoch ends).
    pub checkpoint_every: usize,
}

impl Default for RunSection {
    fn default() -> Self {
        RunSection {
            name: "run".into(),
            seed: 0,
            epochs: 240,
            output_dir: PathBuf::from("runs"),
            backend: BackendKind::Flex,
            log_every: 50,
            checkpoint_every: 0,
        }
    }
}

/// `[data]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSection {
    /// On-disk layout.
    pub format: DataFormat,
    /// A standard dataset whose statistics and augmentation fill every key below left unset
    /// (`mnist`, `fashion-mnist`, `cifar10`, `cifar100`); it must match `format`. Unset, the
    /// CIFAR formats imply their dataset's preset; IDX and folders have none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
    /// Dataset root (relative to the file that sets it); unset means `KD_DATA`, then (for IDX)
    /// Debian's Fashion-MNIST location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    /// Side of the square network input; smaller images are zero-padded centrally.
    pub input_size: usize,
    /// Training batch size.
    pub batch_size: usize,
    /// Evaluation batch size.
    pub eval_batch_size: usize,
    /// Keep only the first N training images of every class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_per_class: Option<usize>,
    /// Keep only the first N test images of every class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_per_class: Option<usize>,
    /// Per-channel mean of pixel/255 subtracted before training (unset: the preset's, else the
    /// training split's own, computed when the run is planned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<Vec<f32>>,
    /// Per-channel std of pixel/255 divided by (unset: as `mean`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub std: Option<Vec<f32>>,
    /// `auto`: compute `mean` and `std` from the training split when the run is planned, even
    /// where a preset has constants (then `mean` and `std` must be unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalisation: Option<Normalisation>,
    /// Training augmentation.
    pub augment: AugmentSection,
    /// Drop the last, smaller training batch.
    pub drop_last: bool,
    /// Batches prepared ahead on the loader thread.
    pub prefetch: usize,
}

impl Default for DataSection {
    fn default() -> Self {
        DataSection {
            format: DataFormat::Idx,
            preset: None,
            root: None,
            input_size: 32,
            batch_size: 64,
            eval_batch_size: 256,
            train_per_class: None,
            test_per_class: None,
            mean: None,
            std: None,
            normalisation: None,
            augment: AugmentSection::default(),
            drop_last: false,
            prefetch: 4,
        }
    }
}

impl DataSection {
    /// The training augmentation as the loader takes it: `data.augment`, with the flip the
    /// preset chooses where `data.augment.flip` is unset.
    pub fn augment_spec(&self) -> crate::data::Augment {
        crate::data::Augment {
            crop_padding: self.augment.crop_padding,
            pad_mode: self.augment.pad_mode,
            flip: self.flip(),
            rotation: crate::data::Rotation {
                degrees: self.augment.rotation_degrees,
                // The plan has checked 0 ..= 255 (`data.augment.rotation_fill`).
                fill: self.augment.rotation_fill.clamp(0, 255) as u8,
                interpolation: self.augment.rotation_interpolation,
            },
        }
    }

    /// The preset in force: `data.preset`, else the one the format implies (CIFAR).
    pub fn effective_preset(&self) -> Option<Preset> {
        self.preset.or(Preset::implied_by(self.format))
    }

    /// Whether training flips images: `data.augment.flip`, else the preset's choice (no flip
    /// for digits), else yes.
    pub fn flip(&self) -> bool {
        self.augment
            .flip
            .or(self.effective_preset().map(Preset::flip))
            .unwrap_or(true)
    }
}

/// `[data.augment]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentSection {
    /// Padding of the random crop (0: no crop).
    pub crop_padding: usize,
    /// Fill of the crop padding.
    pub pad_mode: PadMode,
    /// Random horizontal flips (unset: the preset's choice, else yes; see
    /// [`DataSection::flip`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flip: Option<bool>,
    /// Largest random rotation, degrees, 0 to 180 (0: none): torchvision's
    /// `RandomRotation(rotation_degrees)` after the flip, the angle uniform in `[-d, d)`,
    /// counter-clockwise. Left out of the saved configuration when 0, like the other rotation
    /// keys at their defaults, so runs started before the key existed still resume.
    #[serde(skip_serializing_if = "is_zero")]
    pub rotation_degrees: f64,
    /// Pixel value, 0 to 255, of the corners a rotation uncovers, on every channel, before
    /// normalisation (torchvision's `fill`).
    #[serde(skip_serializing_if = "is_zero_fill")]
    pub rotation_fill: i64,
    /// Sampling of rotated images: `nearest` (torchvision's default) or `bilinear`.
    #[serde(skip_serializing_if = "is_nearest")]
    pub rotation_interpolation: Interpolation,
}

fn is_zero(value: &f64) -> bool {
    *value == 0.0
}

fn is_zero_fill(value: &i64) -> bool {
    *value == 0
}

fn is_nearest(value: &Interpolation) -> bool {
    *value == Interpolation::Nearest
}

impl Default for AugmentSection {
    fn default() -> Self {
        AugmentSection {
            crop_padding: 4,
            pad_mode: PadMode::Zero,
            flip: None,
            rotation_degrees: 0.0,
            rotation_fill: 0,
            rotation_interpolation: Interpolation::Nearest,
        }
    }
}

/// `[networks.<role>]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// Zoo name (`kd models` lists them).
    pub arch: String,
    /// Weights to start from (a kd checkpoint, relative to the file that names it); required for
    /// frozen roles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<PathBuf>,
    /// Learning rate for this role instead of `optim.lr_for_arch` and `optim.lr`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    /// Weight of this role's cross-entropy instead of `loss.ce_weight` (roles trained in the main
    /// phase only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ce_weight: Option<f64>,
    /// How the inputs of `checkpoint`'s weights were prepared, as a dataset preset (its mean,
    /// std and 32-pixel input): declares what a checkpoint that records no preparation (a
    /// PyTorch file, an import without flags, an older kd checkpoint) was trained on, so the
    /// plan can compare it with the run's data. A checkpoint that records one must agree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trained_on: Option<Preset>,
    /// Feed `checkpoint`'s weights this run's data even when they were trained on inputs
    /// prepared otherwise (other mean, std or input size): the plan then warns instead of
    /// refusing.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_other_preparation: bool,
}

impl NetworkConfig {
    /// A network of the given architecture, from scratch.
    pub fn new(arch: &str) -> Self {
        NetworkConfig {
            arch: arch.into(),
            checkpoint: None,
            lr: None,
            ce_weight: None,
            trained_on: None,
            allow_other_preparation: false,
        }
    }
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig::new("")
    }
}

/// `[optim]`: SGD.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    /// Base learning rate.
    pub lr: f64,
    /// Learning rate by zoo architecture (`MobileNetV2 = 0.01`), for every trained role of that
    /// architecture without its own `networks.<role>.lr`; `lr` for the others. RepDistiller
    /// trains MobileNetV2 and the ShuffleNets at 0.01 instead of 0.05 (`train_student.py`,
    /// `train_teacher.py`); `configs/recipes/repdistiller-lr.toml` holds that rule.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub lr_for_arch: BTreeMap<String, f64>,
    /// Momentum.
    pub momentum: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 weight decay.
    pub weight_decay: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            lr: 0.05,
            lr_for_arch: BTreeMap::new(),
            momentum: 0.9,
            nesterov: false,
            weight_decay: 5e-4,
        }
    }
}

/// Shape of the learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// Multiply by `gamma` at each milestone epoch.
    Multistep,
    /// Cosine from the base rate to `min_factor` times it over the run.
    Cosine,
    /// The base rate throughout.
    Constant,
}

/// `[schedule]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Shape.
    pub kind: ScheduleKind,
    /// Epochs at which a multistep schedule decays.
    pub milestones: Vec<usize>,
    /// Decay factor of a multistep schedule.
    pub gamma: f64,
    /// Epochs of linear warm-up from 0 (step-wise), before the shape applies.
    pub warmup_epochs: usize,
    /// Final rate of a cosine schedule, as a fraction of each base rate.
    pub min_factor: f64,
    /// Epochs at which the schedule starts over and every optimiser's state is reset.
    pub restarts: Vec<usize>,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            kind: ScheduleKind::Multistep,
            milestones: vec![150, 180, 210],
            gamma: 0.1,
            warmup_epochs: 0,
            min_factor: 0.0,
            restarts: Vec::new(),
        }
    }
}

/// `[loss]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossConfig {
    /// Weight of each trainable network's cross-entropy with the labels.
    pub ce_weight: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig { ce_weight: 1.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(format: DataFormat, preset: Option<Preset>, flip: Option<bool>) -> DataSection {
        DataSection {
            format,
            preset,
            augment: AugmentSection {
                flip,
                ..AugmentSection::default()
            },
            ..DataSection::default()
        }
    }

    #[test]
    fn the_flip_is_the_keys_else_the_presets_else_yes() {
        assert!(!section(DataFormat::Idx, Some(Preset::Mnist), None).flip());
        assert!(section(DataFormat::Idx, Some(Preset::Mnist), Some(true)).flip());
        assert!(!section(DataFormat::Idx, Some(Preset::FashionMnist), Some(false)).flip());
        assert!(section(DataFormat::Idx, Some(Preset::FashionMnist), None).flip());
        assert!(section(DataFormat::Idx, None, None).flip());
        assert!(
            !section(DataFormat::Folder, None, Some(false))
                .augment_spec()
                .flip
        );
    }

    #[test]
    fn only_a_cifar_format_implies_a_preset() {
        let implied = |format| section(format, None, None).effective_preset();
        assert_eq!(implied(DataFormat::Cifar100), Some(Preset::Cifar100));
        assert_eq!(implied(DataFormat::Cifar10), Some(Preset::Cifar10));
        assert_eq!(implied(DataFormat::Idx), None);
        assert_eq!(implied(DataFormat::Folder), None);
        // A preset the user names is the one in force, even one of another format (the plan
        // refuses that).
        assert_eq!(
            section(DataFormat::Cifar10, Some(Preset::Mnist), None).effective_preset(),
            Some(Preset::Mnist)
        );
    }
}

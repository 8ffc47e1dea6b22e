//! The per-channel normalisation statistics a run trains with, and where they come from.
//!
//! Each of `data.mean` and `data.std` is, in order: the value the user set; the training
//! split's own statistics when `data.normalisation = "auto"`; the preset's constants
//! (`data.preset`, or the dataset a CIFAR format implies); else the training split's own
//! statistics (an IDX dataset or an image folder without a preset). Statistics are computed
//! as `kd data stats` computes them ([`crate::data::stats`]), over the whole training split
//! before any per-class limit, when the run is planned. The plan records the result in
//! [`DataPlan::mean`](super::DataPlan::mean) and [`DataPlan::std`](super::DataPlan::std) and
//! says where it came from in its description.

use crate::config::DataSection;
use crate::data::{DataSource, Normalisation, Preset, Split, stats};

use super::RootIssues;

/// Resolved statistics.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Statistics {
    /// Per-channel mean.
    pub mean: Vec<f32>,
    /// Per-channel std.
    pub std: Vec<f32>,
    /// Where they came from, for the plan's description.
    pub origin: String,
}

/// Where one of the two values comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Origin {
    Key,
    Preset(Preset),
    Computed,
}

/// The statistics of a run over `source` whose images have `channels` channels. `present`
/// says whether the training split is on this machine (a dry run plans without it).
pub(super) fn resolve(
    c: &DataSection,
    source: &DataSource,
    channels: usize,
    present: bool,
    issues: &mut RootIssues<'_, '_>,
    warnings: &mut Vec<String>,
) -> Statistics {
    if let Some(preset) = c.preset
        && preset.format() != c.format
    {
        issues.push(
            "data.preset",
            format!(
                "`{preset}` is a dataset of {} files, but data.format is `{}`: set data.format \
                 = \"{}\" or choose a preset of {} data (known presets: {})",
                preset.format(),
                c.format,
                preset.format(),
                c.format,
                Preset::known()
            ),
        );
    }
    let auto = c.normalisation == Some(Normalisation::Auto);
    if auto {
        for (key, set) in [
            ("data.mean", c.mean.is_some()),
            ("data.std", c.std.is_some()),
        ] {
            if set {
                issues.push(
                    "data.normalisation",
                    format!(
                        "`auto` computes data.mean and data.std from the training split, but \
                         {key} is set too: remove one of them"
                    ),
                );
            }
        }
    }
    let preset = c.effective_preset().filter(|p| p.format() == c.format);
    let from = |value: &Option<Vec<f32>>| match (value, preset) {
        (Some(_), _) => Origin::Key,
        (None, Some(preset)) if !auto => Origin::Preset(preset),
        (None, _) => Origin::Computed,
    };
    let (mean_from, std_from) = (from(&c.mean), from(&c.std));
    let computed = if mean_from == Origin::Computed || std_from == Origin::Computed {
        compute(
            source,
            channels,
            present,
            std_from == Origin::Computed,
            issues,
            warnings,
        )
    } else {
        None
    };
    let pick =
        |from: Origin, value: &Option<Vec<f32>>, preset_value: fn(Preset) -> Vec<f32>, i: usize| {
            match from {
                Origin::Key => value.clone().unwrap_or_default(),
                Origin::Preset(preset) => preset_value(preset),
                Origin::Computed => computed.as_ref().map_or_else(
                    || vec![0.5; channels],
                    |(values, _): &([Vec<f32>; 2], usize)| values[i].clone(),
                ),
            }
        };
    let mean = pick(mean_from, &c.mean, Preset::mean, 0);
    let std = pick(std_from, &c.std, Preset::std, 1);
    for (key, values) in [("data.mean", &mean), ("data.std", &std)] {
        if values.len() != channels {
            issues.push(
                key,
                format!(
                    "has {} values but the images have {channels} channel(s)",
                    values.len()
                ),
            );
        }
    }
    Statistics {
        mean,
        std,
        origin: describe(c, mean_from, std_from, computed.map(|(_, images)| images)),
    }
}

/// The training split's mean and std (in that order) and its image count; `None` when there
/// is nothing to compute them from (an issue or warning says why). When the std is `needed`, a
/// channel whose std is 0 (every pixel the same) is an issue at `data.std`.
fn compute(
    source: &DataSource,
    channels: usize,
    present: bool,
    needed: bool,
    issues: &mut RootIssues<'_, '_>,
    warnings: &mut Vec<String>,
) -> Option<([Vec<f32>; 2], usize)> {
    if !present {
        warnings.push(
            "data.normalisation: the training split is not on this machine, so its statistics \
             are not computed; planned with mean 0.5 and std 0.5 per channel"
                .into(),
        );
        return None;
    }
    let set = match source.load(Split::Train) {
        Ok(set) => set,
        Err(e) => {
            issues.push("data.root", e.to_string());
            return None;
        }
    };
    if set.is_empty() || set.channels != channels {
        // An empty split or one that disagrees with its header is reported by other checks.
        return None;
    }
    let found = stats(&set);
    for (channel, (&std, &mean)) in found.std.iter().zip(&found.mean).enumerate() {
        if needed && std == 0.0 {
            issues.push(
                "data.std",
                format!(
                    "is not set, and the training split's standard deviation is 0 in channel \
                     {channel} (every pixel is {:.0} of 255): normalising would divide by zero; \
                     set data.std",
                    mean * 255.0
                ),
            );
        }
    }
    let narrow = |values: &[f64]| values.iter().map(|&v| v as f32).collect();
    Some(([narrow(&found.mean), narrow(&found.std)], found.count))
}

/// One phrase on where the statistics came from.
fn describe(c: &DataSection, mean: Origin, std: Origin, images: Option<usize>) -> String {
    let one = |from: Origin| match from {
        Origin::Key => "set in the config".to_string(),
        Origin::Preset(preset) if c.preset.is_none() => {
            format!("preset {preset}, implied by data.format = \"{}\"", c.format)
        }
        Origin::Preset(preset) => format!("preset {preset}"),
        Origin::Computed => match images {
            Some(n) => format!("computed from the {n} training images"),
            None => "to be computed from the training split".to_string(),
        },
    };
    let why = if c.normalisation == Some(Normalisation::Auto) {
        ", as data.normalisation = \"auto\" asks".to_string()
    } else if mean == Origin::Computed || std == Origin::Computed {
        format!(
            ": {} data without data.preset has no published statistics",
            c.format
        )
    } else {
        String::new()
    };
    if mean == std {
        format!("{}{why}", one(mean))
    } else {
        format!("mean {}, std {}{why}", one(mean), one(std))
    }
}

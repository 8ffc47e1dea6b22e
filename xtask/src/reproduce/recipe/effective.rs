//! A cell's effective settings, as the run would use them: the cell's configuration loaded by
//! kd-core's own loader (`kd print-config --json`: defaults, `configs/base.toml`, the row's
//! config and its includes, every `--set` of the manifest, column and row) and planned
//! (`kd plan`: the learning rate each trained role resolves to, the normalisation a preset
//! fills in, the flip). Nothing here re-reads TOML, so a value cannot differ from training's.
//!
//! Settings are named as the recipe sheets name them (`epochs`, `lr`, `schedule.milestones`,
//! `mean`, `kd.temperature`, `teacher.checkpoint`, … — see [`ALWAYS`]); a method instance's
//! other keys (`method.<instance>.<key>`) are read only when the sheet names them.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::reproduce::manifest::{Cell, Manifest};

/// Settings every cell reports (absent ones as `None`), in display order; a method instance
/// adds `<instance>.weight` and `<instance>.temperature`, a trained role other than the
/// student whose rate differs adds `lr.<role>`.
pub const ALWAYS: &[&str] = &[
    "epochs",
    "lr",
    "schedule.kind",
    "schedule.milestones",
    "schedule.gamma",
    "schedule.restarts",
    "schedule.warmup_epochs",
    "batch_size",
    "weight_decay",
    "momentum",
    "nesterov",
    "crop_padding",
    "pad_mode",
    "flip",
    "rotation_degrees",
    "rotation_fill",
    "rotation_interpolation",
    "mean",
    "std",
    "ce_weight",
    "teacher.source",
    "teacher.checkpoint",
    "teacher.trained_on",
];

/// One effective value and the layer that set it (`file …`, `--set …`, `built-in defaults`,
/// `preset cifar100`, `optim.lr_for_arch.MobileNetV2`, …).
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    /// The value (`None`: the setting does not apply to this cell).
    pub value: Option<Value>,
    /// Where it came from.
    pub origin: String,
}

/// What `kd print-config --json` prints for one key.
#[derive(Debug, serde::Deserialize)]
struct Entry {
    key: String,
    value: Value,
    source: String,
}

/// `kd <subcommand> <config> --set …` for `cell`, with the `KD_` configuration variables of
/// this shell removed (a sheet describes the manifest, not one machine's environment).
fn kd(kd: &Path, repo: &Path, cell: &Cell, args: &[&str]) -> anyhow::Result<String> {
    let mut command = Command::new(kd);
    command
        .current_dir(repo)
        .args(args)
        .arg(&cell.config)
        .env("KD_LOG", "error");
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("KD_") && !["KD_LOG", "KD_DATA", "KD_FONT"].contains(&name.as_str()) {
            command.env_remove(&name);
        }
    }
    for set in &cell.sets {
        command.arg("--set").arg(set);
    }
    let out = command
        .output()
        .with_context(|| format!("running {}", kd.display()))?;
    if !out.status.success() {
        bail!(
            "`kd {}` of cell {}/{} failed:\n{}",
            args.join(" "),
            cell.row,
            cell.key,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The effective settings of `cell`: those of [`ALWAYS`], the method terms' weights and
/// temperatures, the rates of other trained roles, and every `extra` key the sheet names.
///
/// # Errors
/// `kd` fails on the cell (its configuration does not load or plan), or prints something this
/// reader does not understand.
pub fn settings(
    kd_binary: &Path,
    repo: &Path,
    manifest: &Manifest,
    cell: &Cell,
    extra: &[String],
) -> anyhow::Result<BTreeMap<String, Effective>> {
    let printed = kd(kd_binary, repo, cell, &["print-config", "--json"])?;
    let entries: Vec<Entry> =
        serde_json::from_str(&printed).context("reading kd print-config's JSON")?;
    let keys: BTreeMap<&str, &Entry> = entries.iter().map(|e| (e.key.as_str(), e)).collect();
    let plan = kd(
        kd_binary,
        repo,
        cell,
        &[
            "plan",
            "--allow-missing-checkpoints",
            "--allow-missing-data",
        ],
    )?;
    let planned = Planned::read(&plan)
        .with_context(|| format!("reading the plan of cell {}/{}", cell.row, cell.key))?;
    let mut out = BTreeMap::new();
    let put = |out: &mut BTreeMap<String, Effective>, name: &str, value, origin| {
        out.insert(name.to_string(), Effective { value, origin });
    };
    let key = |name: &str| keys.get(name).map(|e| (e.value.clone(), e.source.clone()));
    let config = |name: &str| key(name).map_or((None, String::new()), |(v, s)| (Some(v), s));
    for (setting, config_key) in [
        ("arch", "networks.student.arch"),
        ("epochs", "run.epochs"),
        ("schedule.kind", "schedule.kind"),
        ("schedule.milestones", "schedule.milestones"),
        ("schedule.gamma", "schedule.gamma"),
        ("schedule.restarts", "schedule.restarts"),
        ("schedule.warmup_epochs", "schedule.warmup_epochs"),
        ("batch_size", "data.batch_size"),
        ("weight_decay", "optim.weight_decay"),
        ("momentum", "optim.momentum"),
        ("nesterov", "optim.nesterov"),
        ("crop_padding", "data.augment.crop_padding"),
        ("pad_mode", "data.augment.pad_mode"),
        ("ce_weight", "loss.ce_weight"),
        ("teacher.trained_on", "networks.teacher.trained_on"),
    ] {
        let (value, origin) = config(config_key);
        put(&mut out, setting, value, origin);
    }
    // Rotation: absent keys mean no rotation; fill and interpolation only matter with one.
    let (degrees, origin) = config("data.augment.rotation_degrees");
    let rotates = degrees.as_ref().and_then(Value::as_f64).unwrap_or(0.0) != 0.0;
    put(
        &mut out,
        "rotation_degrees",
        Some(degrees.unwrap_or(Value::from(0))),
        if origin.is_empty() {
            "no rotation key".into()
        } else {
            origin
        },
    );
    for name in ["rotation_fill", "rotation_interpolation"] {
        let (value, origin) = config(&format!("data.augment.{name}"));
        put(&mut out, name, value.filter(|_| rotates), origin);
    }
    put(
        &mut out,
        "flip",
        Some(Value::Bool(planned.flip)),
        "kd plan".to_string(),
    );
    for (name, values) in [("mean", &planned.mean), ("std", &planned.std)] {
        put(
            &mut out,
            name,
            Some(Value::from(values.clone())),
            planned.normalisation.clone(),
        );
    }
    let student_lr = planned.lr.get("student").cloned();
    match &student_lr {
        Some((lr, origin)) => put(&mut out, "lr", Some(Value::from(*lr)), origin.clone()),
        None => put(&mut out, "lr", None, "the student is not trained".into()),
    }
    for (role, (lr, origin)) in &planned.lr {
        if role != "student" && student_lr.as_ref().map(|s| s.0) != Some(*lr) {
            put(
                &mut out,
                &format!("lr.{role}"),
                Some(Value::from(*lr)),
                origin.clone(),
            );
        }
    }
    let stack: Vec<String> = key("stack")
        .and_then(|(v, _)| serde_json::from_value(v).ok())
        .unwrap_or_default();
    for instance in &stack {
        for term in ["weight", "temperature"] {
            let (value, origin) = config(&format!("method.{instance}.{term}"));
            // A method table without `weight` weighs its term 1 (the runtime's default).
            let value = match (term, value) {
                ("weight", None) => Some(Value::from(1.0)),
                (_, value) => value,
            };
            put(&mut out, &format!("{instance}.{term}"), value, origin);
        }
    }
    for name in extra {
        if out.contains_key(name) {
            continue;
        }
        if let Some((instance, method_key)) = name.split_once('.')
            && stack.iter().any(|s| s == instance)
        {
            let (value, origin) = config(&format!("method.{instance}.{method_key}"));
            put(&mut out, name, value, origin);
        } else {
            put(&mut out, name, None, String::new());
        }
    }
    let (checkpoint, origin) = config("networks.teacher.checkpoint");
    let (source, file) = match checkpoint.as_ref().and_then(Value::as_str) {
        Some(path) => teacher(repo, manifest, path),
        None => (None, None),
    };
    put(
        &mut out,
        "teacher.source",
        source.map(Value::from),
        origin.clone(),
    );
    put(
        &mut out,
        "teacher.checkpoint",
        file.map(Value::from),
        origin,
    );
    Ok(out)
}

/// The settings of a cell that evaluates a released checkpoint instead of training: only where
/// its teacher comes from (what trained it is the official code's business).
pub fn evaluated(
    repo: &Path,
    manifest: &Manifest,
    checkpoint: &Path,
) -> BTreeMap<String, Effective> {
    let (source, file) = teacher(repo, manifest, &checkpoint.to_string_lossy());
    let origin = "[teachers.released]".to_string();
    let mut out = BTreeMap::new();
    for (name, value) in [("teacher.source", source), ("teacher.checkpoint", file)] {
        out.insert(
            name.to_string(),
            Effective {
                value: value.map(Value::from),
                origin: origin.clone(),
            },
        );
    }
    out
}

/// Where a teacher checkpoint comes from: `row <name>` when it lies in the run directory of a
/// row of this table (then the file is its name, `last.kdc` or `best.kdc`), else `file` (then
/// the file is its last two path components, e.g. `resnet56_vanilla/ckpt_epoch_240.pth`).
pub fn teacher(repo: &Path, manifest: &Manifest, path: &str) -> (Option<String>, Option<String>) {
    let path = Path::new(path);
    let relative = path.strip_prefix(repo).unwrap_or(path);
    for row in &manifest.row {
        if relative.starts_with(manifest.output_dir.join(&row.name)) {
            let name = relative
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            return (Some(format!("row {}", row.name)), name);
        }
    }
    let components: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let tail = components[components.len().saturating_sub(2)..].join("/");
    (Some("file".into()), Some(tail))
}

/// What the runtime planned, read from `kd plan`'s description.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// Per-channel mean.
    pub mean: Vec<f64>,
    /// Per-channel std.
    pub std: Vec<f64>,
    /// Where the statistics came from (`preset cifar100`, `data.mean/data.std`, …).
    pub normalisation: String,
    /// Whether training flips.
    pub flip: bool,
    /// Every trained role's base learning rate and what decided it.
    pub lr: BTreeMap<String, (f64, String)>,
}

impl Planned {
    /// Reads the data line (`…, flip true, mean [..], std [..] (origin)`) and the network lines
    /// (`  <role>  <arch>  trained in `<phase>`, lr <rate> (<key>); …`) of a plan.
    ///
    /// # Errors
    /// The plan has no data line with a flip, mean and std.
    pub fn read(plan: &str) -> anyhow::Result<Planned> {
        let data = plan
            .lines()
            .find(|l| l.contains(" mean [") && l.contains(" std ["))
            .context("no line with `mean [..]` and `std [..]`")?;
        let list = |tag: &str| -> anyhow::Result<Vec<f64>> {
            let start = data.find(tag).context("no statistics")? + tag.len();
            let end = start + data[start..].find(']').context("unclosed list")?;
            data[start..end]
                .split(',')
                .map(|x| {
                    x.trim()
                        .parse::<f64>()
                        .context("a statistic is not a number")
                })
                .collect()
        };
        let mean = list(" mean [")?;
        let std = list(" std [")?;
        let after_std = &data[data.find(" std [").unwrap_or(0)..];
        let normalisation = after_std
            .split_once("] (")
            .and_then(|(_, rest)| rest.rsplit_once(')'))
            .map(|(origin, _)| origin.to_string())
            .unwrap_or_default();
        let flip = data
            .split_once("flip ")
            .map(|(_, rest)| rest.starts_with("true"))
            .context("no `flip`")?;
        let mut lr = BTreeMap::new();
        for line in plan.lines() {
            let Some(at) = line.find("trained in `") else {
                continue;
            };
            let Some(role) = line.split_whitespace().next() else {
                continue;
            };
            let rest = &line[at..];
            let Some((_, after)) = rest.split_once(", lr ") else {
                continue;
            };
            let number: String = after
                .chars()
                .take_while(|c| c.is_ascii_digit() || ".eE-+".contains(*c))
                .collect();
            let Ok(value) = number.parse::<f64>() else {
                continue;
            };
            let origin = after[number.len()..]
                .strip_prefix(" (")
                .and_then(|r| r.split_once(')'))
                .map_or("optim.lr".to_string(), |(o, _)| o.to_string());
            lr.insert(role.to_string(), (value, origin));
        }
        Ok(Planned {
            mean,
            std,
            normalisation,
            flip,
            lr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = "run `run` → runs/x  (seed 0, 240 epochs, backend Flex)
data  cifar100 at <not set>: train 50000 · test 10000 · 3x32x32 → 3x32x32 · 100 classes
      batch 64 (eval 256), crop padding 4 (Zero), flip true, mean [0.5071, 0.4867, 0.4408], std [0.2675, 0.2565, 0.2761] (preset cifar100)
networks
  student    MobileNetV2  trained in `main`, lr 0.01 (optim.lr_for_arch.MobileNetV2); from scratch; used by task loss, kd
             taps: stem 16x32x32, logits 100
  peer       resnet8      trained in `main`, lr 0.05; from scratch
  teacher    resnet56     frozen; from /x/last.kdc#student; used by kd
";

    #[test]
    fn the_plan_gives_statistics_flip_and_each_trained_roles_rate() {
        let planned = Planned::read(PLAN).unwrap();
        assert_eq!(planned.mean, [0.5071, 0.4867, 0.4408]);
        assert_eq!(planned.std, [0.2675, 0.2565, 0.2761]);
        assert_eq!(planned.normalisation, "preset cifar100");
        assert!(planned.flip);
        assert_eq!(planned.lr.len(), 2, "{:?}", planned.lr);
        assert_eq!(
            planned.lr["student"],
            (0.01, "optim.lr_for_arch.MobileNetV2".to_string())
        );
        // A plan that does not name the key behind a rate: it is `optim.lr`'s.
        assert_eq!(planned.lr["peer"], (0.05, "optim.lr".to_string()));
    }

    #[test]
    fn a_plan_without_statistics_is_an_error() {
        let error = Planned::read("run `run`\nnetworks\n").unwrap_err();
        assert!(error.to_string().contains("mean [..]"), "{error}");
    }

    #[test]
    fn a_teacher_is_a_row_of_the_table_or_a_file() {
        let manifest: Manifest = toml::from_str(
            r#"
title = "t"
description = "d"
output_dir = "runs/t"
seeds = 1
[[column]]
name = "a"
label = "A"
teacher = "resnet56"
student = "resnet20"
[[row]]
name = "teacher"
label = "T"
config = "t.toml"
paper_unknown = "none"
"#,
        )
        .unwrap();
        let repo = Path::new("/repo");
        assert_eq!(
            teacher(
                repo,
                &manifest,
                "/repo/runs/t/teacher/resnet56/seed0/checkpoints/last.kdc"
            ),
            (Some("row teacher".into()), Some("last.kdc".into()))
        );
        assert_eq!(
            teacher(
                repo,
                &manifest,
                "teachers/resnet56_vanilla/ckpt_epoch_240.pth"
            ),
            (
                Some("file".into()),
                Some("resnet56_vanilla/ckpt_epoch_240.pth".into())
            )
        );
    }
}

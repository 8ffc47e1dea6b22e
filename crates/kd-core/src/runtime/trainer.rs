//! The training loop: one forward per network per phase into a cache, the weighted sum of the
//! task loss and every method term, one backward per phase, one optimiser step per part trained
//! in that phase; evaluation each epoch; metrics, checkpoints and the summary on disk.
//!
//! Resumption is exact by construction: batch order and augmentation are functions of
//! `(seed, epoch, batch)` (`data/loader.rs`), method randomness of `(seed, instance, phase,
//! epoch, batch)` (`StepContext::rng`), and a checkpoint holds every module, every optimiser
//! state, the loop position, the running sums of the epoch in progress and the lengths of the
//! metrics files. Nothing is ever written after a non-finite loss.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::error::TrainError;
use super::evaluate::evaluate;
use super::metrics::{MetricsWriter, Row};
use super::observer::{EpochReport, Observer, StartInfo, StepReport};
use super::plan::RunPlan;
use super::schedule::lr_factor;
use super::session::{
    build_roles, init_methods, parts_mut, restore_checkpoint, run_phase, save_checkpoint,
};
use super::state::{Accuracy, Best, EpochRecord, TrainState};
use super::summary::{Summary, write_summary};
use crate::backend;
use crate::data::{
    BatchStream, ImageSet, Split, StreamSpec, Transform, batches_per_epoch, derive_seed,
};
use crate::method::MAIN_PHASE;

/// How to start.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrainOptions {
    /// Continue the run in the run directory from `checkpoints/last.kdc`.
    pub resume: bool,
}

/// Files of a run directory.
pub struct RunFiles {
    /// The directory.
    pub dir: PathBuf,
}

impl RunFiles {
    /// `checkpoints/last.kdc`.
    pub fn last(&self) -> PathBuf {
        self.dir.join("checkpoints").join("last.kdc")
    }

    /// `checkpoints/best.kdc`.
    pub fn best(&self) -> PathBuf {
        self.dir.join("checkpoints").join("best.kdc")
    }
}

fn write_file(path: &Path, text: &str) -> Result<(), TrainError> {
    std::fs::write(path, text).map_err(TrainError::io(path))
}

fn flatten(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, String>) {
    match value {
        toml::Value::Table(table) => {
            for (k, v) in table {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

fn changed_keys(saved: &str, current: &str) -> Vec<String> {
    let parse = |text: &str| {
        let mut out = BTreeMap::new();
        if let Ok(value) = text.parse::<toml::Table>() {
            flatten("", &toml::Value::Table(value), &mut out);
        }
        out
    };
    let (a, b) = (parse(saved), parse(current));
    let mut keys: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

fn load_split(
    plan: &RunPlan,
    split: Split,
    per_class: Option<usize>,
) -> Result<Arc<ImageSet>, TrainError> {
    let set = plan.data.source.load(split)?;
    Ok(Arc::new(match per_class {
        Some(n) => set.balanced_prefix(n),
        None => set,
    }))
}

fn git_revision() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Runs (or resumes) a planned run to its end.
pub fn train(
    mut plan: RunPlan,
    options: TrainOptions,
    observer: &mut dyn Observer,
) -> Result<Summary, TrainError> {
    let files = RunFiles {
        dir: plan.run_dir.clone(),
    };
    let config_text =
        toml::to_string(&plan.config).expect("the resolved config serialises to TOML");
    if options.resume {
        if !files.last().is_file() {
            return Err(TrainError::NothingToResume {
                dir: files.dir.clone(),
            });
        }
        let saved_path = files.dir.join("config.toml");
        let saved = std::fs::read_to_string(&saved_path).map_err(TrainError::io(&saved_path))?;
        let changed = changed_keys(&saved, &config_text);
        if !changed.is_empty() {
            return Err(TrainError::ConfigChanged {
                dir: files.dir.clone(),
                keys: changed.join(", "),
            });
        }
    } else {
        if files.last().exists() {
            return Err(TrainError::RunExists {
                dir: files.dir.clone(),
            });
        }
        let checkpoints = files.dir.join("checkpoints");
        std::fs::create_dir_all(&checkpoints).map_err(TrainError::io(&checkpoints))?;
        write_file(&files.dir.join("config.toml"), &config_text)?;
        write_file(&files.dir.join("config.sources.toml"), &plan.sources)?;
        write_file(&files.dir.join("plan.txt"), &plan.describe())?;
    }

    let c = plan.config.clone();
    let plain = backend::device(c.run.backend)?;
    let device = plain.clone().autodiff();
    plain.seed(c.run.seed);

    let train_set = load_split(&plan, Split::Train, c.data.train_per_class)?;
    let test_set = load_split(&plan, Split::Test, c.data.test_per_class)?;
    let transform = Transform {
        channels: train_set.channels,
        height: train_set.height,
        width: train_set.width,
        size: plan.data.input_size,
        mean: plan.data.mean.clone(),
        std: plan.data.std.clone(),
    };
    let num_classes = train_set.num_classes;

    let mut roles = build_roles(&plan, &device, true)?;
    init_methods(&mut plan, &roles, &device, num_classes, train_set.channels)?;

    let mut state = TrainState::default();
    let mut last_good = None;
    let resume_at = if options.resume {
        state = restore_checkpoint(&files.last(), &mut roles, &mut plan.methods)?;
        last_good = Some(files.last());
        Some(state.metrics_len)
    } else {
        None
    };
    let mut metrics = MetricsWriter::open(&files.dir, plan.metric_columns(), resume_at)
        .map_err(TrainError::io(&files.dir))?;

    let eval_names: Vec<String> = roles.names().to_vec();
    let changing: Vec<String> = roles
        .iter()
        .filter(|r| r.can_change())
        .map(|r| r.name.clone())
        .collect();
    let fixed: Vec<String> = roles
        .iter()
        .filter(|r| !r.can_change())
        .map(|r| r.name.clone())
        .collect();
    if state.initial_eval.is_empty() {
        let tallies = evaluate(
            &roles,
            &eval_names,
            &[],
            &test_set,
            &transform,
            c.data.eval_batch_size,
            &plain,
        )?;
        state.initial_eval = tallies
            .into_iter()
            .map(|(k, t)| (k, t.accuracy()))
            .collect();
    }
    let fixed_eval: BTreeMap<String, Accuracy> = state
        .initial_eval
        .iter()
        .filter(|(k, _)| fixed.contains(k))
        .map(|(k, v)| (k.clone(), *v))
        .collect();

    let batches = batches_per_epoch(train_set.len(), c.data.batch_size, c.data.drop_last);
    observer.started(&StartInfo {
        run: c.run.name.clone(),
        epochs: c.run.epochs,
        batches_per_epoch: batches,
        start: (state.epoch, state.next_batch),
    });
    let session_start = Instant::now();
    let wall_before = state.wall_seconds;

    while state.epoch < c.run.epochs {
        let epoch = state.epoch;
        if state.next_batch == 0 && c.schedule.restarts.contains(&epoch) {
            // A new segment of the schedule: every optimiser starts afresh, as a second stage
            // run separately would.
            for (_, _, part) in parts_mut(&mut roles, &mut plan.methods) {
                part.reset_optimizer();
            }
        }
        let spec = StreamSpec {
            batch_size: c.data.batch_size,
            shuffle: true,
            drop_last: c.data.drop_last,
            augment: c.data.augment_spec(),
            seed: c.run.seed,
            epoch,
            start_batch: state.next_batch,
            prefetch: c.data.prefetch,
        };
        let mut own: HashMap<String, BatchStream> = plan
            .phases
            .iter()
            .filter(|p| p.own_batch && epoch >= p.from_epoch)
            .map(|p| {
                let own_spec = StreamSpec {
                    seed: derive_seed(c.run.seed, &p.name),
                    ..spec.clone()
                };
                (
                    p.name.clone(),
                    BatchStream::start(train_set.clone(), transform.clone(), own_spec),
                )
            })
            .collect();
        let mut window = (Instant::now(), 0usize);
        for batch in BatchStream::start(train_set.clone(), transform.clone(), spec.clone()) {
            let factor = lr_factor(&c.schedule, c.run.epochs, epoch, batch.index, batches);
            let mut loss = 0.0;
            let mut step_terms = Vec::new();
            let phases = plan.phases.clone();
            for phase in phases.iter().filter(|p| epoch >= p.from_epoch) {
                let own_batch;
                let phase_batch = if phase.own_batch {
                    own_batch = own.get_mut(&phase.name).and_then(Iterator::next);
                    own_batch.as_ref().unwrap_or(&batch)
                } else {
                    &batch
                };
                let outcome = run_phase(
                    phase,
                    phase_batch,
                    &device,
                    num_classes,
                    c.run.seed,
                    c.run.epochs,
                    &state,
                    factor,
                    &mut roles,
                    &mut plan.methods,
                    &last_good,
                )?;
                if phase.name == MAIN_PHASE {
                    loss = outcome.loss;
                }
                step_terms.extend(outcome.terms);
            }
            state.global_step += 1;
            state.next_batch = batch.index + 1;
            state.epoch_batches += 1;
            *state.epoch_sums.entry("loss".into()).or_default() += loss;
            for (name, value) in &step_terms {
                *state.epoch_sums.entry(name.clone()).or_default() += value;
            }
            window.1 += batch.labels.len();
            if c.run.log_every > 0 && state.global_step % c.run.log_every == 0 {
                let images_per_sec = window.1 as f64 / window.0.elapsed().as_secs_f64().max(1e-9);
                let mut values: BTreeMap<String, f64> = step_terms.iter().cloned().collect();
                values.insert("epoch".into(), epoch as f64);
                values.insert("batch".into(), batch.index as f64);
                values.insert("step".into(), state.global_step as f64);
                values.insert("lr_factor".into(), factor);
                values.insert("loss".into(), loss);
                values.insert("images_per_sec".into(), images_per_sec);
                metrics
                    .append(&Row {
                        kind: "step",
                        values,
                    })
                    .map_err(TrainError::io(&files.dir))?;
                observer.step(&StepReport {
                    epoch,
                    batch: batch.index,
                    batches,
                    step: state.global_step,
                    lr_factor: factor,
                    loss,
                    terms: step_terms.clone(),
                    images_per_sec,
                });
                window = (Instant::now(), 0);
            }
            if c.run.checkpoint_every > 0
                && state.global_step % c.run.checkpoint_every == 0
                && state.next_batch < batches
            {
                state.metrics_len = metrics.lengths().map_err(TrainError::io(&files.dir))?;
                state.wall_seconds = wall_before + session_start.elapsed().as_secs_f64();
                save_checkpoint(
                    &files.last(),
                    &c.run.name,
                    &mut roles,
                    &mut plan.methods,
                    &state,
                )?;
                last_good = Some(files.last());
            }
        }

        // End of epoch: evaluate, record, checkpoint.
        let tallies = evaluate(
            &roles,
            &changing,
            &plan.methods,
            &test_set,
            &transform,
            c.data.eval_batch_size,
            &plain,
        )?;
        let mut eval: BTreeMap<String, Accuracy> = tallies
            .into_iter()
            .map(|(k, t)| (k, t.accuracy()))
            .collect();
        eval.extend(fixed_eval.clone());
        let n = state.epoch_batches.max(1) as f64;
        let train_means: BTreeMap<String, f64> = state
            .epoch_sums
            .iter()
            .map(|(k, v)| (k.clone(), v / n))
            .collect();
        let factor = lr_factor(
            &c.schedule,
            c.run.epochs,
            epoch,
            batches.saturating_sub(1),
            batches,
        );
        let student = eval.get("student").map(|a| a.top1).unwrap_or(0.0);
        let improved = state.best.is_none_or(|b| student > b.top1);
        if improved {
            state.best = Some(Best {
                epoch,
                top1: student,
            });
        }
        state.history.push(EpochRecord {
            epoch,
            lr_factor: factor,
            train: train_means.clone(),
            eval: eval.clone(),
        });
        state.epoch += 1;
        state.next_batch = 0;
        state.epoch_batches = 0;
        state.epoch_sums.clear();
        state.wall_seconds = wall_before + session_start.elapsed().as_secs_f64();

        let mut values: BTreeMap<String, f64> = train_means.clone();
        values.insert("epoch".into(), epoch as f64);
        values.insert("step".into(), state.global_step as f64);
        values.insert("lr_factor".into(), factor);
        for (name, acc) in &eval {
            values.insert(format!("{name}/top1"), acc.top1);
            values.insert(format!("{name}/top5"), acc.top5);
        }
        values.insert("wall_seconds".into(), state.wall_seconds);
        metrics
            .append(&Row {
                kind: "epoch",
                values,
            })
            .map_err(TrainError::io(&files.dir))?;
        state.finished = state.epoch >= c.run.epochs;
        state.metrics_len = metrics.lengths().map_err(TrainError::io(&files.dir))?;
        save_checkpoint(
            &files.last(),
            &c.run.name,
            &mut roles,
            &mut plan.methods,
            &state,
        )?;
        last_good = Some(files.last());
        if improved {
            save_checkpoint(
                &files.best(),
                &c.run.name,
                &mut roles,
                &mut plan.methods,
                &state,
            )?;
        }
        tracing::info!(epoch, student_top1 = student, "epoch finished");
        observer.epoch(&EpochReport {
            epoch,
            epochs: c.run.epochs,
            train: train_means,
            eval,
            best: state.best,
        });
    }

    let summary = Summary::from_state(&plan, &state, git_revision());
    write_summary(&files.dir, &summary, &state)?;
    Ok(summary)
}

//! The training loop: one forward per network per phase into a cache, the weighted sum of the
//! task loss and every method term, one backward per phase, one optimiser step per part trained
//! in that phase (`step.rs`); evaluation, metrics and checkpoints at the end of each epoch
//! (`epoch_end.rs`); the run directory (`run_dir.rs`) and the summary on disk.
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

use burn::tensor::Device;

use super::checkpointing::{
    EpochShape, input_preparation, parts_mut, restore_checkpoint, save_checkpoint,
};
use super::error::{RunPosition, TrainError};
use super::evaluate::evaluate;
use super::metrics::{MetricsWriter, Row};
use super::observer::{Observer, StartInfo, StepReport};
use super::plan::RunPlan;
use super::run_dir::{self, RunFiles};
use super::schedule::lr_factor;
use super::setup::{build_roles, import_checkpoints, init_methods};
use super::step::{PhaseOutcome, StepSettings, negligible_terms, run_phase};
use super::summary::{Summary, write_summary};
use crate::backend;
use crate::checkpoint::{Accuracy, TrainState};
use crate::data::{Batch, BatchStream, ImageSet, Split, StreamSpec, Transform, derive_seed};
use crate::method::{MAIN_PHASE, Roles, StepPosition};

/// How to start.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrainOptions {
    /// Continue the run in the run directory from `checkpoints/last.kdc`.
    pub resume: bool,
}

/// Runs (or resumes) a planned run to its end.
pub fn train(
    plan: RunPlan,
    options: TrainOptions,
    observer: &mut dyn Observer,
) -> Result<Summary, TrainError> {
    // Held until the run ends: no other run may use the directory meanwhile.
    let (files, _lock) = run_dir::prepare(&plan, options.resume)?;
    let mut run = Run::start(plan, files, options.resume)?;
    observer.started(&StartInfo {
        run: run.plan.config.run.name.clone(),
        epochs: run.plan.config.run.epochs,
        batches_per_epoch: run.batches,
        start: (run.state.epoch, run.state.next_batch),
    });
    while run.state.epoch < run.plan.config.run.epochs {
        run.train_epoch(observer)?;
        run.end_epoch(observer)?;
    }
    let summary = Summary::from_state(&run.plan, &run.state, git_revision());
    write_summary(&run.files.dir, &summary, &run.state)?;
    Ok(summary)
}

/// A run in progress: its plan, data, networks, state and open files.
pub(super) struct Run {
    pub(super) plan: RunPlan,
    pub(super) files: RunFiles,
    /// The plain device (evaluation) and its autodiff form (training).
    pub(super) plain: Device,
    device: Device,
    train_set: Arc<ImageSet>,
    pub(super) test_set: Arc<ImageSet>,
    pub(super) transform: Transform,
    pub(super) roles: Roles,
    pub(super) state: TrainState,
    /// The last checkpoint written (named when a loss is not finite).
    pub(super) last_good: Option<PathBuf>,
    pub(super) metrics: MetricsWriter,
    /// Roles whose weights or statistics can change, evaluated every epoch.
    pub(super) changing: Vec<String>,
    /// The others' accuracy, measured once before training.
    pub(super) fixed_eval: BTreeMap<String, Accuracy>,
    pub(super) batches: usize,
    /// When this session started, and the wall time of earlier sessions of the run.
    pub(super) clock: (Instant, f64),
}

impl Run {
    /// Loads the data, builds the networks and methods, restores the checkpoint when resuming,
    /// opens the metrics files and evaluates every role once (unless the checkpoint already
    /// holds that evaluation).
    fn start(mut plan: RunPlan, files: RunFiles, resume: bool) -> Result<Run, TrainError> {
        let c = plan.config.clone();
        let plain = backend::device(c.run.backend)?;
        import_checkpoints(&plan)?;
        let device = plain.clone().autodiff();
        plain.seed(c.run.seed);

        let train_set = load_split(&plan, Split::Train, c.data.train_per_class)?;
        let test_set = load_split(&plan, Split::Test, c.data.test_per_class)?;
        // The plan counted these; the loaded splits are checked again before any step.
        let batches = plan.data.check_loaded(&train_set, &test_set, &c.data)?;
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
        let resume_at = if resume {
            let shape = EpochShape {
                epochs: c.run.epochs,
                batches,
                batch_size: c.data.batch_size,
                images: train_set.len(),
            };
            state = restore_checkpoint(&files.last(), &mut roles, &mut plan.methods, &shape)?;
            last_good = Some(files.last());
            Some(state.metrics_len)
        } else {
            None
        };
        let metrics = MetricsWriter::open(&files.dir, plan.metric_columns(), resume_at)
            .map_err(TrainError::io(&files.dir))?;

        let changing: Vec<String> = roles
            .iter()
            .filter(|r| r.can_change())
            .map(|r| r.name.clone())
            .collect();
        if state.initial_eval.is_empty() {
            let names: Vec<String> = roles.names().to_vec();
            let tallies = evaluate(
                &roles,
                &names,
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
            .filter(|(k, _)| !changing.contains(k))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let wall_before = state.wall_seconds;
        Ok(Run {
            plan,
            files,
            plain,
            device,
            train_set,
            test_set,
            transform,
            roles,
            state,
            last_good,
            metrics,
            changing,
            fixed_eval,
            batches,
            clock: (Instant::now(), wall_before),
        })
    }

    /// Every remaining batch of the current epoch.
    fn train_epoch(&mut self, observer: &mut dyn Observer) -> Result<(), TrainError> {
        let c = self.plan.config.clone();
        let epoch = self.state.epoch;
        if self.state.next_batch == 0 && c.schedule.restarts.contains(&epoch) {
            // A new segment of the schedule: every optimiser starts afresh, as a second stage
            // run separately would.
            for (_, _, part) in parts_mut(&mut self.roles, &mut self.plan.methods) {
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
            start_batch: self.state.next_batch,
            prefetch: c.data.prefetch,
        };
        // Phases that draw their own batches read them from streams of their own seed.
        let mut own: HashMap<String, BatchStream> = self
            .plan
            .phases
            .iter()
            .filter(|p| p.own_batch && epoch >= p.from_epoch)
            .map(|p| {
                let own_spec = StreamSpec {
                    seed: derive_seed(c.run.seed, &p.name),
                    ..spec.clone()
                };
                let stream =
                    BatchStream::start(self.train_set.clone(), self.transform.clone(), own_spec);
                (p.name.clone(), stream)
            })
            .collect();
        let mut window = (Instant::now(), 0usize);
        for batch in BatchStream::start(self.train_set.clone(), self.transform.clone(), spec) {
            self.train_step(&batch, &mut own, &mut window, observer)?;
        }
        Ok(())
    }

    /// One step: every phase in order, the step's bookkeeping, its metrics row every
    /// `run.log_every` steps and a checkpoint every `run.checkpoint_every`.
    fn train_step(
        &mut self,
        batch: &Batch,
        own: &mut HashMap<String, BatchStream>,
        window: &mut (Instant, usize),
        observer: &mut dyn Observer,
    ) -> Result<(), TrainError> {
        let c = &self.plan.config;
        let (epoch, batches) = (self.state.epoch, self.batches);
        let factor = lr_factor(&c.schedule, c.run.epochs, epoch, batch.index, batches);
        let settings = StepSettings {
            position: StepPosition {
                epoch,
                epochs: c.run.epochs,
                batch: batch.index,
                global_step: self.state.global_step,
            },
            lr_factor: factor,
            batches,
            seed: c.run.seed,
            device: &self.device,
            last_good: self.last_good.as_deref(),
        };
        let mut loss = 0.0;
        let mut step_terms = Vec::new();
        for phase in self.plan.phases.iter().filter(|p| epoch >= p.from_epoch) {
            let own_batch;
            let phase_batch = if phase.own_batch {
                own_batch = own.get_mut(&phase.name).and_then(Iterator::next);
                own_batch.as_ref().unwrap_or(batch)
            } else {
                batch
            };
            let outcome = run_phase(
                phase,
                phase_batch,
                &settings,
                &mut self.roles,
                &mut self.plan.methods,
            )?;
            if phase.name == MAIN_PHASE {
                loss = outcome.loss;
                if self.state.global_step == 0 {
                    warn_negligible(&outcome);
                }
            }
            step_terms.extend(outcome.terms);
        }
        let state = &mut self.state;
        state.global_step += 1;
        state.next_batch = batch.index + 1;
        state.epoch_batches += 1;
        // Epoch means are over images: each batch's mean counts as many times as it has images.
        let images = batch.labels.len();
        state.epoch_images += images;
        *state.epoch_sums.entry("loss".into()).or_default() += loss * images as f64;
        for (name, value) in &step_terms {
            *state.epoch_sums.entry(name.clone()).or_default() += value * images as f64;
        }
        window.1 += batch.labels.len();
        let c = &self.plan.config;
        if c.run.log_every > 0 && state.global_step.is_multiple_of(c.run.log_every) {
            let images_per_sec = window.1 as f64 / window.0.elapsed().as_secs_f64().max(1e-9);
            let mut values: BTreeMap<String, f64> = step_terms.iter().cloned().collect();
            // Files count epochs, batches and steps from 1, as progress lines and errors do.
            values.insert("epoch".into(), (epoch + 1) as f64);
            values.insert("batch".into(), (batch.index + 1) as f64);
            values.insert("step".into(), state.global_step as f64);
            values.insert("lr_factor".into(), factor);
            values.insert("loss".into(), loss);
            values.insert("images_per_sec".into(), images_per_sec);
            self.metrics
                .append(&Row {
                    kind: "step",
                    values,
                })
                .map_err(TrainError::io(&self.files.dir))?;
            observer.step(&StepReport {
                epoch,
                batch: batch.index,
                batches,
                step: state.global_step,
                lr_factor: factor,
                loss,
                terms: step_terms,
                images_per_sec,
            });
            *window = (Instant::now(), 0);
        }
        if c.run.checkpoint_every > 0
            && state.global_step.is_multiple_of(c.run.checkpoint_every)
            && state.next_batch < batches
        {
            self.state.wall_seconds = self.wall_seconds();
            let last = self.files.last();
            self.save(&last)?;
        }
        Ok(())
    }

    /// Writes a checkpoint of the run as it stands to `path`, with the metrics files' lengths
    /// (the state's wall time is the caller's: the end of an epoch fixes it once for its metrics
    /// row and both checkpoints); `last.kdc` becomes the last good checkpoint.
    pub(super) fn save(&mut self, path: &Path) -> Result<(), TrainError> {
        self.state.metrics_len = self
            .metrics
            .lengths()
            .map_err(TrainError::io(&self.files.dir))?;
        let last_step = self.last_step();
        save_checkpoint(
            path,
            &self.plan.config.run.name,
            &mut self.roles,
            &mut self.plan.methods,
            &self.state,
            input_preparation(
                self.plan.data.source.format,
                &self.transform,
                &self.train_set.class_names,
            ),
            last_step,
        )?;
        if path == self.files.last() {
            self.last_good = Some(path.to_path_buf());
        }
        Ok(())
    }

    /// The position of the last step trained (at an epoch's end, its last batch).
    fn last_step(&self) -> RunPosition {
        let s = &self.state;
        let (epoch, batch) = if s.next_batch > 0 {
            (s.epoch, s.next_batch - 1)
        } else {
            (s.epoch.saturating_sub(1), self.batches.saturating_sub(1))
        };
        RunPosition::of_step(
            epoch,
            self.plan.config.run.epochs,
            batch,
            self.batches,
            s.global_step.saturating_sub(1),
        )
    }

    /// Seconds of training over every session of the run.
    pub(super) fn wall_seconds(&self) -> f64 {
        self.clock.1 + self.clock.0.elapsed().as_secs_f64()
    }
}

/// Says, on a run's first step, which weighted method terms are too small to matter.
fn warn_negligible(outcome: &PhaseOutcome) {
    for (term, contribution, ce) in negligible_terms(outcome) {
        tracing::warn!(
            "term `{term}` contributes {contribution:.3e} to the first step's loss against \
             {ce:.3e} of cross-entropy: its weight is negligible for its magnitude and it will \
             barely train anything; choose the weight for the term's size"
        );
    }
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

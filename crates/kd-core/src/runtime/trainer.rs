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

use burn::tensor::{Device, Int, Tensor, TensorData};

use super::checkpoint::{self, CheckpointHeader, NetworkEntry};
use super::error::TrainError;
use super::evaluate::evaluate;
use super::metrics::{MetricsWriter, Row};
use super::observer::{EpochReport, Observer, StartInfo, StepReport};
use super::plan::{MethodInstance, RunPlan};
use super::roles::{RoleNet, Roles, materialize};
use super::schedule::lr_factor;
use super::state::{Accuracy, Best, EpochRecord, TrainState};
use super::summary::{Summary, write_summary};
use crate::backend;
use crate::data::{
    Batch, BatchStream, ImageSet, Split, StreamSpec, Transform, batches_per_epoch, derive_seed,
};
use crate::loss::cross_entropy;
use crate::method::{InitContext, MAIN_PHASE, Part, PhaseSpec, StepContext, Trainable};

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

/// Every part of the run by checkpoint name: roles as `role:<name>`, method modules as
/// `part:<name>`.
fn parts_mut<'a>(
    roles: &'a mut Roles,
    methods: &'a mut [MethodInstance],
) -> Vec<(String, bool, &'a mut dyn Part)> {
    let mut parts: Vec<(String, bool, &'a mut dyn Part)> = roles
        .iter_mut()
        .map(|r| {
            let trained = r.trained_in.is_some();
            (
                format!("role:{}", r.name),
                trained,
                &mut r.net as &mut dyn Part,
            )
        })
        .collect();
    for m in methods.iter_mut() {
        for part in m.method.parts() {
            let trained = part.is_trained();
            parts.push((format!("part:{}", part.name()), trained, part));
        }
    }
    parts
}

fn save_checkpoint(
    path: &Path,
    plan_name: &str,
    roles: &mut Roles,
    methods: &mut [MethodInstance],
    state: &TrainState,
) -> Result<(), TrainError> {
    // Finite losses can still send non-finite gradients into the weights; never let such weights
    // replace the last good checkpoint.
    for (name, _, part) in parts_mut(roles, methods) {
        if !part.is_finite() {
            return Err(TrainError::NonFinite {
                term: format!("weights of {name}"),
                value: f64::NAN,
                epoch: state.epoch,
                batch: state.next_batch.saturating_sub(1),
                step: state.global_step,
                last_good: if path.is_file() {
                    path.display().to_string()
                } else {
                    "none (no checkpoint was written yet)".into()
                },
            });
        }
    }
    let networks = roles
        .iter()
        .map(|r| NetworkEntry {
            role: r.name.clone(),
            arch: r.arch_name.clone(),
            num_classes: r.spec.num_classes,
            in_channels: r.spec.in_channels,
        })
        .collect();
    let mut blobs = Vec::new();
    for (name, trained, part) in parts_mut(roles, methods) {
        blobs.push((format!("{name}/module"), part.module_bytes()?));
        if trained {
            blobs.push((format!("{name}/optimizer"), part.optimizer_bytes()?));
        }
    }
    let header = CheckpointHeader {
        format: checkpoint::FORMAT_VERSION,
        kd_version: env!("CARGO_PKG_VERSION").into(),
        run: plan_name.into(),
        networks,
        state: state.clone(),
        blobs: Vec::new(),
    };
    checkpoint::write(path, header, blobs)?;
    Ok(())
}

fn restore_checkpoint(
    path: &Path,
    roles: &mut Roles,
    methods: &mut [MethodInstance],
) -> Result<TrainState, TrainError> {
    let (header, blobs) = checkpoint::read(path)?;
    let mut blobs: HashMap<String, Vec<u8>> = blobs.into_iter().collect();
    for (name, _, part) in parts_mut(roles, methods) {
        let module = blobs.remove(&format!("{name}/module")).ok_or_else(|| {
            TrainError::CheckpointMismatch {
                path: path.into(),
                message: format!("holds no `{name}`; was it written by another configuration?"),
            }
        })?;
        let optimizer = blobs.remove(&format!("{name}/optimizer"));
        part.restore(module, optimizer)
            .map_err(|e| TrainError::CheckpointMismatch {
                path: path.into(),
                message: e.to_string(),
            })?;
    }
    Ok(header.state)
}

/// Loads the network stored for `inner` in a checkpoint file into a role's part.
fn load_role_weights(part: &mut dyn Part, path: &Path, inner: &str) -> Result<(), TrainError> {
    let (_, blobs) = checkpoint::read(path)?;
    let name = format!("role:{inner}/module");
    let bytes = blobs
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| b)
        .ok_or_else(|| TrainError::CheckpointMismatch {
            path: path.into(),
            message: format!("holds no weights for role `{inner}`"),
        })?;
    part.restore(bytes, None)
        .map_err(|e| TrainError::CheckpointMismatch {
            path: path.into(),
            message: e.to_string(),
        })
}

struct PhaseOutcome {
    loss: f64,
    terms: Vec<(String, f64)>,
}

#[allow(clippy::too_many_arguments)]
fn run_phase(
    phase: &PhaseSpec,
    batch: &Batch,
    device: &Device,
    num_classes: usize,
    seed: u64,
    epochs: usize,
    state: &TrainState,
    factor: f64,
    roles: &mut Roles,
    methods: &mut [MethodInstance],
    last_good: &Option<PathBuf>,
) -> Result<PhaseOutcome, TrainError> {
    let images = Tensor::<4>::from_data(TensorData::new(batch.images.clone(), batch.shape), device);
    let labels = Tensor::<1, Int>::from_data(
        TensorData::new(batch.labels.clone(), [batch.labels.len()]),
        device,
    );
    let mut cache = HashMap::new();
    let mut terms: Vec<(String, Tensor<1>, f64)> = Vec::new();
    {
        let mut ctx = StepContext::new(
            &phase.name,
            state.epoch,
            epochs,
            batch.index,
            state.global_step,
            images,
            labels.clone(),
            num_classes,
            seed,
            roles,
            &mut cache,
        );
        for m in methods.iter_mut() {
            ctx.for_instance(&m.instance);
            m.method
                .begin_step(&mut ctx)
                .map_err(|source| TrainError::Method {
                    instance: m.instance.clone(),
                    source,
                })?;
        }
        if phase.name == MAIN_PHASE {
            let trained: Vec<(String, f64)> = roles
                .iter()
                // A zero weight skips the term entirely: no forward is spent on it.
                .filter(|r| r.trained_in.as_deref() == Some(MAIN_PHASE) && r.ce_weight != 0.0)
                .map(|r| (r.name.clone(), r.ce_weight))
                .collect();
            for (role, ce_weight) in trained {
                let logits = ctx
                    .features(&role)
                    .map_err(|source| TrainError::Method {
                        instance: "task loss".into(),
                        source,
                    })?
                    .logits
                    .clone();
                terms.push((
                    format!("ce/{role}"),
                    cross_entropy(logits, labels.clone()),
                    ce_weight,
                ));
            }
        }
        for m in methods.iter_mut() {
            ctx.for_instance(&m.instance);
            let produced = m
                .method
                .terms(&mut ctx)
                .map_err(|source| TrainError::Method {
                    instance: m.instance.clone(),
                    source,
                })?;
            for term in produced {
                terms.push((
                    format!("{}/{}", m.instance, term.name),
                    term.value,
                    m.weight * term.weight,
                ));
            }
        }
    }
    let mut outcome = PhaseOutcome {
        loss: 0.0,
        terms: Vec::with_capacity(terms.len()),
    };
    let mut total: Option<Tensor<1>> = None;
    for (name, value, weight) in terms {
        let v = value.clone().into_scalar::<f32>() as f64;
        if !v.is_finite() {
            return Err(TrainError::NonFinite {
                term: name,
                value: v,
                epoch: state.epoch,
                batch: batch.index,
                step: state.global_step,
                last_good: last_good
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "none (no checkpoint was written yet)".into()),
            });
        }
        outcome.loss += weight * v;
        outcome.terms.push((name, v));
        if weight != 0.0 {
            let weighted = value.mul_scalar(weight);
            total = Some(match total {
                None => weighted,
                Some(t) => t + weighted,
            });
        }
    }
    if let Some(total) = total.filter(|t| t.is_tracked()) {
        let mut grads = total.backward();
        for role in roles
            .iter_mut()
            .filter(|r| r.trained_in.as_deref() == Some(phase.name.as_str()))
        {
            let lr = role.net.base_lr() * factor;
            role.net.step(lr, &mut grads);
        }
        for m in methods.iter_mut() {
            for part in m.method.parts() {
                if part.phase() == phase.name {
                    let lr = part.base_lr() * factor;
                    part.step(lr, &mut grads);
                }
            }
        }
    }
    Ok(outcome)
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

    let mut roles = Roles::default();
    for r in &plan.roles {
        let network = r.network.arch.init(&device);
        materialize(&network);
        let phase = r
            .trained_in
            .clone()
            .unwrap_or_else(|| MAIN_PHASE.to_string());
        let mut net = Trainable::new(&r.network.role, &phase, network, r.lr, &plan.sgd);
        if let Some((path, inner)) = &r.checkpoint {
            load_role_weights(&mut net, path, inner)?;
        }
        roles.insert(RoleNet {
            name: r.network.role.clone(),
            arch_name: r.network.arch_name.clone(),
            spec: r.network.spec,
            trained_in: r.trained_in.clone(),
            bn: r.bn,
            ce_weight: r.ce_weight,
            net,
        });
    }
    let view_networks = plan.networks.clone();
    let view_config = plan.config.clone();
    let view = crate::method::PlanView {
        networks: &view_networks,
        input_size: plan.data.input_size,
        num_classes,
        in_channels: train_set.channels,
        config: &view_config,
    };
    for m in plan.methods.iter_mut() {
        let mut ctx = InitContext {
            device: &device,
            roles: &roles,
            sgd: plan.sgd,
            base_lr: c.optim.lr,
            plan: view,
            seed: c.run.seed,
        };
        m.method
            .init(&mut ctx)
            .map_err(|source| TrainError::Method {
                instance: m.instance.clone(),
                source,
            })?;
    }

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

//! Measured cost of a planned run, without its data: every phase of a training step and an
//! evaluation pass timed on synthetic batches of the run's shapes, and the run's duration
//! estimated from them. `kd time` prints it; `cargo xtask reproduce --dry-run` adds it up over a
//! table's cells.

use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::error::TrainError;
use super::plan::RunPlan;
use super::setup::{build_roles, init_methods};
use super::step::{StepSettings, run_phase};
use crate::backend;
use crate::checkpoint::TrainState;
use crate::data::{Batch, batches_per_epoch};
use crate::method::Roles;
use crate::method::StepPosition;
use crate::zoo::Staged;

/// The measurement and the estimate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timing {
    /// Steps timed (after one warm-up step).
    pub steps: usize,
    /// Seconds per training step, all phases included.
    pub seconds_per_step: f64,
    /// Seconds per evaluated image, every role included.
    pub eval_seconds_per_image: f64,
    /// Training images per epoch (after per-class limits).
    pub train_images: usize,
    /// Test images per evaluation.
    pub test_images: usize,
    /// Steps per epoch.
    pub batches_per_epoch: usize,
    /// Epochs.
    pub epochs: usize,
    /// `epochs × (batches × step + test × eval) + one initial evaluation`, in seconds.
    pub estimated_seconds: f64,
}

/// A planned run ready to step on one synthetic batch of its shapes.
struct StepBench {
    plan: RunPlan,
    roles: Roles,
    plain: Device,
    device: Device,
    batch: Batch,
    state: TrainState,
}

impl StepBench {
    fn new(mut plan: RunPlan) -> Result<Self, TrainError> {
        let c = plan.config.clone();
        let plain = backend::device(c.run.backend)?;
        let device = plain.clone().autodiff();
        plain.seed(c.run.seed);
        let (channels, classes) = (plan.data.train.channels, plan.data.train.num_classes);
        let roles = build_roles(&plan, &device, false)?;
        init_methods(&mut plan, &roles, &device, classes, channels)?;
        let size = plan.data.input_size;
        let n = c.data.batch_size;
        let mut rng = ChaCha8Rng::seed_from_u64(c.run.seed);
        let batch = Batch {
            index: 0,
            shape: [n, channels, size, size],
            images: (0..n * channels * size * size)
                .map(|_| rng.random::<f32>() - 0.5)
                .collect(),
            labels: (0..n)
                .map(|_| rng.random_range(0..classes) as i64)
                .collect(),
            indices: (0..n).collect(),
        };
        Ok(StepBench {
            plan,
            roles,
            plain,
            device,
            batch,
            state: TrainState::default(),
        })
    }

    /// One training step, every phase.
    fn step(&mut self) -> Result<(), TrainError> {
        let c = &self.plan.config;
        let settings = StepSettings {
            position: StepPosition {
                epoch: self.state.epoch,
                epochs: c.run.epochs,
                batch: self.batch.index,
                global_step: self.state.global_step,
            },
            lr_factor: 1.0,
            batches: 1,
            seed: c.run.seed,
            device: &self.device,
            last_good: None,
        };
        for phase in &self.plan.phases {
            run_phase(
                phase,
                &self.batch,
                &settings,
                &mut self.roles,
                &mut self.plan.methods,
            )?;
        }
        Ok(())
    }

    /// Seconds of each of `iterations` steps after `warmup` untimed ones (first-touch
    /// allocations, lazy initialisation).
    fn time(&mut self, warmup: usize, iterations: usize) -> Result<Vec<f64>, TrainError> {
        for _ in 0..warmup {
            self.step()?;
        }
        let mut seconds = Vec::with_capacity(iterations.max(1));
        for _ in 0..iterations.max(1) {
            let start = Instant::now();
            self.step()?;
            seconds.push(start.elapsed().as_secs_f64());
        }
        Ok(seconds)
    }
}

/// Seconds of each of `iterations` runtime training steps of the planned run (all phases,
/// every method, every optimiser), after `warmup` untimed steps, on a synthetic batch.
pub fn time_plan_steps(
    plan: RunPlan,
    warmup: usize,
    iterations: usize,
) -> Result<Vec<f64>, TrainError> {
    StepBench::new(plan)?.time(warmup, iterations)
}

/// Times `steps` training steps and one evaluation batch of the planned run.
pub fn time_steps(plan: RunPlan, steps: usize) -> Result<Timing, TrainError> {
    let mut bench = StepBench::new(plan)?;
    let seconds = bench.time(2, steps)?;
    let seconds_per_step = seconds.iter().sum::<f64>() / seconds.len() as f64;
    let StepBench {
        plan, roles, plain, ..
    } = bench;
    let c = plan.config.clone();
    let channels = plan.data.train.channels;
    let size = plan.data.input_size;

    let eval_batch = c.data.eval_batch_size;
    let images = Tensor::<4>::random(
        [eval_batch, channels, size, size],
        Distribution::Default,
        &plain,
    );
    let networks: Vec<_> = roles.iter().map(|r| r.net.module().valid()).collect();
    for network in &networks {
        let _ = network.forward(images.clone()).into_data(); // warm-up
    }
    let start = Instant::now();
    for network in &networks {
        let logits = network.forward(images.clone());
        let _ = logits.into_data();
    }
    let eval_seconds_per_image = start.elapsed().as_secs_f64() / eval_batch as f64;

    let train_images = plan.data.train_images();
    let test_images = plan.data.test_images();
    let batches = batches_per_epoch(train_images, c.data.batch_size, c.data.drop_last);
    let eval_seconds = test_images as f64 * eval_seconds_per_image;
    let estimated_seconds =
        c.run.epochs as f64 * (batches as f64 * seconds_per_step + eval_seconds) + eval_seconds;
    Ok(Timing {
        steps: steps.max(1),
        seconds_per_step,
        eval_seconds_per_image,
        train_images,
        test_images,
        batches_per_epoch: batches,
        epochs: c.run.epochs,
        estimated_seconds,
    })
}

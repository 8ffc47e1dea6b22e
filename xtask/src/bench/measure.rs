//! The measurements of `cargo xtask bench`, each one process (`kd bench …`, or the PyTorch
//! reference script) run to completion before the next starts. A model's and a distillation
//! step's measurements are repeated in rounds ([`pooled`]), kd's and PyTorch's processes
//! alternating, and taking turns to go first.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// Images per second over timed iterations (as `kd bench` prints them).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Throughput {
    /// Median.
    pub median: f64,
    /// Slowest iteration.
    pub min: f64,
    /// Fastest iteration.
    pub max: f64,
    /// Iterations timed.
    pub iterations: usize,
}

/// One model: kd's numbers and, with `--vs-pytorch`, PyTorch's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelRow {
    /// Zoo name.
    pub model: String,
    /// Trainable parameters.
    pub params: usize,
    /// kd training step.
    pub train: Option<Throughput>,
    /// kd inference.
    pub inference: Throughput,
    /// PyTorch training step.
    #[serde(default)]
    pub torch_train: Option<Throughput>,
    /// PyTorch inference.
    #[serde(default)]
    pub torch_inference: Option<Throughput>,
}

/// A runtime step against the bare steps it is made of.
#[derive(Debug, Clone, Serialize)]
pub struct Overhead {
    /// What was timed.
    pub step: String,
    /// The bare steps it is compared with.
    pub reference: String,
    /// The runtime step, images per second.
    pub measured: Throughput,
    /// The bare steps together, images per second (from their medians).
    pub reference_rate: f64,
    /// `reference_rate / measured.median - 1`, in percent: the runtime's own cost.
    pub overhead_percent: f64,
    /// The same step written in PyTorch (`pytorch_bench.py --steps`), with `--vs-pytorch`.
    #[serde(default)]
    pub torch: Option<Throughput>,
}

/// The CPU the measurements ran on, as `kd backends --json` reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cpu {
    /// Model name (`/proc/cpuinfo`).
    pub model: String,
    /// Vector extensions present.
    pub extensions: Vec<String>,
    /// The extensions kd's matrix kernels were compiled to use.
    pub matrix_kernels: String,
    /// Threads.
    pub threads: usize,
}

/// The batch pipeline against training.
#[derive(Debug, Clone, Serialize)]
pub struct Pipeline {
    /// Dataset read.
    pub data: String,
    /// Batches delivered, images per second.
    pub throughput: Throughput,
    /// The fastest training step it feeds (model name).
    pub train_model: String,
    /// Its training throughput.
    pub train_rate: f64,
}

/// Peak memory of a real run.
#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    /// What ran.
    pub run: String,
    /// Peak resident set (VmHWM), MiB.
    pub peak_mib: f64,
}

/// Everything `cargo xtask bench` measured.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    /// The CPU.
    pub cpu: Cpu,
    /// Images per batch.
    pub batch: usize,
    /// Untimed iterations.
    pub warmup: usize,
    /// Timed iterations per round.
    pub iterations: usize,
    /// Rounds of each model's and distillation step's measurement ([`pooled`]).
    pub rounds: usize,
    /// Threads PyTorch was given (None without --vs-pytorch).
    pub torch_threads: Option<usize>,
    /// PyTorch's version string.
    pub torch_version: Option<String>,
    /// Per model.
    pub models: Vec<ModelRow>,
    /// KD and DML steps.
    pub overheads: Vec<Overhead>,
    /// Data pipeline.
    pub pipeline: Pipeline,
    /// Peak memory of a KD run.
    pub memory: Memory,
}

/// How to run `kd`.
pub struct Setup {
    /// The binary.
    pub kd: PathBuf,
    /// The repository (working directory).
    pub repo: PathBuf,
    /// Images per batch.
    pub batch: usize,
    /// Untimed iterations.
    pub warmup: usize,
    /// Timed iterations.
    pub iterations: usize,
    /// Processes per model and per distillation step ([`pooled`]), kd's and PyTorch's
    /// alternating.
    pub rounds: usize,
}

/// Several rounds of one measurement as one: the median of their medians (the mean of the
/// middle two for an even count), the slowest and fastest iteration of any round, and every
/// round's iterations.
///
/// # Panics
/// If `rounds` is empty.
pub fn pooled(rounds: &[Throughput]) -> Throughput {
    assert!(!rounds.is_empty(), "no rounds to pool");
    let mut medians: Vec<f64> = rounds.iter().map(|t| t.median).collect();
    medians.sort_by(f64::total_cmp);
    let n = medians.len();
    Throughput {
        median: (medians[(n - 1) / 2] + medians[n / 2]) / 2.0,
        min: rounds.iter().map(|t| t.min).fold(f64::INFINITY, f64::min),
        max: rounds
            .iter()
            .map(|t| t.max)
            .fold(f64::NEG_INFINITY, f64::max),
        iterations: rounds.iter().map(|t| t.iterations).sum(),
    }
}

/// kd's rounds of one model's row as one row, each throughput [`pooled`].
///
/// # Errors
/// If some rounds timed a training step and others did not.
///
/// # Panics
/// If `rounds` is empty.
fn pooled_row(model: &str, mut rounds: Vec<ModelRow>) -> anyhow::Result<ModelRow> {
    let trains: Option<Vec<Throughput>> = rounds.iter().map(|row| row.train).collect();
    if trains.is_none() && rounds.iter().any(|row| row.train.is_some()) {
        bail!("kd bench models {model} trained in some rounds and not in others");
    }
    let inferences: Vec<Throughput> = rounds.iter().map(|row| row.inference).collect();
    let mut row = rounds.swap_remove(0);
    row.train = trains.as_deref().map(pooled);
    row.inference = pooled(&inferences);
    Ok(row)
}

/// Round `round` of a measurement: kd's part first in even rounds, PyTorch's in odd ones, so
/// that neither side is always the first.
fn in_turn(
    round: usize,
    mut kd: impl FnMut() -> anyhow::Result<()>,
    mut torch: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    if round.is_multiple_of(2) {
        kd()?;
        torch()
    } else {
        torch()?;
        kd()
    }
}

/// How to run the PyTorch reference.
pub struct Python {
    /// The interpreter.
    pub python: String,
    /// RepDistiller checkout.
    pub repdistiller: PathBuf,
}

fn json_of(mut command: Command, what: &str) -> anyhow::Result<serde_json::Value> {
    eprintln!("  {what}");
    let out = command
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("reading the JSON of {what}"))
}

impl Setup {
    fn kd(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.kd);
        command
            .args(args)
            .current_dir(&self.repo)
            .env("KD_LOG", "warn");
        command
    }

    fn repeat(&self) -> [String; 4] {
        [
            "--warmup".into(),
            self.warmup.to_string(),
            "--iterations".into(),
            self.iterations.to_string(),
        ]
    }

    fn models(&self, models: &str, train: bool) -> anyhow::Result<Vec<ModelRow>> {
        let batch = self.batch.to_string();
        let repeat = self.repeat();
        let mut args = vec!["bench", "models", "--models", models, "--batch", &batch];
        args.extend(repeat.iter().map(String::as_str));
        if !train {
            args.push("--no-train");
        }
        let value = json_of(self.kd(&args), &format!("kd bench models {models}"))?;
        Ok(serde_json::from_value(value)?)
    }

    fn step(&self, config: &str) -> anyhow::Result<Throughput> {
        let repeat = self.repeat();
        let batch = format!("data.batch_size={}", self.batch);
        let mut args = vec![
            "bench",
            "step",
            config,
            "--allow-missing-data",
            "--allow-missing-checkpoints",
            "--set",
            &batch,
        ];
        args.extend(repeat.iter().map(String::as_str));
        let value = json_of(self.kd(&args), &format!("kd bench step {config}"))?;
        Ok(serde_json::from_value(value)?)
    }
}

/// Every zoo name, in `kd models` order.
pub fn zoo_names(kd: &Path) -> anyhow::Result<Vec<String>> {
    let mut command = Command::new(kd);
    command.args(["models", "--json"]);
    let value = json_of(command, "kd models --json")?;
    Ok(value
        .as_array()
        .context("kd models --json is not an array")?
        .iter()
        .filter_map(|m| m["name"].as_str().map(str::to_string))
        .collect())
}

fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// `pytorch_bench.py` with `what` (`--models …` or `--steps …`), at the setup's batch and
/// iteration counts, on as many threads as kd gets.
fn pytorch_command(setup: &Setup, python: &Python, what: &[&str]) -> Command {
    let mut command = Command::new(&python.python);
    command
        .arg(setup.repo.join("scripts/reference/pytorch_bench.py"))
        .arg("--repdistiller")
        .arg(&python.repdistiller)
        .args(what)
        .args(["--batch", &setup.batch.to_string()])
        .args(setup.repeat())
        .args(["--threads", &threads().to_string()])
        .current_dir(&setup.repo);
    command
}

fn pytorch(
    setup: &Setup,
    python: &Python,
    model: &str,
) -> anyhow::Result<(Throughput, Throughput, String)> {
    let value = json_of(
        pytorch_command(setup, python, &["--models", model]),
        &format!("pytorch_bench.py {model}"),
    )?;
    let row = &value["models"][0];
    Ok((
        serde_json::from_value(row["train"].clone())?,
        serde_json::from_value(row["inference"].clone())?,
        value["torch"].as_str().unwrap_or("?").to_string(),
    ))
}

/// PyTorch's KD and DML steps (`--steps kd,dml`), in that order.
fn pytorch_steps(setup: &Setup, python: &Python) -> anyhow::Result<(Throughput, Throughput)> {
    let value = json_of(
        pytorch_command(setup, python, &["--steps", "kd,dml"]),
        "pytorch_bench.py --steps kd,dml",
    )?;
    let step = |i: usize| -> anyhow::Result<Throughput> {
        Ok(serde_json::from_value(
            value["steps"][i]["throughput"].clone(),
        )?)
    };
    Ok((step(0)?, step(1)?))
}

/// The CPU, as the kd binary sees it.
fn cpu(setup: &Setup) -> anyhow::Result<Cpu> {
    let value = json_of(setup.kd(&["backends", "--json"]), "kd backends --json")?;
    Ok(serde_json::from_value(value["cpu"].clone())?)
}

fn seconds_per_image(t: &Throughput) -> f64 {
    1.0 / t.median
}

/// Runs every measurement in turn.
pub fn everything(
    setup: &Setup,
    models: &[String],
    python: Option<&Python>,
) -> anyhow::Result<Results> {
    eprintln!(
        "models ({} rounds of {} timed iterations each)",
        setup.rounds, setup.iterations
    );
    let mut rows = Vec::new();
    let mut torch_version = None;
    for model in models {
        let (mut kd, mut torch) = (Vec::new(), Vec::new());
        for round in 0..setup.rounds {
            in_turn(
                round,
                || {
                    let row = setup.models(model, true)?.pop();
                    kd.push(row.context("kd bench models printed no row")?);
                    Ok(())
                },
                || {
                    if let Some(python) = python {
                        let (train, inference, version) = pytorch(setup, python, model)?;
                        torch.push((train, inference));
                        torch_version = Some(version);
                    }
                    Ok(())
                },
            )?;
        }
        let mut row = pooled_row(model, kd)?;
        if !torch.is_empty() {
            let (train, inference): (Vec<_>, Vec<_>) = torch.into_iter().unzip();
            row.torch_train = Some(pooled(&train));
            row.torch_inference = Some(pooled(&inference));
        }
        rows.push(row);
    }

    eprintln!("runtime overhead");
    let (mut students, mut teachers, mut kds, mut dmls) = (vec![], vec![], vec![], vec![]);
    let (mut torch_kds, mut torch_dmls) = (vec![], vec![]);
    for round in 0..setup.rounds {
        in_turn(
            round,
            || {
                let student = setup.models("resnet20", true)?.remove(0);
                students.push(student.train.context("resnet20 trained")?);
                teachers.push(setup.models("resnet56", false)?.remove(0).inference);
                kds.push(setup.step("configs/bench/kd.toml")?);
                dmls.push(setup.step("configs/bench/dml.toml")?);
                Ok(())
            },
            || {
                if let Some(python) = python {
                    let (kd, dml) = pytorch_steps(setup, python)?;
                    torch_kds.push(kd);
                    torch_dmls.push(dml);
                }
                Ok(())
            },
        )?;
    }
    let (student_train, teacher) = (pooled(&students), pooled(&teachers));
    let (kd, dml) = (pooled(&kds), pooled(&dmls));
    let kd_reference = 1.0 / (seconds_per_image(&student_train) + seconds_per_image(&teacher));
    let dml_reference = 1.0 / (2.0 * seconds_per_image(&student_train));
    let (torch_kd, torch_dml) = match python {
        Some(_) => (Some(pooled(&torch_kds)), Some(pooled(&torch_dmls))),
        None => (None, None),
    };
    let overheads = vec![
        Overhead {
            step: "KD step, resnet56 → resnet20 (configs/bench/kd.toml)".into(),
            reference: "resnet20 train step + resnet56 inference".into(),
            measured: kd,
            reference_rate: kd_reference,
            overhead_percent: 100.0 * (kd_reference / kd.median - 1.0),
            torch: torch_kd,
        },
        Overhead {
            step: "DML step, two resnet20 peers (configs/bench/dml.toml)".into(),
            reference: "2 × resnet20 train step".into(),
            measured: dml,
            reference_rate: dml_reference,
            overhead_percent: 100.0 * (dml_reference / dml.median - 1.0),
            torch: torch_dml,
        },
    ];

    eprintln!("data pipeline");
    let subset = "data/fashion-mnist-subset";
    let value = json_of(
        setup.kd(&[
            "bench",
            "data",
            "--data",
            subset,
            "--format",
            "idx",
            "--batch",
            &setup.batch.to_string(),
            "--warmup",
            "2",
            "--iterations",
            "50",
        ]),
        "kd bench data",
    )?;
    let smallest = setup.models("resnet8", true)?.remove(0);
    let pipeline = Pipeline {
        data: format!("{subset} (IDX, padded to 32x32, random crop and flip)"),
        throughput: serde_json::from_value(value)?,
        train_model: "resnet8".into(),
        train_rate: smallest.train.context("resnet8 trained")?.median,
    };

    eprintln!("peak memory of a KD run");
    let memory = kd_run_memory(setup)?;
    Ok(Results {
        cpu: cpu(setup)?,
        batch: setup.batch,
        warmup: setup.warmup,
        iterations: setup.iterations,
        rounds: setup.rounds,
        torch_threads: python.map(|_| threads()),
        torch_version,
        models: rows,
        overheads,
        pipeline,
        memory,
    })
}

/// Peak resident memory (VmHWM, KiB) of a running process, if it is still there.
fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Trains the quickstart teacher for one epoch, then measures the peak memory of the quickstart
/// KD run (one epoch) by polling its `/proc/<pid>/status`.
fn kd_run_memory(setup: &Setup) -> anyhow::Result<Memory> {
    let runs = setup.repo.join("target").join("bench-runs");
    let _ = std::fs::remove_dir_all(&runs);
    let output = format!("run.output_dir={}", runs.display());
    let quickstart = "configs/experiments/fashion/quickstart";
    let status = setup
        .kd(&[
            "train",
            &format!("{quickstart}/teacher.toml"),
            "--set",
            &output,
            "--set",
            "run.epochs=1",
        ])
        .stdout(Stdio::null())
        .status()
        .context("training the teacher")?;
    if !status.success() {
        bail!("training the quickstart teacher failed");
    }
    let teacher = format!(
        "networks.teacher.checkpoint={}",
        runs.join("teacher/checkpoints/best.kdc").display()
    );
    let mut child = setup
        .kd(&[
            "train",
            &format!("{quickstart}/kd.toml"),
            "--set",
            &output,
            "--set",
            "run.epochs=1",
            "--set",
            &teacher,
        ])
        .stdout(Stdio::null())
        .spawn()
        .context("starting the KD run")?;
    let mut peak = 0;
    loop {
        if let Some(kib) = peak_kib(child.id()) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("the KD run failed ({status})");
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Memory {
        run: format!("{quickstart}/kd.toml, 1 epoch (resnet20 → resnet8, 4,000 training images)"),
        peak_mib: peak as f64 / 1024.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(median: f64, min: f64, max: f64) -> Throughput {
        Throughput {
            median,
            min,
            max,
            iterations: 7,
        }
    }

    /// The median of the medians (odd and even counts), the extremes of all rounds, and every
    /// round's iterations; one round is itself.
    #[test]
    fn rounds_pool_to_the_median_of_their_medians() {
        let rounds = [
            rate(300.0, 250.0, 320.0),
            rate(100.0, 90.0, 400.0),
            rate(200.0, 180.0, 210.0),
        ];
        let t = pooled(&rounds);
        assert_eq!(
            (t.median, t.min, t.max, t.iterations),
            (200.0, 90.0, 400.0, 21)
        );
        let t = pooled(&rounds[..2]);
        assert_eq!(
            (t.median, t.min, t.max, t.iterations),
            (200.0, 90.0, 400.0, 14)
        );
        let t = pooled(&[
            rate(1.0, 0.5, 2.0),
            rate(4.0, 3.0, 5.0),
            rate(2.0, 1.5, 2.5),
            rate(9.0, 8.0, 10.0),
        ]);
        assert_eq!(t.median, 3.0);
        let t = pooled(&rounds[2..]);
        assert_eq!(
            (t.median, t.min, t.max, t.iterations),
            (200.0, 180.0, 210.0, 7)
        );
    }

    fn row(train: Option<Throughput>, inference: Throughput) -> ModelRow {
        ModelRow {
            model: "resnet8".into(),
            params: 83892,
            train,
            inference,
            torch_train: None,
            torch_inference: None,
        }
    }

    /// A row's rounds pool field by field; a model trained in only some rounds is an error.
    #[test]
    fn rows_pool_each_throughput() {
        let (a, b, c) = (
            rate(1.0, 0.5, 2.0),
            rate(3.0, 2.0, 4.0),
            rate(2.0, 1.5, 2.5),
        );
        let pooled = pooled_row("resnet8", vec![row(Some(a), c), row(Some(b), a)]).unwrap();
        assert_eq!(pooled.train.unwrap().median, 2.0);
        assert_eq!(pooled.inference.median, 1.5);
        let untrained = pooled_row("resnet8", vec![row(None, a), row(None, b)]).unwrap();
        assert!(untrained.train.is_none());
        let mixed = pooled_row("resnet8", vec![row(Some(a), a), row(None, b)]).unwrap_err();
        assert!(
            mixed.to_string().contains("resnet8 trained in some rounds"),
            "{mixed}"
        );
    }

    /// kd goes first in even rounds, PyTorch in odd ones.
    #[test]
    fn sides_take_turns_to_go_first() {
        let order = std::cell::RefCell::new(Vec::new());
        for round in 0..3 {
            let kd = || {
                order.borrow_mut().push("kd");
                Ok(())
            };
            let torch = || {
                order.borrow_mut().push("torch");
                Ok(())
            };
            in_turn(round, kd, torch).unwrap();
        }
        let want = ["kd", "torch", "torch", "kd", "kd", "torch"];
        assert_eq!(order.into_inner(), want);
    }

    #[test]
    #[should_panic(expected = "no rounds to pool")]
    fn no_rounds_is_a_bug() {
        pooled(&[]);
    }
}

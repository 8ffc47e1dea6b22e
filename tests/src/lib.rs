//! Helpers for the workspace integration tests (`tests/tests/*.rs`): locating the `kd` binary,
//! writing configs into temporary directories, running commands and reading run directories.
//!
//! The tests run the real binary as a user would: exit statuses, messages and files on disk are
//! what they check. `cargo test --workspace` builds `kd` before running any test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub use kd_plugins::SHIPPED;

/// Every method kind the workspace ships, sorted: the kinds kd-plugins lists, which the registry
/// must hold exactly.
pub fn all_kinds() -> Vec<&'static str> {
    kd_plugins::kinds()
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_path_buf()
}

/// The shipped Fashion-MNIST subset.
pub fn subset() -> PathBuf {
    repo_root().join("data").join("fashion-mnist-subset")
}

/// The `kd` binary of this build profile, brought up to date once per test process.
///
/// `cargo test -p kd-tests` alone does not rebuild the binary (it is not a library dependency),
/// so the first call runs `cargo build -p kd-cli --bin kd` with the test's own profile: a no-op
/// when it is fresh, and never a stale binary under test.
pub fn kd_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("test executable path");
            let dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("target/<profile>/deps/<test>");
            let profile = dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug");
            let profile = if profile == "debug" { "dev" } else { profile };
            let status = Command::new(env!("CARGO"))
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "kd-cli",
                    "--bin",
                    "kd",
                    "--profile",
                    profile,
                ])
                .current_dir(repo_root())
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building kd failed");
            dir.join(format!("kd{}", std::env::consts::EXE_SUFFIX))
        })
        .clone()
}

/// `kd` with the given arguments, run in `dir`, with `KD_*` variables cleared.
pub fn kd(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(kd_binary());
    command.current_dir(dir).args(args).env("KD_LOG", "warn");
    for (key, _) in std::env::vars() {
        if key.starts_with("KD_") && key != "KD_LOG" {
            command.env_remove(key);
        }
    }
    command
}

/// Runs a command and returns its output, whatever the status.
pub fn output(mut command: Command) -> Output {
    command.output().expect("kd runs")
}

/// Runs a command that must succeed.
pub fn success(command: Command) -> Output {
    let out = output(command);
    assert!(
        out.status.success(),
        "kd failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command that must fail with `status`; returns its stderr.
pub fn failure(command: Command, status: i32) -> String {
    let out = output(command);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(status),
        "expected exit {status}\nstdout:\n{}\nstderr:\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// Writes a file (creating folders) and returns its path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// A small, fast run on the shipped subset: `per_class` training images per class, 100 test
/// images per class, runs written under `dir/runs`.
pub fn tiny_config(
    dir: &Path,
    name: &str,
    arch: &str,
    per_class: usize,
    epochs: usize,
    extra: &str,
) -> String {
    format!(
        r#"
[run]
name = "{name}"
output_dir = "{runs}"
epochs = {epochs}
seed = 7
log_every = 1

[data]
format = "idx"
root = "{root}"
train_per_class = {per_class}
test_per_class = 20
batch_size = 16
eval_batch_size = 100

[schedule]
kind = "constant"

[networks.student]
arch = "{arch}"
{extra}
"#,
        runs = dir.join("runs").display(),
        root = subset().display(),
    )
}

/// The directory of a run written by [`tiny_config`].
pub fn run_dir(dir: &Path, name: &str) -> PathBuf {
    dir.join("runs").join(name)
}

/// Every row of a run's `metrics.jsonl`.
pub fn metrics(run: &Path) -> Vec<serde_json::Map<String, serde_json::Value>> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap()
                .as_object()
                .unwrap()
                .clone()
        })
        .collect()
}

/// Trains a tiny teacher and returns its best checkpoint.
pub fn tiny_teacher(dir: &Path, name: &str, arch: &str) -> PathBuf {
    let config = write(
        dir,
        &format!("{name}.toml"),
        &tiny_config(dir, name, arch, 20, 1, ""),
    );
    success(kd(dir, &["train", config.to_str().unwrap()]));
    run_dir(dir, name).join("checkpoints").join("best.kdc")
}

/// Every tensor of a module with its dotted name and whether it is trainable (BatchNorm running
/// statistics are not).
pub fn named_tensors<M: burn::module::Module>(module: &M) -> Vec<(String, bool, Vec<f32>)> {
    use burn::module::{ModuleVisitor, Param};
    use burn::tensor::Tensor;
    struct Collect {
        path: Vec<String>,
        out: Vec<(String, bool, Vec<f32>)>,
    }
    impl ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, container: &str) {
            if !container.starts_with("Enum:") {
                self.path.push(name.to_string());
            }
        }
        fn exit_module(&mut self, _name: &str, container: &str) {
            if !container.starts_with("Enum:") {
                self.path.pop();
            }
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let name = self.path.join(".");
            let trainable = !(name.ends_with("running_mean") || name.ends_with("running_var"));
            self.out.push((
                name,
                trainable,
                param.val().into_data().try_to_vec::<f32>().unwrap(),
            ));
        }
    }
    let mut collect = Collect {
        path: Vec::new(),
        out: Vec::new(),
    };
    module.visit(&mut collect);
    collect.out
}

/// The tensors of `role` in a checkpoint.
pub fn role_tensors(checkpoint: &Path, role: &str) -> Vec<(String, bool, Vec<f32>)> {
    let device = burn::tensor::Device::flex();
    let (network, _) = kd_core::runtime::load_network(checkpoint, role, &device).unwrap();
    named_tensors(&network)
}

/// The tensors of a method part stored in a checkpoint, loaded into a fresh network of `arch`
/// (a branch holds only some stages, so the load is partial: compare only what it holds).
pub fn part_tensors(
    checkpoint: &Path,
    part: &str,
    arch: &str,
    spec: kd_core::zoo::ModelSpec,
) -> Vec<(String, bool, Vec<f32>)> {
    use burn::module::Module;
    let (_, blobs) = kd_core::checkpoint::read(checkpoint).unwrap();
    let name = format!("part:{part}/module");
    let bytes = blobs
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| b)
        .expect("part stored");
    let record = burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
        .unwrap()
        .allow_partial(true);
    let device = burn::tensor::Device::flex();
    let network = (kd_core::zoo::find(arch).unwrap().arch)(spec).init(&device);
    named_tensors(&network.try_load_record(record).unwrap())
}

/// A PyTorch fixture file (`crates/kd-core/tests/fixtures/pytorch/<name>`).
pub fn pytorch_fixture(name: &str) -> PathBuf {
    repo_root()
        .join("crates/kd-core/tests/fixtures/pytorch")
        .join(name)
}

/// A CIFAR-10 folder (`dir/cifar10`) of `per_file` records in each of the five training files
/// and the test file, pixels and labels from a fixed formula.
pub fn cifar10(dir: &Path, per_file: usize) -> PathBuf {
    let root = dir.join("cifar10");
    std::fs::create_dir_all(&root).unwrap();
    let names: Vec<String> = (1..=5)
        .map(|i| format!("data_batch_{i}.bin"))
        .chain(["test_batch.bin".to_string()])
        .collect();
    for (f, name) in names.iter().enumerate() {
        let mut bytes = Vec::new();
        for r in 0..per_file {
            bytes.push(((r * 7 + f) % 10) as u8);
            bytes.extend((0..3072).map(|i| ((i * (r + 3) + 31 * f) % 251) as u8));
        }
        std::fs::write(root.join(name), bytes).unwrap();
    }
    root
}

/// Starts `kd train CONFIG` in `dir` and kills it as soon as `last` (its `last.kdc`) exists: a run
/// interrupted mid-way, as a crash or a pulled plug leaves it. Panics if the run ends first or no
/// checkpoint appears within two minutes.
pub fn train_and_kill_at_first_checkpoint(dir: &Path, config: &Path, last: &Path) {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let mut child = kd(dir, &["train", config.to_str().expect("a UTF-8 path")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !last.is_file() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint appeared"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    assert!(
        !child.wait().unwrap().success(),
        "the run was killed, not finished"
    );
}

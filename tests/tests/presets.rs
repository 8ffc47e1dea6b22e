//! Dataset presets and automatic normalisation through the binary: `data.preset` fills the
//! statistics and the flip the user did not set, an IDX dataset without a preset or statistics
//! is normalised with its training split's own statistics (the values `kd data stats` prints),
//! and every misuse exits 2 naming the key or the file.

use std::path::Path;

use kd_tests::{failure, kd, success, write};

/// Writes an IDX split `prefix` (`train` or `t10k`) of `pixels.len() / side²` images of
/// `side x side` under `root`, labelled 0, 1, 0, 1, …
fn idx_split(root: &Path, prefix: &str, side: usize, pixels: &[u8]) {
    let count = pixels.len() / (side * side);
    let be = |n: usize| (n as u32).to_be_bytes();
    let mut images = vec![0, 0, 8, 3];
    for n in [count, side, side] {
        images.extend(be(n));
    }
    images.extend(pixels);
    let mut labels = vec![0, 0, 8, 1];
    labels.extend(be(count));
    labels.extend((0..count).map(|i| (i % 2) as u8));
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(root.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
    std::fs::write(root.join(format!("{prefix}-labels-idx1-ubyte")), labels).unwrap();
}

/// A small digits-like IDX dataset under `dir/digits`: 12 training and 4 test images of 6x6
/// with varied pixel values.
fn digits(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("digits");
    let train: Vec<u8> = (0..12 * 36).map(|i| ((i * 37) % 256) as u8).collect();
    let test: Vec<u8> = (0..4 * 36).map(|i| ((i * 11) % 256) as u8).collect();
    idx_split(&root, "train", 6, &train);
    idx_split(&root, "t10k", 6, &test);
    root
}

/// A config over the IDX dataset at `root` with `data_keys` added to its `[data]` table.
fn config(dir: &Path, root: &Path, data_keys: &str) -> String {
    write(
        dir,
        "run.toml",
        &format!(
            "[run]\nepochs = 1\n[data]\nformat = \"idx\"\nroot = \"{}\"\ninput_size = 8\n\
             batch_size = 4\n{data_keys}\n[networks.student]\narch = \"resnet8\"\n",
            root.display()
        ),
    )
    .display()
    .to_string()
}

fn plan(dir: &Path, config: &str, sets: &[&str]) -> String {
    let mut args = vec!["plan", config];
    for set in sets {
        args.extend(["--set", set]);
    }
    String::from_utf8(success(kd(dir, &args)).stdout).unwrap()
}

fn plan_error(dir: &Path, config: &str, sets: &[&str]) -> String {
    let mut args = vec!["plan", config];
    for set in sets {
        args.extend(["--set", set]);
    }
    failure(kd(dir, &args), 2)
}

/// The data line of a plan's description that holds the statistics.
fn statistics_line(plan: &str) -> &str {
    plan.lines()
        .find(|l| l.contains("crop padding"))
        .unwrap_or_else(|| panic!("no statistics line in\n{plan}"))
        .trim()
}

#[test]
fn the_mnist_preset_gives_mnist_statistics_and_no_flip() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = config(d, &digits(d), "preset = \"mnist\"");
    let out = plan(d, &cfg, &[]);
    assert!(
        statistics_line(&out).ends_with("flip false, mean [0.1307], std [0.3081] (preset mnist)"),
        "{out}"
    );
    // An explicit flip wins over the preset's.
    let out = plan(d, &cfg, &["data.augment.flip=true"]);
    assert!(
        statistics_line(&out).contains("flip true, mean [0.1307]"),
        "{out}"
    );
    // Fashion-MNIST keeps kd's former constants and its flips.
    let out = plan(d, &cfg, &["data.preset=fashion-mnist"]);
    assert!(
        statistics_line(&out)
            .ends_with("flip true, mean [0.286], std [0.353] (preset fashion-mnist)"),
        "{out}"
    );
}

#[test]
fn an_explicit_mean_beats_the_preset_and_the_std_still_comes_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = config(d, &digits(d), "preset = \"mnist\"\nmean = [0.5]");
    let out = plan(d, &cfg, &[]);
    assert!(
        statistics_line(&out)
            .ends_with("mean [0.5], std [0.3081] (mean set in the config, std preset mnist)"),
        "{out}"
    );
}

/// The `mean` and `std` arrays of `kd data stats --json` on `file`, narrowed to f32 as the plan
/// records them.
fn data_stats(dir: &Path, file: &Path) -> (Vec<f32>, Vec<f32>) {
    let out = success(kd(
        dir,
        &[
            "data",
            "stats",
            file.to_str().unwrap(),
            "--format",
            "idx",
            "--json",
        ],
    ));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let values = |key: &str| -> Vec<f32> {
        json[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect()
    };
    (values("mean"), values("std"))
}

#[test]
fn an_idx_dataset_without_preset_or_statistics_is_normalised_with_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = digits(d);
    let (mean, std) = data_stats(d, &root.join("train-images-idx3-ubyte"));
    assert!(
        mean[0] > 0.3 && mean[0] < 0.7 && std[0] > 0.1,
        "{mean:?} {std:?}"
    );
    // A per-class limit does not change them: they are the whole training split's.
    let cfg = config(d, &root, "train_per_class = 2");
    let out = plan(d, &cfg, &[]);
    assert!(
        statistics_line(&out).ends_with(&format!(
            "mean {mean:?}, std {std:?} (computed from the 12 training images: idx data \
             without data.preset has no published statistics)"
        )),
        "{out}"
    );
    // `auto` computes them even where a preset has constants.
    let out = plan(
        d,
        &cfg,
        &["data.preset=fashion-mnist", "data.normalisation=auto"],
    );
    assert!(
        statistics_line(&out).ends_with(&format!(
            "mean {mean:?}, std {std:?} (computed from the 12 training images, as \
             data.normalisation = \"auto\" asks)"
        )),
        "{out}"
    );
    // The run directory's plan records them too.
    success(kd(d, &["train", &cfg, "--set", "run.output_dir=runs"]));
    let plan_txt = std::fs::read_to_string(d.join("runs/run/plan.txt")).unwrap();
    assert!(
        plan_txt.contains(&format!("mean {mean:?}, std {std:?} (computed")),
        "{plan_txt}"
    );
}

#[test]
fn a_preset_of_another_format_is_refused_at_data_preset() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = config(d, &digits(d), "preset = \"cifar10\"");
    let stderr = plan_error(d, &cfg, &[]);
    assert!(
        stderr.contains(
            "`data.preset`: `cifar10` is a dataset of cifar10 files, but data.format is `idx`: \
             set data.format = \"cifar10\" or choose a preset of idx data (known presets: \
             mnist, fashion-mnist, cifar10, cifar100)"
        ) && stderr.contains("run.toml"),
        "{stderr}"
    );
    // Training is refused the same way, before anything is written.
    let stderr = failure(kd(d, &["train", &cfg]), 2);
    assert!(stderr.contains("`data.preset`: `cifar10`"), "{stderr}");
    assert!(!d.join("runs").exists());
}

#[test]
fn an_unknown_preset_lists_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = config(d, &digits(d), "preset = \"emnist\"");
    let stderr = plan_error(d, &cfg, &[]);
    assert!(
        stderr.contains("`data.preset`")
            && stderr.contains("emnist")
            && stderr.contains("`mnist`, `fashion-mnist`, `cifar10`, `cifar100`"),
        "{stderr}"
    );
}

#[test]
fn auto_normalisation_with_explicit_statistics_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = config(d, &digits(d), "normalisation = \"auto\"\nstd = [0.2]");
    let stderr = plan_error(d, &cfg, &[]);
    assert!(
        stderr.contains(
            "`data.normalisation`: `auto` computes data.mean and data.std from the training \
             split, but data.std is set too: remove one of them"
        ),
        "{stderr}"
    );
    let stderr = plan_error(d, &cfg, &["data.normalisation=always"]);
    assert!(
        stderr.contains("`data.normalisation`") && stderr.contains("`auto`"),
        "{stderr}"
    );
}

#[test]
fn constant_training_images_have_no_std_to_normalise_by() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = d.join("blank");
    idx_split(&root, "train", 6, &[9; 4 * 36]);
    idx_split(&root, "t10k", 6, &[9; 2 * 36]);
    let cfg = config(d, &root, "");
    let stderr = plan_error(d, &cfg, &[]);
    assert!(
        stderr.contains(
            "`data.std`: is not set, and the training split's standard deviation is 0 in \
             channel 0 (every pixel is 9 of 255): normalising would divide by zero; set data.std"
        ),
        "{stderr}"
    );
    // Given a std, the same data plans.
    plan(d, &cfg, &["data.std=[0.5]"]);
}

#[test]
fn a_training_split_that_cannot_be_read_for_its_statistics_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = digits(d);
    let images = root.join("train-images-idx3-ubyte");
    let mut bytes = std::fs::read(&images).unwrap();
    bytes.truncate(bytes.len() - 10);
    std::fs::write(&images, bytes).unwrap();
    let cfg = config(d, &root, "");
    let stderr = plan_error(d, &cfg, &[]);
    assert!(
        stderr.contains("`data.root`") && stderr.contains("train-images-idx3-ubyte"),
        "{stderr}"
    );
    // With a preset nothing needs the pixels at plan time; the run still refuses the file.
    let stderr = failure(kd(d, &["train", &cfg, "--set", "data.preset=mnist"]), 2);
    assert!(stderr.contains("train-images-idx3-ubyte"), "{stderr}");
}

//! A teacher trained on inputs prepared otherwise than the run's data is a plan error, through
//! the binary: the error names `networks.<role>.checkpoint` and both preparations;
//! `networks.<role>.allow_other_preparation = true` turns it into a printed warning that says
//! so; `networks.<role>.trained_on` declares the preparation of a file that records none (an
//! import without flags, a PyTorch file) and is compared the same way, refused where it
//! contradicts the file's record; a file with neither gets a warning naming the key. The import
//! of a PyTorch teacher records the declared preparation, not the run's.
//!
//! Data: a synthetic CIFAR-10 folder; teachers: the resnet8 PyTorch fixture, imported with and
//! without `--format cifar10`. The run feeds CIFAR-100's statistics (the mismatch) or, by
//! default, CIFAR-10's (the match).

use std::path::{Path, PathBuf};

use kd_core::checkpoint;
use kd_tests::{cifar10, failure, kd, pytorch_fixture, success, write};

const CIFAR10_MEAN: &str = "mean [0.4914, 0.4822, 0.4465]";
const CIFAR100_MEAN: &str = "mean [0.5071, 0.4867, 0.4408]";

/// The folder with the data, `recorded.kdc` (records CIFAR-10's preparation) and `bare.kdc`
/// (records none).
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    cifar10(dir.path(), 4);
    let from = pytorch_fixture("resnet8_c10.pth");
    let from = from.to_str().unwrap();
    for (out, flags) in [
        ("recorded.kdc", &["--format", "cifar10"][..]),
        ("bare.kdc", &[][..]),
    ] {
        let mut args = vec!["import", "--arch", "resnet8", "--from", from, "--out", out];
        args.extend(flags);
        success(kd(dir.path(), &args));
    }
    dir
}

/// A KD run on the folder's data whose teacher starts from `checkpoint`, with `teacher` lines
/// added to its table; `cifar100_statistics` normalises with CIFAR-100's constants.
fn config(dir: &Path, checkpoint: &Path, teacher: &str, cifar100_statistics: bool) -> PathBuf {
    let statistics = if cifar100_statistics {
        "mean = [0.5071, 0.4867, 0.4408]\nstd = [0.2675, 0.2565, 0.2761]\n"
    } else {
        ""
    };
    let text = format!(
        r#"stack = ["kd"]
[run]
name = "prep"
output_dir = "runs"
epochs = 1
seed = 7
[data]
format = "cifar10"
root = "cifar10"
batch_size = 8
eval_batch_size = 8
{statistics}
[schedule]
kind = "constant"
[networks.student]
arch = "resnet8"
[networks.teacher]
arch = "resnet8"
checkpoint = "{}"
{teacher}
[method.kd]
kind = "kd"
"#,
        checkpoint.display()
    );
    write(dir, "prep.toml", &text)
}

fn plan_fails(dir: &Path, config: &Path) -> String {
    failure(kd(dir, &["plan", config.to_str().unwrap()]), 2)
}

fn plan_passes(dir: &Path, config: &Path) -> String {
    let out = success(kd(dir, &["plan", config.to_str().unwrap()]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_recorded_preparation_other_than_the_runs_is_an_error_naming_both_unless_overridden() {
    let dir = setup();
    let teacher = dir.path().join("recorded.kdc");
    let mismatched = config(dir.path(), &teacher, "", true);
    let stderr = plan_fails(dir.path(), &mismatched);
    assert!(
        stderr.contains("`networks.teacher.checkpoint`: ")
            && stderr.contains("recorded.kdc was trained on inputs prepared as cifar10")
            && stderr.contains(CIFAR10_MEAN)
            && stderr.contains("(as the file records)")
            && stderr.contains(&format!("but this run feeds it {CIFAR100_MEAN}"))
            && stderr.contains("set networks.teacher.allow_other_preparation = true"),
        "{stderr}"
    );
    // `kd train` plans first: nothing is written.
    failure(kd(dir.path(), &["train", mismatched.to_str().unwrap()]), 2);
    assert!(!dir.path().join("runs/prep").exists());
    // The explicit override: a warning in the printed plan that says it was given.
    let allowed = config(dir.path(), &teacher, "allow_other_preparation = true", true);
    let text = plan_passes(dir.path(), &allowed);
    let warning = text
        .lines()
        .find(|l| l.starts_with("warning: networks.teacher.checkpoint:"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        warning.contains(CIFAR10_MEAN)
            && warning.contains(CIFAR100_MEAN)
            && warning
                .ends_with("fed anyway, as networks.teacher.allow_other_preparation = true asks"),
        "{warning}"
    );
    // The same preparation: no error, no warning.
    let text = plan_passes(dir.path(), &config(dir.path(), &teacher, "", false));
    assert!(!text.contains("warning: networks.teacher"), "{text}");
}

#[test]
fn trained_on_declares_what_a_file_without_a_record_was_trained_on() {
    let dir = setup();
    let bare = dir.path().join("bare.kdc");
    // Neither record nor declaration: a warning naming the key that would declare it.
    let text = plan_passes(dir.path(), &config(dir.path(), &bare, "", true));
    assert!(
        text.contains(
            "warning: networks.teacher.checkpoint: bare.kdc records no input preparation"
        ) && text.contains("declare it with networks.teacher.trained_on = \"<preset>\""),
        "{text}"
    );
    // Declared CIFAR-10, fed CIFAR-100's statistics: caught.
    let declared = "trained_on = \"cifar10\"";
    let stderr = plan_fails(dir.path(), &config(dir.path(), &bare, declared, true));
    assert!(
        stderr.contains("`networks.teacher.checkpoint`: ")
            && stderr.contains(CIFAR10_MEAN)
            && stderr.contains("(as networks.teacher.trained_on declares)")
            && stderr.contains(&format!("this run feeds it {CIFAR100_MEAN}")),
        "{stderr}"
    );
    // Declared CIFAR-10, fed CIFAR-10's: passes silently.
    let text = plan_passes(dir.path(), &config(dir.path(), &bare, declared, false));
    assert!(!text.contains("warning: networks.teacher"), "{text}");
    // A declaration that contradicts a record is an error at the declaration.
    let recorded = dir.path().join("recorded.kdc");
    let stderr = plan_fails(
        dir.path(),
        &config(dir.path(), &recorded, "trained_on = \"cifar100\"", true),
    );
    assert!(
        stderr.contains("`networks.teacher.trained_on`: declares `cifar100` (mean [0.5071")
            && stderr.contains("but recorded.kdc records that its inputs were prepared as cifar10")
            && !stderr.contains("`networks.teacher.checkpoint`"),
        "{stderr}"
    );
    // A declaration of other channels than the network takes, or without a checkpoint.
    let stderr = plan_fails(
        dir.path(),
        &config(dir.path(), &bare, "trained_on = \"mnist\"", false),
    );
    assert!(
        stderr.contains(
            "`networks.teacher.trained_on`: `mnist` images have 1 channel(s), but the resnet8 \
             of role `teacher` takes 3"
        ),
        "{stderr}"
    );
    // An unknown preset: the names, each quoted once, and the closest.
    let stderr = plan_fails(
        dir.path(),
        &config(dir.path(), &bare, "trained_on = \"cifar\"", false),
    );
    assert!(
        stderr.contains(
            "`networks.teacher.trained_on`: unknown variant `cifar` (did you mean `cifar10`?): \
             must be one of `mnist`, `fashion-mnist`, `cifar10`, `cifar100`"
        ) && !stderr.contains("``"),
        "{stderr}"
    );
    let student = config(dir.path(), &bare, declared, false);
    let text = std::fs::read_to_string(&student).unwrap().replace(
        "[networks.student]\n",
        "[networks.student]\ntrained_on = \"cifar10\"\n",
    );
    let student = write(dir.path(), "prep.toml", &text);
    let stderr = plan_fails(dir.path(), &student);
    assert!(
        stderr.contains(
            "`networks.student.trained_on`: declares what networks.student.checkpoint was \
             trained on, but the role has no checkpoint (the key applies only to a role loaded \
             from one)"
        ),
        "{stderr}"
    );
    // Allowing another preparation is as meaningless without a checkpoint: the same error.
    let text = text.replace(
        "trained_on = \"cifar10\"\n",
        "allow_other_preparation = true\n",
    );
    let stderr = plan_fails(dir.path(), &write(dir.path(), "prep.toml", &text));
    assert!(
        stderr.contains(
            "`networks.student.allow_other_preparation`: allows feeding inputs prepared \
             otherwise than networks.student.checkpoint was trained on, but the role has no \
             checkpoint (the key applies only to a role loaded from one)"
        ),
        "{stderr}"
    );
}

#[test]
fn a_pytorch_teacher_is_checked_by_its_declaration_and_imported_with_it() {
    let dir = setup();
    let pth = pytorch_fixture("resnet8_c10.pth");
    let declared = "trained_on = \"cifar10\"";
    let stderr = plan_fails(dir.path(), &config(dir.path(), &pth, declared, true));
    assert!(
        stderr.contains("resnet8_c10.pth was trained on inputs prepared as cifar10")
            && stderr.contains(&format!("this run feeds it {CIFAR100_MEAN}")),
        "{stderr}"
    );
    // Matched: the run imports it once, recording the declared preparation (CIFAR-10's
    // constants, the zoo's 32-pixel input), not one taken from the run.
    let run = config(dir.path(), &pth, declared, false);
    success(kd(dir.path(), &["train", run.to_str().unwrap()]));
    let imports: Vec<PathBuf> = std::fs::read_dir(dir.path().join("runs/imports"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(imports.len(), 1, "{imports:?}");
    let header = checkpoint::read_header(&imports[0]).unwrap();
    let recorded = header
        .preparation
        .expect("the import records the declaration");
    assert_eq!(recorded.format.as_deref(), Some("cifar10"));
    assert_eq!(recorded.mean, [0.4914, 0.4822, 0.4465]);
    assert_eq!(recorded.std, [0.2470, 0.2435, 0.2616]);
    assert_eq!((recorded.image_size, recorded.input_size), ([32, 32], 32));
    assert_eq!(recorded.class_names.as_ref().map(Vec::len), Some(10));
}

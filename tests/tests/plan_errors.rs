//! Plans that cannot do what they say are refused before anything is written, with exit status
//! 2 and a message naming the keys (or the folder) involved: a run that would take no training
//! step or evaluate no image, image folders whose splits disagree on their classes, and roles
//! that two stacked methods declare in conflicting ways. `kd plan` and `kd train` refuse alike.

use std::path::Path;

use kd_tests::{failure, kd, run_dir, success, tiny_config, write};

/// A valid 4x4 grey PNG (8-bit, one IDAT chunk).
const PNG: [u8; 81] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00, 0x8c, 0x9a, 0xc1,
    0xa2, 0x00, 0x00, 0x00, 0x18, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x60, 0xd0, 0x08, 0xa8,
    0x60, 0x10, 0xb1, 0x49, 0xe9, 0x01, 0x31, 0x16, 0x30, 0x00, 0x19, 0x5b, 0x00, 0x2d, 0x64, 0x05,
    0xa1, 0x66, 0x5f, 0xb4, 0x8a, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60,
    0x82,
];

fn png(root: &Path, name: &str) {
    let path = root.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, PNG).unwrap();
}

/// `kd <command> <config> --set …` in `dir`.
fn run(dir: &Path, command: &str, config: &Path, sets: &[&str]) -> std::process::Command {
    let mut args = vec![command, config.to_str().unwrap()];
    for set in sets {
        args.extend(["--set", set]);
    }
    kd(dir, &args)
}

#[test]
fn a_batch_larger_than_the_training_split_with_drop_last_is_refused_before_any_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "x.toml",
        &tiny_config(dir.path(), "nostep", "resnet8", 20, 2, ""),
    );
    let sets = ["data.batch_size=500", "data.drop_last=true"];
    for command in ["plan", "train"] {
        let stderr = failure(run(dir.path(), command, &config, &sets), 2);
        assert!(
            stderr.contains("data.batch_size")
                && stderr.contains(
                    "500 > 200 training images (data.train_per_class = 20) with data.drop_last \
                     = true: every epoch would take 0 steps"
                )
                && stderr.contains("--set data.batch_size=500"),
            "{command}: {stderr}"
        );
    }
    assert!(
        !run_dir(dir.path(), "nostep").exists(),
        "a refused run writes nothing"
    );
    // Without drop_last the 200 images make one (smaller) batch: the plan is fine.
    success(run(dir.path(), "plan", &config, &["data.batch_size=500"]));
}

#[test]
fn per_class_limits_of_zero_are_refused_together() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "x.toml",
        &tiny_config(dir.path(), "empty", "resnet8", 0, 1, ""),
    );
    for command in ["plan", "train"] {
        let stderr = failure(
            run(dir.path(), command, &config, &["data.test_per_class=0"]),
            2,
        );
        assert!(
            stderr.contains("data.train_per_class")
                && stderr.contains("is 0: no training image is kept")
                && stderr.contains("data.test_per_class")
                && stderr.contains("is 0: no test image is kept"),
            "{command}: {stderr}"
        );
    }
    assert!(!run_dir(dir.path(), "empty").exists());
}

/// A folder dataset: `ant`, `bee` and `cat` to train on, and the given test files; hidden
/// entries beside them.
fn folder_config(dir: &Path, test: &[&str]) -> std::path::PathBuf {
    let root = dir.join("images");
    for name in [
        "ant/0.png",
        "bee/0.png",
        "cat/0.png",
        ".ipynb_checkpoints/0.png",
    ] {
        png(&root, &format!("train/{name}"));
    }
    for name in test {
        png(&root, &format!("test/{name}"));
    }
    std::fs::write(root.join("train/.DS_Store"), b"junk").unwrap();
    let text = format!(
        "[run]\nname = \"folders\"\noutput_dir = \"{}\"\nepochs = 1\n[data]\nformat = \"folder\"\n\
         root = \"{}\"\ninput_size = 8\nbatch_size = 2\n[networks.student]\narch = \"resnet8\"\n",
        dir.join("runs").display(),
        root.display()
    );
    write(dir, "folders.toml", &text)
}

#[test]
fn a_test_class_folder_the_training_split_lacks_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = folder_config(dir.path(), &["ant/0.png", "dog/0.png"]);
    let dog = dir.path().join("images").join("test").join("dog");
    for command in ["plan", "train"] {
        let stderr = failure(run(dir.path(), command, &config, &[]), 2);
        assert!(
            stderr.contains("data.root")
                && stderr.contains(&format!(
                    "{}: class folder `dog` is not a class of the training split",
                    dog.display()
                ))
                && stderr.contains("(its classes: ant, bee, cat)"),
            "{command}: {stderr}"
        );
    }
    assert!(!run_dir(dir.path(), "folders").exists());
}

#[test]
fn a_test_split_lacking_a_class_keeps_the_training_class_list() {
    let dir = tempfile::tempdir().unwrap();
    let config = folder_config(dir.path(), &["ant/0.png", "cat/0.png", ".hidden/0.png"]);
    let out = success(run(dir.path(), "plan", &config, &[]));
    let text = String::from_utf8_lossy(&out.stdout);
    // Three classes (hidden folders are none), three training and two test images.
    assert!(
        text.contains("train 3 · test 2") && text.contains("· 3 classes"),
        "{text}"
    );
}

/// A stack of shipped methods over a student, a `peer` and a `teacher` whose checkpoint the
/// dry run may assume.
fn stacked(dir: &Path, stack: &str, methods: &str) -> std::path::PathBuf {
    let extra = format!(
        "[networks.peer]\narch = \"resnet8\"\n[networks.teacher]\narch = \"resnet8\"\n\
         checkpoint = \"{}\"\n{methods}",
        dir.join("teacher.kdc").display()
    );
    let text = format!(
        "stack = [{stack}]\n{}",
        tiny_config(dir, "stacked", "resnet8", 20, 2, &extra)
    );
    write(dir, "stacked.toml", &text)
}

fn plan_args(config: &Path) -> Vec<&str> {
    vec![
        "plan",
        config.to_str().unwrap(),
        "--allow-missing-checkpoints",
    ]
}

#[test]
fn a_teacher_kd_freezes_and_dml_trains_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let config = stacked(
        dir.path(),
        "\"kd\", \"dml\"",
        "[method.kd]\nkind = \"kd\"\n[method.dml]\nkind = \"dml\"\npeers = [\"student\", \"teacher\"]\n",
    );
    let stderr = failure(kd(dir.path(), &plan_args(&config)), 2);
    assert!(
        stderr.contains("method.kd.teacher")
            && stderr.contains(
                "asks for role `teacher` frozen, but `method.dml.peers` trains it in phase `main`"
            ),
        "{stderr}"
    );
    // `kd train` refuses it the same way, before writing anything.
    std::fs::write(dir.path().join("teacher.kdc"), b"").unwrap();
    let stderr = failure(kd(dir.path(), &["train", config.to_str().unwrap()]), 2);
    assert!(
        stderr.contains("`method.dml.peers` trains it in phase `main`"),
        "{stderr}"
    );
    assert!(!run_dir(dir.path(), "stacked").exists());
}

#[test]
fn kd_and_sokd_asking_two_batchnorm_modes_of_one_teacher_are_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    // SOKD's default runs the frozen teacher's BatchNorm in training mode; KD's is in evaluation.
    let config = stacked(
        dir.path(),
        "\"sokd\", \"kd\"",
        "[method.sokd]\nkind = \"sokd\"\n[method.kd]\nkind = \"kd\"\n",
    );
    let stderr = failure(kd(dir.path(), &plan_args(&config)), 2);
    assert!(
        stderr.contains("method.kd.teacher")
            && stderr.contains(
                "asks for role `teacher` with BatchNorm in evaluation mode, but \
                 `method.sokd.teacher` asks for it with BatchNorm in training mode"
            ),
        "{stderr}"
    );
    // The same two with one mode plan.
    let config = stacked(
        dir.path(),
        "\"sokd\", \"kd\"",
        "[method.sokd]\nkind = \"sokd\"\nteacher_bn = \"eval\"\n[method.kd]\nkind = \"kd\"\n",
    );
    success(kd(dir.path(), &plan_args(&config)));
}

#[test]
fn a_method_freezing_the_student_is_refused_naming_the_task_loss() {
    let dir = tempfile::tempdir().unwrap();
    let config = stacked(
        dir.path(),
        "\"kd\"",
        "[method.kd]\nkind = \"kd\"\nteacher = \"student\"\nstudent = \"peer\"\n",
    );
    let stderr = failure(kd(dir.path(), &plan_args(&config)), 2);
    assert!(
        stderr.contains("method.kd.teacher")
            && stderr.contains(
                "asks for role `student` frozen, but the task loss trains it in phase `main`"
            ),
        "{stderr}"
    );
}

#[test]
fn two_methods_training_one_peer_in_one_phase_plan_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let config = stacked(
        dir.path(),
        "\"dml\", \"ctsl\"",
        "[method.dml]\nkind = \"dml\"\npeers = [\"student\", \"peer\"]\n\
         [method.ctsl]\nkind = \"ctsl-mkt\"\npeers = [\"student\", \"peer\"]\npretrain_epochs = 1\n",
    );
    let out = success(kd(dir.path(), &plan_args(&config)));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "warning: role `peer` is trained in phase `main` by `method.dml.peers` and \
             `method.ctsl.peers`: their terms add up in one update of it"
        ),
        "{text}"
    );
    // The student is everyone's: no warning for it.
    assert!(!text.contains("role `student` is trained"), "{text}");
}

//! Reductions: each method with its distinctive part switched off trains exactly like a simpler
//! one, step for step.
//!
//! Both runs of a pair share the seed, the data, the batches and the initial weights; the test
//! compares the loss of every step and every tensor of the trained networks at the end. The
//! runs differ only in which plugin composes the loss (and so in the order of a few float
//! additions), hence the small tolerances. A plugin that wires a shared piece wrongly (a term
//! on the wrong logits, a missing detach, a role trained in the wrong phase, a schedule drawing
//! when it should not) fails here even when its own unit tests pass.

use std::path::{Path, PathBuf};

use kd_tests::{kd, metrics, role_tensors, run_dir, success, tiny_config, tiny_teacher, write};

/// Two training epochs of 7 steps each on 100 images (10 per class).
const EPOCHS: usize = 2;

/// Trains `stack` (a TOML array body) with `extra` tables, returns the run directory.
fn train(dir: &Path, name: &str, stack: &str, extra: &str) -> PathBuf {
    let text = format!(
        "stack = [{stack}]\n{}",
        tiny_config(dir, name, "resnet8", 10, EPOCHS, extra)
    );
    let config = write(dir, &format!("{name}.toml"), &text);
    success(kd(dir, &["train", config.to_str().unwrap()]));
    run_dir(dir, name)
}

/// A trained resnet8 checkpoint from `seed`, to start peers from.
fn peer_checkpoint(dir: &Path, name: &str, seed: u64) -> PathBuf {
    let text = tiny_config(dir, name, "resnet8", 10, 1, "");
    let config = write(dir, &format!("{name}.toml"), &text);
    let seed = format!("run.seed={seed}");
    success(kd(
        dir,
        &["train", config.to_str().unwrap(), "--set", &seed],
    ));
    run_dir(dir, name).join("checkpoints").join("last.kdc")
}

/// The total loss of every step, in order.
fn step_losses(run: &Path) -> Vec<f64> {
    metrics(run)
        .iter()
        .filter(|r| r["kind"] == "step")
        .map(|r| r["loss"].as_f64().unwrap())
        .collect()
}

/// Asserts two runs took the same steps and ended with the same weights for `roles`.
fn assert_same_training(a: &Path, b: &Path, roles: &[&str]) {
    let (la, lb) = (step_losses(a), step_losses(b));
    assert_eq!(la.len(), lb.len(), "step counts differ");
    assert_eq!(la.len(), 14, "every step logged");
    for (step, (x, y)) in la.iter().zip(&lb).enumerate() {
        assert!(
            (x - y).abs() <= 1e-4 * x.abs().max(1.0),
            "step {step}: loss {x} vs {y}\n{la:?}\n{lb:?}"
        );
    }
    for role in roles {
        let ta = role_tensors(&a.join("checkpoints/last.kdc"), role);
        let tb = role_tensors(&b.join("checkpoints/last.kdc"), role);
        assert_eq!(ta.len(), tb.len());
        let mut worst = (0.0f32, String::new());
        for ((name, _, va), (_, _, vb)) in ta.iter().zip(&tb) {
            for (p, q) in va.iter().zip(vb) {
                let d = (p - q).abs() / p.abs().max(1.0);
                if d > worst.0 {
                    worst = (d, name.clone());
                }
            }
        }
        assert!(
            worst.0 <= 1e-4,
            "role `{role}`: tensor `{}` differs by {}",
            worst.1,
            worst.0
        );
    }
    // The runs must not be trivially equal to their start: the losses moved.
    assert!(la.first() != la.last(), "training changed nothing: {la:?}");
}

fn teacher_table(checkpoint: &Path) -> String {
    format!(
        "[networks.teacher]\narch = \"resnet14\"\ncheckpoint = \"{}\"\n",
        checkpoint.display()
    )
}

/// KD with CE weight 1 and KL weight 1, T = 4.
fn plain_kd(dir: &Path, teacher: &Path) -> PathBuf {
    let extra = format!(
        "{}[method.kd]\nkind = \"kd\"\nweight = 1.0\ntemperature = 4.0\n",
        teacher_table(teacher)
    );
    train(dir, "kd", "\"kd\"", &extra)
}

#[test]
fn iakd_with_p0_zero_is_kd() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let teacher = tiny_teacher(dir, "teacher", "resnet14");
    let kd_run = plain_kd(dir, &teacher);
    // The hybrid's CE replaces the plain one; with no swap the hybrid is the student.
    for bn in ["running", "batch"] {
        let extra = format!(
            "[loss]\nce_weight = 0.0\n{}[method.iakd]\nkind = \"iakd\"\np0 = 0.0\nkd_weight = 1.0\n\
             ce_weight = 1.0\ntemperature = 4.0\nswap_bn = \"{bn}\"\n",
            teacher_table(&teacher)
        );
        let iakd = train(dir, &format!("iakd-{bn}"), "\"iakd\"", &extra);
        assert_same_training(&iakd, &kd_run, &["student", "teacher"]);
    }
}

#[test]
fn ffkd_without_feedback_or_feature_terms_is_kd() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let teacher = tiny_teacher(dir, "teacher", "resnet14");
    let kd_run = plain_kd(dir, &teacher);
    // Feedback starts after the last epoch; the CKA-weighted feature term has weight 0.
    let extra = format!(
        "{}[method.ffkd]\nkind = \"ffkd\"\nbeta_forward = 1.0\ngamma_forward = 0.0\n\
         temperature = 4.0\nfeedback_from = {EPOCHS}\n",
        teacher_table(&teacher)
    );
    let ffkd = train(dir, "ffkd", "\"ffkd\"", &extra);
    assert_same_training(&ffkd, &kd_run, &["student", "teacher"]);
}

/// Two trained resnet8 checkpoints of different seeds, to start two peers from.
fn peer_checkpoints(dir: &Path) -> (PathBuf, PathBuf) {
    (
        peer_checkpoint(dir, "peer-a", 7),
        peer_checkpoint(dir, "peer-b", 8),
    )
}

/// Continues `[networks.student]` (which `tiny_config` opens last) with a checkpoint, then adds
/// a resnet8 `peer` from another.
fn peers_table((a, b): &(PathBuf, PathBuf)) -> String {
    format!(
        "checkpoint = \"{}\"\n[networks.peer]\narch = \"resnet8\"\ncheckpoint = \"{}\"\n",
        a.display(),
        b.display()
    )
}

#[test]
fn ctsl_mkt_without_self_and_relation_terms_is_dml() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let peers = peers_table(&peer_checkpoints(dir));
    let dml = train(
        dir,
        "dml",
        "\"dml\"",
        &format!("{peers}[method.dml]\nkind = \"dml\"\npeers = [\"student\", \"peer\"]\n"),
    );
    let extra = format!(
        "{peers}[method.ctsl]\nkind = \"ctsl-mkt\"\npeers = [\"student\", \"peer\"]\n\
         pretrain_epochs = 0\nbeta = 1.0\nbeta2 = 1.0\ngamma = 0.0\ndistance_weight = 0.0\n\
         angle_weight = 0.0\n"
    );
    let ctsl = train(dir, "ctsl", "\"ctsl\"", &extra);
    assert_same_training(&ctsl, &dml, &["student", "peer"]);
}

#[test]
fn dml_with_its_terms_at_zero_is_independent_training() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let checkpoints = peer_checkpoints(dir);
    let peers = peers_table(&checkpoints);
    let dml = train(
        dir,
        "dml",
        "\"dml\"",
        &format!(
            "{peers}[method.dml]\nkind = \"dml\"\nweight = 0.0\npeers = [\"student\", \"peer\"]\n"
        ),
    );
    // Each peer alone, from the same checkpoint, as the run's student.
    for (role, name, checkpoint) in [
        ("student", "alone-student", &checkpoints.0),
        ("peer", "alone-peer", &checkpoints.1),
    ] {
        let extra = format!("checkpoint = \"{}\"\n", checkpoint.display());
        let alone = train(dir, name, "", &extra);
        let a = role_tensors(&alone.join("checkpoints/last.kdc"), "student");
        let b = role_tensors(&dml.join("checkpoints/last.kdc"), role);
        assert_eq!(a, b, "{role} trained as if alone");
    }
}

#[test]
fn sokd_without_the_students_kl_is_the_student_alone() {
    // The student learns from the branch only through λ_kd; with it at 0, nothing the branch or
    // the teacher trunk does may reach the student, whatever the branch terms.
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let teacher = tiny_teacher(dir, "teacher", "resnet14");
    let alone = train(dir, "alone", "", "");
    let extra = format!(
        "{}[method.sokd]\nkind = \"sokd\"\nkd = 0.0\n",
        teacher_table(&teacher)
    );
    let sokd = train(dir, "sokd", "\"sokd\"", &extra);
    let a = role_tensors(&alone.join("checkpoints/last.kdc"), "student");
    let b = role_tensors(&sokd.join("checkpoints/last.kdc"), "student");
    assert_eq!(a, b, "the student trained as if alone");
}

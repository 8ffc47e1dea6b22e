//! Per-architecture learning rates through the binary: `optim.lr_for_arch` gives a trained role
//! of a listed architecture its rate, `networks.<role>.lr` still wins, other roles keep
//! `optim.lr`, and `kd plan` prints each trained role's rate with the key that decided it. The
//! table's names must be zoo architectures and its values positive numbers, each refused at its
//! key with exit status 2. The shipped rule (`configs/recipes/repdistiller-lr.toml`) is what
//! the configs include.

use std::path::Path;

use kd_tests::{failure, kd, repo_root, success, tiny_config, write};

/// A DML run of a MobileNetV2 student and a resnet20 peer that includes the shipped rule.
fn dml_config(dir: &Path) -> std::path::PathBuf {
    let recipe = repo_root().join("configs/recipes/repdistiller-lr.toml");
    let dml = repo_root().join("configs/methods/dml.toml");
    let text = tiny_config(
        dir,
        "lr",
        "MobileNetV2",
        2,
        1,
        "[networks.peer]\narch = \"resnet20\"\n",
    );
    let text = format!(
        "include = [\"{}\", \"{}\"]\n{text}",
        recipe.display(),
        dml.display()
    );
    write(dir, "lr.toml", &text)
}

/// `kd plan CONFIG --set …`'s line for `role`.
fn role_line(dir: &Path, config: &Path, sets: &[&str], role: &str) -> String {
    let mut args = vec!["plan", config.to_str().unwrap()];
    for set in sets {
        args.extend(["--set", set]);
    }
    let out = success(kd(dir, &args));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.trim_start().starts_with(&format!("{role} ")))
        .unwrap_or_else(|| panic!("no line for {role}:\n{text}"))
        .to_string()
}

#[test]
fn a_listed_architecture_gets_its_rate_and_the_others_optim_lr() {
    let dir = tempfile::tempdir().unwrap();
    let config = dml_config(dir.path());
    let student = role_line(dir.path(), &config, &[], "student");
    assert!(
        student.contains("MobileNetV2")
            && student.contains("lr 0.01 (optim.lr_for_arch.MobileNetV2)"),
        "{student}"
    );
    let peer = role_line(dir.path(), &config, &[], "peer");
    assert!(
        peer.contains("resnet20") && peer.contains("lr 0.05 (optim.lr)"),
        "{peer}"
    );
    // The role's own key wins over the table.
    let student = role_line(dir.path(), &config, &["networks.student.lr=0.2"], "student");
    assert!(
        student.contains("lr 0.2 (networks.student.lr)"),
        "{student}"
    );
    // `optim.lr` moves the unlisted peer only.
    let sets = ["optim.lr=0.1"];
    let peer = role_line(dir.path(), &config, &sets, "peer");
    assert!(peer.contains("lr 0.1 (optim.lr)"), "{peer}");
    let student = role_line(dir.path(), &config, &sets, "student");
    assert!(student.contains("lr 0.01 ("), "{student}");
}

#[test]
fn an_unknown_architecture_or_a_rate_outside_its_domain_is_refused_at_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dml_config(dir.path());
    let path = config.to_str().unwrap();
    let stderr = failure(
        kd(
            dir.path(),
            &[
                "plan",
                path,
                "--set",
                "optim.lr_for_arch.MobileNetV3=0.01",
                "--set",
                "optim.lr_for_arch.ShuffleV1=0",
                "--set",
                "optim.lr_for_arch.ShuffleV2=nan",
                "--set",
                "optim.lr_for_arch.mobile_half=0.02",
                "--set",
                "optim.lr_for_arch.mobilenet=0.01",
            ],
        ),
        2,
    );
    for expected in [
        "`optim.lr_for_arch.MobileNetV3`: unknown architecture `MobileNetV3` (did you mean \
         `MobileNetV2`?); `kd models` lists: resnet8,",
        "`optim.lr_for_arch.ShuffleV1`: must be a positive number",
        // A prefix of a zoo name, in another case, is suggested as well as a typo.
        "`optim.lr_for_arch.mobilenet`: unknown architecture `mobilenet` (did you mean \
         `MobileNetV2`?)",
        "`optim.lr_for_arch.ShuffleV2`: must be a positive number",
        "`optim.lr_for_arch.mobile_half`: names MobileNetV2, as optim.lr_for_arch.MobileNetV2 \
         does; keep one of them",
    ] {
        assert!(stderr.contains(expected), "{expected}\n{stderr}");
    }
}

#[test]
fn the_shipped_rule_is_repdistillers_and_configs_include_it_by_relative_path() {
    let recipe = repo_root().join("configs/recipes/repdistiller-lr.toml");
    let table: toml::Table = std::fs::read_to_string(&recipe).unwrap().parse().unwrap();
    let expected: toml::Table = "[optim.lr_for_arch]\nMobileNetV2 = 0.01\nShuffleV1 = 0.01\n\
                                 ShuffleV2 = 0.01\n"
        .parse()
        .unwrap();
    assert_eq!(table, expected, "the file holds the rule and nothing else");
    // The CIFAR-100 base config includes it from configs/experiments/cifar100/ as
    // `../../recipes/repdistiller-lr.toml`: every key resolves, its source the recipe file.
    let out = success(kd(
        &repo_root(),
        &[
            "print-config",
            "configs/experiments/cifar100/repdistiller.toml",
        ],
    ));
    let text = String::from_utf8_lossy(&out.stdout);
    for arch in ["MobileNetV2", "ShuffleV1", "ShuffleV2"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("optim.lr_for_arch.{arch} = 0.01")))
            .unwrap_or_else(|| panic!("{arch}:\n{text}"));
        assert!(line.ends_with("recipes/repdistiller-lr.toml"), "{line}");
    }
}

/// A run of `stack` on a resnet8 student, with `extra` after the student's table.
fn stack_config(dir: &Path, stack: &str, extra: &str) -> std::path::PathBuf {
    let text = tiny_config(dir, "lr", "resnet8", 2, 1, extra);
    write(dir, "lr.toml", &format!("stack = [{stack}]\n{text}"))
}

#[test]
fn a_methods_suggested_rate_is_named_by_the_key_that_sets_it() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[networks.teacher]\narch = \"resnet20\"\ncheckpoint = \"{}\"\n\
         [method.ffkd]\nkind = \"ffkd\"\nteacher_lr = 0.003\n",
        dir.path().join("missing.kdc").display()
    );
    let config = stack_config(dir.path(), "\"ffkd\"", &extra);
    let allow = ["--allow-missing-checkpoints"];
    let mut args = vec!["plan", config.to_str().unwrap()];
    args.extend(allow);
    let out = success(kd(dir.path(), &args));
    let text = String::from_utf8_lossy(&out.stdout);
    let teacher = text
        .lines()
        .find(|l| l.trim_start().starts_with("teacher "))
        .unwrap_or_else(|| panic!("{text}"));
    // `method.ffkd.teacher` binds the role; `teacher_lr` sets the rate.
    assert!(
        teacher.contains("trained in `ffkd.feedback`, lr 0.003 (method.ffkd.teacher_lr)"),
        "{teacher}"
    );
}

#[test]
fn a_rate_for_a_frozen_role_is_refused_at_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[networks.teacher]\narch = \"resnet20\"\ncheckpoint = \"{}\"\n[method.kd]\nkind = \"kd\"\n",
        dir.path().join("missing.kdc").display()
    );
    let config = stack_config(dir.path(), "\"kd\"", &extra);
    let path = config.to_str().unwrap();
    let base = ["plan", path, "--allow-missing-checkpoints"];
    success(kd(dir.path(), &base));
    let mut args = base.to_vec();
    args.extend(["--set", "networks.teacher.lr=0.3"]);
    let stderr = failure(kd(dir.path(), &args), 2);
    assert!(
        stderr.contains(
            "`networks.teacher.lr`: is 0.3, but role `teacher` is not trained in this run \
             (frozen; used by kd): the rate would have no effect"
        ),
        "{stderr}"
    );
}

/// `networks.<role>.ce_weight` on a role the main phase does not train has no effect either,
/// and is refused the same way.
#[test]
fn a_cross_entropy_weight_on_a_frozen_role_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = repo_root().join("configs/experiments/fashion/quickstart/kd.toml");
    let args = [
        "plan",
        config.to_str().unwrap(),
        "--allow-missing-checkpoints",
        "--set",
        "networks.teacher.ce_weight=0.5",
    ];
    let stderr = failure(kd(dir.path(), &args), 2);
    assert!(
        stderr.contains(
            "`networks.teacher.ce_weight`: is 0.5, but role `teacher` is not trained in the main \
             phase (frozen; used by kd): its cross-entropy is never added"
        ),
        "{stderr}"
    );
}

#[test]
fn every_learning_rate_key_refuses_zero_alike() {
    let dir = tempfile::tempdir().unwrap();
    let config = dml_config(dir.path());
    let path = config.to_str().unwrap();
    let sets = [
        "optim.lr=0",
        "networks.student.lr=0",
        "networks.peer.lr=-0.0",
        "optim.lr_for_arch.ShuffleV1=0",
    ];
    let mut args = vec!["plan", path];
    for set in &sets {
        args.extend(["--set", set]);
    }
    let stderr = failure(kd(dir.path(), &args), 2);
    for key in [
        "optim.lr",
        "networks.student.lr",
        "networks.peer.lr",
        "optim.lr_for_arch.ShuffleV1",
    ] {
        let expected = format!("`{key}`: must be a positive number");
        assert!(stderr.contains(&expected), "{expected}\n{stderr}");
    }
}

/// The methods' own learning-rate keys follow the same rule as `optim.lr`: FFKD's teacher rate
/// and SOKD's branch rate of 0 are refused at their keys.
#[test]
fn method_learning_rates_refuse_zero_alike() {
    let dir = tempfile::tempdir().unwrap();
    let quickstart = repo_root().join("configs/experiments/fashion/quickstart");
    for (file, set, key) in [
        (
            "ffkd.toml",
            "method.ffkd.teacher_lr=0",
            "method.ffkd.teacher_lr",
        ),
        (
            "sokd.toml",
            "method.sokd.branch_lr=0",
            "method.sokd.branch_lr",
        ),
    ] {
        let config = quickstart.join(file);
        let args = ["plan", config.to_str().unwrap(), "--set", set];
        let stderr = failure(kd(dir.path(), &args), 2);
        let expected = format!("`{key}`: must be a positive number");
        assert!(stderr.contains(&expected), "{file}: {expected}\n{stderr}");
    }
}

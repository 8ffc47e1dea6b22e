//! The plan: every user error it must catch before a tensor exists, each naming its key, all
//! reported together; and the registry's own errors. A test-only method kind, `probe`, declares
//! whatever needs its table asks for, so every rule of role resolution is exercised through the
//! public plugin API (this test binary links no other plugin).
// `Jail::expect_with` closures return figment's (large) error type; that is its API.
#![allow(clippy::result_large_err)]

use figment::Jail;
use kd_core::config::{self, ConfigError, ConfigIssue};
use kd_core::method::{
    BnMode, Method, MethodArgs, MethodError, MethodRegistration, Needs, PhaseSpec, Registry,
    RegistryError, RoleNeed, StepContext, SuggestedLr, TapNeed, Term,
};
use kd_core::runtime::{self, RunPlan};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ProbeRole {
    role: String,
    trained_in: Option<String>,
    pretrained: bool,
    bn_train: bool,
    lr: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Probe {
    roles: Vec<ProbeRole>,
    taps: Vec<[String; 2]>,
    phases: Vec<String>,
}

struct ProbeMethod {
    probe: Probe,
    key: String,
}

impl Method for ProbeMethod {
    fn needs(&self) -> Needs {
        Needs {
            roles: self
                .probe
                .roles
                .iter()
                .map(|r| RoleNeed {
                    role: r.role.clone(),
                    key: format!("{}.roles", self.key),
                    trained_in: r.trained_in.clone(),
                    pretrained: r.pretrained,
                    bn: if r.bn_train {
                        BnMode::Train
                    } else {
                        BnMode::Eval
                    },
                    // The rate's own key, as FFKD's `teacher_lr`, not the role's.
                    lr: r.lr.map(|value| SuggestedLr {
                        value,
                        key: format!("{}.lr", self.key),
                    }),
                })
                .collect(),
            taps: self
                .probe
                .taps
                .iter()
                .map(|[role, tap]| TapNeed {
                    role: role.clone(),
                    tap: tap.clone(),
                    key: format!("{}.taps", self.key),
                })
                .collect(),
            phases: self
                .probe
                .phases
                .iter()
                .map(|name| PhaseSpec {
                    name: name.clone(),
                    own_batch: false,
                    from_epoch: 0,
                })
                .collect(),
            ..Needs::default()
        }
    }

    fn terms(&mut self, _ctx: &mut StepContext<'_>) -> Result<Vec<Term>, MethodError> {
        Ok(Vec::new())
    }
}

fn build_probe(args: &MethodArgs<'_>) -> Result<Box<dyn Method>, ConfigError> {
    Ok(Box::new(ProbeMethod {
        probe: args.parse()?,
        key: format!("method.{}", args.instance),
    }))
}

kd_core::register_method! {
    kind: "probe",
    summary: "declares whatever its table says (tests only)",
    paper: "none",
    build: build_probe,
    defaults: || serde_json::json!({}),
}

const HEADER: &str = r#"
[run]
epochs = 1
[networks.student]
arch = "resnet8"
"#;

fn data_root() -> String {
    format!(
        "{}/../../data/fashion-mnist-subset",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn plan(jail: &mut Jail, body: &str) -> Result<RunPlan, ConfigError> {
    // The body's top-level keys (`stack`) must precede any table header.
    let text = format!("{body}\n{HEADER}\n[data]\nroot = \"{}\"\n", data_root());
    jail.create_file("x.toml", &text).unwrap();
    let loaded = config::load(Some("x.toml".as_ref()), &[])?;
    runtime::plan(&loaded, Registry::global().expect("registry"))
}

fn issues(jail: &mut Jail, body: &str) -> Vec<ConfigIssue> {
    match plan(jail, body) {
        Ok(_) => panic!("expected plan errors for:\n{body}"),
        Err(e) => e.issues,
    }
}

fn has(issues: &[ConfigIssue], key: &str, text: &str) -> bool {
    issues
        .iter()
        .any(|i| i.key.as_deref() == Some(key) && i.message.contains(text))
}

#[test]
fn a_valid_plan_resolves_roles_phases_and_columns() {
    Jail::expect_with(|jail| {
        let body = r#"
stack = ["p"]
[networks.peer]
arch = "resnet14"
[networks.spare]
arch = "resnet8"
[method.p]
kind = "probe"
roles = [{ role = "peer", trained_in = "main" }]
taps = [["peer", "stage3"]]
phases = ["p.extra"]
[method.unused]
kind = "probe"
"#;
        let plan = plan(jail, body).unwrap();
        let roles: Vec<&str> = plan.roles.iter().map(|r| r.network.role.as_str()).collect();
        assert_eq!(
            roles,
            ["student", "peer"],
            "the unused `spare` is not built"
        );
        assert!(plan.warnings.iter().any(|w| w.contains("networks.spare")));
        assert!(plan.warnings.iter().any(|w| w.contains("method.unused")));
        let phases: Vec<&str> = plan.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(phases, ["main", "p.extra"]);
        assert_eq!(plan.term_columns(), ["ce/student", "ce/peer"]);
        assert_eq!(plan.data.train.count, 10_000);
        assert_eq!((plan.data.train.channels, plan.data.train.height), (1, 28));
        let text = plan.describe();
        assert!(
            text.contains("peer") && text.contains("resnet14") && text.contains("stage3 64x8x8"),
            "{text}"
        );
        Ok(())
    });
}

#[test]
fn stack_and_method_table_errors_name_their_keys() {
    Jail::expect_with(|jail| {
        let found = issues(
            jail,
            "stack = [\"a\", \"a\", \"b\", \"c\"]\n[method.a]\nkind = \"probe\"\n[method.c]\nweight = 1\n",
        );
        assert!(has(&found, "stack", "appears twice"), "{found:?}");
        assert!(
            has(&found, "stack", "`b` has no [method.b] table"),
            "{found:?}"
        );
        assert!(has(&found, "method.c.kind", "missing"), "{found:?}");
        let found = issues(
            jail,
            "stack = [\"a\"]\n[method.a]\nkind = \"probe\"\nweight = \"heavy\"\n",
        );
        assert!(
            has(&found, "method.a.weight", "must be a non-negative number"),
            "{found:?}"
        );
        let found = issues(
            jail,
            "stack = [\"a\"]\n[method.a]\nkind = \"probe\"\nrolez = []\n",
        );
        assert!(has(&found, "method.a.rolez", "unknown field"), "{found:?}");
        assert_eq!(found[0].source.as_deref(), Some("file x.toml"));
        Ok(())
    });
}

#[test]
fn role_errors_name_the_key_that_asked() {
    Jail::expect_with(|jail| {
        // A role the config does not define.
        let found = issues(
            jail,
            "stack = [\"a\"]\n[method.a]\nkind = \"probe\"\nroles = [{ role = \"ghost\" }]\n",
        );
        assert!(
            has(&found, "method.a.roles", "no [networks.ghost]"),
            "{found:?}"
        );
        // Trained in two phases by two instances.
        let body = r#"
stack = ["a", "b"]
[networks.t]
arch = "resnet8"
[method.a]
kind = "probe"
roles = [{ role = "t", trained_in = "main" }]
[method.b]
kind = "probe"
roles = [{ role = "t", trained_in = "b.phase" }]
phases = ["b.phase"]
"#;
        let found = issues(jail, body);
        assert!(
            has(&found, "method.b.roles", "already trained in `main`"),
            "{found:?}"
        );
        // Frozen with training-mode BatchNorm, yet trained.
        let body = r#"
stack = ["a", "b"]
[networks.t]
arch = "resnet8"
[method.a]
kind = "probe"
roles = [{ role = "t", trained_in = "main" }]
[method.b]
kind = "probe"
roles = [{ role = "t", bn_train = true }]
"#;
        let found = issues(jail, body);
        assert!(
            has(&found, "method.b.roles", "BatchNorm in training mode"),
            "{found:?}"
        );
        // A pretrained role without a checkpoint.
        let body = "stack = [\"a\"]\n[networks.t]\narch = \"resnet8\"\n[method.a]\nkind = \"probe\"\nroles = [{ role = \"t\", pretrained = true }]\n";
        let found = issues(jail, body);
        assert!(
            has(
                &found,
                "networks.t.checkpoint",
                "must start from a checkpoint"
            ),
            "{found:?}"
        );
        Ok(())
    });
}

#[test]
fn tap_and_phase_errors_name_their_keys() {
    Jail::expect_with(|jail| {
        let body = r#"
stack = ["a", "b"]
[method.a]
kind = "probe"
taps = [["student", "stage4"]]
phases = ["x"]
[method.b]
kind = "probe"
phases = ["x"]
"#;
        let found = issues(jail, body);
        assert!(
            has(&found, "method.a.taps", "has no tap `stage4`"),
            "{found:?}"
        );
        assert!(
            has(&found, "method.b.kind", "phase `x` is declared twice"),
            "{found:?}"
        );
        Ok(())
    });
}

#[test]
fn data_and_run_errors_are_all_reported_together() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "x.toml",
            &format!(
                "{HEADER}\n[data]\nroot = \"{}\"\nmean = [0.1, 0.2]\ninput_size = 24\n",
                data_root()
            ),
        )?;
        let loaded = config::load(
            Some("x.toml".as_ref()),
            &["run.backend=\"cuda\"".into(), "run.epochs=0".into()],
        )
        .unwrap();
        let found = runtime::plan(&loaded, Registry::global().unwrap())
            .err()
            .unwrap()
            .issues;
        assert!(
            has(
                &found,
                "data.mean",
                "2 values but the images have 1 channel"
            ),
            "{found:?}"
        );
        assert!(
            has(&found, "data.input_size", "smaller than the 28x28 images"),
            "{found:?}"
        );
        assert!(has(&found, "run.epochs", "at least 1"), "{found:?}");
        assert!(has(&found, "run.backend", "cuda"), "{found:?}");
        let backend = found
            .iter()
            .find(|i| i.key.as_deref() == Some("run.backend"))
            .unwrap();
        assert_eq!(
            backend.source.as_deref(),
            Some("--set run.backend=\"cuda\"")
        );
        // A missing dataset root.
        jail.create_file("y.toml", &format!("{HEADER}\n[data]\nroot = \"nowhere\"\n"))?;
        let loaded = config::load(Some("y.toml".as_ref()), &[]).unwrap();
        let found = runtime::plan(&loaded, Registry::global().unwrap())
            .err()
            .unwrap()
            .issues;
        assert!(has(&found, "data.root", "nowhere"), "{found:?}");
        Ok(())
    });
}

#[test]
fn includes_merge_in_order_and_their_errors_name_the_file() {
    Jail::expect_with(|jail| {
        jail.create_dir("presets")?;
        jail.create_file("presets/a.toml", "[optim]\nlr = 0.3\nmomentum = 0.5\n")?;
        jail.create_file(
            "main.toml",
            "include = [\"presets/a.toml\"]\n[optim]\nlr = 0.1\n",
        )?;
        let loaded = config::load(Some("main.toml".as_ref()), &[]).unwrap();
        assert_eq!(
            (loaded.config.optim.lr, loaded.config.optim.momentum),
            (0.1, 0.5)
        );
        jail.create_file("bad.toml", "include = [\"presets/none.toml\"]\n")?;
        let err = config::load(Some("bad.toml".as_ref()), &[]).err().unwrap();
        assert_eq!(err.issues[0].key.as_deref(), Some("include"));
        assert!(
            err.issues[0].message.contains("none.toml")
                && err.issues[0].source.as_deref() == Some("file bad.toml")
        );
        jail.create_file("loop.toml", "include = [\"loop.toml\"]\n")?;
        let err = config::load(Some("loop.toml".as_ref()), &[]).err().unwrap();
        assert!(err.issues[0].message.contains("cycle"), "{err}");
        Ok(())
    });
}

fn no_build(_: &MethodArgs<'_>) -> Result<Box<dyn Method>, ConfigError> {
    Err(ConfigError::one(None, None, "not buildable"))
}

static FIRST: MethodRegistration = MethodRegistration {
    kind: "twin",
    summary: "",
    paper: "",
    crate_name: "kd-method-first",
    build: no_build,
    defaults: || serde_json::json!({}),
};

static SECOND: MethodRegistration = MethodRegistration {
    kind: "twin",
    summary: "",
    paper: "",
    crate_name: "kd-method-second",
    build: no_build,
    defaults: || serde_json::json!({}),
};

#[test]
fn a_duplicate_kind_names_both_crates() {
    let err = Registry::from_entries([&SECOND, &FIRST]).unwrap_err();
    assert_eq!(
        err,
        RegistryError::Duplicate {
            kind: "twin".into(),
            first: "kd-method-first".into(),
            second: "kd-method-second".into()
        }
    );
    assert!(
        err.to_string().contains("kd-method-first") && err.to_string().contains("kd-method-second")
    );
}

#[test]
fn an_unknown_kind_lists_the_known_ones() {
    let registry = Registry::from_entries([&FIRST]).unwrap();
    assert_eq!(
        registry.unknown_kind_message("twn"),
        "unknown method kind `twn` (did you mean `twin`?); known kinds: twin"
    );
    assert_eq!(
        registry.unknown_kind_message("zzzzzz"),
        "unknown method kind `zzzzzz`; known kinds: twin"
    );
    // The global registry of this test binary holds the probe only.
    assert_eq!(Registry::global().unwrap().kinds(), ["probe"]);
}

/// The plan problems of a whole config text (`ROOT` stands for the shipped subset).
fn domain_issues(jail: &mut Jail, text: &str) -> Vec<ConfigIssue> {
    jail.create_file("d.toml", &text.replace("ROOT", &data_root()))
        .unwrap();
    let loaded = config::load(Some("d.toml".as_ref()), &[]).unwrap();
    match runtime::plan(&loaded, Registry::global().expect("registry")) {
        Ok(_) => panic!("expected plan errors for:\n{text}"),
        Err(e) => e.issues,
    }
}

#[test]
fn every_numeric_key_outside_its_domain_is_reported_once_at_its_key() {
    Jail::expect_with(|jail| {
        let text = r#"
stack = ["a"]
[run]
epochs = 3
[networks.student]
arch = "resnet8"
lr = -0.1
ce_weight = nan
[data]
root = "ROOT"
batch_size = 0
eval_batch_size = 0
mean = [nan]
std = [inf]
input_size = 32
[data.augment]
crop_padding = 32
[optim]
lr = -1
momentum = 1.5
weight_decay = -1e-4
[schedule]
milestones = [5, 3]
gamma = 0
min_factor = nan
warmup_epochs = 3
restarts = [3]
[loss]
ce_weight = nan
[method.a]
kind = "probe"
weight = -1
"#;
        let found = domain_issues(jail, text);
        for (key, message) in [
            ("networks.student.lr", "must be a positive number"),
            (
                "networks.student.ce_weight",
                "must be a non-negative number",
            ),
            ("data.batch_size", "must be at least 1"),
            ("data.eval_batch_size", "must be at least 1"),
            ("data.mean[0]", "NaN is not a finite number"),
            ("data.std[0]", "inf is not a finite number"),
            (
                "data.augment.crop_padding",
                "must be smaller than data.input_size (32)",
            ),
            ("optim.lr", "must be a positive number"),
            ("optim.momentum", "must be between 0 and 1"),
            ("optim.weight_decay", "must be a non-negative number"),
            ("schedule.milestones", "must be increasing epochs after 0"),
            ("schedule.gamma", "must be a positive number"),
            ("schedule.min_factor", "must be between 0 and 1"),
            (
                "schedule.warmup_epochs",
                "must be fewer than run.epochs (3): the rate would never reach its base value",
            ),
            (
                "schedule.restarts",
                "must be increasing epochs strictly between 0 and run.epochs (3)",
            ),
            ("loss.ce_weight", "must be a non-negative number"),
            ("method.a.weight", "must be a non-negative number"),
        ] {
            let at_key: Vec<&ConfigIssue> = found
                .iter()
                .filter(|i| i.key.as_deref() == Some(key))
                .collect();
            assert_eq!(at_key.len(), 1, "one issue at {key}: {found:?}");
            assert!(at_key[0].message.contains(message), "{key}: {found:?}");
            assert_eq!(at_key[0].source.as_deref(), Some("file d.toml"), "{key}");
        }
        Ok(())
    });
}

#[test]
fn schedule_epochs_are_checked_against_the_run_and_its_restarts() {
    Jail::expect_with(|jail| {
        let head =
            "[run]\nepochs = 4\n[networks.student]\narch = \"resnet8\"\n[data]\nroot = \"ROOT\"\n";
        // In its domain: a warm-up shorter than the run, milestones increasing.
        let ok = format!("{head}[schedule]\nmilestones = [1, 2]\nwarmup_epochs = 3\n");
        jail.create_file("ok.toml", &ok.replace("ROOT", &data_root()))?;
        let loaded = config::load(Some("ok.toml".as_ref()), &[]).unwrap();
        runtime::plan(&loaded, Registry::global().unwrap()).unwrap();
        // A warm-up as long as the first segment, a milestone at 0, a repeated milestone.
        let text =
            format!("{head}[schedule]\nmilestones = [0, 2]\nwarmup_epochs = 2\nrestarts = [2]\n");
        let found = domain_issues(jail, &text);
        assert!(
            has(
                &found,
                "schedule.warmup_epochs",
                "must be fewer than the first restart (2)"
            ),
            "{found:?}"
        );
        assert!(has(&found, "schedule.milestones", "after 0"), "{found:?}");
        assert_eq!(found.len(), 2, "{found:?}");
        let text = format!("{head}[schedule]\nmilestones = [2, 2]\n");
        let found = domain_issues(jail, &text);
        assert!(
            has(&found, "schedule.milestones", "increasing"),
            "{found:?}"
        );
        Ok(())
    });
}

#[test]
fn a_method_kind_that_is_not_a_string_says_so_and_lists_the_kinds() {
    Jail::expect_with(|jail| {
        let found = issues(
            jail,
            "stack = [\"a\", \"b\"]\n[method.a]\nkind = 3\n[method.b]\nweight = 1\n",
        );
        assert!(
            has(
                &found,
                "method.a.kind",
                "must be a string naming a method kind, not `3`; known kinds: probe"
            ),
            "{found:?}"
        );
        assert!(
            has(
                &found,
                "method.b.kind",
                "missing: every method instance names its kind; known kinds: probe"
            ),
            "{found:?}"
        );
        // A bad weight does not hide the problems of the rest of the table.
        let found = issues(
            jail,
            "stack = [\"a\"]\n[method.a]\nkind = \"probe\"\nweight = -2\nrolez = []\n",
        );
        assert!(has(&found, "method.a.weight", "non-negative"), "{found:?}");
        assert!(has(&found, "method.a.rolez", "unknown field"), "{found:?}");
        Ok(())
    });
}

/// A plan from a whole config text (top-level keys first), with the shipped subset as data.
fn plan_text(jail: &mut Jail, text: &str) -> Result<RunPlan, ConfigError> {
    let text = text.replace("ROOT", &data_root());
    jail.create_file("x.toml", &text).unwrap();
    let loaded = config::load(Some("x.toml".as_ref()), &[])?;
    runtime::plan(&loaded, Registry::global().expect("registry"))
}

#[test]
fn a_role_frozen_by_one_instance_and_trained_by_another_names_both() {
    Jail::expect_with(|jail| {
        let body = r#"
stack = ["reader", "trainer"]
[networks.t]
arch = "resnet8"
[method.reader]
kind = "probe"
roles = [{ role = "t" }]
[method.trainer]
kind = "probe"
roles = [{ role = "t", trained_in = "main" }]
"#;
        let found = issues(jail, body);
        assert!(
            has(
                &found,
                "method.reader.roles",
                "asks for role `t` frozen, but `method.trainer.roles` trains it in phase `main`"
            ),
            "{found:?}"
        );
        assert_eq!(found.len(), 1, "{found:?}");
        // The student is always trained by the task loss: a method cannot freeze it.
        let body =
            "stack = [\"a\"]\n[method.a]\nkind = \"probe\"\nroles = [{ role = \"student\" }]\n";
        let found = issues(jail, body);
        assert!(
            has(
                &found,
                "method.a.roles",
                "asks for role `student` frozen, but the task loss trains it in phase `main`"
            ),
            "{found:?}"
        );
        // Trained in another phase than the task loss's.
        let body = "stack = [\"a\"]\n[method.a]\nkind = \"probe\"\nroles = [{ role = \"student\", trained_in = \"a.x\" }]\nphases = [\"a.x\"]\n";
        let found = issues(jail, body);
        assert!(
            has(
                &found,
                "method.a.roles",
                "trains role `student` in phase `a.x`, but it is already trained in `main` by \
                 the task loss"
            ),
            "{found:?}"
        );
        Ok(())
    });
}

#[test]
fn two_batchnorm_modes_or_learning_rates_for_one_role_name_both() {
    Jail::expect_with(|jail| {
        let body = r#"
stack = ["a", "b"]
[networks.t]
arch = "resnet8"
[method.a]
kind = "probe"
roles = [{ role = "t" }]
[method.b]
kind = "probe"
roles = [{ role = "t", bn_train = true }]
"#;
        let found = issues(jail, body);
        assert!(
            has(
                &found,
                "method.b.roles",
                "asks for role `t` with BatchNorm in training mode, but `method.a.roles` asks \
                 for it with BatchNorm in evaluation mode"
            ),
            "{found:?}"
        );
        let body = r#"
stack = ["a", "b"]
[networks.t]
arch = "resnet8"
[method.a]
kind = "probe"
roles = [{ role = "t", trained_in = "main", lr = 0.1 }]
[method.b]
kind = "probe"
roles = [{ role = "t", trained_in = "main", lr = 0.05 }]
"#;
        let found = issues(jail, body);
        assert!(
            has(
                &found,
                "method.b.lr",
                "suggests learning rate 0.05 for role `t`, but `method.a.lr` suggests 0.1; \
                 set networks.t.lr to choose"
            ),
            "{found:?}"
        );
        // One suggestion decides, named by the key that set the rate (not `method.a.roles`).
        let single = body.replace(", lr = 0.05 }", " }");
        let plan_one = plan(jail, &single).unwrap();
        let t = plan_one
            .roles
            .iter()
            .find(|r| r.network.role == "t")
            .unwrap();
        assert_eq!((t.lr, t.lr_source.as_str()), (0.1, "method.a.lr"));
        // The role's own rate decides, and the shared training is a warning naming both.
        let body = body.replace(
            "arch = \"resnet8\"\n[method.a]",
            "arch = \"resnet8\"\nlr = 0.2\n[method.a]",
        );
        let plan = plan(jail, &body).unwrap();
        let t = plan.roles.iter().find(|r| r.network.role == "t").unwrap();
        assert_eq!((t.lr, t.trained_in.as_deref()), (0.2, Some("main")));
        assert!(
            plan.warnings.iter().any(|w| w
                == "role `t` is trained in phase `main` by `method.a.roles` and \
                    `method.b.roles`: their terms add up in one update of it"),
            "{:?}",
            plan.warnings
        );
        Ok(())
    });
}

#[test]
fn a_plan_that_takes_no_step_or_evaluates_nothing_names_the_keys() {
    Jail::expect_with(|jail| {
        let head = "[run]\nepochs = 1\n[networks.student]\narch = \"resnet8\"\n";
        let text = format!(
            "{head}[data]\nroot = \"ROOT\"\ntrain_per_class = 20\nbatch_size = 500\ndrop_last = true\ntest_per_class = 0\n"
        );
        let found = plan_text(jail, &text).err().unwrap().issues;
        assert!(
            has(
                &found,
                "data.batch_size",
                "500 > 200 training images (data.train_per_class = 20) with data.drop_last = \
                 true: every epoch would take 0 steps"
            ),
            "{found:?}"
        );
        assert!(
            has(&found, "data.test_per_class", "is 0: no test image is kept"),
            "{found:?}"
        );
        let text = format!("{head}[data]\nroot = \"ROOT\"\ntrain_per_class = 0\n");
        let found = plan_text(jail, &text).err().unwrap().issues;
        assert!(
            has(
                &found,
                "data.train_per_class",
                "is 0: no training image is kept"
            ),
            "{found:?}"
        );
        // Exact counts: the subset has 1000 training and 200 test images per class, so a
        // limit above that keeps them all, and 200 images fill exactly one batch of 200.
        let text = format!(
            "{head}[data]\nroot = \"ROOT\"\ntrain_per_class = 20\nbatch_size = 200\ndrop_last = true\ntest_per_class = 5000\n"
        );
        let plan = plan_text(jail, &text).unwrap();
        assert_eq!(
            (plan.data.train_images(), plan.data.test_images()),
            (200, 2000)
        );
        assert_eq!(plan.data.train_classes, vec![20; 10]);
        Ok(())
    });
}

/// Writes a grey 2x2 PNG at `dir/name`, creating its folders.
fn grey_png(dir: &std::path::Path, name: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::GrayImage::from_pixel(2, 2, image::Luma([9]))
        .save(path)
        .unwrap();
}

#[test]
fn image_folder_splits_share_the_training_class_list() {
    Jail::expect_with(|jail| {
        let root = jail.directory().join("images");
        for file in [
            "train/ant/0.png",
            "train/bee/0.png",
            "train/cat/0.png",
            "train/.ipynb_checkpoints/0.png",
            "test/ant/0.png",
            "test/cat/0.png",
            "test/cat/.hidden.png",
        ] {
            grey_png(&root, file);
        }
        std::fs::write(root.join("train/.DS_Store"), b"x").unwrap();
        let text = format!(
            "[run]\nepochs = 1\n[networks.student]\narch = \"resnet8\"\n[data]\nformat = \"folder\"\nroot = \"{}\"\ninput_size = 8\nbatch_size = 2\nmean = [0.5]\nstd = [0.5]\n",
            root.display()
        );
        // Test lacks `bee`: fine, the classes are the training split's three.
        let plan = plan_text(jail, &text).unwrap();
        assert_eq!(
            (plan.data.train.num_classes, plan.data.test.num_classes),
            (3, 3)
        );
        assert_eq!(plan.data.train_classes, [1, 1, 1]);
        assert_eq!(plan.data.test_classes, [1, 0, 1]);
        // A training class folder without an image is a class the network never learns.
        std::fs::create_dir_all(root.join("train/eel")).unwrap();
        let plan = plan_text(jail, &text).unwrap();
        assert_eq!(plan.data.train_classes, [1, 1, 1, 0]);
        assert!(
            plan.warnings.iter().any(|w| w
                == "data.root: 1 of the 4 classes have no training image (`eel`): the network \
                    never learns them"),
            "{:?}",
            plan.warnings
        );
        std::fs::remove_dir(root.join("train/eel")).unwrap();
        // A test class folder the training split lacks is an error naming it.
        grey_png(&root, "test/dog/0.png");
        let found = plan_text(jail, &text).err().unwrap().issues;
        let dog = root.join("test").join("dog");
        assert!(
            has(
                &found,
                "data.root",
                &format!(
                    "{}: class folder `dog` is not a class of the training split",
                    dog.display()
                )
            ),
            "{found:?}"
        );
        Ok(())
    });
}

#[test]
fn names_that_cannot_name_columns_are_refused_at_their_keys() {
    Jail::expect_with(|jail| {
        let found = issues(
            jail,
            "[networks.\"\"]\narch = \"resnet8\"\n[networks.\"t\\u0001\"]\narch = \"resnet8\"\n\
             [networks.\"a/b\"]\narch = \"resnet8\"\n[networks.\"peer,b\"]\narch = \"resnet8\"\n\
             [method.\" \"]\nkind = \"probe\"\n",
        );
        assert!(
            has(&found, "networks.\"\"", "role name is empty"),
            "{found:?}"
        );
        assert!(
            has(&found, "networks.\"t\\u{1}\"", "holds '\\u{1}'"),
            "{found:?}"
        );
        assert!(has(&found, "networks.\"a/b\"", "holds '/'"), "{found:?}");
        assert!(has(&found, "method.\" \"", "instance name"), "{found:?}");
        assert!(
            !found
                .iter()
                .any(|i| i.key.as_deref() == Some("networks.\"peer,b\"")),
            "a comma is allowed: {found:?}"
        );
        Ok(())
    });
}

#[test]
fn a_loss_whose_every_term_is_zero_names_the_weights() {
    Jail::expect_with(|jail| {
        let found = issues(jail, "[loss]\nce_weight = 0\n");
        assert!(
            has(
                &found,
                "loss.ce_weight",
                "every weighted term of the loss is 0 (`loss.ce_weight` = 0)"
            ),
            "{found:?}"
        );
        let found = issues(
            jail,
            "stack = [\"a\"]\n[method.a]\nkind = \"probe\"\nweight = 0\n[loss]\nce_weight = 0\n",
        );
        assert!(
            has(
                &found,
                "loss.ce_weight",
                "(`loss.ce_weight`, `method.a.weight` = 0)"
            ),
            "{found:?}"
        );
        // A weight that is itself invalid is reported alone.
        let found = issues(
            jail,
            "stack = [\"a\"]\n[method.a]\nkind = \"probe\"\nweight = -1\n[loss]\nce_weight = 0\n",
        );
        assert!(
            !found
                .iter()
                .any(|i| i.message.contains("every weighted term")),
            "{found:?}"
        );
        // One positive weight is enough.
        plan(
            jail,
            "stack = [\"a\"]\n[method.a]\nkind = \"probe\"\n[loss]\nce_weight = 0\n",
        )
        .unwrap();
        Ok(())
    });
}
#[test]
fn a_preset_fills_what_is_unset_and_idx_data_without_one_gets_its_own_statistics() {
    Jail::expect_with(|jail| {
        let head = "[run]\nepochs = 1\n[networks.student]\narch = \"resnet8\"\n";
        let text = format!("{head}[data]\nroot = \"ROOT\"\npreset = \"mnist\"\n");
        let plan = plan_text(jail, &text).unwrap();
        assert_eq!(
            (plan.data.mean.clone(), plan.data.std.clone()),
            (vec![0.1307], vec![0.3081])
        );
        assert!(!plan.config.data.augment_spec().flip);
        assert_eq!(plan.data.normalisation, "preset mnist");

        let text = format!("{head}[data]\nroot = \"ROOT\"\ntrain_per_class = 3\n");
        let plan = plan_text(jail, &text).unwrap();
        let set = kd_core::data::DataSource {
            format: kd_core::data::DataFormat::Idx,
            root: data_root().into(),
        }
        .load(kd_core::data::Split::Train)
        .unwrap();
        let stats = kd_core::data::stats(&set);
        assert_eq!(plan.data.mean, [stats.mean[0] as f32]);
        assert_eq!(plan.data.std, [stats.std[0] as f32]);
        assert!(plan.config.data.augment_spec().flip);
        assert!(
            plan.data
                .normalisation
                .starts_with(&format!("computed from the {} training images", set.len())),
            "{}",
            plan.data.normalisation
        );

        let text = format!("{head}[data]\nroot = \"ROOT\"\npreset = \"cifar100\"\n");
        let found = plan_text(jail, &text).err().unwrap().issues;
        assert!(
            has(
                &found,
                "data.preset",
                "`cifar100` is a dataset of cifar100 files, but data.format is `idx`"
            ),
            "{found:?}"
        );
        Ok(())
    });
}

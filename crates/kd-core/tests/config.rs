//! Layered configuration: the order of the layers, provenance, and every class of error naming
//! its full key and source. Each test runs in a `figment::Jail` (own directory and environment).
// `Jail::expect_with` closures return figment's (large) error type; that is its API.
#![allow(clippy::result_large_err)]

use figment::Jail;
use kd_core::config::{self, ConfigError};

fn expect_err(result: Result<config::LoadedConfig, ConfigError>) -> ConfigError {
    match result {
        Ok(loaded) => panic!("expected an error, got {:?}", loaded.config),
        Err(e) => e,
    }
}

#[test]
fn layers_apply_in_order_and_provenance_names_each_source() {
    Jail::expect_with(|jail| {
        jail.create_dir("configs/experiments")?;
        jail.create_file(
            "configs/base.toml",
            "[run]\nseed = 1\nepochs = 10\nname = \"base\"\n",
        )?;
        jail.create_file(
            "configs/experiments/x.toml",
            "[run]\nseed = 2\nepochs = 20\n",
        )?;
        jail.set_env("KD_RUN__EPOCHS", "30");
        jail.set_env("KD_OPTIM__LR", "0.2");
        jail.set_env("KD_DATA", "/somewhere"); // a dataset root, not a config key
        jail.set_env("KD_FONT", "/some/font.ttf"); // the chart font, not a config key
        let sets = vec![
            "run.epochs=40".to_string(),
            "networks.student.arch=resnet20".to_string(),
        ];
        let loaded = config::load(Some("configs/experiments/x.toml".as_ref()), &sets).unwrap();
        let c = &loaded.config;
        assert_eq!(
            (c.run.name.as_str(), c.run.seed, c.run.epochs),
            ("base", 2, 40)
        );
        assert_eq!(c.optim.lr, 0.2);
        assert_eq!(c.networks["student"].arch, "resnet20");
        assert_eq!(
            c.optim.momentum, 0.9,
            "untouched keys keep the built-in default"
        );
        let source = |key: &str| {
            loaded
                .provenance()
                .into_iter()
                .find(|p| p.key == key)
                .map(|p| p.source)
                .unwrap()
        };
        assert_eq!(source("run.name"), "file configs/base.toml");
        assert_eq!(source("run.seed"), "file configs/experiments/x.toml");
        assert_eq!(source("run.epochs"), "--set run.epochs=40");
        assert_eq!(source("optim.lr"), "environment variable KD_OPTIM__LR");
        assert_eq!(source("optim.momentum"), config::DEFAULTS_SOURCE);
        let text = loaded.provenance_toml();
        assert!(
            text.contains("run.epochs = 40") && text.contains("# --set run.epochs=40"),
            "{text}"
        );
        // The listing is itself valid TOML that round-trips to the same values.
        let reparsed: toml::Table = text.parse().unwrap();
        assert_eq!(reparsed["run"]["seed"].as_integer(), Some(2));
        Ok(())
    });
}

#[test]
fn base_is_found_from_any_working_directory() {
    Jail::expect_with(|jail| {
        jail.create_dir("repo/configs/experiments/deep")?;
        jail.create_file("repo/configs/base.toml", "[run]\nseed = 9\n")?;
        jail.create_file("repo/configs/experiments/deep/e.toml", "")?;
        let loaded =
            config::load(Some("repo/configs/experiments/deep/e.toml".as_ref()), &[]).unwrap();
        assert_eq!(loaded.config.run.seed, 9);
        Ok(())
    });
}

#[test]
fn typo_key_names_the_full_key_and_the_file() {
    Jail::expect_with(|jail| {
        jail.create_file("x.toml", "[optim]\nmomentun = 0.8\n")?;
        let err = expect_err(config::load(Some("x.toml".as_ref()), &[]));
        let issue = &err.issues[0];
        assert_eq!(issue.key.as_deref(), Some("optim.momentun"));
        assert_eq!(issue.source.as_deref(), Some("file x.toml"));
        assert!(
            issue.message.contains("unknown field") && issue.message.contains("momentum"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn wrong_type_names_the_key_and_the_file() {
    Jail::expect_with(|jail| {
        jail.create_file("x.toml", "[run]\nepochs = \"many\"\n")?;
        let err = expect_err(config::load(Some("x.toml".as_ref()), &[]));
        assert_eq!(err.issues[0].key.as_deref(), Some("run.epochs"));
        assert_eq!(err.issues[0].source.as_deref(), Some("file x.toml"));
        assert!(err.to_string().contains("invalid type"), "{err}");
        Ok(())
    });
}

#[test]
fn bad_env_value_names_the_variable() {
    Jail::expect_with(|jail| {
        jail.set_env("KD_RUN__SEED", "-3");
        let err = expect_err(config::load(None, &[]));
        assert_eq!(err.issues[0].key.as_deref(), Some("run.seed"));
        assert_eq!(
            err.issues[0].source.as_deref(),
            Some("environment variable KD_RUN__SEED")
        );
        Ok(())
    });
}

#[test]
fn unknown_env_key_names_the_variable() {
    Jail::expect_with(|jail| {
        jail.set_env("KD_RUN__SEEED", "3");
        let err = expect_err(config::load(None, &[]));
        assert_eq!(err.issues[0].key.as_deref(), Some("run.seeed"));
        assert_eq!(
            err.issues[0].source.as_deref(),
            Some("environment variable KD_RUN__SEEED")
        );
        Ok(())
    });
}

#[test]
fn bad_set_arguments_are_rejected() {
    Jail::expect_with(|_| {
        // No `=`.
        let err = expect_err(config::load(None, &["run.seed".to_string()]));
        assert_eq!(err.issues[0].source.as_deref(), Some("--set run.seed"));
        assert!(err.issues[0].message.contains("key=value"));
        // Not a key.
        let err = expect_err(config::load(None, &["run..seed=1".to_string()]));
        assert!(err.issues[0].message.contains("dotted key"), "{err}");
        // Wrong type for the key.
        let err = expect_err(config::load(None, &["data.batch_size=big".to_string()]));
        assert_eq!(err.issues[0].key.as_deref(), Some("data.batch_size"));
        assert_eq!(
            err.issues[0].source.as_deref(),
            Some("--set data.batch_size=big")
        );
        // Unknown key.
        let err = expect_err(config::load(None, &["schedule.gama=0.2".to_string()]));
        assert_eq!(err.issues[0].key.as_deref(), Some("schedule.gama"));
        assert_eq!(
            err.issues[0].source.as_deref(),
            Some("--set schedule.gama=0.2")
        );
        Ok(())
    });
}

#[test]
fn several_problems_are_all_reported() {
    Jail::expect_with(|jail| {
        jail.create_file("x.toml", "[run]\nepochs = -1\n[data]\nbatch_size = \"x\"\n")?;
        let err = expect_err(config::load(
            Some("x.toml".as_ref()),
            &["a".into(), "b".into()],
        ));
        assert_eq!(err.issues.len(), 2, "both --set problems first: {err}");
        Ok(())
    });
}

#[test]
fn missing_config_file_and_toml_syntax_errors_name_the_file() {
    Jail::expect_with(|jail| {
        let err = expect_err(config::load(Some("nope.toml".as_ref()), &[]));
        assert_eq!(err.issues[0].source.as_deref(), Some("file nope.toml"));
        jail.create_file("broken.toml", "[run\nseed = 1\n")?;
        let err = expect_err(config::load(Some("broken.toml".as_ref()), &[]));
        assert!(err.to_string().contains("broken.toml"), "{err}");
        Ok(())
    });
}

#[test]
fn unknown_enum_value_lists_the_choices() {
    Jail::expect_with(|jail| {
        jail.create_file("x.toml", "[schedule]\nkind = \"linear\"\n")?;
        let err = expect_err(config::load(Some("x.toml".as_ref()), &[]));
        assert_eq!(err.issues[0].key.as_deref(), Some("schedule.kind"));
        assert!(err.to_string().contains("multistep"), "{err}");
        Ok(())
    });
}

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
            issue
                .message
                .contains("unknown field `momentun` (did you mean `momentum`?)")
                && issue
                    .message
                    .contains("known keys here: `lr`, `lr_for_arch`, `momentum`"),
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
        assert_eq!(err.issues.len(), 4, "every problem, --set first: {err}");
        assert_eq!(err.issues[0].source.as_deref(), Some("--set a"));
        assert_eq!(err.issues[1].source.as_deref(), Some("--set b"));
        let keys: Vec<_> = err.issues[2..].iter().map(|i| i.key.clone()).collect();
        assert_eq!(
            keys,
            [Some("data.batch_size".into()), Some("run.epochs".into())]
        );
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

/// The keys of every issue, sorted.
fn keys(err: &ConfigError) -> Vec<String> {
    let mut keys: Vec<String> = err.issues.iter().filter_map(|i| i.key.clone()).collect();
    keys.sort();
    keys
}

#[test]
fn seven_mistakes_in_one_file_are_reported_in_one_run() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "x.toml",
            r#"
[run]
epochs = "many"
seeed = 3
[data]
batch_size = -4
mean = [0.5, "x"]
[optim]
momentun = 0.9
lr = "fast"
[schedule]
kind = "linear"
"#,
        )?;
        let err = expect_err(config::load(Some("x.toml".as_ref()), &[]));
        assert_eq!(
            keys(&err),
            [
                "data.batch_size",
                "data.mean[1]",
                "optim.lr",
                "optim.momentun",
                "run.epochs",
                "run.seeed",
                "schedule.kind",
            ],
            "{err}"
        );
        for issue in &err.issues {
            assert_eq!(issue.source.as_deref(), Some("file x.toml"), "{issue}");
        }
        let message = |key: &str| {
            err.issues
                .iter()
                .find(|i| i.key.as_deref() == Some(key))
                .map(|i| i.message.clone())
                .unwrap()
        };
        assert!(message("run.seeed").contains("unknown field"), "{err}");
        assert!(message("optim.lr").contains("invalid type"), "{err}");
        assert!(message("schedule.kind").contains("multistep"), "{err}");
        let text = err.to_string();
        assert!(
            text.starts_with("[1/7] ") && text.contains("[7/7] "),
            "{text}"
        );
        Ok(())
    });
}

#[test]
fn mistakes_in_every_source_are_reported_together() {
    Jail::expect_with(|jail| {
        jail.create_dir("configs")?;
        jail.create_file("configs/base.toml", "[data]\nbatch_sise = 3\n")?;
        jail.create_file("configs/x.toml", "[optim]\nlr = \"fast\"\n")?;
        jail.set_env("KD_RUN__SEED", "minus");
        let sets = ["schedule.gama=0.2".to_string(), "oops".to_string()];
        let err = expect_err(config::load(Some("configs/x.toml".as_ref()), &sets));
        let sources: Vec<(Option<String>, Option<String>)> = err
            .issues
            .iter()
            .map(|i| (i.key.clone(), i.source.clone()))
            .collect();
        for expected in [
            (None, Some("--set oops")),
            (Some("data.batch_sise"), Some("file configs/base.toml")),
            (Some("optim.lr"), Some("file configs/x.toml")),
            (Some("run.seed"), Some("environment variable KD_RUN__SEED")),
            (Some("schedule.gama"), Some("--set schedule.gama=0.2")),
        ] {
            let expected = (
                expected.0.map(str::to_string),
                expected.1.map(str::to_string),
            );
            assert!(sources.contains(&expected), "{expected:?} in {err}");
        }
        assert_eq!(err.issues.len(), 5, "{err}");
        Ok(())
    });
}

#[test]
fn a_toml_syntax_error_stops_only_its_own_file() {
    Jail::expect_with(|jail| {
        jail.create_dir("configs")?;
        jail.create_file("configs/base.toml", "[run]\nseed = 1\nepochs = = 3\n")?;
        jail.create_file("configs/x.toml", "[optim]\nmomentun = 0.8\n")?;
        let err = expect_err(config::load(Some("configs/x.toml".as_ref()), &[]));
        assert_eq!(err.issues.len(), 2, "{err}");
        let syntax = &err.issues[0];
        assert_eq!(syntax.source.as_deref(), Some("file configs/base.toml"));
        assert_eq!(syntax.key, None);
        assert!(
            syntax
                .message
                .starts_with("TOML syntax error at line 3, column 10 (byte 24): "),
            "{err}"
        );
        assert!(!syntax.message.contains('\n'), "one line: {err}");
        assert_eq!(err.issues[1].key.as_deref(), Some("optim.momentun"));
        assert_eq!(err.issues[1].source.as_deref(), Some("file configs/x.toml"));
        Ok(())
    });
}

#[test]
fn a_directory_given_as_a_config_or_include_is_called_a_directory() {
    Jail::expect_with(|jail| {
        jail.create_dir("somewhere")?;
        let err = expect_err(config::load(Some("somewhere".as_ref()), &[]));
        assert_eq!(err.issues.len(), 1, "{err}");
        assert_eq!(err.issues[0].source.as_deref(), Some("file somewhere"));
        assert_eq!(
            err.issues[0].message,
            "config file is a directory, not a configuration file"
        );
        let err = expect_err(config::load(Some("nope.toml".as_ref()), &[]));
        assert_eq!(err.issues[0].message, "config file not found");
        jail.create_file("x.toml", "include = [\"somewhere\"]\n")?;
        let err = expect_err(config::load(Some("x.toml".as_ref()), &[]));
        assert_eq!(err.issues[0].key.as_deref(), Some("include"));
        assert_eq!(err.issues[0].source.as_deref(), Some("file x.toml"));
        assert_eq!(
            err.issues[0].message,
            "included file somewhere: is a directory, not a configuration file"
        );
        Ok(())
    });
}

#[test]
fn an_include_cycle_through_another_spelling_of_the_path_is_found() {
    Jail::expect_with(|jail| {
        jail.create_dir("a")?;
        jail.create_file("a/x.toml", "include = [\"../a/./x.toml\"]\n")?;
        let err = expect_err(config::load(Some("a/x.toml".as_ref()), &[]));
        assert_eq!(err.issues.len(), 1, "{err}");
        assert_eq!(err.issues[0].key.as_deref(), Some("include"));
        assert_eq!(err.issues[0].message, "include cycle");
        Ok(())
    });
}

#[test]
fn an_array_element_error_names_the_element_and_the_real_source() {
    Jail::expect_with(|jail| {
        // An environment variable sets the array whole: it is named, not `KD_DATA__MEAN__1`.
        jail.set_env("KD_DATA__MEAN", "[0.5, \"x\"]");
        let err = expect_err(config::load(None, &[]));
        assert_eq!(err.issues.len(), 1, "{err}");
        assert_eq!(err.issues[0].key.as_deref(), Some("data.mean[1]"));
        assert_eq!(
            err.issues[0].source.as_deref(),
            Some("environment variable KD_DATA__MEAN")
        );
        assert!(!err.to_string().contains("KD_DATA__MEAN__1"), "{err}");
        jail.set_env("KD_DATA__MEAN", "[0.5]");

        let set = "schedule.milestones=[10, \"x\", 30]".to_string();
        let err = expect_err(config::load(None, std::slice::from_ref(&set)));
        assert_eq!(err.issues[0].key.as_deref(), Some("schedule.milestones[1]"));
        assert_eq!(
            err.issues[0].source.as_deref(),
            Some(format!("--set {set}").as_str())
        );

        jail.create_file("x.toml", "[data]\nstd = [0.5, 0.2, true]\n")?;
        let err = expect_err(config::load(Some("x.toml".as_ref()), &[]));
        assert_eq!(err.issues[0].key.as_deref(), Some("data.std[2]"));
        assert_eq!(err.issues[0].source.as_deref(), Some("file x.toml"));
        assert!(
            err.to_string()
                .starts_with("`data.std[2]`: invalid type: found bool true"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn non_finite_numbers_in_a_method_table_are_named_not_turned_into_null() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "x.toml",
            "[method.kd]\nkind = \"kd\"\ntemperature = nan\nweights = [1.0, -inf]\n[method.b]\nweight = inf\n",
        )?;
        let err = expect_err(config::load(Some("x.toml".as_ref()), &[]));
        assert_eq!(
            keys(&err),
            [
                "method.b.weight",
                "method.kd.temperature",
                "method.kd.weights[1]"
            ],
            "{err}"
        );
        let message = |key: &str| {
            let issue = err.issues.iter().find(|i| i.key.as_deref() == Some(key));
            let issue = issue.unwrap();
            assert_eq!(issue.source.as_deref(), Some("file x.toml"));
            issue.message.clone()
        };
        assert_eq!(
            message("method.kd.temperature"),
            "NaN is not a finite number"
        );
        assert_eq!(
            message("method.kd.weights[1]"),
            "-inf is not a finite number"
        );
        assert_eq!(message("method.b.weight"), "inf is not a finite number");
        assert!(!err.to_string().contains("null"), "{err}");
        // Outside method tables a non-finite number loads; the plan checks its domain.
        jail.create_file("y.toml", "[optim]\nlr = nan\n")?;
        let loaded = config::load(Some("y.toml".as_ref()), &[]).unwrap();
        assert!(loaded.config.optim.lr.is_nan());
        Ok(())
    });
}

#[test]
fn the_resolved_listing_keeps_non_finite_numbers_as_written() {
    Jail::expect_with(|_| {
        let sets = ["optim.lr=nan".to_string(), "loss.ce_weight=inf".to_string()];
        let loaded = config::load(None, &sets).unwrap();
        let text = loaded.provenance_toml();
        assert!(
            text.contains("optim.lr = nan") && text.contains("# --set optim.lr=nan"),
            "{text}"
        );
        assert!(text.contains("loss.ce_weight = inf"), "{text}");
        assert!(!text.contains("null"), "{text}");
        let reparsed: toml::Table = text.parse().unwrap();
        assert!(reparsed["optim"]["lr"].as_float().unwrap().is_nan());
        Ok(())
    });
}

#[test]
fn a_file_that_is_not_text_is_named_and_the_other_sources_still_checked() {
    Jail::expect_with(|_| {
        std::fs::write("x.toml", [b'a', 0xff, 0xfe, b'\n']).unwrap();
        let err = expect_err(config::load(
            Some("x.toml".as_ref()),
            &["run.seeed=1".to_string()],
        ));
        assert_eq!(err.issues.len(), 2, "{err}");
        assert_eq!(err.issues[0].source.as_deref(), Some("file x.toml"));
        assert!(
            err.issues[0].message.starts_with("cannot be read: ")
                && err.issues[0].message.contains("UTF-8"),
            "{err}"
        );
        assert_eq!(err.issues[1].key.as_deref(), Some("run.seeed"));
        Ok(())
    });
}

#[test]
fn non_finite_words_in_variables_are_floats_as_in_toml() {
    Jail::expect_with(|jail| {
        jail.set_env("KD_OPTIM__LR", "NaN");
        jail.set_env("KD_OPTIM__WEIGHT_DECAY", "-Inf");
        jail.set_env("KD_SCHEDULE__GAMMA", "inf");
        let loaded = config::load(None, &[]).unwrap();
        let c = &loaded.config;
        assert!(c.optim.lr.is_nan(), "{}", c.optim.lr);
        assert_eq!(c.optim.weight_decay, f64::NEG_INFINITY);
        assert_eq!(c.schedule.gamma, f64::INFINITY);
        // Other words stay strings.
        jail.set_env("KD_RUN__NAME", "infinite");
        assert_eq!(config::load(None, &[]).unwrap().config.run.name, "infinite");
        Ok(())
    });
}

#[test]
fn an_enum_key_lists_the_names_it_takes() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "x.toml",
            "[schedule]\nkind = 3\n[data]\nformat = \"png\"\n[data.augment]\npad_mode = true\n",
        )?;
        let err = expect_err(config::load(Some("x.toml".as_ref()), &[]));
        let message = |key: &str| {
            err.issues
                .iter()
                .find(|i| i.key.as_deref() == Some(key))
                .map(|i| i.message.clone())
                .unwrap_or_else(|| panic!("no issue at {key}: {err}"))
        };
        assert_eq!(
            message("schedule.kind"),
            "must be one of `multistep`, `cosine`, `constant`; found signed int `3`"
        );
        assert!(
            message("data.format").starts_with("unknown variant `png`: must be one of `idx`"),
            "{err}"
        );
        assert!(
            message("data.augment.pad_mode").starts_with("must be one of `zero`"),
            "{err}"
        );
        assert!(!err.to_string().contains("enum"), "{err}");
        jail.set_env("KD_RUN__BACKEND", "tpu");
        let err = expect_err(config::load(None, &[]));
        assert!(
            err.issues[0]
                .message
                .starts_with("unknown variant `tpu`: must be one of `flex`"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn an_unusable_include_names_its_resolved_path() {
    Jail::expect_with(|jail| {
        jail.create_dir("presets")?;
        let here = std::fs::canonicalize(".").unwrap();
        jail.create_file("dir.toml", "include = [\"presets\", \".\"]\n")?;
        let err = expect_err(config::load(Some("dir.toml".as_ref()), &[]));
        let messages: Vec<&str> = err.issues.iter().map(|i| i.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "included file presets: is a directory, not a configuration file".to_string(),
                format!(
                    "included file {}: is a directory, not a configuration file",
                    here.display()
                ),
            ],
            "{err}"
        );
        jail.create_file("empty.toml", "include = [\"\", \" \"]\n")?;
        let err = expect_err(config::load(Some("empty.toml".as_ref()), &[]));
        assert_eq!(err.issues.len(), 2, "{err}");
        assert_eq!(err.issues[0].key.as_deref(), Some("include"));
        assert_eq!(err.issues[0].source.as_deref(), Some("file empty.toml"));
        assert_eq!(err.issues[0].message, "entry `` is empty: it names no file");
        Ok(())
    });
}

#[test]
fn relative_paths_follow_the_file_that_writes_them_and_overrides_the_working_directory() {
    Jail::expect_with(|jail| {
        let here = jail.directory().to_path_buf();
        jail.create_dir("configs/presets")?;
        jail.create_dir("configs/experiments")?;
        jail.create_file("configs/base.toml", "[run]\noutput_dir = \"../runs\"\n")?;
        jail.create_file(
            "configs/presets/data.toml",
            "[data]\nroot = \"../../data/set\"\n",
        )?;
        jail.create_file(
            "configs/experiments/x.toml",
            "include = [\"../presets/data.toml\"]\n\
             [networks.teacher]\narch = \"resnet8\"\ncheckpoint = \"teachers/./t.kdc#student\"\n\
             [plugins]\nload = [\"libs/libm.so\"]\n",
        )?;
        let loaded = config::load(Some("configs/experiments/x.toml".as_ref()), &[]).unwrap();
        let c = &loaded.config;
        // Each from the folder of the file that wrote it, `.` and `..` resolved.
        assert_eq!(c.run.output_dir, here.join("runs"));
        assert_eq!(
            c.data.root.as_deref(),
            Some(here.join("data/set").as_path())
        );
        assert_eq!(
            c.networks["teacher"].checkpoint.as_deref(),
            Some(
                here.join("configs/experiments/teachers/t.kdc#student")
                    .as_path()
            )
        );
        assert_eq!(
            c.plugins.load,
            [here.join("configs/experiments/libs/libm.so")]
        );
        // An override names a path from the working directory, as the shell does.
        jail.set_env("KD_DATA__ROOT", "env-data");
        let sets = vec!["run.output_dir=elsewhere".to_string()];
        let loaded = config::load(Some("configs/experiments/x.toml".as_ref()), &sets).unwrap();
        assert_eq!(
            loaded.config.run.output_dir,
            std::path::Path::new("elsewhere")
        );
        assert_eq!(
            loaded.config.data.root.as_deref(),
            Some(std::path::Path::new("env-data"))
        );
        // Absolute paths are kept as written.
        jail.create_file(
            "configs/experiments/abs.toml",
            "[run]\noutput_dir = \"/tmp/kd-runs\"\n",
        )?;
        let loaded = config::load(Some("configs/experiments/abs.toml".as_ref()), &[]).unwrap();
        assert_eq!(
            loaded.config.run.output_dir,
            std::path::Path::new("/tmp/kd-runs")
        );
        Ok(())
    });
}

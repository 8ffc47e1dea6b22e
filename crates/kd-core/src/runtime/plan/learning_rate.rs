//! A trained role's base learning rate, resolved once, when the roles are planned, so that the
//! run (`setup.rs` builds each optimiser from [`super::RolePlan::lr`]) and `kd plan` (which
//! prints the rate and the key it came from) agree.
//!
//! The rule, first that applies: `networks.<role>.lr`; the rate a method suggests for a role it
//! trains (FFKD's teacher in its feedback phase, `method.<instance>.teacher_lr`); the rate of the
//! role's architecture in `optim.lr_for_arch`; `optim.lr`. The per-architecture table holds
//! rules such as RepDistiller's, which trains MobileNetV2, ShuffleV1 and ShuffleV2 at 0.01
//! instead of 0.05 (`train_student.py` and `train_teacher.py`: `if opt.model_s in
//! ['MobileNetV2', 'ShuffleV1', 'ShuffleV2']: opt.learning_rate = 0.01`). A method's own modules
//! (adapters, SOKD's branch) keep `optim.lr` unless the method says otherwise.
//!
//! The table's names are checked here: each must name a zoo architecture (an alias counts as
//! its architecture), and no two may name the same one. Its values are checked with every other
//! number (`domains.rs`).

use crate::config::{Issues, NetworkConfig, RunConfig};
use crate::zoo;

use super::roles::{table_key, unknown_arch_message};

/// A resolved base learning rate and the key that decided it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ResolvedLr {
    /// The rate.
    pub(super) value: f64,
    /// Where it came from: `networks.student.lr`, `method.ffkd.teacher_lr`,
    /// `optim.lr_for_arch.MobileNetV2` or `optim.lr`.
    pub(super) source: String,
}

/// The base learning rate of `role` (its `network` table, `arch` its canonical zoo name), with
/// `suggested` the rate a method suggests for it and the key that set that rate.
pub(super) fn resolve(
    config: &RunConfig,
    role: &str,
    network: &NetworkConfig,
    arch: &str,
    suggested: Option<(f64, &str)>,
) -> ResolvedLr {
    let resolved = |value, source: String| ResolvedLr { value, source };
    if let Some(lr) = network.lr {
        return resolved(lr, format!("networks.{}.lr", table_key(role)));
    }
    if let Some((lr, key)) = suggested {
        return resolved(lr, key.to_string());
    }
    let listed = config
        .optim
        .lr_for_arch
        .iter()
        .find(|(name, _)| zoo::find(name).is_some_and(|entry| entry.name == arch));
    match listed {
        Some((name, lr)) => resolved(*lr, format!("optim.lr_for_arch.{}", table_key(name))),
        None => resolved(config.optim.lr, "optim.lr".into()),
    }
}

/// Checks the names of `optim.lr_for_arch`: every one a zoo architecture, none naming one
/// already named (by its name or an alias).
pub(super) fn check_lr_for_arch(config: &RunConfig, issues: &mut Issues<'_>) {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for name in config.optim.lr_for_arch.keys() {
        let key = format!("optim.lr_for_arch.{}", table_key(name));
        let Some(entry) = zoo::find(name) else {
            issues.push(&key, unknown_arch_message(name));
            continue;
        };
        match seen.iter().find(|(_, arch)| *arch == entry.name) {
            Some((first, _)) => issues.push(
                &key,
                format!(
                    "names {}, as optim.lr_for_arch.{} does; keep one of them",
                    entry.name,
                    table_key(first)
                ),
            ),
            None => seen.push((name, entry.name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(table: &[(&str, f64)]) -> RunConfig {
        let mut config = RunConfig::default();
        config.optim.lr = 0.05;
        for (name, lr) in table {
            config.optim.lr_for_arch.insert(name.to_string(), *lr);
        }
        config
    }

    /// `resolve` for a MobileNetV2 role, as (rate, source).
    fn mobile(c: &RunConfig, lr: Option<f64>, suggested: Option<(f64, &str)>) -> (f64, String) {
        let network = NetworkConfig {
            lr,
            ..NetworkConfig::new("MobileNetV2")
        };
        let got = resolve(c, "student", &network, "MobileNetV2", suggested);
        (got.value, got.source)
    }

    #[test]
    fn the_role_key_then_the_method_then_the_architecture_then_optim_lr() {
        let c = config(&[("MobileNetV2", 0.01), ("ShuffleV1", 0.01)]);
        let ffkd = Some((5e-3, "method.ffkd.teacher_lr"));
        assert_eq!(
            mobile(&c, None, None),
            (0.01, "optim.lr_for_arch.MobileNetV2".into())
        );
        // A method's suggestion comes before the table, the role's own key before both.
        assert_eq!(
            mobile(&c, None, ffkd),
            (5e-3, "method.ffkd.teacher_lr".into())
        );
        assert_eq!(
            mobile(&c, Some(0.2), ffkd),
            (0.2, "networks.student.lr".into())
        );
        // Not listed: the run's rate.
        let resnet = NetworkConfig::new("resnet20");
        let got = resolve(&c, "peer", &resnet, "resnet20", None);
        assert_eq!((got.value, got.source.as_str()), (0.05, "optim.lr"));
        // An alias in the table (RepDistiller's older name for MobileNetV2) names its
        // architecture.
        let c = config(&[("mobile_half", 0.01)]);
        assert_eq!(
            mobile(&c, None, None),
            (0.01, "optim.lr_for_arch.mobile_half".into())
        );
    }
}

//! The roles of a plan: the student always, every other role as the stack asks for it. Each
//! method's [`RoleNeed`](crate::method::RoleNeed)s are merged per role (who trains it, in which
//! phase, whether it must be pretrained, its BatchNorm mode, a suggested learning rate) and
//! conflicts rejected; then each used role's network is planned from its architecture and its
//! checkpoint checked (`checkpoints.rs`).

use std::collections::BTreeMap;

use crate::config::{Issues, RunConfig};
use crate::method::{BnMode, MAIN_PHASE, PlannedNetwork};
use crate::zoo::{self, ModelSpec};

use super::checkpoints::Checker;
use super::{MethodInstance, RolePlan};

/// What the stack asks of one role, merged over every method.
pub(super) struct RoleUse {
    trained_in: Option<String>,
    /// The keys of the methods that need it pretrained.
    pub(super) pretrained: Vec<String>,
    bn: BnMode,
    bn_key: Option<String>,
    lr: Option<f64>,
    used_by: Vec<String>,
}

impl RoleUse {
    fn unused() -> Self {
        RoleUse {
            trained_in: None,
            pretrained: vec![],
            bn: BnMode::Eval,
            bn_key: None,
            lr: None,
            used_by: vec![],
        }
    }
}

/// Merges every method's role needs, with the student trained by the task loss.
pub(super) fn merge_needs(
    config: &RunConfig,
    methods: &[MethodInstance],
    issues: &mut Issues<'_>,
) -> BTreeMap<String, RoleUse> {
    let mut merged: BTreeMap<String, RoleUse> = BTreeMap::new();
    merged.insert(
        "student".into(),
        RoleUse {
            trained_in: Some(MAIN_PHASE.into()),
            used_by: vec!["task loss".into()],
            ..RoleUse::unused()
        },
    );
    if !config.networks.contains_key("student") {
        issues.push("networks.student", "every run needs a [networks.student]");
    }
    for m in methods {
        for need in &m.needs.roles {
            if !config.networks.contains_key(&need.role) {
                issues.push(
                    &need.key,
                    format!(
                        "names role `{}`, but there is no [networks.{}]",
                        need.role, need.role
                    ),
                );
                continue;
            }
            let entry = merged
                .entry(need.role.clone())
                .or_insert_with(RoleUse::unused);
            if need.lr.is_some() {
                entry.lr = need.lr;
            }
            if let Some(phase) = &need.trained_in {
                match &entry.trained_in {
                    Some(existing) if existing != phase => issues.push(
                        &need.key,
                        format!(
                            "trains role `{}` in phase `{phase}`, but it is already trained in \
                             `{existing}`",
                            need.role
                        ),
                    ),
                    _ => entry.trained_in = Some(phase.clone()),
                }
            }
            if need.pretrained {
                entry.pretrained.push(need.key.clone());
            }
            if need.bn == BnMode::Train {
                entry.bn = BnMode::Train;
                entry.bn_key = Some(need.key.clone());
            }
            entry.used_by.push(m.instance.clone());
        }
    }
    for (role, entry) in &merged {
        if entry.trained_in.is_some()
            && entry.bn == BnMode::Train
            && let Some(key) = &entry.bn_key
        {
            issues.push(
                key,
                format!(
                    "asks for role `{role}` frozen with BatchNorm in training mode, but it is \
                     trained"
                ),
            );
        }
    }
    merged
}

/// Plans every configured role the stack uses, `student` first, then the others by name.
pub(super) fn plan_roles(
    config: &RunConfig,
    uses: &BTreeMap<String, RoleUse>,
    spec: ModelSpec,
    checker: &mut Checker<'_, '_>,
) -> Vec<RolePlan> {
    let input_size = config.data.input_size;
    let mut role_names: Vec<&String> = config.networks.keys().collect();
    role_names.sort_by_key(|r| (r.as_str() != "student", r.as_str()));
    let mut roles = Vec::new();
    for role in role_names {
        let network = &config.networks[role];
        let Some(entry) = uses.get(role) else {
            checker.warnings.push(format!(
                "[networks.{role}] is not used by the student or any method in `stack`; it is \
                 not built"
            ));
            continue;
        };
        let Some(zoo_entry) = zoo::find(&network.arch) else {
            checker.issues.push(
                &format!("networks.{role}.arch"),
                unknown_arch_message(&network.arch),
            );
            continue;
        };
        let arch = (zoo_entry.arch)(spec);
        let planned = PlannedNetwork {
            role: role.clone(),
            arch_name: zoo_entry.name.to_string(),
            taps: arch.tap_shapes(input_size, input_size),
            arch,
            spec,
            has_checkpoint: network.checkpoint.is_some(),
        };
        let start = checker.check(role, network.checkpoint.as_deref(), entry, &planned);
        if let Some(lr) = network.lr
            && !(lr.is_finite() && lr >= 0.0)
        {
            checker.issues.push(
                &format!("networks.{role}.lr"),
                "must be a non-negative number",
            );
        }
        roles.push(RolePlan {
            network: planned,
            trained_in: entry.trained_in.clone(),
            bn: entry.bn,
            checkpoint: start.checkpoint,
            imported_from: start.imported_from,
            // The role's own key first, then the rate a method suggests, then the run's.
            lr: network.lr.or(entry.lr).unwrap_or(config.optim.lr),
            ce_weight: network.ce_weight.unwrap_or(config.loss.ce_weight),
            used_by: entry.used_by.clone(),
        });
    }
    roles
}

/// An unknown zoo name, with the closest known one and the full list.
fn unknown_arch_message(arch: &str) -> String {
    let names = zoo::names();
    let closest = names
        .iter()
        .map(|n| (strsim::levenshtein(n, arch), *n))
        .min()
        .filter(|(d, _)| *d <= 3)
        .map(|(_, n)| format!(" (did you mean `{n}`?)"))
        .unwrap_or_default();
    format!(
        "unknown architecture `{arch}`{closest}; `kd models` lists: {}",
        names.join(", ")
    )
}

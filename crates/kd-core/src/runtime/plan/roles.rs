//! The roles of a plan: the student always, every other role as the stack asks for it. Each
//! method's [`RoleNeed`]s are merged per role (who trains it, in which phase, whether it must be
//! pretrained, its BatchNorm mode, a suggested learning rate) and conflicts rejected, each
//! naming the role and both declarations' keys: a role declared frozen by one instance and
//! trained by another (the student is always trained by the task loss), trained in two phases,
//! asked for with two BatchNorm modes or with two learning rates (unless `networks.<role>.lr`
//! decides). Two instances training one role in the same phase is meaningful (DML and CTSL-MKT
//! peers: their terms add up in one update); the plan says so in a warning. Then each used
//! role's network is planned from its architecture and its checkpoint checked
//! (`checkpoints.rs`); a `networks.<role>.lr` on a role no phase trains is an error at that key
//! (it could have no effect).

use std::collections::BTreeMap;

use crate::config::{Issues, RunConfig};
use crate::method::{BnMode, MAIN_PHASE, PlannedNetwork, RoleNeed, SuggestedLr};
use crate::zoo::{self, ModelSpec};

use super::checkpoints::Checker;
use super::learning_rate;
use super::{MethodInstance, RolePlan};

/// What the stack asks of one role, merged over every method.
pub(super) struct RoleUse {
    /// The phase that trains it, if any trains it.
    pub(super) trained_in: Option<String>,
    /// The keys of the methods that need it pretrained.
    pub(super) pretrained: Vec<String>,
    bn: BnMode,
    /// The learning rate the methods suggest (the first suggestion, with the key that set it).
    lr: Option<SuggestedLr>,
    used_by: Vec<String>,
    /// A warning for the plan: several instances train the role in one phase.
    shared: Option<String>,
}

/// One declaration about a role: who made it (a method instance, or the task loss for the
/// student) and what it asks.
struct Declaration<'a> {
    instance: &'a str,
    need: &'a RoleNeed,
}

impl Declaration<'_> {
    /// How messages name the declaration: its key, or the task loss.
    fn who(&self) -> String {
        if self.need.key.is_empty() {
            "the task loss".into()
        } else {
            format!("`{}`", self.need.key)
        }
    }
}

fn bn_words(bn: BnMode) -> &'static str {
    match bn {
        BnMode::Eval => "BatchNorm in evaluation mode",
        BnMode::Train => "BatchNorm in training mode",
    }
}

/// Merges every method's role needs, with the student trained by the task loss; conflicting
/// declarations are issues, meaningful shared training a warning [`plan_roles`] gives.
pub(super) fn merge_needs(
    config: &RunConfig,
    methods: &[MethodInstance],
    issues: &mut Issues<'_>,
) -> BTreeMap<String, RoleUse> {
    if !config.networks.contains_key("student") {
        issues.push("networks.student", "every run needs a [networks.student]");
    }
    for role in config.networks.keys() {
        if let Some(problem) = name_problem(role) {
            issues.push(
                &format!("networks.{}", table_key(role)),
                format!("role name {problem}"),
            );
        }
    }
    check_something_trains(config, methods, issues);
    // The task loss trains the student in the main phase (its key is empty: it is no method's).
    let task_loss = RoleNeed {
        key: String::new(),
        ..RoleNeed::trained("student", "")
    };
    let mut declared: BTreeMap<&str, Vec<Declaration<'_>>> = BTreeMap::new();
    declared.entry("student").or_default().push(Declaration {
        instance: "task loss",
        need: &task_loss,
    });
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
            declared
                .entry(need.role.as_str())
                .or_default()
                .push(Declaration {
                    instance: &m.instance,
                    need,
                });
        }
    }
    declared
        .into_iter()
        .map(|(role, declarations)| {
            let merged = merge_role(config, role, &declarations, issues);
            (role.to_string(), merged)
        })
        .collect()
}

/// Why `name` cannot name a role or a method instance, if it cannot: it names metrics columns
/// (`<role>/top1`, `<instance>/kl`) and keys (`networks.<role>.arch`), so it must be non-empty
/// and free of whitespace, control characters and the characters that separate columns and keys
/// (`/`, `.`, `[`, `]`). Anything else is allowed (a comma too: the CSV writer quotes it).
pub(super) fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("is empty: name it, e.g. `teacher`".into());
    }
    let bad = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '.' | '[' | ']'))?;
    Some(format!(
        "`{}` holds {:?}: names may not hold whitespace, control characters, `/`, `.`, `[` or \
         `]` (they name metrics columns like `name/top1` and keys like `networks.name.arch`)",
        name.escape_debug(),
        bad
    ))
}

/// A table name as a key shows it: bare when it is a TOML bare key, else quoted (`""`,
/// `"a b"`).
pub(super) fn table_key(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        name.to_string()
    } else {
        format!("{name:?}")
    }
}

/// A run whose every weighted term is 0 would train nothing and still report success: refused,
/// naming every weight that is 0. The terms are each role trained in the main phase's
/// cross-entropy (weighted by `networks.<role>.ce_weight`, else `loss.ce_weight`) and every
/// method instance's terms (all multiplied by `method.<instance>.weight`). Checked only when
/// every instance of the stack was built (a stack with errors is reported by those).
fn check_something_trains(config: &RunConfig, methods: &[MethodInstance], issues: &mut Issues<'_>) {
    if methods.len() != config.stack.len() || !config.networks.contains_key("student") {
        return;
    }
    // A weight that is not a number of at least zero is reported on its own (and planned as 0).
    let weight_invalid = |m: &MethodInstance| {
        let raw = config.method.get(&m.instance).and_then(|t| t.get("weight"));
        raw.is_some_and(|w| super::domains::method_weight(w.as_f64()).is_err())
    };
    if methods.iter().any(|m| m.weight != 0.0 || weight_invalid(m)) {
        return;
    }
    // The roles the cross-entropy trains: the student, and every role a method trains in the
    // main phase (peers).
    let mut ce_roles: Vec<&str> = vec!["student"];
    for m in methods {
        for need in &m.needs.roles {
            if need.trained_in.as_deref() == Some(MAIN_PHASE)
                && !ce_roles.contains(&need.role.as_str())
            {
                ce_roles.push(&need.role);
            }
        }
    }
    let mut zero_keys = Vec::new();
    for role in &ce_roles {
        let Some(network) = config.networks.get(*role) else {
            continue;
        };
        match network.ce_weight {
            Some(w) if w != 0.0 => return,
            Some(_) => zero_keys.push(format!("networks.{role}.ce_weight")),
            None if config.loss.ce_weight != 0.0 => return,
            None => {
                if !zero_keys.contains(&"loss.ce_weight".to_string()) {
                    zero_keys.push("loss.ce_weight".into());
                }
            }
        }
    }
    zero_keys.extend(
        methods
            .iter()
            .map(|m| format!("method.{}.weight", m.instance)),
    );
    let listed = zero_keys
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    issues.push(
        &zero_keys[0],
        format!(
            "every weighted term of the loss is 0 ({listed} = 0): the run would train nothing; \
             give one of them a positive weight"
        ),
    );
}

/// One role's declarations merged; conflicts reported.
fn merge_role(
    config: &RunConfig,
    role: &str,
    declarations: &[Declaration<'_>],
    issues: &mut Issues<'_>,
) -> RoleUse {
    let mut shared = None;
    let trainer = declarations.iter().find(|d| d.need.trained_in.is_some());
    let mut conflict = false;
    if let Some(trainer) = trainer {
        let phase = trainer.need.trained_in.as_deref().unwrap_or(MAIN_PHASE);
        for d in declarations {
            match d.need.trained_in.as_deref() {
                Some(other) if other != phase => issues.push(
                    &d.need.key,
                    format!(
                        "trains role `{role}` in phase `{other}`, but it is already trained in \
                         `{phase}` by {}; a role is trained in one phase only",
                        trainer.who()
                    ),
                ),
                Some(_) => continue,
                None => issues.push(
                    &d.need.key,
                    format!(
                        "asks for role `{role}` frozen{}, but {} trains it in phase `{phase}`; \
                         give one of them another role",
                        if d.need.bn == BnMode::Train {
                            format!(" with {}", bn_words(BnMode::Train))
                        } else {
                            String::new()
                        },
                        trainer.who()
                    ),
                ),
            }
            conflict = true;
        }
        let sharing: Vec<String> = declarations
            .iter()
            .filter(|d| !d.need.key.is_empty() && d.need.trained_in.as_deref() == Some(phase))
            .map(Declaration::who)
            .collect();
        if role != "student" && sharing.len() > 1 {
            shared = Some(format!(
                "role `{role}` is trained in phase `{phase}` by {}: their terms add up in one \
                 update of it",
                sharing.join(" and ")
            ));
        }
    }
    // BatchNorm where the role is not trained: every method must ask for the same mode (the
    // task loss asks for none).
    let methods: Vec<&Declaration<'_>> = declarations
        .iter()
        .filter(|d| !d.need.key.is_empty())
        .collect();
    let bn = methods.first().map_or(BnMode::Eval, |d| d.need.bn);
    if !conflict && let Some(first) = methods.first() {
        for d in methods.iter().filter(|d| d.need.bn != bn) {
            issues.push(
                &d.need.key,
                format!(
                    "asks for role `{role}` with {}, but {} asks for it with {}",
                    bn_words(d.need.bn),
                    first.who(),
                    bn_words(bn)
                ),
            );
        }
    }
    // A suggested learning rate: the role's own key decides; else suggestions must agree.
    // Each is named by the key that set the rate, not the one that binds the role.
    let suggested: Vec<&SuggestedLr> = methods.iter().filter_map(|d| d.need.lr.as_ref()).collect();
    let own_lr = config.networks.get(role).and_then(|n| n.lr).is_some();
    if !own_lr && let Some(first) = suggested.first() {
        for s in suggested.iter().filter(|s| s.value != first.value) {
            issues.push(
                &s.key,
                format!(
                    "suggests learning rate {} for role `{role}`, but `{}` suggests {}; set \
                     networks.{role}.lr to choose",
                    s.value, first.key, first.value
                ),
            );
        }
    }
    let mut used_by: Vec<String> = Vec::new();
    for d in declarations {
        if !used_by.iter().any(|u| u == d.instance) {
            used_by.push(d.instance.to_string());
        }
    }
    RoleUse {
        trained_in: trainer.and_then(|t| t.need.trained_in.clone()),
        pretrained: declarations
            .iter()
            .filter(|d| d.need.pretrained)
            .map(|d| d.need.key.clone())
            .collect(),
        bn,
        lr: suggested.first().map(|s| (*s).clone()),
        used_by,
        shared,
    }
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
        if let Some(shared) = &entry.shared {
            checker.warnings.push(shared.clone());
        }
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
        if entry.trained_in.is_none()
            && let Some(lr) = network.lr
        {
            // As `trained_on` without a checkpoint: a key that cannot act is a mistake, not
            // something to ignore.
            checker.issues.push(
                &format!("networks.{}.lr", table_key(role)),
                format!(
                    "is {lr}, but role `{role}` is not trained in this run (frozen; used by {}): \
                     the rate would have no effect; remove the key, or stack a method that \
                     trains the role",
                    entry.used_by.join(", ")
                ),
            );
        }
        if entry.trained_in.as_deref() != Some(MAIN_PHASE)
            && let Some(weight) = network.ce_weight
        {
            // The main phase adds each role's cross-entropy; elsewhere the weight cannot act.
            let how = match entry.trained_in.as_deref() {
                Some(phase) => format!("trained only in phase `{phase}`"),
                None => "frozen".to_string(),
            };
            checker.issues.push(
                &format!("networks.{}.ce_weight", table_key(role)),
                format!(
                    "is {weight}, but role `{role}` is not trained in the main phase ({how}; used by \
                     {}): its cross-entropy is never added, so the weight would have no effect; \
                     remove the key",
                    entry.used_by.join(", ")
                ),
            );
        }
        let suggested = entry.lr.as_ref().map(|s| (s.value, s.key.as_str()));
        let lr = learning_rate::resolve(config, role, network, zoo_entry.name, suggested);
        roles.push(RolePlan {
            network: planned,
            trained_in: entry.trained_in.clone(),
            bn: entry.bn,
            checkpoint: start.checkpoint,
            imported_from: start.imported_from,
            imported_preparation: start.preparation,
            lr: lr.value,
            lr_source: lr.source,
            ce_weight: network.ce_weight.unwrap_or(config.loss.ce_weight),
            used_by: entry.used_by.clone(),
        });
    }
    roles
}

/// An unknown zoo name, with the closest known one and the full list.
pub(super) fn unknown_arch_message(arch: &str) -> String {
    let names = zoo::names();
    let closest = crate::config::did_you_mean(arch, &names);
    format!(
        "unknown architecture `{arch}`{closest}; `kd models` lists: {}",
        names.join(", ")
    )
}

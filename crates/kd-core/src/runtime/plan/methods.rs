//! The method stack of a plan: every instance of `stack` built by its plugin from its table,
//! the taps the instances read checked against the planned networks, the extra phases they
//! declare put in order, and each instance's own checks. An instance's `kind` must be a string
//! naming a registered kind and its `weight` a finite number of at least zero.

use crate::config::{Issues, LoadedConfig, RunConfig, source_of};
use crate::method::{MAIN_PHASE, MethodArgs, PhaseSpec, PlanView, PlannedNetwork, Registry};

use super::{DataPlan, MethodInstance, domains};

/// Looks every instance of `stack` up in the registry and lets its plugin parse its table.
pub(super) fn plan_methods(
    loaded: &LoadedConfig,
    registry: &Registry,
    issues: &mut Issues<'_>,
) -> Vec<MethodInstance> {
    let config = &loaded.config;
    let mut methods = Vec::new();
    let mut seen = Vec::new();
    for instance in config.method.keys() {
        if let Some(problem) = super::roles::name_problem(instance) {
            issues.push(
                &format!("method.{}", super::roles::table_key(instance)),
                format!("instance name {problem}"),
            );
        }
    }
    for instance in &config.stack {
        if seen.contains(instance) {
            issues.push("stack", format!("instance `{instance}` appears twice"));
            continue;
        }
        seen.push(instance.clone());
        let Some(table) = config.method.get(instance) else {
            issues.push(
                "stack",
                format!("`{instance}` has no [method.{instance}] table"),
            );
            continue;
        };
        let Some(object) = table.as_object() else {
            issues.push(&format!("method.{instance}"), "must be a table");
            continue;
        };
        let kind = match object.get("kind") {
            Some(serde_json::Value::String(kind)) => kind.as_str(),
            found => {
                let key = format!("method.{instance}.kind");
                let what = match found {
                    None => "missing: every method instance names its kind".to_string(),
                    Some(other) => format!("must be a string naming a method kind, not `{other}`"),
                };
                issues.push(
                    &key,
                    format!("{what}; known kinds: {}", registry.kinds_list()),
                );
                continue;
            }
        };
        let Some(registration) = registry.get(kind) else {
            issues.push(
                &format!("method.{instance}.kind"),
                registry.unknown_kind_message(kind),
            );
            continue;
        };
        // A bad weight is reported, and the plugin still checks the rest of the table.
        let weight = match object.get("weight").map(serde_json::Value::as_f64) {
            None => 1.0,
            Some(weight) => domains::method_weight(weight).unwrap_or_else(|problem| {
                issues.push(&format!("method.{instance}.weight"), problem);
                0.0
            }),
        };
        let mut params = object.clone();
        params.remove("kind");
        params.remove("weight");
        let figment = &loaded.figment;
        let source_of = |key: &str| source_of(figment, key);
        let args = MethodArgs {
            instance,
            params: serde_json::Value::Object(params),
            source_of: &source_of,
        };
        match (registration.build)(&args) {
            Ok(method) => methods.push(MethodInstance {
                instance: instance.clone(),
                kind: kind.to_string(),
                weight,
                crate_name: registration.crate_name.to_string(),
                needs: method.needs(),
                method,
            }),
            Err(e) => issues.extend(e.issues),
        }
    }
    methods
}

/// Every tap a method reads must exist on its role's network.
pub(super) fn check_taps(
    methods: &[MethodInstance],
    networks: &[PlannedNetwork],
    issues: &mut Issues<'_>,
) {
    for m in methods {
        for tap in &m.needs.taps {
            if let Some(network) = networks.iter().find(|n| n.role == tap.role) {
                issues.extend(network.tap_issue(tap));
            }
        }
    }
}

/// The phases in the order they run each step: `main`, then each method's in stack order.
pub(super) fn plan_phases(methods: &[MethodInstance], issues: &mut Issues<'_>) -> Vec<PhaseSpec> {
    let mut phases = vec![PhaseSpec {
        name: MAIN_PHASE.into(),
        own_batch: false,
        from_epoch: 0,
    }];
    for m in methods {
        for phase in &m.needs.phases {
            if phases.iter().any(|p| p.name == phase.name) {
                issues.push(
                    &format!("method.{}.kind", m.instance),
                    format!("phase `{}` is declared twice", phase.name),
                );
            } else {
                phases.push(phase.clone());
            }
        }
    }
    phases
}

/// Each method's own checks against the planned networks (run once everything else is sound).
pub(super) fn check_methods(
    methods: &[MethodInstance],
    networks: &[PlannedNetwork],
    data: &DataPlan,
    config: &RunConfig,
    issues: &mut Issues<'_>,
) {
    let view = PlanView {
        networks,
        input_size: config.data.input_size,
        num_classes: data.train.num_classes,
        in_channels: data.train.channels,
        config,
    };
    for m in methods {
        issues.extend(m.method.check(&view));
    }
}

//! The networks of a run, by role, each with its mode and its optimiser.
//!
//! A role trained in some phase is stored as it trains; a role never trained is stored with its
//! weights excluded from gradients — fully frozen (`freeze()`, BatchNorm in evaluation mode) or,
//! when a method asks for it, with BatchNorm still in training mode (`no_grad()`). The runtime
//! builds and owns a [`Roles`]; methods read it through their contexts.

use std::collections::BTreeMap;

use burn::module::Module;

use super::error::MethodError;
use super::needs::BnMode;
use super::part::Trainable;
use crate::zoo::{ModelSpec, Network};

/// One role's network.
pub struct RoleNet {
    /// Role name.
    pub name: String,
    /// Zoo name.
    pub arch_name: String,
    /// Classes and channels.
    pub spec: ModelSpec,
    /// Phase that trains it, if any.
    pub trained_in: Option<String>,
    /// BatchNorm behaviour where it is not trained.
    pub bn: BnMode,
    /// Weight of its cross-entropy when trained in the main phase.
    pub ce_weight: f64,
    /// The module and its optimiser (unused for roles never trained).
    pub net: Trainable<Network>,
}

impl RoleNet {
    /// Whether the role's tensors can change during the run (so it is saved and re-evaluated).
    pub fn can_change(&self) -> bool {
        self.trained_in.is_some() || self.bn == BnMode::Train
    }
}

/// Every role of a run, in plan order.
#[derive(Default)]
pub struct Roles {
    order: Vec<String>,
    roles: BTreeMap<String, RoleNet>,
}

impl Roles {
    /// Adds a role, putting a never-trained network into its frozen form.
    pub fn insert(&mut self, mut role: RoleNet) {
        if role.trained_in.is_none() {
            let module = role.net.module().clone();
            let frozen = match role.bn {
                BnMode::Eval => module.freeze(),
                BnMode::Train => module.no_grad(),
            };
            role.net.set_module(frozen);
        }
        self.order.push(role.name.clone());
        self.roles.insert(role.name.clone(), role);
    }

    /// A role.
    pub fn get(&self, name: &str) -> Option<&RoleNet> {
        self.roles.get(name)
    }

    /// A role, mutably.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut RoleNet> {
        self.roles.get_mut(name)
    }

    /// The network of a role.
    pub fn network(&self, name: &str) -> Result<&Network, MethodError> {
        self.get(name)
            .map(|r| r.net.module())
            .ok_or_else(|| MethodError::Missing(format!("no network in role `{name}`")))
    }

    /// Roles in plan order.
    pub fn iter(&self) -> impl Iterator<Item = &RoleNet> {
        self.order.iter().map(|name| &self.roles[name])
    }

    /// Roles in plan order, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut RoleNet> {
        let mut by_name: BTreeMap<&String, &mut RoleNet> = self.roles.iter_mut().collect();
        let order = &self.order;
        order
            .iter()
            .filter_map(move |name| by_name.remove(name))
            .collect::<Vec<_>>()
            .into_iter()
    }

    /// Role names in plan order.
    pub fn names(&self) -> &[String] {
        &self.order
    }
}

//! The method registry: constant registrations submitted by plugin crates through
//! [`register_method!`](crate::register_method), collected once into a sorted map.
//!
//! As typetag and inventory do it: a registration is constant data with function pointers; a
//! duplicate kind is an error naming both crates; an unknown kind lists the known ones. Plugins
//! never name `inventory` themselves — the macro reaches it through kd-core's re-export. A
//! binary has a method only if the linker keeps its crate, so something must name it: the shipped
//! ones are named once, in `crates/kd-plugins`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use super::args::MethodArgs;
use super::base::Method;
use crate::config::ConfigError;

/// One method kind, as a plugin crate registers it.
#[derive(Debug)]
pub struct MethodRegistration {
    /// The name written in `method.<instance>.kind`.
    pub kind: &'static str,
    /// One line on what it does.
    pub summary: &'static str,
    /// The paper (authors, year, venue or arXiv id).
    pub paper: &'static str,
    /// The crate that registered it (filled in by the macro).
    pub crate_name: &'static str,
    /// Builds an instance from its table; errors name the key.
    pub build: fn(&MethodArgs<'_>) -> Result<Box<dyn Method>, ConfigError>,
    /// The instance's keys with their defaults, for documentation and `kd methods --json`.
    pub defaults: fn() -> serde_json::Value,
}

inventory::collect!(MethodRegistration);

/// Registers a method kind. Use once per plugin crate, at module level:
///
/// ```ignore
/// kd_core::register_method! {
///     kind: "kd",
///     summary: "Hinton et al.'s soft-target distillation",
///     paper: "Hinton, Vinyals, Dean 2015, arXiv:1503.02531",
///     build: build,
///     defaults: defaults,
/// }
/// ```
///
/// A crate that can also be loaded at run time writes its registration once as a `const` and
/// registers it either way (see `export_plugin!` and `docs/writing-a-method.md`):
///
/// ```ignore
/// const REGISTRATION: kd_core::method::MethodRegistration = kd_core::method::MethodRegistration { /* … */ };
/// #[cfg(not(feature = "dynamic"))]
/// kd_core::register_method!(REGISTRATION);
/// #[cfg(feature = "dynamic")]
/// kd_core::export_plugin!(REGISTRATION);
/// ```
#[macro_export]
macro_rules! register_method {
    ($registration:path) => {
        $crate::inventory::submit! { $registration }
    };
    {
        kind: $kind:expr,
        summary: $summary:expr,
        paper: $paper:expr,
        build: $build:expr,
        defaults: $defaults:expr $(,)?
    } => {
        $crate::inventory::submit! {
            $crate::method::MethodRegistration {
                kind: $kind,
                summary: $summary,
                paper: $paper,
                crate_name: env!("CARGO_PKG_NAME"),
                build: $build,
                defaults: $defaults,
            }
        }
    };
}

/// The keys of a method's configuration type with their defaults, as `defaults` of a
/// [`MethodRegistration`] wants them: `defaults: kd_core::method::defaults_of::<KdConfig>`.
pub fn defaults_of<T: Default + serde::Serialize>() -> serde_json::Value {
    serde_json::to_value(T::default()).expect("a method configuration serialises to JSON")
}

/// Registrations of libraries loaded at run time, added before the global registry is built.
static DYNAMIC: Mutex<Vec<&'static MethodRegistration>> = Mutex::new(Vec::new());

/// Whether [`Registry::global`] has been built (after which nothing can be added).
static BUILT: AtomicBool = AtomicBool::new(false);

/// Adds the registrations of a library loaded at run time ([`crate::dynamic`]). Returns `false`,
/// adding nothing, once the global registry has been built.
pub(crate) fn add_dynamic(registrations: Vec<&'static MethodRegistration>) -> bool {
    if is_built() {
        return false;
    }
    DYNAMIC
        .lock()
        .expect("registration list lock")
        .extend(registrations);
    true
}

/// Whether the global registry has been built (loading a library is then too late).
pub(crate) fn is_built() -> bool {
    BUILT.load(Ordering::SeqCst)
}

/// Why the registry could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Two crates registered the same kind.
    #[error("method kind `{kind}` is registered twice: by crate `{first}` and by crate `{second}`")]
    Duplicate {
        /// The kind.
        kind: String,
        /// The first registering crate.
        first: String,
        /// The second registering crate.
        second: String,
    },
}

/// Every known method kind, sorted.
#[derive(Debug)]
pub struct Registry {
    kinds: BTreeMap<&'static str, &'static MethodRegistration>,
}

impl Registry {
    /// Builds a registry from registrations, rejecting duplicate kinds.
    pub fn from_entries(
        entries: impl IntoIterator<Item = &'static MethodRegistration>,
    ) -> Result<Registry, RegistryError> {
        let mut kinds: BTreeMap<&'static str, &'static MethodRegistration> = BTreeMap::new();
        for entry in entries {
            if let Some(previous) = kinds.insert(entry.kind, entry) {
                let (mut first, mut second) = (previous.crate_name, entry.crate_name);
                if first > second {
                    std::mem::swap(&mut first, &mut second);
                }
                return Err(RegistryError::Duplicate {
                    kind: entry.kind.into(),
                    first: first.into(),
                    second: second.into(),
                });
            }
        }
        Ok(Registry { kinds })
    }

    /// The registry of every plugin linked into this binary or loaded from a library
    /// ([`crate::dynamic::load_plugins`], which must come first), built on first use.
    pub fn global() -> Result<&'static Registry, RegistryError> {
        static GLOBAL: OnceLock<Result<Registry, RegistryError>> = OnceLock::new();
        GLOBAL
            .get_or_init(|| {
                BUILT.store(true, Ordering::SeqCst);
                let dynamic = DYNAMIC.lock().expect("registration list lock").clone();
                Registry::from_entries(
                    inventory::iter::<MethodRegistration>
                        .into_iter()
                        .chain(dynamic),
                )
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Looks a kind up.
    pub fn get(&self, kind: &str) -> Option<&'static MethodRegistration> {
        self.kinds.get(kind).copied()
    }

    /// Every registration, sorted by kind.
    pub fn entries(&self) -> impl Iterator<Item = &'static MethodRegistration> + '_ {
        self.kinds.values().copied()
    }

    /// The known kinds, sorted.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.kinds.keys().copied().collect()
    }

    /// The known kinds as a comma-separated list, for messages (`none are linked in` when
    /// there are none).
    pub fn kinds_list(&self) -> String {
        if self.kinds.is_empty() {
            "none are linked in".to_string()
        } else {
            self.kinds().join(", ")
        }
    }

    /// The message for an unknown kind: the known ones, and the closest if one is close.
    pub fn unknown_kind_message(&self, kind: &str) -> String {
        let known = self.kinds();
        let closest = crate::config::did_you_mean(kind, &known);
        format!(
            "unknown method kind `{kind}`{closest}; known kinds: {}",
            self.kinds_list()
        )
    }
}

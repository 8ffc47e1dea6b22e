//! The method crates kd ships: the one list that names them.
//!
//! A method registers itself at link time (`kd_core::register_method!`), so a binary has a
//! method only if the linker keeps its crate, and it keeps a crate only if some code names it.
//! This crate names every shipped method once, in the `shipped!` block below, which both links
//! the crate (`use kd_method_x as _;`) and lists it in [`SHIPPED`]. `kd` (through kd-cli) and the
//! integration tests depend on this crate alone, never on the method crates, so nothing else
//! needs to change when a method is added; the registry-completeness tests compare the registry
//! with [`SHIPPED`], and `cargo xtask` reads the block as text (it has no burn dependency).
//!
//! **Adding a method.** `cargo xtask new-method NAME --in-tree` creates `plugins/NAME` and edits
//! the three lines that register it: its `[workspace.dependencies]` entry in the root
//! `Cargo.toml`, its dependency line in this crate's `Cargo.toml`, and its entry here. By hand:
//! the same three lines, with the entry `kd_method_name => "name",` in kind order. Keep one
//! entry per line: xtask edits this block line by line.

/// A method crate kd ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shipped {
    /// The crate as Rust code names it (`kd_method_ctsl_mkt`).
    pub lib: &'static str,
    /// The method kind it must register (`ctsl-mkt`).
    pub kind: &'static str,
}

impl Shipped {
    /// The package name (`kd-method-ctsl-mkt`), as the registry records it.
    pub fn package(&self) -> String {
        self.lib.replace('_', "-")
    }
}

/// Names each crate (so that it is linked, with its registration) and lists it in [`SHIPPED`].
macro_rules! shipped {
    ($($lib:ident => $kind:literal,)+) => {
        $(use $lib as _;)+

        /// Every method crate kd ships, sorted by kind.
        pub const SHIPPED: &[Shipped] = &[$(Shipped { lib: stringify!($lib), kind: $kind }),+];
    };
}

shipped! {
    kd_method_ctsl_mkt => "ctsl-mkt",
    kd_method_dml => "dml",
    kd_method_ffkd => "ffkd",
    kd_method_iakd => "iakd",
    kd_method_kd => "kd",
    kd_method_sokd => "sokd",
}

/// The shipped kinds in the registry's order (sorted).
pub fn kinds() -> Vec<&'static str> {
    SHIPPED.iter().map(|s| s.kind).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_sorted_by_kind_without_duplicates() {
        let kinds = kinds();
        assert!(kinds.windows(2).all(|w| w[0] < w[1]), "{kinds:?}");
    }

    #[test]
    fn crate_names_predict_kinds() {
        for shipped in SHIPPED {
            assert_eq!(shipped.package(), format!("kd-method-{}", shipped.kind));
        }
    }

    #[test]
    fn every_dependency_line_is_listed_and_every_entry_has_one() {
        let manifest = include_str!("../Cargo.toml");
        let dependencies: Vec<&str> = manifest
            .lines()
            .filter_map(|l| l.strip_suffix(".workspace = true"))
            .filter(|name| name.starts_with("kd-method-"))
            .collect();
        let packages: Vec<String> = SHIPPED.iter().map(Shipped::package).collect();
        assert_eq!(dependencies, packages);
    }
}

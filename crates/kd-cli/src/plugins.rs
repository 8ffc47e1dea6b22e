//! The method plugins linked into `kd`: every crate kd-plugins lists. Naming kd-plugins here
//! keeps the linker from dropping it and, through it, each method's registration; the
//! integration tests check that every listed kind is registered.

use kd_plugins as _;

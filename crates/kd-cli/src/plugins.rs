//! The method plugins linked into `kd`. Naming each crate here keeps the linker from dropping
//! its registration; the integration tests check every plugin kind is registered.

use kd_method_ctsl_mkt as _;
use kd_method_dml as _;
use kd_method_ffkd as _;
use kd_method_iakd as _;
use kd_method_kd as _;
use kd_method_sokd as _;

//! Method plugins loaded at run time from dynamic libraries (`plugins.load` in a config).
//!
//! Sound only when the host and the library share one copy of kd-core and burn built by the
//! same compiler: the dynamic host (`cargo xtask build-dynamic`) links kd-core as a Rust `dylib`
//! with `-C prefer-dynamic`, and plugins are built against that very library. `fingerprint.rs`
//! names what must agree; `load.rs` checks a library's fingerprint before touching anything else
//! in it, then lets it register its methods through an exported function (never through
//! `inventory`, whose constructors would run inside `dlopen`, before any check). Libraries are
//! loaded before the registry is first built and never unloaded.

mod fingerprint;
mod load;

pub use fingerprint::{BURN_VERSION, FINGERPRINT, FINGERPRINT_NUL, Fingerprint, PLUGIN_ABI};
pub use load::{PluginError, Registrar, load_plugins};

/// Exports a dynamically loadable plugin: the fingerprint it was compiled with and the function
/// that registers its methods. Use it instead of `register_method!` in the `dynamic` build of a
/// method crate:
///
/// ```ignore
/// const KIND: kd_core::method::MethodRegistration = kd_core::method::MethodRegistration { … };
/// kd_core::export_plugin!(KIND);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($($registration:path),+ $(,)?) => {
        /// The fingerprint this plugin was compiled with (NUL-terminated).
        #[unsafe(no_mangle)]
        pub extern "C" fn kd_plugin_fingerprint() -> *const ::std::os::raw::c_char {
            $crate::dynamic::FINGERPRINT_NUL.as_ptr().cast()
        }

        /// Registers this plugin's methods; the host calls it once the fingerprint matches.
        #[unsafe(no_mangle)]
        pub fn kd_plugin_register(registrar: &mut $crate::dynamic::Registrar) {
            $( registrar.add(&$registration); )+
        }
    };
}

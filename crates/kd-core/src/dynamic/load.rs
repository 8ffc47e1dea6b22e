//! Loading plugin libraries: open, check the fingerprint, register, never unload. Only the
//! dynamic host (`cfg(kd_dynamic)`) opens libraries; the checks themselves are the same code in
//! every build, so the unit tests below exercise them in the default one.
#![allow(unsafe_code)] // the one place that calls into dynamic libraries; every block says why

use std::ffi::CStr;
use std::os::raw::c_char;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::fingerprint::{FINGERPRINT, Fingerprint};
use crate::method::{MethodRegistration, registry};

/// Why a plugin library could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file does not exist or is not a loadable library.
    #[error("{path}: not a loadable library: {message}")]
    NotALibrary {
        /// The file.
        path: PathBuf,
        /// The loader's message.
        message: String,
    },
    /// A required symbol is missing.
    #[error("{path}: not a kd plugin: it exports no `{symbol}`")]
    MissingSymbol {
        /// The file.
        path: PathBuf,
        /// The symbol.
        symbol: &'static str,
    },
    /// The library was built against another kd-core, burn, compiler or linkage.
    #[error(
        "{path}: built for another kd: {differences}. Rebuild it against this kd \
         (`cargo xtask build-dynamic --plugin …`) with the same compiler"
    )]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// The differing fields.
        differences: String,
    },
    /// This kd links kd-core statically: a library loaded into it would bring a second kd-core
    /// and a second std, so nothing is opened.
    #[error(
        "{path}: this kd is a static build and cannot load method plugins (`plugins.load`, \
         `--load`). Load it with the kd-dynamic host that `cargo xtask build-dynamic --plugin \
         <crate>` builds, or compile the method in with `cargo xtask build-kd --with <crate>`"
    )]
    StaticHost {
        /// The first library asked for.
        path: PathBuf,
    },
    /// The registry was built before the library was loaded.
    #[error("{path}: plugins must be loaded before the method registry is first used")]
    TooLate {
        /// The file.
        path: PathBuf,
    },
}

/// Collects what a loaded plugin registers.
pub struct Registrar {
    added: Vec<&'static MethodRegistration>,
}

impl Registrar {
    /// Adds one method kind.
    pub fn add(&mut self, registration: &'static MethodRegistration) {
        self.added.push(registration);
    }
}

type FingerprintFn = unsafe extern "C" fn() -> *const c_char;
type RegisterFn = fn(&mut Registrar);

fn load_one(path: &Path) -> Result<(), PluginError> {
    if registry::is_built() {
        return Err(PluginError::TooLate { path: path.into() });
    }
    if !path.is_file() {
        return Err(PluginError::NotALibrary {
            path: path.into(),
            message: if path.is_dir() {
                "is a directory, not a plugin library (name the .so/.dylib/.dll file)".into()
            } else {
                "no such file".into()
            },
        });
    }
    // SAFETY: opening a library runs its initialisers. A kd plugin's own registration is not an
    // initialiser (it goes through `kd_plugin_register`, called below only after the fingerprint
    // check); any other library's initialisers are its own business, as with any dlopen.
    let library =
        unsafe { libloading::Library::new(path) }.map_err(|e| PluginError::NotALibrary {
            path: path.into(),
            // libloading puts the loader's own words ("invalid ELF header") in the source.
            message: match std::error::Error::source(&e) {
                Some(source) => format!("{e}: {source}"),
                None => e.to_string(),
            },
        })?;
    // SAFETY: the symbol is looked up with the type the `export_plugin!` macro gives it; a
    // library exporting the name with another type is caught by the fingerprint's ABI field
    // before anything else is called. The function takes no input and returns a pointer to a
    // NUL-terminated static string in the library, which stays loaded forever (see below).
    let fingerprint = unsafe {
        let symbol: libloading::Symbol<'_, FingerprintFn> = library
            .get(b"kd_plugin_fingerprint\0")
            .map_err(|_| PluginError::MissingSymbol {
                path: path.into(),
                symbol: "kd_plugin_fingerprint",
            })?;
        CStr::from_ptr(symbol()).to_string_lossy().into_owned()
    };
    let differences =
        Fingerprint::parse(&fingerprint).differences(&Fingerprint::parse(FINGERPRINT));
    if !differences.is_empty() {
        return Err(PluginError::Mismatch {
            path: path.into(),
            differences: differences.join("; "),
        });
    }
    // SAFETY: the fingerprint matched: the library was compiled by this compiler against this
    // very kd-core (same source hash) linked as the same shared library, so `Registrar` and
    // `MethodRegistration` have one layout and one set of statics on both sides, and the Rust
    // ABI of `kd_plugin_register` is the one `export_plugin!` declared.
    let mut registrar = Registrar { added: Vec::new() };
    unsafe {
        let register: libloading::Symbol<'_, RegisterFn> = library
            .get(b"kd_plugin_register\0")
            .map_err(|_| PluginError::MissingSymbol {
                path: path.into(),
                symbol: "kd_plugin_register",
            })?;
        register(&mut registrar);
    }
    // Registrations point into the library's statics: it must never be unloaded.
    std::mem::forget(library);
    if !registry::add_dynamic(registrar.added) {
        return Err(PluginError::TooLate { path: path.into() });
    }
    Ok(())
}

/// Loads every library, in order, stopping at the first that does not fit. A static build of
/// kd (the default) refuses any library before opening it.
pub fn load_plugins(paths: &[PathBuf]) -> Result<(), PluginError> {
    if let Some(first) = paths.first()
        && !cfg!(kd_dynamic)
    {
        return Err(PluginError::StaticHost {
            path: first.clone(),
        });
    }
    for path in paths {
        // The same file named twice (or by two spellings) is loaded once.
        let key = path.canonicalize().unwrap_or_else(|_| path.clone());
        let mut loaded = LOADED.lock().expect("plugin list lock");
        if loaded.contains(&key) {
            continue;
        }
        load_one(path)?;
        loaded.push(key);
    }
    Ok(())
}

/// The files loaded so far.
static LOADED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_static_build_opens_no_library() {
        load_plugins(&[]).unwrap();
        if cfg!(kd_dynamic) {
            return;
        }
        let err = load_plugins(&[PathBuf::from("/nonexistent/libx.so")]).unwrap_err();
        assert!(matches!(err, PluginError::StaticHost { .. }), "{err}");
        let message = err.to_string();
        assert!(message.starts_with("/nonexistent/libx.so: this kd is a static build"));
        assert!(message.contains("build-dynamic") && message.contains("build-kd"));
    }

    #[test]
    fn a_file_that_is_not_a_library_is_named() {
        let dir = std::env::temp_dir().join(format!("kd-plugin-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("fake.so");
        std::fs::write(&path, b"not an ELF file").unwrap();
        let err = load_one(&path).unwrap_err();
        assert!(matches!(err, PluginError::NotALibrary { .. }), "{err}");
        // The loader's own reason comes through, not just "dlopen failed".
        assert!(err.to_string().contains("file too short"), "{err}");
        let err = load_one(&dir.join("missing.so")).unwrap_err();
        assert!(err.to_string().contains("no such file"));
        let err = load_one(&dir).unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
    }

    #[test]
    fn a_library_without_the_symbols_is_not_a_plugin() {
        // Any shared library of the system will do; libm is on every Linux.
        let candidates = [
            "/lib/x86_64-linux-gnu/libm.so.6",
            "/usr/lib/x86_64-linux-gnu/libm.so.6",
            "/lib64/libm.so.6",
        ];
        let Some(libm) = candidates.iter().map(Path::new).find(|p| p.is_file()) else {
            return;
        };
        let err = load_one(libm).unwrap_err();
        assert!(
            matches!(
                err,
                PluginError::MissingSymbol {
                    symbol: "kd_plugin_fingerprint",
                    ..
                }
            ),
            "{err}"
        );
    }
}

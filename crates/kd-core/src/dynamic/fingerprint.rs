//! What a plugin library and its host must share, as one string baked into each at compile time:
//! the plugin ABI number, the compiler, kd-core's version and source hash, burn's version, the
//! backend features and how kd-core is linked.

/// Bumped whenever the plugin interface changes in a way the source hash would not show.
pub const PLUGIN_ABI: u32 = 1;

/// The burn version kd-core is built against (the workspace pins it exactly; a test keeps the
/// two equal).
pub const BURN_VERSION: &str = "0.22.1";

#[cfg(feature = "cuda")]
macro_rules! features {
    () => {
        "cuda"
    };
}
#[cfg(not(feature = "cuda"))]
macro_rules! features {
    () => {
        "flex"
    };
}

#[cfg(kd_dynamic)]
macro_rules! linkage {
    () => {
        "dylib"
    };
}
#[cfg(not(kd_dynamic))]
macro_rules! linkage {
    () => {
        "static"
    };
}

macro_rules! fingerprint {
    () => {
        concat!(
            "abi=1;rustc=",
            env!("KDCORE_RUSTC"),
            ";kd-core=",
            env!("CARGO_PKG_VERSION"),
            "+",
            env!("KDCORE_SOURCE_HASH"),
            ";burn=0.22.1;features=",
            features!(),
            ";linkage=",
            linkage!()
        )
    };
}

/// This build's fingerprint. A `const`: a plugin that uses it bakes in the value of the kd-core
/// it was compiled against.
pub const FINGERPRINT: &str = fingerprint!();

/// [`FINGERPRINT`] with a trailing NUL, for the exported C function.
pub const FINGERPRINT_NUL: &str = concat!(fingerprint!(), "\0");

/// A fingerprint split into its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(pub Vec<(String, String)>);

impl Fingerprint {
    /// Parses `key=value;key=value`.
    pub fn parse(text: &str) -> Fingerprint {
        Fingerprint(
            text.split(';')
                .map(|field| match field.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (field.to_string(), String::new()),
                })
                .collect(),
        )
    }

    /// The fields that differ, as `field: library X, host Y`.
    pub fn differences(&self, host: &Fingerprint) -> Vec<String> {
        let mut out = Vec::new();
        for (key, value) in &host.0 {
            let theirs = self
                .0
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str());
            if theirs != Some(value.as_str()) {
                out.push(format!(
                    "{key}: library {}, host {value}",
                    theirs.unwrap_or("(missing)")
                ));
            }
        }
        for (key, value) in &self.0 {
            if !host.0.iter().any(|(k, _)| k == key) {
                out.push(format!("{key}: library {value}, host (missing)"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_names_every_field() {
        let f = Fingerprint::parse(FINGERPRINT);
        let keys: Vec<&str> = f.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["abi", "rustc", "kd-core", "burn", "features", "linkage"]
        );
        assert_eq!(f.0[0].1, PLUGIN_ABI.to_string());
        assert!(f.0[1].1.starts_with("rustc "), "{FINGERPRINT}");
        assert_eq!(f.0[3].1, BURN_VERSION);
        assert!(FINGERPRINT_NUL.ends_with('\0') && FINGERPRINT_NUL.starts_with(FINGERPRINT));
    }

    #[test]
    fn the_burn_version_is_the_workspace_pin() {
        let manifest = include_str!("../../../../Cargo.toml");
        assert!(
            manifest.contains(&format!("burn = {{ version = \"={BURN_VERSION}\"")),
            "update BURN_VERSION with the pin"
        );
    }

    #[test]
    fn differences_are_named_field_by_field() {
        let host = Fingerprint::parse("abi=1;rustc=r1;burn=0.22.1");
        let lib = Fingerprint::parse("abi=2;rustc=r1;burn=0.22.1;extra=x");
        assert_eq!(
            lib.differences(&host),
            vec![
                "abi: library 2, host 1".to_string(),
                "extra: library x, host (missing)".to_string()
            ]
        );
        assert!(host.differences(&host).is_empty());
    }
}

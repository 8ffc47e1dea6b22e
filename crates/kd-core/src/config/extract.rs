//! Extracting the typed [`RunConfig`] from the merged layers with every error reported at once.
//!
//! serde stops at the first bad key, so the loader (`load.rs`) calls [`extract_all`]: on each
//! error it records the issue (full key, source), removes the offending key from the merged
//! value so its default applies, and tries again, up to a bound. Keys are rendered in the
//! user's terms: an array element is `data.mean[1]`, and its source is the key that set the
//! array (`KD_DATA__MEAN`, not a variable named after the element). Numbers that are not
//! finite are rejected inside method tables here, because those tables pass through
//! `serde_json::Value`, which cannot hold NaN or infinity (it would turn them into `null`).
//! A value of the wrong type or an unknown name at a key holding one of a fixed set of names
//! (`schedule.kind`, `data.format`, …) is reported with the names allowed there, read from the
//! enum's own deserialiser ([`enum_variants`]), never with the internal type's name.

use figment::Figment;
use figment::providers::Serialized;
use figment::value::{Dict, Value};

use super::error::ConfigIssue;
use super::load::{describe_source, source_of};
use super::schema::RunConfig;

/// How many bad keys one extraction reports before it gives up looking for more.
const MAX_ERRORS: usize = 100;

/// The key of `path` (as figment or serde names it, array indices as segments) in the user's
/// terms: `data.mean[1]`. `root` is the merged value the path points into.
pub(super) fn display_key(root: &Dict, path: &[String]) -> String {
    let mut key = String::new();
    let mut current: Option<&Value> = None;
    for segment in path {
        let index = segment.parse::<usize>().ok();
        match (current, index) {
            (Some(Value::Array(_, items)), Some(i)) => {
                key.push_str(&format!("[{i}]"));
                current = items.get(i);
            }
            _ => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(segment);
                current = match current {
                    None => root.get(segment),
                    Some(Value::Dict(_, dict)) => dict.get(segment),
                    Some(_) => None,
                };
            }
        }
    }
    key
}

/// `data.mean[1]` → `data.mean`: the key whose value holds the element (the one a source set).
pub(crate) fn owning_key(key: &str) -> &str {
    key.find('[').map_or(key, |i| &key[..i])
}

/// Removes the value at `path` (an array as a whole when the path points inside one).
/// Returns whether anything was removed.
fn remove(dict: &mut Dict, path: &[String]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    match dict.get_mut(first) {
        Some(Value::Dict(_, inner)) if !rest.is_empty() => remove(inner, rest),
        Some(_) => dict.remove(first).is_some(),
        None => false,
    }
}

/// Every number in the method tables that is NaN or infinite, as an issue at its full key; the
/// values are removed so the rest of the table is still checked.
fn non_finite_in_methods(figment: &Figment, merged: &mut Dict, issues: &mut Vec<ConfigIssue>) {
    fn walk(key: String, value: &mut Value, found: &mut Vec<(String, f64)>) -> bool {
        match value {
            Value::Num(_, num) => match num.to_f64() {
                Some(x) if !x.is_finite() => {
                    found.push((key, x));
                    true
                }
                _ => false,
            },
            Value::Dict(_, dict) => {
                dict.retain(|name, inner| !walk(format!("{key}.{name}"), inner, found));
                false
            }
            Value::Array(_, items) => {
                let mut i = 0;
                items.retain_mut(|inner| {
                    let bad = walk(format!("{key}[{i}]"), inner, found);
                    i += 1;
                    !bad
                });
                false
            }
            _ => false,
        }
    }
    let Some(Value::Dict(_, methods)) = merged.get_mut("method") else {
        return;
    };
    let mut found = Vec::new();
    methods.retain(|name, value| !walk(format!("method.{name}"), value, &mut found));
    for (key, x) in found {
        issues.push(ConfigIssue {
            source: source_of(figment, &key),
            message: format!("{x} is not a finite number"),
            key: Some(key),
        });
    }
}

/// The names an enum's deserialiser accepts (its serde variants, as written in a file):
/// `Deserialize::deserialize` is run against a deserialiser that only records the variant list
/// serde hands to `deserialize_enum`.
pub(crate) fn enum_variants<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{Error as _, Visitor, value::Error};
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Probe<'_> {
        type Error = Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
            Err(Error::custom("not an enum"))
        }
        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _name: &'static str,
            variants: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Error> {
            *self.0 = variants;
            Err(Error::custom("probed"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier
            ignored_any
        }
    }
    let mut variants: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut variants));
    variants
}

/// The keys that hold one of a fixed set of names, with those names.
fn enum_keys() -> [(&'static str, &'static [&'static str]); 7] {
    [
        (
            "schedule.kind",
            enum_variants::<super::schema::ScheduleKind>(),
        ),
        ("data.format", enum_variants::<crate::data::DataFormat>()),
        ("data.preset", enum_variants::<crate::data::Preset>()),
        (
            "data.normalisation",
            enum_variants::<crate::data::Normalisation>(),
        ),
        (
            "data.augment.pad_mode",
            enum_variants::<crate::data::PadMode>(),
        ),
        (
            "data.augment.rotation_interpolation",
            enum_variants::<crate::data::Interpolation>(),
        ),
        (
            "run.backend",
            enum_variants::<crate::backend::BackendKind>(),
        ),
    ]
}

/// The names allowed at `key` if it holds one of a fixed set: a key of [`enum_keys`], or
/// `networks.<role>.trained_on` (a preset) under any role.
fn enum_allowed(key: &str) -> Option<&'static [&'static str]> {
    if let Some((_, allowed)) = enum_keys().into_iter().find(|(name, _)| *name == key) {
        return Some(allowed);
    }
    let role_key = key.strip_prefix("networks.")?.rsplit_once('.')?.1;
    (role_key == "trained_on").then(enum_variants::<crate::data::Preset>)
}

/// The message for a bad value at an enum key: the names allowed there and, when given, what
/// was found.
fn enum_message(allowed: &[&str], found: Option<&str>) -> String {
    let names = allowed
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match found {
        Some(found) => format!("must be one of {names}; found {found}"),
        None => format!("must be one of {names}"),
    }
}

/// An unknown key, with the closest known one when it is a likely typo and the known ones.
pub(crate) fn unknown_key_message(found: &str, expected: &[&str]) -> String {
    if expected.is_empty() {
        return format!("unknown field `{found}`: this table takes no keys");
    }
    let closest = super::did_you_mean(found, expected);
    let known = expected
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("unknown field `{found}`{closest}; known keys here: {known}")
}

/// The issues of one figment error: its key rendered against `merged`, its source looked up
/// in the original `figment` (or, for the first pass, taken from the error's metadata).
fn issues_of(
    figment: &Figment,
    merged: &Dict,
    error: figment::Error,
    first_pass: bool,
) -> Vec<(Vec<String>, ConfigIssue)> {
    error
        .into_iter()
        .map(|e| {
            // figment's path already ends with an unknown field's name.
            let key = (!e.path.is_empty()).then(|| display_key(merged, &e.path));
            let source = key
                .as_deref()
                .and_then(|k| source_of(figment, k))
                .or_else(|| {
                    let metadata = e.metadata.as_ref().filter(|_| first_pass)?;
                    Some(describe_source(
                        figment,
                        metadata,
                        owning_key(key.as_deref().unwrap_or("")),
                    ))
                });
            let allowed = key.as_deref().and_then(enum_allowed);
            let message = match (&e.kind, allowed) {
                (figment::error::Kind::UnknownField(found, expected), _) => {
                    unknown_key_message(found, expected)
                }
                (figment::error::Kind::InvalidType(actual, _), Some(allowed)) => {
                    enum_message(allowed, Some(&actual.to_string()))
                }
                // An enum key not listed (or one under a table of the user's naming) still
                // gets serde's list of names, in the same words.
                (figment::error::Kind::UnknownVariant(found, expected), allowed) => {
                    let allowed = allowed.unwrap_or(expected);
                    format!(
                        "unknown variant `{found}`{}: {}",
                        super::did_you_mean(found, allowed),
                        enum_message(allowed, None)
                    )
                }
                (kind, _) => kind.to_string(),
            };
            let issue = ConfigIssue {
                key,
                source,
                message,
            };
            (e.path.clone(), issue)
        })
        .collect()
}

/// The typed configuration, or every problem found in it.
pub(super) fn extract_all(figment: &Figment) -> Result<RunConfig, Vec<ConfigIssue>> {
    let mut merged: Dict = match figment.extract() {
        Ok(dict) => dict,
        // A provider failed (nothing to retry on): report what figment says.
        Err(error) => {
            let empty = Dict::new();
            return Err(issues_of(figment, &empty, error, true)
                .into_iter()
                .map(|(_, issue)| issue)
                .collect());
        }
    };
    let mut issues = Vec::new();
    non_finite_in_methods(figment, &mut merged, &mut issues);
    if issues.is_empty() {
        match figment.extract::<RunConfig>() {
            Ok(config) => return Ok(config),
            Err(error) => {
                for (path, issue) in issues_of(figment, &merged, error, true) {
                    issues.push(issue);
                    remove(&mut merged, &path);
                }
            }
        }
    }
    while issues.len() < MAX_ERRORS {
        let retry = Figment::from(Serialized::defaults(&merged));
        let Err(error) = retry.extract::<RunConfig>() else {
            break;
        };
        let mut removed = false;
        for (path, issue) in issues_of(figment, &merged, error, false) {
            issues.push(issue);
            removed |= remove(&mut merged, &path);
        }
        if !removed {
            break;
        }
    }
    Err(issues)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    fn merged(toml: &str) -> Dict {
        Figment::from(figment::providers::Serialized::defaults(
            toml.parse::<toml::Table>().unwrap(),
        ))
        .extract()
        .unwrap()
    }

    #[test]
    fn array_indices_render_as_brackets_and_dict_keys_as_dots() {
        let dict = merged("[data]\nmean = [0.5, 0.2]\n[method.x]\nw = [[1, 2], [3]]\n\"3\" = 1\n");
        assert_eq!(
            display_key(&dict, &path(&["data", "mean", "1"])),
            "data.mean[1]"
        );
        assert_eq!(
            display_key(&dict, &path(&["method", "x", "w", "0", "1"])),
            "method.x.w[0][1]"
        );
        // A table key that looks like a number stays a key.
        assert_eq!(
            display_key(&dict, &path(&["method", "x", "3"])),
            "method.x.3"
        );
        // A key that is not in the value (an unknown field) is still rendered.
        assert_eq!(display_key(&dict, &path(&["optim", "lrr"])), "optim.lrr");
        assert_eq!(owning_key("data.mean[1]"), "data.mean");
        assert_eq!(owning_key("method.x.w[0][1]"), "method.x.w");
        assert_eq!(owning_key("optim.lr"), "optim.lr");
    }

    #[test]
    fn an_unknown_key_suggests_a_close_one() {
        assert_eq!(
            unknown_key_message("momentun", &["lr", "momentum"]),
            "unknown field `momentun` (did you mean `momentum`?); known keys here: `lr`, `momentum`"
        );
        assert_eq!(
            unknown_key_message("speed", &["lr"]),
            "unknown field `speed`; known keys here: `lr`"
        );
        assert_eq!(
            unknown_key_message("x", &[]),
            "unknown field `x`: this table takes no keys"
        );
    }

    #[test]
    fn enum_keys_list_their_names() {
        assert_eq!(
            enum_variants::<crate::config::ScheduleKind>(),
            ["multistep", "cosine", "constant"]
        );
        assert!(enum_variants::<crate::data::DataFormat>().contains(&"idx"));
        assert!(enum_variants::<crate::data::Preset>().contains(&"mnist"));
        assert!(enum_variants::<crate::backend::BackendKind>().contains(&"flex"));
        assert_eq!(
            enum_message(&["a", "b"], Some("unsigned int `3`")),
            "must be one of `a`, `b`; found unsigned int `3`"
        );
    }

    #[test]
    fn removing_a_path_drops_the_key_or_the_whole_array() {
        let mut dict = merged("[data]\nmean = [0.5, 0.2]\nstd = [1.0]\n[optim]\nlr = 1\n");
        assert!(remove(&mut dict, &path(&["data", "mean", "1"])));
        assert!(remove(&mut dict, &path(&["optim", "lr"])));
        assert!(!remove(&mut dict, &path(&["optim", "lr"])), "already gone");
        assert!(!remove(&mut dict, &path(&[])));
        let data = dict["data"].as_dict().unwrap();
        assert!(!data.contains_key("mean") && data.contains_key("std"));
        assert!(dict["optim"].as_dict().unwrap().is_empty());
    }
}

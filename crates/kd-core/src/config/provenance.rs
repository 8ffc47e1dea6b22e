//! Which source set each key of a resolved configuration.
//!
//! `kd print-config` prints this, and every run writes it beside its resolved config, so a
//! number in a results table can be traced to the file, variable or flag that chose it.

use figment::value::{Dict, Value};
use serde::Serialize;

use super::load::{LoadedConfig, source_of};

/// One leaf of the resolved configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Provenance {
    /// Full dotted key.
    pub key: String,
    /// The value, as JSON.
    pub value: serde_json::Value,
    /// Where it came from.
    pub source: String,
}

fn walk(prefix: &str, dict: &Dict, out: &mut Vec<(String, Value)>) {
    for (name, value) in dict {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match value {
            Value::Dict(_, inner) if !inner.is_empty() => walk(&key, inner, out),
            other => out.push((key, other.clone())),
        }
    }
}

impl LoadedConfig {
    /// Every leaf key in sorted order with its figment value and source.
    fn leaves(&self) -> Vec<(String, Value, String)> {
        let mut leaves = Vec::new();
        if let Ok(dict) = self.figment.extract::<Dict>() {
            walk("", &dict, &mut leaves);
        }
        leaves
            .into_iter()
            .map(|(key, value)| {
                let source = source_of(&self.figment, &key).unwrap_or_else(|| "unknown".into());
                (key, value, source)
            })
            .collect()
    }

    /// Every leaf key in sorted order with its value and source. JSON has no NaN or infinity:
    /// such a value is `null` here (the TOML listing keeps it).
    pub fn provenance(&self) -> Vec<Provenance> {
        self.leaves()
            .into_iter()
            .map(|(key, value, source)| Provenance {
                value: value
                    .deserialize::<serde_json::Value>()
                    .unwrap_or(serde_json::Value::Null),
                key,
                source,
            })
            .collect()
    }

    /// The provenance as TOML with dotted keys, each line commented with its source. Values
    /// are written as TOML writes them, so `nan` and `inf` stay what the user set.
    pub fn provenance_toml(&self) -> String {
        let rows: Vec<(String, String)> = self
            .leaves()
            .into_iter()
            .map(|(key, value, source)| {
                let value = toml::Value::try_from(&value)
                    .map(|v| v.to_string())
                    .unwrap_or_else(|_| {
                        value
                            .deserialize::<serde_json::Value>()
                            .map(|v| v.to_string())
                            .unwrap_or_else(|_| "?".into())
                    });
                (format!("{} = {value}", quote_key(&key)), source)
            })
            .collect();
        let width = rows
            .iter()
            .map(|(line, _)| line.len())
            .max()
            .unwrap_or(0)
            .min(60);
        let mut out = String::from(
            "# Resolved configuration; each key is followed by the source that set it.\n",
        );
        for (line, source) in rows {
            out.push_str(&format!("{line:width$}  # {source}\n"));
        }
        out
    }
}

/// Quotes the parts of a dotted key that TOML would not accept bare.
fn quote_key(key: &str) -> String {
    key.split('.')
        .map(|part| {
            if !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                part.to_string()
            } else {
                format!("{part:?}")
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

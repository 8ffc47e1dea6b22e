//! Turning a `[method.<instance>]` table into a plugin's typed configuration, with errors that
//! name the full key and its source like every other configuration error.

use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;

use crate::config::{ConfigError, ConfigIssue, f32_problem};

/// What a plugin's builder receives.
pub struct MethodArgs<'a> {
    /// Instance name (the key under `method`).
    pub instance: &'a str,
    /// The instance's own keys (everything but `kind` and `weight`).
    pub params: serde_json::Value,
    /// Where a full key was set (file, variable, `--set`), for messages.
    pub source_of: &'a dyn Fn(&str) -> Option<String>,
}

impl MethodArgs<'_> {
    /// The full key of one of the instance's keys: `method.<instance>.<key>`.
    pub fn key(&self, key: &str) -> String {
        if key.starts_with('[') {
            format!("method.{}{key}", self.instance)
        } else {
            format!("method.{}.{key}", self.instance)
        }
    }

    /// An issue about one of the instance's keys.
    pub fn issue(&self, key: &str, message: impl Into<String>) -> ConfigIssue {
        let full = self.key(key);
        let source = (self.source_of)(&full).or_else(|| (self.source_of)(&self.key("kind")));
        ConfigIssue {
            key: Some(full),
            source,
            message: message.into(),
        }
    }

    /// The issue on `teacher` when a teacher-student method names one role for both.
    pub fn same_role_issue(&self, teacher: &str, student: &str) -> Option<ConfigIssue> {
        (teacher == student).then(|| {
            self.issue(
                "teacher",
                "the teacher and the student must be different roles",
            )
        })
    }

    /// The issues on `peers` of a method that trains peers together (`what`: "mutual
    /// learning", say): fewer than two, or one named twice.
    pub fn peer_issues(&self, peers: &[String], what: &str) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if peers.len() < 2 {
            issues.push(self.issue(
                "peers",
                format!("{what} needs at least two peers, got {}", peers.len()),
            ));
        }
        let mut sorted = peers.to_vec();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != peers.len() {
            issues.push(self.issue("peers", "a peer is named twice"));
        }
        issues
    }

    /// `Ok` when none of `checks` found a problem, else every problem found (for
    /// `args.check([args.positive("temperature", t), args.same_role_issue(&t, &s)])?`).
    ///
    /// # Errors
    /// A [`ConfigError`] with one issue per failed check.
    pub fn check(
        &self,
        checks: impl IntoIterator<Item = Option<ConfigIssue>>,
    ) -> Result<(), ConfigError> {
        let issues: Vec<ConfigIssue> = checks.into_iter().flatten().collect();
        if issues.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { issues })
        }
    }

    /// The issue on `key` unless `value` is a finite number above zero that stays finite and
    /// non-zero in f32 (training computes in f32: a temperature of 1e-300 would be 0 there).
    pub fn positive(&self, key: &str, value: f64) -> Option<ConfigIssue> {
        if !(value.is_finite() && value > 0.0) {
            return Some(self.issue(key, "must be a positive number"));
        }
        f32_problem(value, true).map(|message| self.issue(key, message))
    }

    /// The issue on `key` unless `value` is a finite number of at least zero that stays finite
    /// in f32.
    pub fn non_negative(&self, key: &str, value: f64) -> Option<ConfigIssue> {
        if !(value.is_finite() && value >= 0.0) {
            return Some(self.issue(key, "must be a non-negative number"));
        }
        f32_problem(value, false).map(|message| self.issue(key, message))
    }

    /// The issue on `key` unless `value` is a finite number with `low ≤ value ≤ high` (NaN
    /// and infinities fail even when a bound is infinite) that stays finite in f32.
    pub fn in_range(&self, key: &str, value: f64, low: f64, high: f64) -> Option<ConfigIssue> {
        if !(value.is_finite() && (low..=high).contains(&value)) {
            return Some(self.issue(key, format!("must be between {low} and {high}")));
        }
        f32_problem(value, false).map(|message| self.issue(key, message))
    }

    /// Deserialises the instance's keys into `T` (which should deny unknown fields), reporting
    /// every offending key with its full path: on each error the key is recorded and removed
    /// (so its default applies) and the rest of the table parsed again, up to a bound.
    ///
    /// # Errors
    /// A [`ConfigError`] with one issue per unknown key or wrong type (`method.m.weights[1]`
    /// for an array element).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        const MAX_ERRORS: usize = 100;
        let mut params = self.params.clone();
        let mut issues = Vec::new();
        while issues.len() < MAX_ERRORS {
            let result: Result<T, _> = serde_path_to_error::deserialize(&params);
            let error = match result {
                Ok(parsed) if issues.is_empty() => return Ok(parsed),
                Ok(_) => break,
                Err(error) => error,
            };
            let segments: Vec<&Segment> = error.path().iter().collect();
            let message = with_suggestion(error.inner().to_string());
            let mut key = render(&segments);
            // serde reports a missing field at the table that lacks it: name the field.
            if let Some(field) = message
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split('`').next())
            {
                key = if key.is_empty() {
                    field.to_string()
                } else {
                    format!("{key}.{field}")
                };
            }
            issues.push(if key.is_empty() {
                // The table as a whole.
                ConfigIssue {
                    key: Some(format!("method.{}", self.instance)),
                    source: (self.source_of)(&self.key("kind")),
                    message,
                }
            } else {
                self.issue(&key, message)
            });
            if !remove(&mut params, &segments) {
                break;
            }
        }
        Err(ConfigError { issues })
    }
}

/// serde's `unknown field `x`, expected one of `a`, `b`` in the words of the other unknown-key
/// messages, with the closest known key when it is a likely typo; the known keys include the
/// `kind` and `weight` every instance has.
fn with_suggestion(message: String) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message;
    };
    let Some((found, expected)) = rest.split_once('`') else {
        return message;
    };
    let mut known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    // `kind` and `weight` are every instance's keys, taken off before the plugin parses.
    known.extend(["kind", "weight"]);
    crate::config::unknown_key_message(found, &known)
}

/// A serde path as the user writes the key: `weights[1].scale`.
fn render(segments: &[&Segment]) -> String {
    let mut key = String::new();
    for segment in segments {
        match segment {
            Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            Segment::Map { key: name } | Segment::Enum { variant: name } => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(name);
            }
            Segment::Unknown => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push('?');
            }
        }
    }
    key
}

/// Removes the value at `segments` from a table (an array as a whole when the path points
/// inside one). Returns whether anything was removed.
fn remove(value: &mut serde_json::Value, segments: &[&Segment]) -> bool {
    let Some((Segment::Map { key }, rest)) = segments.split_first() else {
        return false;
    };
    let Some(object) = value.as_object_mut() else {
        return false;
    };
    match object.get_mut(key.as_str()) {
        Some(inner @ serde_json::Value::Object(_))
            if matches!(rest.first(), Some(Segment::Map { .. })) =>
        {
            remove(inner, rest)
        }
        Some(_) => object.remove(key.as_str()).is_some(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(source_of: &dyn Fn(&str) -> Option<String>) -> MethodArgs<'_> {
        MethodArgs {
            instance: "m",
            params: serde_json::Value::Null,
            source_of,
        }
    }

    #[test]
    fn one_role_for_teacher_and_student_is_an_issue_on_teacher() {
        let none = |_: &str| None;
        let args = args(&none);
        assert!(args.same_role_issue("teacher", "student").is_none());
        let issue = args.same_role_issue("student", "student").unwrap();
        assert_eq!(issue.key.as_deref(), Some("method.m.teacher"));
        assert!(issue.message.contains("different roles"));
    }

    #[test]
    fn range_checks_name_the_key_and_collect_every_problem() {
        let none = |_: &str| None;
        let args = args(&none);
        assert!(args.positive("t", 4.0).is_none());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let issue = args.positive("t", bad).unwrap();
            assert_eq!(issue.key.as_deref(), Some("method.m.t"));
            assert_eq!(issue.message, "must be a positive number");
        }
        assert!(args.non_negative("w", 0.0).is_none());
        assert!(args.non_negative("w", -0.1).is_some());
        assert!(args.in_range("p", 0.5, 0.0, 1.0).is_none());
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(args.non_negative("w", bad).is_some(), "{bad}");
            assert!(args.in_range("p", bad, 0.0, 1.0).is_some(), "{bad}");
            assert!(
                args.in_range("p", bad, f64::NEG_INFINITY, f64::INFINITY)
                    .is_some(),
                "{bad} with unbounded range"
            );
        }
        assert_eq!(
            args.in_range("p", 1.5, 0.0, 1.0).unwrap().message,
            "must be between 0 and 1"
        );
        assert!(args.check([None, None]).is_ok());
        let err = args
            .check([args.positive("a", 0.0), None, args.non_negative("b", -1.0)])
            .unwrap_err();
        let keys: Vec<_> = err.issues.iter().map(|i| i.key.clone().unwrap()).collect();
        assert_eq!(keys, ["method.m.a", "method.m.b"]);
    }

    #[test]
    fn range_checks_require_values_that_survive_f32() {
        let none = |_: &str| None;
        let args = args(&none);
        let tiny = args.positive("temperature", 1e-300).unwrap();
        assert_eq!(tiny.key.as_deref(), Some("method.m.temperature"));
        assert!(
            tiny.message
                .starts_with("1e-300 is below f32's smallest positive value"),
            "{}",
            tiny.message
        );
        let huge = args.non_negative("weight", 1e300).unwrap();
        assert!(
            huge.message
                .starts_with("1e300 exceeds f32's largest value"),
            "{}",
            huge.message
        );
        assert!(args.in_range("p", 1e39, 0.0, f64::INFINITY).is_some());
        assert!(args.in_range("p", -1e39, f64::NEG_INFINITY, 0.0).is_some());
        // Zero is allowed where zero is; tiny non-zero values are only refused where zero is not.
        assert!(args.non_negative("w", 0.0).is_none());
        assert!(args.non_negative("w", 1e-300).is_none());
        assert!(args.positive("t", 1e-30).is_none());
        assert!(args.positive("t", 3e38).is_none());
        assert_eq!(f32_problem(1e-46, false), None);
        assert!(f32_problem(1e-46, true).is_some());
    }

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Table {
        temperature: f64,
        weights: Vec<f64>,
        teacher: String,
    }

    #[test]
    fn parse_reports_every_bad_key_with_its_full_path() {
        let none = |_: &str| None;
        let mut args = args(&none);
        args.params = serde_json::json!({
            "temperature": "hot",
            "weights": [1.0, "x"],
            "teachr": "t",
            "teacher": 3,
        });
        let err = args.parse::<Table>().unwrap_err();
        let mut keys: Vec<_> = err.issues.iter().map(|i| i.key.clone().unwrap()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "method.m.teacher",
                "method.m.teachr",
                "method.m.temperature",
                "method.m.weights[1]"
            ],
            "{err}"
        );
        let typo = err
            .issues
            .iter()
            .find(|i| i.key.as_deref() == Some("method.m.teachr"));
        assert_eq!(
            typo.unwrap().message,
            "unknown field `teachr` (did you mean `teacher`?); known keys here: `temperature`, \
             `weights`, `teacher`, `kind`, `weight`",
            "{err}"
        );
        args.params = serde_json::json!({ "temperature": 2.0 });
        assert_eq!(args.parse::<Table>().unwrap().temperature, 2.0);
    }

    #[test]
    fn parse_names_a_missing_field_and_a_table_of_the_wrong_shape() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Required {
            teacher: String,
        }
        let none = |_: &str| None;
        let mut args = args(&none);
        args.params = serde_json::json!({});
        let err = args.parse::<Required>().unwrap_err();
        assert_eq!(err.issues.len(), 1, "{err}");
        assert_eq!(err.issues[0].key.as_deref(), Some("method.m.teacher"));
        assert_eq!(err.issues[0].message, "missing field `teacher`");
        args.params = serde_json::json!("text");
        let err = args.parse::<Table>().unwrap_err();
        assert_eq!(err.issues[0].key.as_deref(), Some("method.m"), "{err}");
        assert_eq!(args.key("[1]"), "method.m[1]");
    }

    #[test]
    fn peers_need_two_distinct_names() {
        let none = |_: &str| None;
        let args = args(&none);
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(args.peer_issues(&names(&["a", "b"]), "x").is_empty());
        let one = args.peer_issues(&names(&["a"]), "mutual learning");
        assert_eq!(one.len(), 1);
        assert_eq!(
            one[0].message,
            "mutual learning needs at least two peers, got 1"
        );
        let twice = args.peer_issues(&names(&["a", "b", "a"]), "x");
        assert_eq!(twice.len(), 1);
        assert_eq!(twice[0].message, "a peer is named twice");
        assert_eq!(args.peer_issues(&names(&["a", "a"]), "x").len(), 1);
        assert_eq!(
            args.peer_issues(&[], "x")[0].key.as_deref(),
            Some("method.m.peers")
        );
    }
}

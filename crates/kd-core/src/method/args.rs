//! Turning a `[method.<instance>]` table into a plugin's typed configuration, with errors that
//! name the full key and its source like every other configuration error.

use serde::de::DeserializeOwned;

use crate::config::{ConfigError, ConfigIssue};

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
        format!("method.{}.{key}", self.instance)
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

    /// The issue on `key` unless `value` is a finite number above zero.
    pub fn positive(&self, key: &str, value: f64) -> Option<ConfigIssue> {
        (!(value.is_finite() && value > 0.0)).then(|| self.issue(key, "must be a positive number"))
    }

    /// The issue on `key` unless `value` is a finite number of at least zero.
    pub fn non_negative(&self, key: &str, value: f64) -> Option<ConfigIssue> {
        (!(value.is_finite() && value >= 0.0))
            .then(|| self.issue(key, "must be a non-negative number"))
    }

    /// The issue on `key` unless `low ≤ value ≤ high`.
    pub fn in_range(&self, key: &str, value: f64, low: f64, high: f64) -> Option<ConfigIssue> {
        (!(low..=high).contains(&value))
            .then(|| self.issue(key, format!("must be between {low} and {high}")))
    }

    /// Deserialises the instance's keys into `T` (which should deny unknown fields), reporting
    /// the full path of the first offending key.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        let result: Result<T, _> = serde_path_to_error::deserialize(&self.params);
        result.map_err(|error| {
            // The path ends with the offending key, unknown fields included.
            let path = error.path().to_string();
            let message = error.inner().to_string();
            let key = if path == "." {
                "kind".to_string()
            } else {
                path
            };
            ConfigError {
                issues: vec![self.issue(&key, message)],
            }
        })
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

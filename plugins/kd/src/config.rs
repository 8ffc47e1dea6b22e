//! The keys of a `kd` instance, with RepDistiller's defaults.

use serde::{Deserialize, Serialize};

/// `[method.<instance>]` of kind `kd`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KdConfig {
    /// Role of the teacher.
    pub teacher: String,
    /// Role of the student.
    pub student: String,
    /// Softmax temperature `T`.
    pub temperature: f64,
}

impl Default for KdConfig {
    fn default() -> Self {
        KdConfig {
            teacher: "teacher".into(),
            student: "student".into(),
            temperature: 4.0,
        }
    }
}

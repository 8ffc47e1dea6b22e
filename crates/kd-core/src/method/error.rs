//! The error a method reports at run time.

/// Errors a method reports at run time.
#[derive(Debug, thiserror::Error)]
pub enum MethodError {
    /// The method asked for a role or tap the runtime does not have (a plan bug).
    #[error("{0}")]
    Missing(String),
    /// The method returned a term it does not declare for the phase (its metrics column would
    /// be missing).
    #[error(
        "returned term `{term}` in phase `{phase}`, which its needs() does not declare (declared \
         for this phase: {declared})"
    )]
    UndeclaredTerm {
        /// The term's name.
        term: String,
        /// The phase.
        phase: String,
        /// The names declared for the phase, comma-separated (or `none`).
        declared: String,
    },
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

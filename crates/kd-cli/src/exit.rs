//! How a failed command ends: the message on stderr, and status 2 for errors the user can fix
//! (configuration, data, plan, checkpoints, flags) or 1 for everything else (a failed run).

use std::process::ExitCode;

use kd_core::config::ConfigError;
use kd_core::data::DataError;
use kd_core::method::RegistryError;
use kd_core::runtime::TrainError;

/// An error in what the user asked for, outside the library's error types (a bad flag value).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Whether the error is the user's to fix.
pub fn is_user_error(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.is::<ConfigError>()
            || cause.is::<DataError>()
            || cause.is::<RegistryError>()
            || cause.is::<UsageError>()
            || cause.is::<kd_core::dynamic::PluginError>()
            || cause.is::<kd_core::import::ImportError>()
            || cause.is::<kd_core::runtime::compare::CompareError>()
            || cause
                .downcast_ref::<kd_core::export::ExportError>()
                .is_some_and(kd_core::export::ExportError::is_user_error)
            || cause
                .downcast_ref::<TrainError>()
                .is_some_and(TrainError::is_user_error)
    })
}

/// Prints the error chain and picks the exit status. A closed stdout (`kd models | head`) is not
/// an error.
pub fn report(error: &anyhow::Error) -> ExitCode {
    let broken_pipe = error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    let mut message = format!("error: {error}");
    let mut shown = error.to_string();
    for cause in error.chain().skip(1) {
        // Errors that print their source in their own message (`{path}: {source}`) would
        // otherwise say it twice.
        let text = cause.to_string();
        if !shown.contains(&text) {
            message.push_str(&format!("\n  caused by: {text}"));
        }
        shown = text;
    }
    eprintln!("{message}");
    if is_user_error(error) {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}

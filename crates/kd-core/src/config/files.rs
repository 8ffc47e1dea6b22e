//! The configuration files of a run: the experiment file and `configs/base.toml`, each after
//! the files it names in `include` (depth first, paths relative to the including file), read
//! and parsed once by the loader (`load.rs`).
//!
//! Every file that cannot be used becomes a [`ConfigIssue`] naming it: a path that does not
//! exist or is a directory (named by its absolute path), an empty `include` entry, a file that
//! cannot be read, a TOML syntax error (with line, column
//! and byte offset), an include cycle. A file with a syntax error is left out, so the problems
//! of the other files and sources are still found and reported in the same run.

use std::path::{Path, PathBuf};

use figment::value::{Dict, Map};
use figment::{Metadata, Profile, Provider, Source};

use super::error::ConfigIssue;
use super::load::display_path;

/// One parsed configuration file, merged as a figment layer that names the file.
pub(super) struct TomlFile {
    path: PathBuf,
    table: toml::Table,
}

impl Provider for TomlFile {
    fn metadata(&self) -> Metadata {
        Metadata::from("TOML file", Source::File(self.path.clone()))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        figment::providers::Serialized::defaults(&self.table).data()
    }
}

/// Why `path` cannot be used as a configuration file, if it cannot.
pub(super) fn unusable(path: &Path) -> Option<&'static str> {
    if path.is_dir() {
        Some("is a directory, not a configuration file")
    } else if !path.exists() {
        Some("not found")
    } else {
        None
    }
}

/// A path as an include message names it: relative to the working directory where it is inside
/// it, but the working directory itself (which that would shorten to `.`) by its full path.
fn resolved(path: &Path) -> String {
    match display_path(path) {
        shown if shown == "." => std::fs::canonicalize(path)
            .or_else(|_| std::path::absolute(path))
            .map_or(shown, |full| full.display().to_string()),
        shown => shown,
    }
}

/// An issue about a whole file.
fn file_issue(path: &Path, key: Option<&str>, message: impl Into<String>) -> ConfigIssue {
    ConfigIssue {
        key: key.map(str::to_string),
        source: Some(format!("file {}", display_path(path))),
        message: message.into(),
    }
}

/// A TOML syntax error as one line: where it is (line, column, byte offset) and what is wrong.
fn syntax_message(text: &str, error: &toml::de::Error) -> String {
    let what = error
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    match error.span() {
        Some(span) => {
            let offset = span.start.min(text.len());
            let before = &text[..offset];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            format!("TOML syntax error at line {line}, column {column} (byte {offset}): {what}")
        }
        None => format!("TOML syntax error: {what}"),
    }
}

/// Reads and parses one file; `None` (with an issue) when it cannot be used.
fn read(path: &Path, issues: &mut Vec<ConfigIssue>) -> Option<toml::Table> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            issues.push(file_issue(path, None, format!("cannot be read: {e}")));
            return None;
        }
    };
    match text.parse::<toml::Table>() {
        Ok(table) => Some(table),
        Err(e) => {
            issues.push(file_issue(path, None, syntax_message(&text, &e)));
            None
        }
    }
}

/// The layers of `roots` in merge order: each root after its includes, each file once.
pub(super) fn layers(roots: &[PathBuf], issues: &mut Vec<ConfigIssue>) -> Vec<TomlFile> {
    let mut walk = Walk {
        stack: Vec::new(),
        done: Vec::new(),
        out: Vec::new(),
        issues,
    };
    for root in roots {
        walk.expand(root);
    }
    walk.out
}

/// The depth-first walk over includes. Files are identified by their canonical path, so
/// `a.toml`, `./a.toml` and `x/../a.toml` are one file (and a cycle through them is found).
struct Walk<'a> {
    stack: Vec<PathBuf>,
    done: Vec<PathBuf>,
    out: Vec<TomlFile>,
    issues: &'a mut Vec<ConfigIssue>,
}

impl Walk<'_> {
    /// Appends `file`'s includes (depth first, in order) and then `file` itself.
    fn expand(&mut self, file: &Path) {
        let identity = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
        if self.stack.contains(&identity) {
            self.issues
                .push(file_issue(file, Some("include"), "include cycle"));
            return;
        }
        if self.done.contains(&identity) {
            return;
        }
        let Some(table) = read(file, self.issues) else {
            self.done.push(identity);
            return;
        };
        // A malformed `include` is reported with the other type errors when the whole
        // configuration is extracted; here only well-formed lists are followed.
        let includes: Vec<String> = table
            .get("include")
            .cloned()
            .and_then(|value| value.try_into().ok())
            .unwrap_or_default();
        self.stack.push(identity.clone());
        let dir = file.parent().unwrap_or(Path::new("."));
        for include in includes {
            if include.trim().is_empty() {
                self.issues.push(file_issue(
                    file,
                    Some("include"),
                    format!("entry `{include}` is empty: it names no file"),
                ));
                continue;
            }
            let path = dir.join(&include);
            match unusable(&path) {
                None => self.expand(&path),
                Some(why) => self.issues.push(file_issue(
                    file,
                    Some("include"),
                    format!("included file {}: {why}", resolved(&path)),
                )),
            }
        }
        self.stack.pop();
        self.done.push(identity);
        self.out.push(TomlFile {
            path: file.to_path_buf(),
            table,
        });
    }
}

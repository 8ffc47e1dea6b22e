//! The list of methods kd ships, `crates/kd-plugins`, read and extended as text: xtask has no
//! burn dependency, so it cannot link the list and parses it instead.
//!
//! `manifest::builtin_kinds` (used by `new-method` and `build-dynamic`) reads the entries of the
//! `shipped!` block in `crates/kd-plugins/src/lib.rs`. `new-method --in-tree` registers a new
//! method by adding three lines, each in sorted order within its block: the
//! `[workspace.dependencies]` entry in the root `Cargo.toml`, the dependency line in
//! `crates/kd-plugins/Cargo.toml`, and the entry in the `shipped!` block. A file whose shape it
//! does not recognise is bad input naming the file and the line to add by hand; nothing is
//! written then.

use std::path::Path;

use anyhow::Context;

use crate::BadInput;

/// kd's root manifest, relative to the repository root.
pub const ROOT_MANIFEST: &str = "Cargo.toml";
/// kd-plugins' manifest.
pub const LIST_MANIFEST: &str = "crates/kd-plugins/Cargo.toml";
/// The source holding the `shipped!` block.
pub const LIST: &str = "crates/kd-plugins/src/lib.rs";

/// One entry of the list: `kd_method_x => "x",`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The crate as Rust code names it.
    pub lib: String,
    /// The kind it registers.
    pub kind: String,
}

/// The three files that register the shipped methods, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    /// [`ROOT_MANIFEST`].
    pub root_manifest: String,
    /// [`LIST_MANIFEST`].
    pub list_manifest: String,
    /// [`LIST`].
    pub list: String,
}

impl Files {
    /// Reads the three files of the repository at `repo`.
    pub fn read(repo: &Path) -> anyhow::Result<Files> {
        let read = |file: &str| {
            std::fs::read_to_string(repo.join(file))
                .with_context(|| format!("reading {}", repo.join(file).display()))
        };
        Ok(Files {
            root_manifest: read(ROOT_MANIFEST)?,
            list_manifest: read(LIST_MANIFEST)?,
            list: read(LIST)?,
        })
    }

    /// Writes the three files into the repository at `repo`.
    pub fn write(&self, repo: &Path) -> anyhow::Result<()> {
        for (file, text) in [
            (ROOT_MANIFEST, &self.root_manifest),
            (LIST_MANIFEST, &self.list_manifest),
            (LIST, &self.list),
        ] {
            std::fs::write(repo.join(file), text)
                .with_context(|| format!("writing {}", repo.join(file).display()))?;
        }
        Ok(())
    }

    /// The files with the method of kind `kind` (crate `kd-method-<kind>` in `plugins/<kind>`)
    /// added: one line each.
    pub fn register(&self, kind: &str) -> Result<Files, BadInput> {
        let package = format!("kd-method-{kind}");
        let lib = package.replace('-', "_");
        let entries = entries(&self.list)?;
        let indent = self
            .list
            .lines()
            .find(|l| parse_entry(l).is_some())
            .map(|l| &l[..l.len() - l.trim_start().len()])
            .unwrap_or("    ");
        let list = insert(
            &self.list,
            LIST,
            "`shipped!` entry",
            |l| parse_entry(l).map(|e| e.kind),
            kind,
            &format!("{indent}{lib} => \"{kind}\","),
        )?;
        let list_manifest = insert(
            &self.list_manifest,
            LIST_MANIFEST,
            "`kd-method-….workspace = true`",
            |l| {
                l.strip_suffix(".workspace = true")
                    .and_then(|name| name.strip_prefix("kd-method-"))
                    .map(str::to_string)
            },
            kind,
            &format!("{package}.workspace = true"),
        )?;
        let root_manifest = insert(
            &self.root_manifest,
            ROOT_MANIFEST,
            "`kd-method-… = { path = \"plugins/…\", … }`",
            |l| {
                let (name, rest) = l.split_once(" = ")?;
                let kind = name.strip_prefix("kd-method-")?;
                rest.contains(&format!("path = \"plugins/{kind}\""))
                    .then(|| kind.to_string())
            },
            kind,
            &format!(
                "{package} = {{ path = \"plugins/{kind}\", version = \"{}\" }}",
                workspace_version(&self.root_manifest)
            ),
        )?;
        let added = Files {
            root_manifest,
            list_manifest,
            list,
        };
        // What was written must read back: the list with one more entry, manifests that parse.
        let expected = entries.len() + 1;
        let found = crate::shipped::entries(&added.list)?;
        let parsed = [
            (ROOT_MANIFEST, &added.root_manifest),
            (LIST_MANIFEST, &added.list_manifest),
        ]
        .into_iter()
        .find_map(|(file, text)| text.parse::<toml::Table>().err().map(|e| (file, e)));
        if found.len() != expected || !found.iter().any(|e| e.kind == kind) {
            return Err(unrecognised(LIST, "the edited list does not read back"));
        }
        if let Some((file, e)) = parsed {
            return Err(unrecognised(file, &format!("the edit broke the TOML: {e}")));
        }
        Ok(added)
    }
}

/// The kinds kd ships, in the list's order, read from the repository at `repo`.
pub fn kinds(repo: &Path) -> anyhow::Result<Vec<String>> {
    let list = std::fs::read_to_string(repo.join(LIST))
        .with_context(|| format!("reading {}", repo.join(LIST).display()))?;
    Ok(entries(&list)?.into_iter().map(|e| e.kind).collect())
}

/// The entries of the `shipped!` block; every line of its body must be an entry, a comment or
/// blank.
pub fn entries(list: &str) -> Result<Vec<Entry>, BadInput> {
    let mut lines = list.lines().skip_while(|l| l.trim() != "shipped! {");
    if lines.next().is_none() {
        return Err(unrecognised(LIST, "no line `shipped! {`"));
    }
    let mut entries = Vec::new();
    for line in lines {
        let trimmed = line.trim();
        if trimmed == "}" {
            return Ok(entries);
        }
        if trimmed.is_empty() || trimmed.starts_with("//") {
            continue;
        }
        let entry = parse_entry(line)
            .ok_or_else(|| unrecognised(LIST, &format!("`{trimmed}` is not an entry")))?;
        entries.push(entry);
    }
    Err(unrecognised(LIST, "the `shipped!` block never closes"))
}

/// `    kd_method_x => "x",` → the entry.
fn parse_entry(line: &str) -> Option<Entry> {
    let (lib, kind) = line.trim().split_once(" => ")?;
    let kind = kind.strip_prefix('"')?.strip_suffix("\",")?;
    let ident = !lib.is_empty() && lib.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (ident && !kind.is_empty() && !kind.contains('"')).then(|| Entry {
        lib: lib.to_string(),
        kind: kind.to_string(),
    })
}

/// `[workspace.package] version`, which every kd crate inherits.
fn workspace_version(root_manifest: &str) -> String {
    root_manifest
        .parse::<toml::Table>()
        .ok()
        .and_then(|t| {
            t.get("workspace")?
                .get("package")?
                .get("version")?
                .as_str()
                .map(String::from)
        })
        .unwrap_or_else(|| "0.1.0".into())
}

/// Adds `line` to the one block of consecutive lines that `key_of` recognises, before the first
/// whose key sorts after `key`.
fn insert(
    text: &str,
    file: &str,
    what: &str,
    key_of: impl Fn(&str) -> Option<String>,
    key: &str,
    line: &str,
) -> Result<String, BadInput> {
    let lines: Vec<&str> = text.lines().collect();
    let block: Vec<(usize, String)> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| key_of(l).map(|k| (i, k)))
        .collect();
    let by_hand = format!("add `{}` by hand", line.trim());
    let (Some((first, _)), Some((last, _))) = (block.first(), block.last()) else {
        return Err(unrecognised(
            file,
            &format!("no {what} lines to add to; {by_hand}"),
        ));
    };
    if last - first + 1 != block.len() {
        return Err(unrecognised(
            file,
            &format!("the {what} lines are not one block; {by_hand}"),
        ));
    }
    if block.iter().any(|(_, k)| k == key) {
        return Err(BadInput(format!("{file}: already lists `{key}`")));
    }
    let at = block
        .iter()
        .find(|(_, k)| k.as_str() > key)
        .map_or(last + 1, |(i, _)| *i);
    let mut out: Vec<&str> = lines[..at].to_vec();
    out.push(line);
    out.extend(&lines[at..]);
    let mut text_out = out.join("\n");
    if text.ends_with('\n') {
        text_out.push('\n');
    }
    Ok(text_out)
}

fn unrecognised(file: &str, why: &str) -> BadInput {
    BadInput(format!(
        "{file}: cannot register the method there: {why} (`new-method --in-tree` adds one line \
         to each of {ROOT_MANIFEST}, {LIST_MANIFEST} and the `shipped!` block of {LIST}; see \
         docs/writing-a-method.md)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_files() -> Files {
        Files::read(&crate::reproduce::repo_root()).unwrap()
    }

    #[test]
    fn the_list_names_every_plugin_folder_and_nothing_else() {
        let repo = crate::reproduce::repo_root();
        let mut folders: Vec<String> = std::fs::read_dir(repo.join("plugins"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().join("Cargo.toml").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        folders.sort();
        assert_eq!(kinds(&repo).unwrap(), folders);
        for entry in entries(&repo_files().list).unwrap() {
            let manifest =
                crate::manifest::read(&repo.join("plugins").join(&entry.kind).join("Cargo.toml"))
                    .unwrap();
            assert_eq!(
                manifest["package"]["name"]
                    .as_str()
                    .unwrap()
                    .replace('-', "_"),
                entry.lib
            );
        }
    }

    #[test]
    fn registering_adds_one_sorted_line_to_each_file() {
        let files = repo_files();
        let added = files.register("logit-match").unwrap();
        for (before, after) in [
            (&files.root_manifest, &added.root_manifest),
            (&files.list_manifest, &added.list_manifest),
            (&files.list, &added.list),
        ] {
            assert_eq!(after.lines().count(), before.lines().count() + 1);
        }
        let kinds: Vec<String> = entries(&added.list)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        let mut sorted = kinds.clone();
        sorted.sort();
        assert_eq!(kinds, sorted);
        assert!(
            added
                .list
                .contains("    kd_method_logit_match => \"logit-match\",\n")
        );
        assert!(
            added
                .list_manifest
                .contains("\nkd-method-logit-match.workspace = true\n")
        );
        assert!(added.root_manifest.contains(
            "\nkd-method-logit-match = { path = \"plugins/logit-match\", version = \"0.1.0\" }\n"
        ));
        // Sorted: after `kd`, before `sokd`; first and last places work too.
        let at = |text: &str, needle: &str| text.find(needle).unwrap();
        assert!(at(&added.list, "kd_method_kd =>") < at(&added.list, "kd_method_logit_match =>"));
        assert!(at(&added.list, "kd_method_logit_match =>") < at(&added.list, "kd_method_sokd =>"));
        let first = files.register("aa").unwrap();
        assert!(at(&first.list, "kd_method_aa =>") < at(&first.list, "kd_method_ctsl_mkt =>"));
        let last = files.register("zz").unwrap();
        assert!(at(&last.list_manifest, "kd-method-sokd") < at(&last.list_manifest, "-zz"));
    }

    #[test]
    fn registering_twice_is_refused() {
        let added = repo_files().register("unlisted-x").unwrap();
        let err = added.register("unlisted-x").unwrap_err();
        assert!(err.0.contains("already lists `unlisted-x`"), "{}", err.0);
    }

    #[test]
    fn a_list_of_another_shape_is_refused_naming_the_file() {
        let files = repo_files();
        let mut no_block = files.clone();
        no_block.list = no_block.list.replace("shipped! {", "shipped!{");
        let mut odd_line = files.clone();
        odd_line.list = odd_line.list.replace(
            "kd_method_dml => \"dml\",",
            "kd_method_dml => \"dml\", // mutual",
        );
        let mut no_dependency = files.clone();
        no_dependency.list_manifest = no_dependency
            .list_manifest
            .replace(".workspace = true", " = { workspace = true }");
        let mut split = files.clone();
        split.root_manifest = split
            .root_manifest
            .replace("kd-method-iakd =", "anyhow-x = \"1\"\nkd-method-iakd =");
        for (broken, file, why) in [
            (no_block, LIST, "no line `shipped! {`"),
            (odd_line, LIST, "is not an entry"),
            (
                no_dependency,
                LIST_MANIFEST,
                "no `kd-method-….workspace = true` lines",
            ),
            (split, ROOT_MANIFEST, "not one block"),
        ] {
            let err = broken.register("unlisted-x").unwrap_err();
            assert!(err.0.starts_with(&format!("{file}: ")), "{}", err.0);
            assert!(err.0.contains(why), "{}", err.0);
        }
    }
}

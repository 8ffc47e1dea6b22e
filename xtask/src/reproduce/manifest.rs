//! Reproduction manifests (`configs/reproduce/<table>.toml`) and their expansion into cells.
//!
//! A manifest names rows (method stacks, each an experiment config), columns (teacher → student
//! pairs), seeds, the protocol every cell shares (`sets`, applied with `--set`), a `[quick]`
//! variant, the paper's number for each cell with its source — or why it is not known — and the
//! claims the table tests. Placeholders in a row's `sets` and `key`: `{seed}`, `{teacher}`,
//! `{student}`, `{column}`, and `{run:<row>}`, the run directory of that row's cell of the same
//! column and seed (which makes it a dependency).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// A paper's number for one cell.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PaperNumber {
    /// Top-1 accuracy (%).
    pub value: f64,
    /// Paper and table it comes from.
    pub source: String,
}

/// A method stack: one experiment config run in every column.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Row {
    /// Identifier (used in paths and claims).
    pub name: String,
    /// Shown in the report.
    pub label: String,
    /// The experiment config, relative to the repository root.
    pub config: PathBuf,
    /// Cells of this row with the same rendered key are one run (`"{teacher}"` for a teacher row
    /// shared by the columns that use that teacher). Default: the column.
    #[serde(default)]
    pub key: Option<String>,
    /// `--set` overrides for this row, with placeholders.
    #[serde(default)]
    pub sets: Vec<String>,
    /// Extra overrides for this row in the quick variant (applied last).
    #[serde(default)]
    pub quick_sets: Vec<String>,
    /// Whether the columns' `sets` apply to this row (a teacher row shared by several columns
    /// should not take one column's student learning rate).
    #[serde(default = "yes")]
    pub column_sets: bool,
    /// Which evaluated output the row reports (default `student`).
    #[serde(default = "default_output")]
    pub report: String,
    /// The paper's numbers by column name.
    #[serde(default)]
    pub paper: BTreeMap<String, PaperNumber>,
    /// Why the paper's numbers are not known, where they are not.
    #[serde(default)]
    pub paper_unknown: Option<String>,
}

fn yes() -> bool {
    true
}

fn default_output() -> String {
    "student".into()
}

/// A teacher → student pair.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    /// Identifier.
    pub name: String,
    /// Shown in the report.
    pub label: String,
    /// Teacher architecture.
    pub teacher: String,
    /// Student architecture.
    pub student: String,
    /// `--set` overrides for this column (a student's learning rate, say).
    #[serde(default)]
    pub sets: Vec<String>,
}

/// What the table tests, from the papers' abstracts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    /// The claim in words, with its source.
    pub text: String,
    /// `[a, b]`: row a's last top-1 is above row b's.
    #[serde(default)]
    pub better: Vec<String>,
    /// `(row, output)`: the output's last top-1 is above its top-1 before training.
    #[serde(default)]
    pub improves: Option<Improves>,
}

/// A row's output that should improve during the run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Improves {
    /// Row.
    pub row: String,
    /// Output (`teacher` for FFKD's refined teacher).
    pub output: String,
}

/// The `[quick]` variant.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Quick {
    /// Seeds.
    pub seeds: Option<usize>,
    /// Extra `--set` overrides, after the protocol's.
    #[serde(default)]
    pub sets: Vec<String>,
}

/// A whole manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Title of the report.
    pub title: String,
    /// What the table shows and how it is run.
    pub description: String,
    /// Where cells run, relative to the repository root.
    pub output_dir: PathBuf,
    /// Seeds (0 … seeds−1).
    pub seeds: usize,
    /// The protocol: `--set` overrides every cell gets first.
    #[serde(default)]
    pub sets: Vec<String>,
    /// The quick variant.
    #[serde(default)]
    pub quick: Option<Quick>,
    /// Columns.
    pub column: Vec<Column>,
    /// Rows.
    pub row: Vec<Row>,
    /// Claims.
    #[serde(default)]
    pub claim: Vec<Claim>,
}

/// One run: a row, a column (the first that rendered its key) and a seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// Row name.
    pub row: String,
    /// Rendered key.
    pub key: String,
    /// Seed.
    pub seed: usize,
    /// The experiment config.
    pub config: PathBuf,
    /// Every `--set`, rendered, in order.
    pub sets: Vec<String>,
    /// The run directory (`<output_dir>/<row>/<key>/seed<seed>`).
    pub dir: PathBuf,
    /// Indices of the cells that must finish first.
    pub needs: Vec<usize>,
}

impl Manifest {
    /// Reads a manifest, checking that rows, columns and claims refer to each other correctly.
    pub fn load(path: &Path) -> anyhow::Result<Manifest> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let manifest: Manifest =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let rows: Vec<&str> = manifest.row.iter().map(|r| r.name.as_str()).collect();
        let columns: Vec<&str> = manifest.column.iter().map(|c| c.name.as_str()).collect();
        for row in &manifest.row {
            if let Some(problem) = not_one_folder(&row.name) {
                bail!(
                    "{}: row name `{}` names a folder of every cell's run directory: {problem}",
                    path.display(),
                    row.name
                );
            }
            for column in row.paper.keys() {
                if !columns.contains(&column.as_str()) {
                    bail!(
                        "{}: row `{}` gives a paper number for unknown column `{column}`",
                        path.display(),
                        row.name
                    );
                }
            }
            if row.paper.is_empty() && row.paper_unknown.is_none() {
                bail!(
                    "{}: row `{}` needs paper numbers or `paper_unknown` saying why there are none",
                    path.display(),
                    row.name
                );
            }
        }
        for claim in &manifest.claim {
            let named: Vec<&str> = claim
                .better
                .iter()
                .map(String::as_str)
                .chain(claim.improves.iter().map(|i| i.row.as_str()))
                .collect();
            for row in named {
                if !rows.contains(&row) {
                    bail!(
                        "{}: claim `{}` names unknown row `{row}`",
                        path.display(),
                        claim.text
                    );
                }
            }
        }
        Ok(manifest)
    }

    /// Expands the manifest into cells, in dependency order.
    pub fn cells(&self, seeds: usize, quick: bool) -> anyhow::Result<Vec<Cell>> {
        let output_dir = if quick {
            with_suffix(&self.output_dir, "-quick")
        } else {
            self.output_dir.clone()
        };
        let quick_sets: Vec<String> = if quick {
            self.quick
                .as_ref()
                .map(|q| q.sets.clone())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let key_of = |row: &Row, column: &Column, seed: usize| {
            render(
                row.key.as_deref().unwrap_or("{column}"),
                column,
                seed,
                &|_| Ok(String::new()),
            )
        };
        let dir_of = |row: &Row, key: &str, seed: usize| {
            output_dir
                .join(&row.name)
                .join(key)
                .join(format!("seed{seed}"))
        };
        let mut cells: Vec<Cell> = Vec::new();
        // Rows are expanded in manifest order; a `{run:<row>}` must name an earlier row.
        for (row_index, row) in self.row.iter().enumerate() {
            for column in &self.column {
                for seed in 0..seeds {
                    let key = key_of(row, column, seed)?;
                    if let Some(problem) = not_one_folder(&key) {
                        bail!(
                            "row `{}`, column `{}`: key `{key}` names a folder of the run \
                             directory: {problem}",
                            row.name,
                            column.name
                        );
                    }
                    if cells
                        .iter()
                        .any(|c| c.row == row.name && c.key == key && c.seed == seed)
                    {
                        continue;
                    }
                    let mut needs = Vec::new();
                    let lookup = |name: &str| -> anyhow::Result<String> {
                        let earlier = self.row[..row_index]
                            .iter()
                            .find(|r| r.name == name)
                            .with_context(|| {
                                format!(
                                    "row `{}`: `{{run:{name}}}` must name an earlier row",
                                    row.name
                                )
                            })?;
                        let dep_key = key_of(earlier, column, seed)?;
                        Ok(dir_of(earlier, &dep_key, seed).display().to_string())
                    };
                    let mut sets: Vec<String> = Vec::new();
                    let row_quick: &[String] = if quick { &row.quick_sets } else { &[] };
                    let column_sets: &[String] = if row.column_sets { &column.sets } else { &[] };
                    for template in self
                        .sets
                        .iter()
                        .chain(column_sets)
                        .chain(&row.sets)
                        .chain(&quick_sets)
                        .chain(row_quick)
                    {
                        sets.push(render(template, column, seed, &lookup)?);
                    }
                    for template in &row.sets {
                        for name in dependencies(template) {
                            let earlier = self.row[..row_index]
                                .iter()
                                .find(|r| r.name == name)
                                .expect("checked by render");
                            let dep_key = key_of(earlier, column, seed)?;
                            let index = cells
                                .iter()
                                .position(|c| c.row == name && c.key == dep_key && c.seed == seed)
                                .expect("earlier rows are expanded first");
                            needs.push(index);
                        }
                    }
                    let dir = dir_of(row, &key, seed);
                    sets.push(format!("run.seed={seed}"));
                    sets.push(format!(
                        "run.output_dir={}",
                        dir.parent().expect("has a parent").display()
                    ));
                    sets.push(format!("run.name=seed{seed}"));
                    cells.push(Cell {
                        row: row.name.clone(),
                        key,
                        seed,
                        config: row.config.clone(),
                        sets,
                        dir,
                        needs,
                    });
                }
            }
        }
        Ok(cells)
    }

    /// Seeds for a run: `--seeds`, else the quick variant's, else the manifest's.
    pub fn seeds(&self, requested: Option<usize>, quick: bool) -> usize {
        requested
            .or(if quick {
                self.quick.as_ref().and_then(|q| q.seeds)
            } else {
                None
            })
            .unwrap_or(self.seeds)
    }
}

/// Why `name` cannot be one folder of a run directory (empty, `.`, `..`, a separator), if it
/// cannot: a row name or key like `../x` would put runs outside the table's output directory.
fn not_one_folder(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name == "." || name == ".." {
        Some("`.` and `..` are not folder names")
    } else if name.contains(['/', '\\', '\0']) {
        Some("it must be one folder name, without `/`, `\\` or NUL")
    } else {
        None
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// The rows a template depends on through `{run:<row>}`.
pub fn dependencies(template: &str) -> Vec<String> {
    template
        .match_indices("{run:")
        .filter_map(|(i, _)| {
            template[i + 5..]
                .split_once('}')
                .map(|(name, _)| name.to_string())
        })
        .collect()
}

/// Fills a template's placeholders.
pub fn render(
    template: &str,
    column: &Column,
    seed: usize,
    run: &dyn Fn(&str) -> anyhow::Result<String>,
) -> anyhow::Result<String> {
    let mut out = template
        .replace("{seed}", &seed.to_string())
        .replace("{teacher}", &column.teacher)
        .replace("{student}", &column.student)
        .replace("{column}", &column.name);
    for name in dependencies(template) {
        let dir = run(&name)?;
        out = out.replace(&format!("{{run:{name}}}"), &dir);
    }
    for (i, _) in out.match_indices('{') {
        let Some(end) = out[i + 1..].find('}') else {
            continue;
        };
        let inner = &out[i + 1..i + 1 + end];
        let word = !inner.is_empty()
            && inner
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_:-".contains(c));
        if word {
            bail!("unknown placeholder {{{inner}}} in `{template}`");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        toml::from_str(
            r#"
title = "t"
description = "d"
output_dir = "runs/t"
seeds = 2
sets = ["run.epochs=1"]
[quick]
seeds = 1
sets = ["data.train_per_class=5"]
[[column]]
name = "a"
label = "A"
teacher = "resnet20"
student = "resnet8"
[[column]]
name = "b"
label = "B"
teacher = "resnet20"
student = "resnet14"
sets = ["optim.lr=0.01"]
[[row]]
name = "teacher"
label = "Teacher"
config = "t.toml"
key = "{teacher}"
sets = ["networks.student.arch={teacher}"]
paper_unknown = "none"
[[row]]
name = "kd"
label = "KD"
config = "kd.toml"
sets = ["networks.student.arch={student}", "networks.teacher.checkpoint={run:teacher}/checkpoints/last.kdc"]
paper = { a = { value = 70.0, source = "paper, Table 1" } }
"#,
        )
        .unwrap()
    }

    #[test]
    fn cells_share_keyed_runs_and_point_at_their_dependencies() {
        let m = manifest();
        let cells = m.cells(2, false).unwrap();
        // The teacher row keys on the teacher: one run per seed for both columns.
        let teachers: Vec<&Cell> = cells.iter().filter(|c| c.row == "teacher").collect();
        assert_eq!(teachers.len(), 2);
        assert_eq!(
            teachers[0].dir,
            PathBuf::from("runs/t/teacher/resnet20/seed0")
        );
        let kd: Vec<&Cell> = cells.iter().filter(|c| c.row == "kd").collect();
        assert_eq!(kd.len(), 4);
        let b1 = kd.iter().find(|c| c.key == "b" && c.seed == 1).unwrap();
        assert_eq!(b1.needs.len(), 1);
        assert_eq!(
            cells[b1.needs[0]].dir,
            PathBuf::from("runs/t/teacher/resnet20/seed1")
        );
        assert!(
            b1.sets.contains(
                &"networks.teacher.checkpoint=runs/t/teacher/resnet20/seed1/checkpoints/last.kdc"
                    .to_string()
            )
        );
        assert!(
            b1.sets.contains(&"optim.lr=0.01".to_string())
                && b1
                    .sets
                    .contains(&"networks.student.arch=resnet14".to_string())
        );
        assert_eq!(
            &b1.sets[b1.sets.len() - 3..],
            ["run.seed=1", "run.output_dir=runs/t/kd/b", "run.name=seed1"]
        );
    }

    #[test]
    fn the_quick_variant_has_its_own_seeds_sets_and_directory() {
        let m = manifest();
        assert_eq!(m.seeds(None, true), 1);
        assert_eq!(m.seeds(Some(3), true), 3);
        let cells = m.cells(1, true).unwrap();
        assert!(cells[0].dir.starts_with("runs/t-quick"));
        assert!(
            cells[0]
                .sets
                .contains(&"data.train_per_class=5".to_string())
        );
    }

    #[test]
    fn row_names_and_keys_that_are_not_one_folder_are_rejected() {
        let mut m = manifest();
        m.row[0].key = Some("../{column}".into());
        let error = m.cells(1, false).unwrap_err().to_string();
        assert!(
            error.contains("key `../") && error.contains("one folder name"),
            "{error}"
        );
        for bad in ["", "..", "a/b"] {
            assert!(not_one_folder(bad).is_some(), "{bad:?}");
        }
        assert!(not_one_folder("kd-t4").is_none());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../configs/reproduce/fashion.toml"),
        )
        .unwrap();
        let first_row = text.find("[[row]]").unwrap();
        let name_at = first_row + text[first_row..].find("name = \"").unwrap() + 8;
        let bad = format!("{}../{}", &text[..name_at], &text[name_at..]);
        std::fs::write(&path, bad).unwrap();
        let error = Manifest::load(&path).unwrap_err().to_string();
        assert!(error.contains("row name `../"), "{error}");
    }

    #[test]
    fn unknown_placeholders_and_later_rows_are_rejected() {
        let mut m = manifest();
        m.row[1].sets.push("x={studnet}".into());
        assert!(
            m.cells(1, false)
                .unwrap_err()
                .to_string()
                .contains("unknown placeholder {studnet}")
        );
        let mut m = manifest();
        m.row[0].sets.push("x={run:kd}".into());
        assert!(
            format!("{:#}", m.cells(1, false).unwrap_err()).contains("must name an earlier row")
        );
    }
}

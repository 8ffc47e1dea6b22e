//! Reproduction manifests (`configs/reproduce/<table>.toml`) and their expansion into cells.
//!
//! A manifest names rows (method stacks, each an experiment config), columns (teacher → student
//! pairs), seeds, the protocol every cell shares (`sets`, applied with `--set`), a `[quick]`
//! variant, the paper's number for each cell with its source — or why it is not known — and the
//! claims the table tests. Placeholders in a row's `sets` and `key`: `{seed}`, `{teacher}`,
//! `{student}`, `{column}`, and `{run:<row>}`, the run directory of that row's cell of the same
//! column and seed (which makes it a dependency).
//!
//! A manifest with a `[teachers]` table names the row that trains the teachers and the checkpoint
//! of its runs the distillation rows load, once: rows write `{teacher_checkpoint}`. Its
//! `[teachers.released]` table names the released file of each teacher (the path the official
//! scripts give it, and the address they download it from): with a directory of those files
//! ([`Manifest::cells_with`]' `released`), the teacher row evaluates each file (`kd eval`) instead of
//! training, the rows that use `{teacher_checkpoint}` load it (imported from PyTorch at plan time,
//! declared `trained_on` its preset), and both run under `<row>-released/` so the two routes never
//! share a run directory. Nothing is downloaded: the user supplies the files.

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
    /// At least this many seeds for this row in the full table (the table's `seeds` otherwise;
    /// `--quick` ignores it): more evidence for the rows a close claim rests on. A row it needs
    /// (`{run:<row>}`) must have as many.
    #[serde(default)]
    pub seeds: Option<usize>,
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

/// Where the distillation rows' teachers come from (`[teachers]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Teachers {
    /// The row that trains the teachers (keyed `{teacher}`).
    pub row: String,
    /// The file of that row's run directory the distillation rows load
    /// (`checkpoints/last.kdc` or `checkpoints/best.kdc`), as the table's official code does.
    pub checkpoint: String,
    /// Released teachers that can replace the trained ones.
    #[serde(default)]
    pub released: Option<Released>,
}

/// The released teacher checkpoints of a table (`[teachers.released]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Released {
    /// A teacher's file under the directory the user gives, with `{teacher}` for its
    /// architecture (RepDistiller: `{teacher}_vanilla/ckpt_epoch_240.pth`).
    pub file: String,
    /// Where the official scripts download that file from, with `{teacher}` (provenance only).
    pub url: String,
    /// The script that downloads them, for messages.
    pub fetched_by: String,
    /// The data preset the released weights were trained on (`networks.teacher.trained_on`).
    pub trained_on: String,
    /// The data format `kd eval` reads to evaluate them (`cifar100`).
    pub format: String,
}

/// One released teacher file a table needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasedFile {
    /// Teacher architecture.
    pub arch: String,
    /// Where it must be (`<dir>/<file>`).
    pub path: PathBuf,
    /// Where the official scripts download it from.
    pub url: String,
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
    /// Where the distillation rows' teachers come from.
    #[serde(default)]
    pub teachers: Option<Teachers>,
}

/// What a cell runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CellKind {
    /// `kd train <config> --set …`.
    Train,
    /// `kd eval` of a released checkpoint on the test split: its top-1 is the cell's result.
    Eval {
        /// The network's architecture.
        arch: String,
        /// The checkpoint (a PyTorch file).
        checkpoint: PathBuf,
        /// The data format to read.
        format: String,
    },
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
    /// What the cell runs.
    pub kind: CellKind,
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
        if let Some(teachers) = &manifest.teachers {
            if !rows.contains(&teachers.row.as_str()) {
                bail!(
                    "{}: [teachers] row `{}` is not a row of the table",
                    path.display(),
                    teachers.row
                );
            }
            let direct = format!("{{run:{}}}", teachers.row);
            for row in &manifest.row {
                if row.sets.iter().any(|s| s.contains(&direct)) {
                    bail!(
                        "{}: row `{}` names `{direct}`; write `{{teacher_checkpoint}}`, which \
                         [teachers] resolves (and --released-teachers replaces)",
                        path.display(),
                        row.name
                    );
                }
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

    /// The released teacher files of the table's columns, under `dir`, in column order (each
    /// architecture once).
    ///
    /// # Errors
    /// When the manifest has no `[teachers.released]` table.
    pub fn released_files(&self, dir: &Path) -> anyhow::Result<Vec<ReleasedFile>> {
        let Some(released) = self.teachers.as_ref().and_then(|t| t.released.as_ref()) else {
            bail!(
                "table `{}` names no released teachers (no [teachers.released] table)",
                self.title
            );
        };
        let mut files: Vec<ReleasedFile> = Vec::new();
        for column in &self.column {
            if files.iter().any(|f| f.arch == column.teacher) {
                continue;
            }
            files.push(ReleasedFile {
                arch: column.teacher.clone(),
                path: dir.join(released.file.replace("{teacher}", &column.teacher)),
                url: released.url.replace("{teacher}", &column.teacher),
            });
        }
        Ok(files)
    }

    /// Expands the manifest into cells, in dependency order, with the teachers it trains.
    ///
    /// # Errors
    /// As [`Manifest::cells_with`].
    pub fn cells(&self, seeds: usize, quick: bool) -> anyhow::Result<Vec<Cell>> {
        self.cells_with(seeds, quick, None)
    }

    /// Expands the manifest into cells, in dependency order; with `released`, the directory of
    /// the released teachers, the teacher row evaluates them and the rows that load a teacher
    /// load them (see the module's paragraph).
    ///
    /// # Errors
    /// A key or placeholder that does not render, or `released` for a table without
    /// `[teachers.released]`.
    pub fn cells_with(
        &self,
        seeds: usize,
        quick: bool,
        released: Option<&Path>,
    ) -> anyhow::Result<Vec<Cell>> {
        let released_files = match released {
            Some(dir) => Some(self.released_files(dir)?),
            None => None,
        };
        let teachers = self.teachers.as_ref();
        // `{teacher_checkpoint}`: the teacher row's run (a dependency), or the released file.
        let teacher_checkpoint = |template: &str, column: &Column| -> anyhow::Result<String> {
            if !template.contains(TEACHER_CHECKPOINT) {
                return Ok(template.to_string());
            }
            let Some(teachers) = teachers else {
                bail!("`{template}` uses {TEACHER_CHECKPOINT}, but the table has no [teachers]");
            };
            let with = match &released_files {
                Some(files) => files
                    .iter()
                    .find(|f| f.arch == column.teacher)
                    .expect("one file per column teacher")
                    .path
                    .display()
                    .to_string(),
                None => format!("{{run:{}}}/{}", teachers.row, teachers.checkpoint),
            };
            Ok(template.replace(TEACHER_CHECKPOINT, &with))
        };
        let uses_teacher = |row: &Row| {
            teachers.is_some_and(|t| t.row == row.name)
                || row.sets.iter().any(|s| s.contains(TEACHER_CHECKPOINT))
        };
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
            let folder = if released.is_some() && uses_teacher(row) {
                format!("{}-released", row.name)
            } else {
                row.name.clone()
            };
            output_dir
                .join(folder)
                .join(key)
                .join(format!("seed{seed}"))
        };
        let seeds_of = |row: &Row| match row.seeds {
            Some(n) if !quick => n.max(seeds),
            _ => seeds,
        };
        let mut cells: Vec<Cell> = Vec::new();
        // Rows are expanded in manifest order; a `{run:<row>}` must name an earlier row.
        for (row_index, row) in self.row.iter().enumerate() {
            if row.seeds == Some(0) {
                bail!("row `{}`: `seeds` must be at least 1", row.name);
            }
            for column in &self.column {
                for template in &row.sets {
                    for name in dependencies(&teacher_checkpoint(template, column)?) {
                        if let Some(earlier) = self.row[..row_index].iter().find(|r| r.name == name)
                            && seeds_of(earlier) < seeds_of(row)
                        {
                            bail!(
                                "row `{}` runs {} seeds, but the row it needs \
                                 (`{{run:{name}}}`) runs {}: give row `{name}` `seeds = {}` too",
                                row.name,
                                seeds_of(row),
                                seeds_of(earlier),
                                seeds_of(row)
                            );
                        }
                    }
                }
                for seed in 0..seeds_of(row) {
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
                    if let (Some(files), Some(teachers)) = (&released_files, teachers)
                        && teachers.row == row.name
                    {
                        // A released file is evaluated once: its top-1 has no seed.
                        if seed > 0 {
                            continue;
                        }
                        let released = teachers.released.as_ref().expect("checked by files");
                        let file = files
                            .iter()
                            .find(|f| f.arch == column.teacher)
                            .expect("one file per column teacher");
                        let dir = dir_of(row, &key, seed);
                        cells.push(Cell {
                            row: row.name.clone(),
                            key,
                            seed,
                            config: row.config.clone(),
                            sets: Vec::new(),
                            dir,
                            needs: Vec::new(),
                            kind: CellKind::Eval {
                                arch: column.teacher.clone(),
                                checkpoint: file.path.clone(),
                                format: released.format.clone(),
                            },
                        });
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
                        let template = teacher_checkpoint(template, column)?;
                        sets.push(render(&template, column, seed, &lookup)?);
                    }
                    if let (Some(_), Some(released)) =
                        (&released_files, teachers.and_then(|t| t.released.as_ref()))
                        && uses_teacher(row)
                    {
                        sets.push(format!(
                            "networks.teacher.trained_on={}",
                            released.trained_on
                        ));
                    }
                    for template in &row.sets {
                        let template = teacher_checkpoint(template, column)?;
                        for name in dependencies(&template) {
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
                        kind: CellKind::Train,
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

/// The placeholder for the checkpoint a distillation row loads its teacher from.
pub const TEACHER_CHECKPOINT: &str = "{teacher_checkpoint}";

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

    /// A small manifest: a teacher row keyed on the teacher, a KD row that loads its run.
    const MINIMAL: &str = r#"
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
"#;

    fn manifest() -> Manifest {
        toml::from_str(MINIMAL).unwrap()
    }

    #[test]
    fn a_row_asks_for_more_seeds_and_its_dependencies_must_have_them() {
        let mut m = manifest();
        m.row[0].seeds = Some(4);
        m.row[1].seeds = Some(4);
        let cells = m.cells(2, false).unwrap();
        let count = |row: &str| cells.iter().filter(|c| c.row == row).count();
        // One teacher run per seed (shared by both columns), one KD run per column and seed.
        assert_eq!((count("teacher"), count("kd")), (4, 8));
        let kd3 = cells.iter().find(|c| c.row == "kd" && c.seed == 3).unwrap();
        assert_eq!(cells[kd3.needs[0]].seed, 3);
        // A count below the table's does not lower it; --quick ignores row counts.
        m.row[0].seeds = Some(1);
        m.row[1].seeds = None;
        assert_eq!(m.cells(2, false).unwrap().len(), 2 + 4);
        m.row[1].seeds = Some(5);
        assert_eq!(m.cells(1, true).unwrap().len(), 1 + 2);
        let error = m.cells(2, false).unwrap_err().to_string();
        assert!(
            error.contains("row `kd` runs 5 seeds")
                && error.contains("runs 2")
                && error.contains("give row `teacher` `seeds = 5`"),
            "{error}"
        );
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

    #[test]
    fn a_teachers_table_resolves_the_teacher_checkpoint_once() {
        let mut m = manifest();
        m.row[1].sets[1] = format!("networks.teacher.checkpoint={TEACHER_CHECKPOINT}");
        // Without [teachers] the placeholder has nothing to resolve to.
        let error = m.cells(1, false).unwrap_err().to_string();
        assert!(error.contains("no [teachers]"), "{error}");
        m.teachers = Some(Teachers {
            row: "teacher".into(),
            checkpoint: "checkpoints/best.kdc".into(),
            released: None,
        });
        let cells = m.cells(1, false).unwrap();
        let kd = cells.iter().find(|c| c.row == "kd").unwrap();
        assert!(
            kd.sets.contains(
                &"networks.teacher.checkpoint=runs/t/teacher/resnet20/seed0/checkpoints/best.kdc"
                    .to_string()
            )
        );
        assert_eq!(kd.needs, [0], "the teacher's run comes first");
        // A table with [teachers] and no released files refuses a released directory.
        let error = m
            .cells_with(1, false, Some(Path::new("/x")))
            .unwrap_err()
            .to_string();
        assert!(error.contains("names no released teachers"), "{error}");
    }

    #[test]
    fn a_teachers_table_must_name_a_row_and_replace_direct_references() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        let with = |row: &str| {
            format!(
                "{MINIMAL}\n[teachers]\nrow = \"{row}\"\ncheckpoint = \"checkpoints/last.kdc\"\n"
            )
        };
        // MINIMAL's KD row loads `{run:teacher}/checkpoints/last.kdc` itself.
        std::fs::write(&path, with("teacher")).unwrap();
        let error = Manifest::load(&path).unwrap_err().to_string();
        assert!(
            error.contains("row `kd` names `{run:teacher}`")
                && error.contains("{teacher_checkpoint}"),
            "{error}"
        );
        std::fs::write(&path, with("teachers")).unwrap();
        let error = Manifest::load(&path).unwrap_err().to_string();
        assert!(
            error.contains("[teachers] row `teachers` is not a row"),
            "{error}"
        );
    }
}

//! Recipe sheets (`configs/reproduce/recipes/<table>.toml`): the official value of every setting
//! of a table's cells, each with its source — a file of the official code and the argument or
//! line that sets it, or a paper section — or, where there is no official value, `ours` with
//! the reason.
//!
//! A setting has a value for every cell and `case`s that replace it for some cells: those of
//! named `rows`, those whose trained network (`networks.student.arch`) is one of `arch`, those of
//! named `columns`; the last matching case wins. So RepDistiller's "lr 0.01 for MobileNetV2 and
//! the ShuffleNets" is one case, written once for every row and column it concerns. A value left
//! out means the setting does not apply (no KD temperature in a row without KD).

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::BadInput;

/// One official value (or its absence) and where it comes from.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Official {
    /// The value (left out: the setting does not apply).
    #[serde(default)]
    pub value: Option<toml::Value>,
    /// The official source: file and argument or line, or paper section.
    #[serde(default)]
    pub source: Option<String>,
    /// No official value: why this one is ours.
    #[serde(default)]
    pub ours: Option<String>,
}

/// A value for some cells.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Rows it applies to (any, when left out).
    #[serde(default)]
    pub rows: Option<Vec<String>>,
    /// Architectures of the trained network it applies to (any, when left out).
    #[serde(default)]
    pub arch: Option<Vec<String>>,
    /// Columns it applies to (any, when left out).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// The value and its source.
    #[serde(flatten)]
    pub official: Official,
}

/// One setting of the sheet.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Setting {
    /// The setting's name (`epochs`, `lr`, `kd.temperature`, …).
    pub name: String,
    /// The value for every cell no case matches, and its source.
    #[serde(flatten)]
    pub official: Official,
    /// Values for some cells; the last that matches wins.
    #[serde(default)]
    pub case: Vec<Case>,
}

/// A table's recipe sheet.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Sheet {
    /// The manifest it describes (`configs/reproduce/<table>.toml`).
    pub table: String,
    /// The official code the values come from, or why there is none.
    pub code: String,
    /// Settings.
    pub setting: Vec<Setting>,
}

/// The cell a value is looked up for.
#[derive(Debug, Clone, Copy)]
pub struct CellKey<'a> {
    /// Row name.
    pub row: &'a str,
    /// Column name.
    pub column: &'a str,
    /// The trained network's architecture.
    pub arch: &'a str,
}

impl Case {
    fn matches(&self, cell: CellKey<'_>) -> bool {
        let within = |list: &Option<Vec<String>>, name: &str| {
            list.as_ref().is_none_or(|l| l.iter().any(|x| x == name))
        };
        within(&self.rows, cell.row)
            && within(&self.arch, cell.arch)
            && within(&self.columns, cell.column)
    }
}

impl Official {
    /// The value as JSON, for comparison with what kd prints.
    pub fn json(&self) -> Option<Value> {
        self.value
            .as_ref()
            .map(|v| serde_json::to_value(v).expect("TOML values are JSON values"))
    }

    /// The source as shown: the official one, or `ours: <reason>`.
    pub fn cited(&self) -> String {
        match (&self.source, &self.ours) {
            (Some(source), _) => source.clone(),
            (None, Some(reason)) => format!("ours: {reason}"),
            (None, None) => String::new(),
        }
    }
}

impl Setting {
    /// The official value for `cell`.
    pub fn for_cell(&self, cell: CellKey<'_>) -> &Official {
        self.case
            .iter()
            .rev()
            .find(|c| c.matches(cell))
            .map_or(&self.official, |c| &c.official)
    }
}

impl Sheet {
    /// Reads and checks a sheet: every value has exactly one of `source` and `ours`, every case
    /// narrows by something, no setting is named twice.
    ///
    /// # Errors
    /// [`BadInput`] naming the file (and the setting) when it is missing, not TOML, has an
    /// unknown key, or breaks one of those rules.
    pub fn load(path: &Path) -> anyhow::Result<Sheet> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            BadInput(format!(
                "no recipe sheet {} ({e}); write one from the official code \
                 (see configs/reproduce/recipes/)",
                path.display()
            ))
        })?;
        let sheet: Sheet =
            toml::from_str(&text).map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
        let bad = |message: String| BadInput(format!("{}: {message}", path.display()));
        for (i, setting) in sheet.setting.iter().enumerate() {
            if sheet.setting[..i].iter().any(|s| s.name == setting.name) {
                return Err(bad(format!("setting `{}` is written twice", setting.name)).into());
            }
            let values =
                std::iter::once(&setting.official).chain(setting.case.iter().map(|c| &c.official));
            for official in values {
                if official.source.is_some() == official.ours.is_some() {
                    return Err(bad(format!(
                        "setting `{}`: every value needs exactly one of `source` (where the \
                         official code or paper sets it) and `ours` (why there is no official \
                         value)",
                        setting.name
                    ))
                    .into());
                }
            }
            if let Some(case) = setting
                .case
                .iter()
                .find(|c| c.rows.is_none() && c.arch.is_none() && c.columns.is_none())
            {
                return Err(bad(format!(
                    "setting `{}`: a case needs `rows`, `arch` or `columns` (a case for every \
                     cell is the setting's own value): {:?}",
                    setting.name,
                    case.official.cited()
                ))
                .into());
            }
        }
        Ok(sheet)
    }

    /// The setting named `name`.
    pub fn get(&self, name: &str) -> Option<&Setting> {
        self.setting.iter().find(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHEET: &str = r#"
table = "t"
code = "c"
[[setting]]
name = "lr"
value = 0.05
source = "train_student.py --learning_rate"
case = [
    { arch = ["MobileNetV2", "ShuffleV1"], value = 0.01, source = "train_student.py, the 0.01 rule" },
    { rows = ["special"], arch = ["MobileNetV2"], value = 0.02, ours = "a test" },
]
[[setting]]
name = "kd.temperature"
source = "train_teacher.py: CE only"
case = [{ rows = ["kd"], value = 4.0, source = "--kd_T" }]
"#;

    fn load(text: &str) -> anyhow::Result<Sheet> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, text).unwrap();
        Sheet::load(&path)
    }

    fn key<'a>(row: &'a str, arch: &'a str) -> CellKey<'a> {
        CellKey {
            row,
            column: "c",
            arch,
        }
    }

    #[test]
    fn the_last_matching_case_wins_and_a_missing_value_means_absent() {
        let sheet = load(SHEET).unwrap();
        let lr = sheet.get("lr").unwrap();
        assert_eq!(lr.for_cell(key("kd", "resnet8")).json(), Some(0.05.into()));
        assert_eq!(
            lr.for_cell(key("kd", "ShuffleV1")).json(),
            Some(0.01.into())
        );
        let special = lr.for_cell(key("special", "MobileNetV2"));
        assert_eq!(special.json(), Some(0.02.into()));
        assert_eq!(special.cited(), "ours: a test");
        let t = sheet.get("kd.temperature").unwrap();
        assert_eq!(t.for_cell(key("student", "resnet8")).json(), None);
        assert_eq!(t.for_cell(key("kd", "resnet8")).json(), Some(4.0.into()));
    }

    #[test]
    fn a_value_needs_one_source_and_a_case_a_filter() {
        let no_source = SHEET.replace("source = \"--kd_T\"", "");
        let error = format!("{:#}", load(&no_source).unwrap_err());
        assert!(
            error.contains("t.toml") && error.contains("`kd.temperature`"),
            "{error}"
        );
        let both = SHEET.replace("ours = \"a test\"", "ours = \"x\", source = \"y\"");
        assert!(format!("{:#}", load(&both).unwrap_err()).contains("exactly one of"));
        let unfiltered = SHEET.replace("rows = [\"kd\"], ", "");
        assert!(format!("{:#}", load(&unfiltered).unwrap_err()).contains("needs `rows`"));
        let twice = format!("{SHEET}\n[[setting]]\nname = \"lr\"\nvalue = 1\nsource = \"s\"\n");
        assert!(format!("{:#}", load(&twice).unwrap_err()).contains("written twice"));
        let unknown = SHEET.replace("code = \"c\"", "code = \"c\"\ncolour = 1");
        let error = load(&unknown).unwrap_err();
        assert!(error.downcast_ref::<BadInput>().is_some(), "{error:#}");
        assert!(format!("{error:#}").contains("colour"), "{error:#}");
    }

    #[test]
    fn a_missing_sheet_is_bad_input_naming_the_file() {
        let error = Sheet::load(Path::new("/nowhere/x.toml")).unwrap_err();
        assert!(error.downcast_ref::<BadInput>().is_some());
        assert!(error.to_string().contains("/nowhere/x.toml"), "{error}");
    }
}

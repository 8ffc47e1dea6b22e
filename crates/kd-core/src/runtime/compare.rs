//! Runs side by side: [`read_run`] reads what a run directory says about its student (from
//! `summary.json`, the `epoch` rows of `metrics.jsonl` and the resolved `config.toml`) into a
//! [`ComparedRun`], and [`draw_comparison`] draws the students' learning curves of several runs
//! in one PNG. `kd compare` and `kd suite`'s end-of-suite summary call both.
//!
//! A finished run (one with `summary.json`) is described by its summary; an unfinished one (only
//! `metrics.jsonl`) by its epoch rows so far, and marked unfinished. A directory holding neither
//! is not a run. Every damaged file is an error naming it, with the line and byte offset where
//! the reader found the fault; a last `metrics.jsonl` line without its newline in an unfinished
//! run is a row being written and is left out. Epoch rows must follow each other in increasing
//! order; rows of a kd that counted epochs from 0 (the first is epoch 0) are counted from 1.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde::Serialize;

use super::metrics::JSONL_FILE;
use super::summary::Summary;

/// The output compared: the student's top-1.
pub const STUDENT: &str = "student";

/// The summary file of a finished run.
pub const SUMMARY_FILE: &str = "summary.json";

/// The resolved configuration of a run.
pub const CONFIG_FILE: &str = "config.toml";

/// Why a run could not be compared.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// The path is not a directory.
    #[error("{}: no such run directory", path.display())]
    NoDirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The directory holds neither `summary.json` nor `metrics.jsonl`.
    #[error(
        "{}: not a run directory (it holds neither summary.json nor metrics.jsonl)",
        dir.display()
    )]
    NotARun {
        /// The directory.
        dir: PathBuf,
    },
    /// A file of the run could not be read.
    #[error("{}: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file of the run is damaged.
    #[error("{}: {message}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where (line, byte offset, key).
        message: String,
    },
    /// The chart could not be drawn or written.
    #[error("{}: cannot write the chart: {message}", path.display())]
    Chart {
        /// The PNG file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

/// One method instance of a run's stack.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StackEntry {
    /// Instance name (`method.<instance>`).
    pub instance: String,
    /// Method kind.
    pub kind: String,
    /// Weight of its terms (1 where the config leaves it unset).
    pub weight: f64,
}

/// One `epoch` row of `metrics.jsonl`, for the student.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpochPoint {
    /// Epoch, from 1.
    pub epoch: usize,
    /// The student's top-1 (%), where it was evaluated.
    pub top1: Option<f64>,
    /// Mean training loss (weighted total) over the epoch.
    pub loss: Option<f64>,
}

/// What a run directory says about its student, ready to be compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComparedRun {
    /// Name shown (the run's name; a caller may replace it, e.g. by a suite label).
    pub name: String,
    /// The run directory.
    pub dir: PathBuf,
    /// Whether the run wrote its `summary.json`.
    pub finished: bool,
    /// Best top-1 of the student (%).
    pub best_top1: Option<f64>,
    /// Epoch of the best top-1, from 1.
    pub best_epoch: Option<usize>,
    /// The student's top-1 after the last epoch (%).
    pub last_top1: Option<f64>,
    /// Epochs trained (so far).
    pub epochs: usize,
    /// Steps trained (so far).
    pub steps: usize,
    /// Training wall time in seconds (so far), where known.
    pub wall_seconds: Option<f64>,
    /// The method stack, in order.
    pub stack: Vec<StackEntry>,
    /// The student's architecture, where the config names it.
    pub student_arch: Option<String>,
    /// The student's top-1 and the loss per epoch.
    pub curve: Vec<EpochPoint>,
}

/// Reads a run directory.
///
/// # Errors
///
/// [`CompareError::NoDirectory`], [`CompareError::NotARun`], and for `summary.json`,
/// `metrics.jsonl` or `config.toml`, [`CompareError::Unreadable`] or [`CompareError::Damaged`]
/// (with line and byte offset, or the key at fault).
pub fn read_run(dir: &Path) -> Result<ComparedRun, CompareError> {
    if !dir.is_dir() {
        return Err(CompareError::NoDirectory { path: dir.into() });
    }
    let summary_path = dir.join(SUMMARY_FILE);
    let metrics_path = dir.join(JSONL_FILE);
    let (has_summary, has_metrics) = (summary_path.exists(), metrics_path.exists());
    if !has_summary && !has_metrics {
        return Err(CompareError::NotARun { dir: dir.into() });
    }
    let summary = has_summary
        .then(|| read_summary(&summary_path))
        .transpose()?;
    let curve = if has_metrics {
        read_epochs(&metrics_path, !has_summary)?
    } else {
        Vec::new()
    };
    let (stack, student_arch, config_name) = read_config(&dir.join(CONFIG_FILE))?;
    let dir_name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    let mut run = ComparedRun {
        name: config_name.unwrap_or(dir_name),
        dir: dir.into(),
        finished: summary.is_some(),
        best_top1: None,
        best_epoch: None,
        last_top1: None,
        epochs: curve.len(),
        steps: 0,
        wall_seconds: None,
        stack,
        student_arch,
        curve,
    };
    if let Some(summary) = summary {
        run.name = summary.run.clone();
        run.epochs = summary.epochs;
        run.steps = summary.steps;
        run.wall_seconds = Some(summary.wall_seconds);
        if let Some(student) = summary.outputs.get(STUDENT) {
            run.best_top1 = Some(student.best_top1);
            run.best_epoch = Some(student.best_epoch);
            run.last_top1 = Some(student.last_top1);
        }
    } else {
        let rows = read_rows(&metrics_path, true)?;
        let last = rows.last();
        run.epochs = run.curve.last().map_or(0, |p| p.epoch);
        run.steps = last.and_then(|r| r.step).unwrap_or(0);
        run.wall_seconds = last.and_then(|r| r.wall_seconds);
        let evaluated = run
            .curve
            .iter()
            .filter_map(|p| p.top1.map(|t| (p.epoch, t)));
        for (epoch, top1) in evaluated {
            if run.best_top1.is_none_or(|best| top1 > best) {
                run.best_top1 = Some(top1);
                run.best_epoch = Some(epoch);
            }
            run.last_top1 = Some(top1);
        }
    }
    Ok(run)
}

/// The byte offset of 1-based `line` and `column` in `text`.
fn byte_offset(text: &str, line: usize, column: usize) -> usize {
    let start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    start + column.saturating_sub(1)
}

fn read_text(path: &Path) -> Result<String, CompareError> {
    std::fs::read_to_string(path).map_err(|source| CompareError::Unreadable {
        path: path.into(),
        source,
    })
}

fn damaged(path: &Path, message: impl Into<String>) -> CompareError {
    CompareError::Damaged {
        path: path.into(),
        message: message.into(),
    }
}

fn read_summary(path: &Path) -> Result<Summary, CompareError> {
    let text = read_text(path)?;
    let summary: Summary = serde_json::from_str(&text).map_err(|e| {
        let at = byte_offset(&text, e.line(), e.column());
        damaged(path, format!("line {} (byte {at}): {e}", e.line()))
    })?;
    for (name, output) in &summary.outputs {
        for (key, value) in [
            ("best_top1", output.best_top1),
            ("last_top1", output.last_top1),
        ] {
            if !(0.0..=100.0).contains(&value) {
                return Err(damaged(
                    path,
                    format!("outputs.{name}.{key} = {value} is not a percentage"),
                ));
            }
        }
    }
    if !(summary.wall_seconds.is_finite() && summary.wall_seconds >= 0.0) {
        return Err(damaged(
            path,
            format!("wall_seconds = {} is not a duration", summary.wall_seconds),
        ));
    }
    Ok(summary)
}

/// An `epoch` row of `metrics.jsonl`: what comparing needs of it.
struct EpochRow {
    epoch: usize,
    step: Option<usize>,
    top1: Option<f64>,
    loss: Option<f64>,
    wall_seconds: Option<f64>,
}

/// The `epoch` rows of `metrics.jsonl`, in file order; with `running`, a last line without its
/// newline is a row being written and is left out.
fn read_rows(path: &Path, running: bool) -> Result<Vec<EpochRow>, CompareError> {
    let text = read_text(path)?;
    let mut rows = Vec::new();
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let at = offset;
        offset += line.len();
        let complete = line.ends_with('\n');
        let line = line.trim_end();
        if line.is_empty() || (!complete && running) {
            continue;
        }
        let fault =
            |message: String| damaged(path, format!("line {} (byte {at}): {message}", index + 1));
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| fault(e.to_string()))?;
        let Some(object) = value.as_object() else {
            return Err(fault("a row is a JSON object".into()));
        };
        if object.get("kind").and_then(|k| k.as_str()) != Some("epoch") {
            continue;
        }
        let number = |key: &str| -> Result<Option<f64>, CompareError> {
            match object.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => v
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| fault(format!("`{key}` is {v}, not a number"))),
            }
        };
        let count = |key: &str| -> Result<Option<usize>, CompareError> {
            match number(key)? {
                None => Ok(None),
                Some(v) if v >= 0.0 && v.fract() == 0.0 && v < 1e15 => Ok(Some(v as usize)),
                Some(v) => Err(fault(format!("`{key}` is {v}, not a count"))),
            }
        };
        let Some(epoch) = count("epoch")? else {
            return Err(fault("an epoch row without `epoch`".into()));
        };
        if let Some(previous) = rows.last().map(|r: &EpochRow| r.epoch)
            && epoch <= previous
        {
            return Err(fault(format!(
                "epoch {epoch} follows epoch {previous}: epochs only increase"
            )));
        }
        let top1_key = format!("{STUDENT}/top1");
        let top1 = number(&top1_key)?;
        if let Some(t) = top1.filter(|t| !(0.0..=100.0).contains(t)) {
            return Err(fault(format!("`{top1_key}` is {t}, not a percentage")));
        }
        rows.push(EpochRow {
            epoch,
            step: count("step")?,
            top1,
            loss: number("loss")?,
            wall_seconds: number("wall_seconds")?,
        });
    }
    // Files written before kd counted epochs from 1 start at 0.
    if rows.first().is_some_and(|r| r.epoch == 0) {
        rows.iter_mut().for_each(|r| r.epoch += 1);
    }
    Ok(rows)
}

fn read_epochs(path: &Path, running: bool) -> Result<Vec<EpochPoint>, CompareError> {
    Ok(read_rows(path, running)?
        .into_iter()
        .map(|r| EpochPoint {
            epoch: r.epoch,
            top1: r.top1,
            loss: r.loss,
        })
        .collect())
}

/// The stack, the student's architecture and the run name of `config.toml`; all unknown when
/// the file is not there.
type ConfigFacts = (Vec<StackEntry>, Option<String>, Option<String>);

fn read_config(path: &Path) -> Result<ConfigFacts, CompareError> {
    if !path.exists() {
        return Ok((Vec::new(), None, None));
    }
    let text = read_text(path)?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        let at = e
            .span()
            .map(|s| format!(" (byte {})", s.start))
            .unwrap_or_default();
        damaged(path, format!("{}{at}", e.message()))
    })?;
    let key_fault = |key: &str, what: &str| damaged(path, format!("`{key}` {what}"));
    let mut stack = Vec::new();
    if let Some(value) = table.get("stack") {
        let Some(list) = value.as_array() else {
            return Err(key_fault("stack", "is not a list of instance names"));
        };
        for item in list {
            let Some(instance) = item.as_str() else {
                return Err(key_fault("stack", "is not a list of instance names"));
            };
            let method = table
                .get("method")
                .and_then(|m| m.get(instance))
                .and_then(|m| m.as_table());
            let Some(method) = method else {
                return Err(key_fault(&format!("method.{instance}"), "is missing"));
            };
            let Some(kind) = method.get("kind").and_then(|k| k.as_str()) else {
                return Err(key_fault(&format!("method.{instance}.kind"), "is missing"));
            };
            let weight = match method.get("weight") {
                None => 1.0,
                Some(toml::Value::Float(w)) => *w,
                Some(toml::Value::Integer(w)) => *w as f64,
                Some(_) => {
                    return Err(key_fault(
                        &format!("method.{instance}.weight"),
                        "is not a number",
                    ));
                }
            };
            stack.push(StackEntry {
                instance: instance.into(),
                kind: kind.into(),
                weight,
            });
        }
    }
    let arch = table
        .get("networks")
        .and_then(|n| n.get(STUDENT))
        .and_then(|s| s.get("arch"))
        .and_then(|a| a.as_str())
        .map(str::to_string);
    let name = table
        .get("run")
        .and_then(|r| r.get("name"))
        .and_then(|n| n.as_str())
        .map(str::to_string);
    Ok((stack, arch, name))
}

/// Size of the comparison chart in pixels (width, height).
pub const CHART_SIZE: (u32, u32) = (1100, 450);

type Series = Vec<(f64, f64)>;

fn panel<'a>(
    area: &DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>,
    caption: &str,
    y_top: f64,
    epochs: f64,
    lines: &[(String, Series)],
    text: bool,
) -> Result<(), Box<dyn std::error::Error + 'a>> {
    let mut chart = ChartBuilder::on(area);
    chart
        .margin(12)
        .x_label_area_size(if text { 36 } else { 4 })
        .y_label_area_size(if text { 48 } else { 4 });
    if text {
        chart.caption(caption, ("sans-serif", 18));
    }
    let mut plot = chart.build_cartesian_2d(0.5f64..epochs, 0f64..y_top)?;
    let mut mesh = plot.configure_mesh();
    mesh.light_line_style(WHITE);
    if text {
        mesh.x_desc("epoch");
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw()?;
    for (i, (label, points)) in lines.iter().enumerate() {
        let colour = kd_plot::COLOURS[i % kd_plot::COLOURS.len()];
        plot.draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))?;
        let series = plot.draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?;
        if text {
            series
                .label(label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour));
        }
    }
    if text && !lines.is_empty() {
        plot.configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    Ok(())
}

fn draw<'a>(
    buffer: &'a mut [u8],
    title: &str,
    runs: &[ComparedRun],
    text: bool,
) -> Result<(), Box<dyn std::error::Error + 'a>> {
    let root = BitMapBackend::with_buffer(buffer, CHART_SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(CHART_SIZE.0 / 2);
    let epochs = runs
        .iter()
        .flat_map(|r| r.curve.iter().map(|p| p.epoch))
        .max()
        .unwrap_or(1) as f64
        + 0.5;
    let label = |run: &ComparedRun| {
        if run.finished {
            run.name.clone()
        } else {
            format!("{} (unfinished)", run.name)
        }
    };
    let series = |value: fn(&EpochPoint) -> Option<f64>| -> Vec<(String, Series)> {
        runs.iter()
            .map(|run| {
                let points = run
                    .curve
                    .iter()
                    .filter_map(|p| value(p).map(|v| (p.epoch as f64, v)))
                    .collect();
                (label(run), points)
            })
            .collect()
    };
    let top1 = series(|p| p.top1);
    let caption = match title {
        "" => "student top-1 (%)".to_string(),
        title => format!("{title}: student top-1 (%)"),
    };
    panel(&left, &caption, 100.0, epochs, &top1, text)?;
    let losses = series(|p| p.loss.filter(|l| l.is_finite()));
    let top = losses
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.1))
        .fold(0.0f64, f64::max)
        .max(1e-6)
        * 1.05;
    panel(
        &right,
        "training loss (weighted total)",
        top,
        epochs,
        &losses,
        text,
    )?;
    root.present()?;
    Ok(())
}

/// Draws the students' top-1 per epoch of every run (left, one line per run, with a legend;
/// `title`, where not empty, opens its caption)
/// and each run's mean training loss per epoch (right) into a PNG of [`CHART_SIZE`]. The file
/// is written beside its destination and renamed over it, so a failure leaves any earlier file
/// whole. Text needs a system font (`kd_plot::font_available`); without one the curves are
/// drawn with no text.
///
/// # Errors
///
/// [`CompareError::Chart`] naming `path` when drawing or writing fails.
pub fn draw_comparison(path: &Path, title: &str, runs: &[ComparedRun]) -> Result<(), CompareError> {
    let fail = |message: String| CompareError::Chart {
        path: path.into(),
        message,
    };
    let mut buffer = kd_plot::buffer(CHART_SIZE);
    let text = kd_plot::font_available();
    draw(&mut buffer, title, runs, text).map_err(|e| fail(e.to_string()))?;
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let temp = tempfile::Builder::new()
        .prefix(".compare")
        .suffix(".png")
        .tempfile_in(folder)
        .map_err(|e| fail(e.to_string()))?;
    kd_plot::save_png(temp.path(), &buffer, CHART_SIZE).map_err(fail)?;
    temp.persist(path).map_err(|e| fail(e.error.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    const ROWS: &str = concat!(
        r#"{"kind":"step","epoch":1,"batch":1,"step":1,"loss":2.5}"#,
        "\n",
        r#"{"kind":"epoch","epoch":1,"step":4,"loss":2.0,"student/top1":40.5,"wall_seconds":1.5}"#,
        "\n",
        r#"{"kind":"epoch","epoch":2,"step":8,"loss":1.5,"student/top1":38.0,"wall_seconds":3}"#,
        "\n",
    );

    const CONFIG: &str = r#"
stack = ["kd", "hint"]
[run]
name = "r"
[networks.student]
arch = "resnet8"
[method.kd]
kind = "kd"
weight = 0.9
[method.hint]
kind = "fitnet"
"#;

    #[test]
    fn an_unfinished_run_is_read_from_its_epoch_rows() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            JSONL_FILE,
            &(ROWS.to_string() + r#"{"kind":"ep"#),
        );
        write(dir.path(), CONFIG_FILE, CONFIG);
        let run = read_run(dir.path()).unwrap();
        assert!(!run.finished);
        assert_eq!(run.name, "r");
        assert_eq!((run.best_top1, run.best_epoch), (Some(40.5), Some(1)));
        assert_eq!(run.last_top1, Some(38.0));
        assert_eq!((run.epochs, run.steps, run.wall_seconds), (2, 8, Some(3.0)));
        assert_eq!(run.student_arch.as_deref(), Some("resnet8"));
        let stack: Vec<_> = run
            .stack
            .iter()
            .map(|s| (s.instance.as_str(), s.kind.as_str(), s.weight))
            .collect();
        assert_eq!(stack, [("kd", "kd", 0.9), ("hint", "fitnet", 1.0)]);
        assert_eq!(run.curve[1].loss, Some(1.5));
    }

    #[test]
    fn a_damaged_row_is_named_with_its_line_and_byte_offset() {
        let dir = tempfile::tempdir().unwrap();
        let text = ROWS.replace("38.0", "\"x\"");
        write(dir.path(), JSONL_FILE, &text);
        let error = read_run(dir.path()).unwrap_err().to_string();
        let at = ROWS.lines().take(2).map(|l| l.len() + 1).sum::<usize>();
        assert!(
            error.contains(JSONL_FILE)
                && error.contains(&format!("line 3 (byte {at})"))
                && error.contains("`student/top1` is \"x\""),
            "{error}"
        );
    }

    const SUMMARY: &str = r#"{"run": "r", "seed": 1, "epochs": 2, "steps": 8,
        "wall_seconds": 3.5, "best_epoch": 1, "git_revision": null, "kd_version": "0",
        "outputs": {"student": {"best_top1": 40.5, "best_epoch": 1, "last_top1": 38.0,
        "last_top5": 90.0, "initial_top1": null}}}"#;

    #[test]
    fn a_finished_run_is_read_from_its_summary() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), JSONL_FILE, ROWS);
        write(dir.path(), SUMMARY_FILE, SUMMARY);
        let run = read_run(dir.path()).unwrap();
        assert!(run.finished);
        assert_eq!((run.best_top1, run.best_epoch), (Some(40.5), Some(1)));
        assert_eq!((run.epochs, run.steps, run.wall_seconds), (2, 8, Some(3.5)));
        assert_eq!(run.curve.len(), 2);
    }

    #[test]
    fn a_torn_last_row_of_a_finished_run_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), JSONL_FILE, &(ROWS.to_string() + "{\"kind\""));
        write(dir.path(), SUMMARY_FILE, SUMMARY);
        let error = read_run(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains(JSONL_FILE) && error.contains(&format!("line 4 (byte {})", ROWS.len())),
            "{error}"
        );
    }

    #[test]
    fn a_damaged_summary_is_named_with_its_line_and_byte_offset() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), SUMMARY_FILE, "{\"run\": 3}");
        let error = read_run(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains(SUMMARY_FILE) && error.contains("line 1 (byte 8)"),
            "{error}"
        );
        write(dir.path(), SUMMARY_FILE, &SUMMARY.replace("38.0", "380.0"));
        let error = read_run(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("outputs.student.last_top1 = 380 is not a percentage"),
            "{error}"
        );
    }

    #[test]
    fn epochs_only_increase_and_an_old_file_counting_from_0_is_counted_from_1() {
        let dir = tempfile::tempdir().unwrap();
        let old = ROWS
            .replace("\"epoch\":1", "\"epoch\":0")
            .replace("\"epoch\":2", "\"epoch\":1");
        write(dir.path(), JSONL_FILE, &old);
        let run = read_run(dir.path()).unwrap();
        let epochs: Vec<usize> = run.curve.iter().map(|p| p.epoch).collect();
        assert_eq!(
            (epochs, run.epochs, run.best_epoch),
            (vec![1, 2], 2, Some(1))
        );
        write(
            dir.path(),
            JSONL_FILE,
            &ROWS.replace("\"epoch\":2", "\"epoch\":1"),
        );
        let error = read_run(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("line 3") && error.contains("epoch 1 follows epoch 1"),
            "{error}"
        );
    }

    #[test]
    fn damaged_config_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), JSONL_FILE, ROWS);
        write(
            dir.path(),
            CONFIG_FILE,
            &CONFIG.replace("kind = \"fitnet\"", ""),
        );
        let error = read_run(dir.path()).unwrap_err().to_string();
        assert!(error.contains("`method.hint.kind` is missing"), "{error}");
        write(dir.path(), CONFIG_FILE, "stack = [");
        let error = read_run(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains(CONFIG_FILE) && error.contains("(byte "),
            "{error}"
        );
    }

    #[test]
    fn a_folder_without_run_files_is_not_a_run() {
        let dir = tempfile::tempdir().unwrap();
        let error = read_run(dir.path()).unwrap_err();
        assert!(matches!(error, CompareError::NotARun { .. }), "{error}");
        let missing = dir.path().join("nope");
        let error = read_run(&missing).unwrap_err().to_string();
        assert!(error.contains("nope: no such run directory"), "{error}");
    }

    #[test]
    fn the_chart_has_its_size_and_is_not_blank() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), JSONL_FILE, ROWS);
        let run = read_run(dir.path()).unwrap();
        let png = dir.path().join("c.png");
        draw_comparison(&png, "t", &[run.clone(), run]).unwrap();
        let image = image::open(&png).unwrap().to_rgb8();
        assert_eq!(image.dimensions(), CHART_SIZE);
        let first = kd_plot::COLOURS[0];
        assert!(image.pixels().any(|p| p.0 == [first.0, first.1, first.2]));
    }
}

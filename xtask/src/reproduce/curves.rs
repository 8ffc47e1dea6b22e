//! Learning curves: the test top-1 after every epoch of each finished training cell, read from
//! the `epoch` lines of its `metrics.csv` (by header name, since the columns differ between
//! methods), then per row and column the mean over seeds with the lowest and highest seed.
//! Each row's curve is of the output the row reports (`report`, as the table does); a claim
//! that a row's output improves during training (FFKD's teacher) adds that output's curve.
//! From them: `<table>-curves.csv`, `<table>-curves.png` (one panel per column, a band from the
//! lowest to the highest seed around each row's mean, claimed outputs dashed) and the
//! convergence check (how much a mean curve still moves over its last epochs). Evaluation
//! cells (a released file) have no curve.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::aggregate::{self, row_key};
use super::manifest::{Cell, Manifest};

/// One epoch of a curve, over the seeds that reached it.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Epoch, from 1 (as in `metrics.csv`): the epochs trained.
    pub epoch: usize,
    /// Mean test top-1 (%) over seeds.
    pub mean: f64,
    /// Lowest seed's top-1.
    pub min: f64,
    /// Highest seed's top-1.
    pub max: f64,
    /// Seeds with this epoch.
    pub seeds: usize,
}

/// The test top-1 of one output of a row in one column, epoch by epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// Row name.
    pub row: String,
    /// Column name.
    pub column: String,
    /// The output (`student`, `teacher`, `peer`, …).
    pub output: String,
    /// Whether it is the output the row reports; otherwise a claim's (drawn dashed).
    pub reported: bool,
    /// Every epoch any seed reached, in order.
    pub points: Vec<Point>,
}

impl Curve {
    /// How much the mean moves over the last `epochs` epochs (max − min of the mean there);
    /// none for a curve shorter than that.
    pub fn last_change(&self, epochs: usize) -> Option<f64> {
        if epochs == 0 || self.points.len() < epochs {
            return None;
        }
        let tail = &self.points[self.points.len() - epochs..];
        let max = tail
            .iter()
            .map(|p| p.mean)
            .fold(f64::NEG_INFINITY, f64::max);
        let min = tail.iter().map(|p| p.mean).fold(f64::INFINITY, f64::min);
        Some(max - min)
    }
}

/// Epochs the convergence check looks back over.
pub const FLAT_EPOCHS: usize = 3;

/// A mean curve moving this much (top-1 points) or more over its last [`FLAT_EPOCHS`] epochs is
/// not flat.
pub const FLAT_LIMIT: f64 = 0.5;

/// The test top-1 of `output` after each epoch of a run, from its `metrics.csv`:
/// `(epoch, top-1)` by epoch (a repeated epoch keeps its last line).
///
/// # Errors
/// A file that cannot be read or parsed, or that has no `<output>/top1` column.
pub fn read_epochs(path: &Path, output: &str) -> anyhow::Result<BTreeMap<usize, f64>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("reading {}", path.display()))?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{} has no column `{name}`", path.display()))
    };
    let (kind, epoch, top1) = (
        column("kind")?,
        column("epoch")?,
        column(&format!("{output}/top1"))?,
    );
    let mut epochs = BTreeMap::new();
    for record in reader.records() {
        let record = record.with_context(|| format!("reading {}", path.display()))?;
        if record.get(kind) != Some("epoch") {
            continue;
        }
        let number = record
            .get(epoch)
            .and_then(|e| e.trim().parse::<usize>().ok());
        let value = record.get(top1).and_then(|v| v.trim().parse::<f64>().ok());
        if let (Some(number), Some(value)) = (number, value) {
            epochs.insert(number, value);
        }
    }
    Ok(epochs)
}

/// One output's curve over the finished training cells of a row and key; none when no cell has
/// a readable one.
fn curve_of(repo: &Path, cells: &[Cell], row: &str, key: &str, output: &str) -> Option<Vec<Point>> {
    let mut by_epoch: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for cell in cells.iter().filter(|c| c.row == row && c.key == key) {
        if !aggregate::finished_training(repo, cell) {
            continue;
        }
        let Ok(epochs) = read_epochs(&repo.join(&cell.dir).join("metrics.csv"), output) else {
            continue;
        };
        for (epoch, value) in epochs {
            by_epoch.entry(epoch).or_default().push(value);
        }
    }
    let points: Vec<Point> = by_epoch
        .into_iter()
        .map(|(epoch, values)| Point {
            epoch,
            mean: values.iter().sum::<f64>() / values.len() as f64,
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            seeds: values.len(),
        })
        .collect();
    (!points.is_empty()).then_some(points)
}

/// Every curve of the table, column by column: each row's reported output in row order, then
/// the output of each claim that one improves (unless it is already its row's reported one).
/// Rows with no finished cell are left out.
///
/// # Errors
/// A row key that does not render.
pub fn collect(repo: &Path, manifest: &Manifest, cells: &[Cell]) -> anyhow::Result<Vec<Curve>> {
    let mut curves = Vec::new();
    for column in &manifest.column {
        let mut wanted: Vec<(&str, String, bool)> = manifest
            .row
            .iter()
            .map(|r| (r.name.as_str(), r.report.clone(), true))
            .collect();
        for improves in manifest.claim.iter().filter_map(|c| c.improves.as_ref()) {
            let reported = manifest
                .row
                .iter()
                .any(|r| r.name == improves.row && r.report == improves.output);
            let wanted_already = wanted
                .iter()
                .any(|(r, o, _)| *r == improves.row && *o == improves.output);
            if !reported && !wanted_already {
                wanted.push((improves.row.as_str(), improves.output.clone(), false));
            }
        }
        for (row_name, output, reported) in wanted {
            let Some(row) = manifest.row.iter().find(|r| r.name == row_name) else {
                continue;
            };
            let key = row_key(row, column)?;
            if let Some(points) = curve_of(repo, cells, row_name, &key, &output) {
                curves.push(Curve {
                    row: row_name.to_string(),
                    column: column.name.clone(),
                    output,
                    reported,
                    points,
                });
            }
        }
    }
    Ok(curves)
}

/// The numbers behind the picture, one line per curve and epoch (epochs from 1, as in
/// `metrics.csv`): `row,column,output,epoch,mean_top1,min_top1,max_top1,seeds`.
pub fn csv(curves: &[Curve]) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record([
        "row",
        "column",
        "output",
        "epoch",
        "mean_top1",
        "min_top1",
        "max_top1",
        "seeds",
    ])
    .expect("writing CSV into memory cannot fail");
    for curve in curves {
        for p in &curve.points {
            out.write_record([
                curve.row.clone(),
                curve.column.clone(),
                curve.output.clone(),
                p.epoch.to_string(),
                format!("{:.4}", p.mean),
                format!("{:.4}", p.min),
                format!("{:.4}", p.max),
                p.seeds.to_string(),
            ])
            .expect("writing CSV into memory cannot fail");
        }
    }
    let bytes = out
        .into_inner()
        .expect("flushing CSV into memory cannot fail");
    String::from_utf8(bytes).expect("every cell is a String")
}

/// Panels side by side before the next line of panels starts.
const ACROSS: usize = 3;
/// One panel's size in pixels (a column has two).
const PANEL: (u32, u32) = (560, 420);
/// The legend's width in pixels, right of the panels.
const LEGEND: u32 = 240;
/// The title's height in pixels.
const TITLE: u32 = 36;

/// The x of an epoch (from 1, as `metrics.csv` counts them) in the picture: the epochs trained.
fn epochs_trained(epoch: usize) -> u32 {
    u32::try_from(epoch).unwrap_or(u32::MAX)
}

fn colour(manifest: &Manifest, row: &str) -> RGBColor {
    let r = manifest.row.iter().position(|r| r.name == row).unwrap_or(0);
    kd_plot::COLOURS[r % kd_plot::COLOURS.len()]
}

/// A curve's label: the row's, with the output for a claim's curve.
fn label(manifest: &Manifest, curve: &Curve) -> String {
    let row = manifest
        .row
        .iter()
        .find(|r| r.name == curve.row)
        .map_or(curve.row.as_str(), |r| r.label.as_str());
    if curve.reported {
        row.to_string()
    } else {
        format!("{row} ({})", curve.output)
    }
}

fn draw<'a>(
    buffer: &'a mut [u8],
    size: (u32, u32),
    manifest: &Manifest,
    curves: &[Curve],
    text: bool,
) -> Result<(), Box<dyn std::error::Error + 'a>> {
    let root = BitMapBackend::with_buffer(buffer, size).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, body) = root.split_vertically(TITLE);
    if text {
        top.titled(&manifest.title, ("sans-serif", 18))?;
    }
    let (plots, legend) = body.split_horizontally(size.0 - LEGEND);
    let across = manifest.column.len().clamp(1, ACROSS);
    let down = manifest.column.len().div_ceil(across).max(1);
    let panels = plots.split_evenly((down, across));
    for (column, area) in manifest.column.iter().zip(panels.iter()) {
        let here: Vec<&Curve> = curves.iter().filter(|c| c.column == column.name).collect();
        if here.is_empty() {
            if text {
                let (width, height) = area.dim_in_pixel();
                area.draw(&Text::new(
                    format!("{}: no finished cell yet", column.label),
                    (width as i32 / 2 - 100, height as i32 / 2),
                    ("sans-serif", 14),
                ))?;
            }
            continue;
        }
        let last = here
            .iter()
            .flat_map(|c| c.points.iter().map(|p| epochs_trained(p.epoch)))
            .max()
            .unwrap_or(1)
            .max(2);
        // The whole run, and its second half with the accuracy axis fitted to it: the rows'
        // final differences are a point or two, invisible on the whole run's axis.
        let (whole, end) = area.split_horizontally(area.dim_in_pixel().0 / 2);
        let caption = format!("{}: every epoch", column.label);
        panel(&whole, manifest, &here, (1, last), text, &caption)?;
        let from = (last / 2).max(1);
        let caption = format!("{}: epochs {from} to {last}", column.label);
        panel(&end, manifest, &here, (from, last), text, &caption)?;
    }
    // The legend: one entry per curve drawn in any panel, in the panels' order.
    let mut entries: Vec<&Curve> = Vec::new();
    for curve in curves {
        if !entries
            .iter()
            .any(|c| c.row == curve.row && c.output == curve.output)
        {
            entries.push(curve);
        }
    }
    let mut y = 40;
    for curve in &entries {
        let colour = colour(manifest, &curve.row);
        if curve.reported {
            legend.draw(&Rectangle::new(
                [(10, y - 6), (40, y + 6)],
                colour.mix(0.18).filled(),
            ))?;
            legend.draw(&PathElement::new(
                vec![(10, y), (40, y)],
                colour.stroke_width(2),
            ))?;
        } else {
            legend.draw(&DashedPathElement::new(
                vec![(10, y), (40, y)],
                8,
                5,
                colour.stroke_width(2),
            ))?;
        }
        if text {
            legend.draw(&Text::new(
                label(manifest, curve),
                (48, y - 7),
                ("sans-serif", 13),
            ))?;
        }
        y += 22;
    }
    if text && !entries.is_empty() {
        let notes = [
            "line: mean over seeds",
            "band: lowest to highest seed",
            "dashed: mean only",
        ];
        y += 8;
        for note in notes {
            legend.draw(&Text::new(note, (10, y), ("sans-serif", 12)))?;
            y += 18;
        }
    }
    root.present()?;
    Ok(())
}

/// One panel: the curves of one column over epochs `span` (inclusive), the accuracy axis
/// fitted to the points shown.
fn panel<'a, DB: DrawingBackend + 'a>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    manifest: &Manifest,
    here: &[&Curve],
    span: (u32, u32),
    text: bool,
    caption: &str,
) -> Result<(), Box<dyn std::error::Error + 'a>>
where
    DB::ErrorType: 'static,
{
    let (from, last) = span;
    let shown = |p: &&Point| (from..=last).contains(&epochs_trained(p.epoch));
    let low = here
        .iter()
        .flat_map(|c| c.points.iter().filter(shown).map(|p| p.min))
        .fold(100.0f64, f64::min);
    let high = here
        .iter()
        .flat_map(|c| c.points.iter().filter(shown).map(|p| p.max))
        .fold(0.0f64, f64::max);
    let step = if high - low > 10.0 { 5.0 } else { 1.0 };
    let floor = (((low - step / 5.0) / step).floor() * step).clamp(0.0, 100.0 - step);
    let ceiling = (((high + step / 5.0) / step).ceil() * step).clamp(floor + step, 100.0);
    let mut chart = ChartBuilder::on(area);
    chart
        .margin(10)
        .x_label_area_size(if text { 36 } else { 4 })
        .y_label_area_size(if text { 44 } else { 4 });
    if text {
        chart.caption(caption, ("sans-serif", 14));
    }
    let mut chart = chart.build_cartesian_2d(from..last.max(from + 1), floor..ceiling)?;
    let mut mesh = chart.configure_mesh();
    mesh.light_line_style(WHITE.mix(0.0));
    let decimals = if ceiling - floor >= 10.0 { 0 } else { 1 };
    let whole = |y: &f64| format!("{y:.decimals$}");
    if text {
        mesh.x_desc("epochs trained")
            .y_desc("test top-1 (%)")
            .x_labels(10)
            .y_label_formatter(&whole);
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw()?;
    let points =
        |curve: &Curve| -> Vec<Point> { curve.points.iter().filter(shown).cloned().collect() };
    // Bands first, so that no band covers another row's line.
    for curve in here.iter().filter(|c| c.reported) {
        let shade = colour(manifest, &curve.row).mix(0.18);
        let kept = points(curve);
        let mut outline: Vec<(u32, f64)> = kept
            .iter()
            .map(|p| (epochs_trained(p.epoch), p.max))
            .collect();
        outline.extend(kept.iter().rev().map(|p| (epochs_trained(p.epoch), p.min)));
        chart.draw_series(std::iter::once(Polygon::new(outline, shade.filled())))?;
    }
    for curve in here {
        let colour = colour(manifest, &curve.row);
        let line: Vec<(u32, f64)> = points(curve)
            .iter()
            .map(|p| (epochs_trained(p.epoch), p.mean))
            .collect();
        if line.len() == 1 {
            chart.draw_series(std::iter::once(Circle::new(line[0], 3, colour.filled())))?;
        } else if curve.reported {
            chart.draw_series(LineSeries::new(line, colour.stroke_width(2)))?;
        } else {
            chart.draw_series(DashedLineSeries::new(line, 8, 5, colour.stroke_width(2)))?;
        }
    }
    Ok(())
}

/// Draws the curves into a PNG file: per column, a panel of the whole run and one of its second
/// half with the accuracy axis fitted to it; the legend on the right.
pub fn draw_chart(path: &Path, manifest: &Manifest, curves: &[Curve]) -> Result<(), String> {
    let across = manifest.column.len().clamp(1, ACROSS) as u32;
    let down = manifest.column.len().div_ceil(ACROSS).max(1) as u32;
    let size = (across * 2 * PANEL.0 + LEGEND, TITLE + down * PANEL.1);
    let mut buffer = kd_plot::buffer(size);
    let text = kd_plot::font_available();
    draw(&mut buffer, size, manifest, curves, text).map_err(|e| e.to_string())?;
    kd_plot::save_png(path, &buffer, size)
}

/// A small table on disk for the tests of this module, `aggregate.rs` and `report.rs`: hand-made
/// `summary.json` and `metrics.csv` files whose means, spreads and tests are worked out by hand
/// where they are checked.
#[cfg(test)]
pub(super) mod fixture {
    use std::path::Path;

    use super::super::manifest::{Cell, Manifest};

    /// One column; a teacher row keyed on the teacher, KD and FFKD rows; a claim of each kind.
    const MANIFEST: &str = r#"
title = "t"
description = "d"
output_dir = "runs"
seeds = 3
[[column]]
name = "r20-r8"
label = "resnet20 → resnet8"
teacher = "resnet20"
student = "resnet8"
[[row]]
name = "teacher"
label = "Teacher"
config = "c.toml"
key = "{teacher}"
[[row]]
name = "kd"
label = "KD"
config = "c.toml"
sets = ["networks.teacher.checkpoint={run:teacher}/checkpoints/last.kdc"]
[[row]]
name = "ffkd"
label = "FFKD"
config = "c.toml"
[[claim]]
text = "KD beats the teacher"
better = ["kd", "teacher"]
[[claim]]
text = "FFKD refines its teacher"
improves = { row = "ffkd", output = "teacher" }
"#;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
    }

    /// A `summary.json`: `(output, last, best, best epoch, initial)` for each output.
    fn summary(dir: &Path, wall: Option<f64>, outputs: &[(&str, f64, f64, usize, f64)]) {
        let outputs: Vec<String> = outputs
            .iter()
            .map(|(name, last, best, best_epoch, initial)| {
                format!(
                    r#""{name}": {{"best_top1": {best}, "best_epoch": {best_epoch},
                    "last_top1": {last}, "last_top5": 99.0, "initial_top1": {initial}}}"#
                )
            })
            .collect();
        let wall = wall.map_or(String::new(), |w| format!(r#""wall_seconds": {w},"#));
        write(
            dir,
            "summary.json",
            &format!(
                r#"{{"run": "x", "seed": 0, "epochs": 4, "steps": 8, {wall} "best_epoch": 3,
                "outputs": {{{}}}, "git_revision": "x", "kd_version": "0.1.0"}}"#,
                outputs.join(", ")
            ),
        );
    }

    /// A supervised run's `metrics.csv`: a step line before every epoch line.
    fn supervised(dir: &Path, top1: &[f64]) {
        let mut text = "kind,epoch,batch,step,loss,ce/student,student/top1,student/top5,\
                        images_per_sec,wall_seconds\n"
            .to_string();
        for (epoch, t) in (1..).zip(top1) {
            text.push_str(&format!(
                "step,{epoch},1,{},2.5,2.5,,,100,{epoch}\n",
                2 * epoch + 1
            ));
            text.push_str(&format!(
                "epoch,{epoch},,{},1.5,1.5,{t},99,,{epoch}.5\n",
                2 * epoch + 2
            ));
        }
        write(dir, "metrics.csv", &text);
    }

    /// An FFKD run's `metrics.csv`: two outputs, in another column order than [`supervised`].
    fn ffkd(dir: &Path, student: &[f64], teacher: &[f64]) {
        let mut text =
            "kind,epoch,batch,step,teacher/top1,loss,student/top1,wall_seconds\n".to_string();
        for (epoch, (s, t)) in (1..).zip(student.iter().zip(teacher)) {
            text.push_str(&format!("step,{epoch},1,{},,9,,{epoch}\n", 2 * epoch + 1));
            text.push_str(&format!(
                "epoch,{epoch},,{},{t},8,{s},{epoch}.5\n",
                2 * epoch + 2
            ));
        }
        write(dir, "metrics.csv", &text);
    }

    /// The table in a temporary repository, with its cells: the teacher's three seeds, KD's
    /// seeds 0 and 1 (seed 1 with no wall time; seed 2 not finished, a partial curve on disk),
    /// FFKD's seeds 0 and 1 (its cells stop at two seeds; a seed-2 run on disk is not one).
    pub fn table() -> (tempfile::TempDir, Manifest, Vec<Cell>) {
        let repo = tempfile::tempdir().unwrap();
        let manifest: Manifest = toml::from_str(MANIFEST).unwrap();
        let cells: Vec<Cell> = manifest
            .cells(3, false)
            .unwrap()
            .into_iter()
            .filter(|c| !(c.row == "ffkd" && c.seed == 2))
            .collect();
        let runs = repo.path().join("runs");
        let teacher = runs.join("teacher/resnet20");
        for (seed, wall, top1, best_epoch) in [
            (0, 100.0, [70.0, 78.0, 78.25, 78.5], 3),
            (1, 200.0, [72.0, 78.5, 78.5, 78.25], 1),
            (2, 300.5, [74.0, 78.25, 78.0, 78.0], 1),
        ] {
            let dir = teacher.join(format!("seed{seed}"));
            supervised(&dir, &top1);
            let best = top1.iter().copied().fold(0.0, f64::max);
            summary(
                &dir,
                Some(wall),
                &[("student", top1[3], best, best_epoch, 10.0)],
            );
        }
        let kd = runs.join("kd/r20-r8");
        supervised(&kd.join("seed0"), &[50.0, 60.0, 70.0, 71.0]);
        summary(
            &kd.join("seed0"),
            Some(60.0),
            &[("student", 71.0, 71.0, 3, 10.0)],
        );
        supervised(&kd.join("seed1"), &[52.0, 62.0, 71.0, 72.0]);
        summary(&kd.join("seed1"), None, &[("student", 72.0, 72.0, 3, 10.0)]);
        supervised(&kd.join("seed2"), &[99.0, 99.0]);
        let ffkd_runs = runs.join("ffkd/r20-r8");
        for (seed, wall, student, teacher) in [
            (0, 150.0, [40.0, 60.0, 65.0, 66.0], [78.5, 79.0, 79.5, 80.0]),
            (1, 90.0, [42.0, 62.0, 66.0, 67.0], [78.0, 79.0, 80.0, 80.5]),
            (2, 50.0, [0.0; 4], [0.0; 4]),
        ] {
            let dir = ffkd_runs.join(format!("seed{seed}"));
            ffkd(&dir, &student, &teacher);
            summary(
                &dir,
                Some(wall),
                &[
                    ("student", student[3], student[3], 3, 10.0),
                    ("teacher", teacher[3], teacher[3], 3, teacher[0]),
                ],
            );
        }
        (repo, manifest, cells)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve<'a>(curves: &'a [Curve], row: &str, output: &str) -> &'a Curve {
        curves
            .iter()
            .find(|c| c.row == row && c.output == output)
            .unwrap_or_else(|| panic!("no {row} {output} curve in {curves:?}"))
    }

    #[test]
    fn epoch_lines_are_read_by_header_name_and_step_lines_skipped() {
        let (repo, _, _) = fixture::table();
        let path = repo.path().join("runs/ffkd/r20-r8/seed1/metrics.csv");
        let teacher = read_epochs(&path, "teacher").unwrap();
        assert_eq!(
            teacher.into_iter().collect::<Vec<_>>(),
            [(1, 78.0), (2, 79.0), (3, 80.0), (4, 80.5)]
        );
        let student = read_epochs(&path, "student").unwrap();
        assert_eq!(
            student.values().copied().collect::<Vec<_>>(),
            [42.0, 62.0, 66.0, 67.0]
        );
        let error = read_epochs(&path, "peer").unwrap_err().to_string();
        assert!(error.contains("no column `peer/top1`"), "{error}");
    }

    #[test]
    fn mean_min_and_max_over_the_finished_seeds_per_epoch() {
        let (repo, manifest, cells) = fixture::table();
        let curves = collect(repo.path(), &manifest, &cells).unwrap();
        // Three reported curves and FFKD's claimed teacher, in that order.
        let names: Vec<(&str, &str, bool)> = curves
            .iter()
            .map(|c| (c.row.as_str(), c.output.as_str(), c.reported))
            .collect();
        assert_eq!(
            names,
            [
                ("teacher", "student", true),
                ("kd", "student", true),
                ("ffkd", "student", true),
                ("ffkd", "teacher", false)
            ]
        );
        // KD: seeds 0 and 1 only (seed 2 has no summary): 50/52, 60/62, 70/71, 71/72.
        let kd = curve(&curves, "kd", "student");
        let expected = [
            (1, 51.0, 50.0, 52.0),
            (2, 61.0, 60.0, 62.0),
            (3, 70.5, 70.0, 71.0),
            (4, 71.5, 71.0, 72.0),
        ];
        for (point, (epoch, mean, min, max)) in kd.points.iter().zip(expected) {
            assert_eq!(
                point,
                &Point {
                    epoch,
                    mean,
                    min,
                    max,
                    seeds: 2
                }
            );
        }
        assert_eq!(kd.points.len(), 4);
        // Teacher: (70+72+74)/3 = 72, then 78.25 three times (quarters sum exactly).
        let teacher = curve(&curves, "teacher", "student");
        let means: Vec<f64> = teacher.points.iter().map(|p| p.mean).collect();
        assert_eq!(means, [72.0, 78.25, 78.25, 78.25]);
        assert_eq!((teacher.points[1].min, teacher.points[1].max), (78.0, 78.5));
        assert!(teacher.points.iter().all(|p| p.seeds == 3));
        // FFKD's teacher: the two cells' (78.5+78)/2 … (80+80.5)/2; the seed-2 run is no cell.
        let refined = curve(&curves, "ffkd", "teacher");
        let means: Vec<f64> = refined.points.iter().map(|p| p.mean).collect();
        assert_eq!(means, [78.25, 79.0, 79.75, 80.25]);
    }

    #[test]
    fn the_last_three_epoch_change_is_max_minus_min_of_the_mean() {
        let (repo, manifest, cells) = fixture::table();
        let curves = collect(repo.path(), &manifest, &cells).unwrap();
        // KD: 61, 70.5, 71.5 → 10.5; teacher: flat; FFKD's student: 61, 65.5, 66.5 → 5.5.
        assert_eq!(curve(&curves, "kd", "student").last_change(3), Some(10.5));
        assert_eq!(
            curve(&curves, "teacher", "student").last_change(3),
            Some(0.0)
        );
        assert_eq!(curve(&curves, "ffkd", "student").last_change(3), Some(5.5));
        assert_eq!(curve(&curves, "kd", "student").last_change(5), None);
        assert_eq!(curve(&curves, "kd", "student").last_change(1), Some(0.0));
    }

    #[test]
    fn a_row_without_finished_cells_has_no_curve() {
        let (repo, manifest, cells) = fixture::table();
        std::fs::remove_dir_all(repo.path().join("runs/kd")).unwrap();
        let curves = collect(repo.path(), &manifest, &cells).unwrap();
        assert!(curves.iter().all(|c| c.row != "kd"));
        assert_eq!(curves.len(), 3);
    }

    #[test]
    fn the_csv_holds_every_epoch_of_every_curve() {
        let (repo, manifest, cells) = fixture::table();
        let text = csv(&collect(repo.path(), &manifest, &cells).unwrap());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "row,column,output,epoch,mean_top1,min_top1,max_top1,seeds"
        );
        assert_eq!(lines.len(), 1 + 4 * 4);
        assert!(lines.contains(&"kd,r20-r8,student,1,51.0000,50.0000,52.0000,2"));
        assert!(lines.contains(&"teacher,r20-r8,student,4,78.2500,78.0000,78.5000,3"));
        assert!(lines.contains(&"ffkd,r20-r8,teacher,4,80.2500,80.0000,80.5000,2"));
    }

    #[test]
    fn the_picture_is_written_with_and_without_curves() {
        let (repo, manifest, cells) = fixture::table();
        let curves = collect(repo.path(), &manifest, &cells).unwrap();
        let path = repo.path().join("t-curves.png");
        draw_chart(&path, &manifest, &curves).unwrap();
        if let Ok(keep) = std::env::var("KEEP_CURVES_PNG") {
            std::fs::copy(&path, keep).unwrap();
        }
        assert!(std::fs::metadata(&path).unwrap().len() > 1000);
        // Four columns: two lines of panels, the last line not full.
        let mut wide = manifest.clone();
        for i in 0..3 {
            let mut column = wide.column[0].clone();
            column.name = format!("c{i}");
            column.label = format!("column {i}");
            wide.column.push(column);
        }
        let grid = repo.path().join("grid.png");
        draw_chart(&grid, &wide, &curves).unwrap();
        if let Ok(keep) = std::env::var("KEEP_CURVES_GRID_PNG") {
            std::fs::copy(&grid, keep).unwrap();
        }
        assert!(grid.is_file());
        let empty = repo.path().join("empty.png");
        draw_chart(&empty, &manifest, &[]).unwrap();
        assert!(empty.is_file());
    }
}

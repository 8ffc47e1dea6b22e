//! The table as a picture: per column, a bar per row (last-epoch mean top-1) with its standard
//! deviation, and the paper's number as a black dash where it is known.

use std::path::Path;

use plotters::prelude::*;

use super::aggregate::Entry;
use super::manifest::Manifest;

fn draw<'a>(
    buffer: &'a mut [u8],
    size: (u32, u32),
    manifest: &Manifest,
    entries: &[Entry],
    text: bool,
) -> Result<(), Box<dyn std::error::Error + 'a>> {
    let root = BitMapBackend::with_buffer(buffer, size).into_drawing_area();
    root.fill(&WHITE)?;
    let rows = manifest.row.len();
    let columns = manifest.column.len();
    let values: Vec<f64> = entries
        .iter()
        .filter_map(|e| e.last.map(|s| s.mean - s.std))
        .chain(
            entries
                .iter()
                .filter_map(|e| e.paper.as_ref().map(|p| p.value)),
        )
        .collect();
    let low = values.iter().copied().fold(100.0f64, f64::min);
    let floor = (low - 5.0).clamp(0.0, 95.0).floor();
    let width = (columns * (rows + 1)) as f64;
    let mut chart = ChartBuilder::on(&root);
    chart
        .margin(14)
        .x_label_area_size(if text { 40 } else { 4 })
        .y_label_area_size(if text { 48 } else { 4 });
    if text {
        chart.caption(&manifest.title, ("sans-serif", 18));
    }
    let mut chart = chart.build_cartesian_2d(0f64..width, floor..100f64)?;
    let mut mesh = chart.configure_mesh();
    mesh.disable_x_mesh().x_labels(0).light_line_style(WHITE);
    if text {
        mesh.y_desc("last-epoch top-1 (%)");
    } else {
        mesh.y_labels(0);
    }
    mesh.draw()?;
    for (c, column) in manifest.column.iter().enumerate() {
        let base = (c * (rows + 1)) as f64 + 0.5;
        if text {
            let top = 100.0 - (100.0 - floor) * 0.04;
            chart.draw_series(std::iter::once(Text::new(
                column.label.clone(),
                (base, top),
                ("sans-serif", 13),
            )))?;
        }
        for (r, row) in manifest.row.iter().enumerate() {
            let Some(entry) = entries
                .iter()
                .find(|e| e.row == row.name && e.column == column.name)
            else {
                continue;
            };
            let colour = kd_plot::COLOURS[r % kd_plot::COLOURS.len()];
            let x = base + r as f64;
            if let Some(stat) = entry.last {
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x, floor), (x + 0.8, stat.mean)],
                    colour.filled(),
                )))?;
                let mid = x + 0.4;
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(mid, stat.mean - stat.std), (mid, stat.mean + stat.std)],
                    BLACK.stroke_width(2),
                )))?;
            }
            if let Some(paper) = &entry.paper {
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(x, paper.value), (x + 0.8, paper.value)],
                    BLACK.stroke_width(3),
                )))?;
            }
        }
    }
    if text {
        for (r, row) in manifest.row.iter().enumerate() {
            let colour = kd_plot::COLOURS[r % kd_plot::COLOURS.len()];
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(0.0, floor), (0.0, floor)],
                    colour.filled(),
                )))?
                .label(row.label.clone())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled())
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// Draws the chart into a PNG file.
pub fn draw_chart(path: &Path, manifest: &Manifest, entries: &[Entry]) -> Result<(), String> {
    let width =
        (260 + 90 * manifest.column.len() * (manifest.row.len() + 1)).clamp(700, 2400) as u32;
    let size = (width, 480u32);
    let mut buffer = kd_plot::buffer(size);
    let text = kd_plot::font_available();
    draw(&mut buffer, size, manifest, entries, text).map_err(|e| e.to_string())?;
    kd_plot::save_png(path, &buffer, size)
}

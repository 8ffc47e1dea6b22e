//! `curve.png`: top-1 accuracy of every evaluated output per epoch (left) and the mean training
//! loss per epoch (right), drawn with plotters into a buffer and encoded with `image`.
//!
//! Text needs a system font (`kd_plot::font_available`); without one the curves are drawn with
//! no text.

use std::path::Path;

use plotters::prelude::*;

use crate::checkpoint::TrainState;

fn draw<'a>(
    buffer: &'a mut [u8],
    size: (u32, u32),
    title: &str,
    state: &TrainState,
    text: bool,
) -> Result<(), Box<dyn std::error::Error + 'a>> {
    let root = BitMapBackend::with_buffer(buffer, size).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(size.0 / 2);
    let epochs = state.history.len().max(1) as f64 + 0.5;

    let mut names: Vec<&String> = state.history.iter().flat_map(|e| e.eval.keys()).collect();
    names.sort();
    names.dedup();
    let mut chart = ChartBuilder::on(&left);
    chart
        .margin(12)
        .x_label_area_size(if text { 36 } else { 4 })
        .y_label_area_size(if text { 44 } else { 4 });
    if text {
        chart.caption(format!("{title}: top-1 (%)"), ("sans-serif", 18));
    }
    let mut acc = chart.build_cartesian_2d(0.5f64..epochs, 0f64..100f64)?;
    let mut mesh = acc.configure_mesh();
    mesh.light_line_style(WHITE);
    if !text {
        mesh.x_labels(0).y_labels(0);
    } else {
        mesh.x_desc("epoch");
    }
    mesh.draw()?;
    for (i, name) in names.iter().enumerate() {
        let colour = kd_plot::COLOURS[i % kd_plot::COLOURS.len()];
        let points: Vec<(f64, f64)> = state
            .history
            .iter()
            .filter_map(|e| e.eval.get(*name).map(|a| (e.epoch as f64 + 1.0, a.top1)))
            .collect();
        acc.draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))?;
        let series = acc.draw_series(LineSeries::new(points, colour.stroke_width(2)))?;
        if text {
            series
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour));
        }
    }
    if text {
        acc.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }

    let losses: Vec<(f64, f64)> = state
        .history
        .iter()
        .filter_map(|e| e.train.get("loss").map(|l| (e.epoch as f64 + 1.0, *l)))
        .collect();
    let top = losses.iter().map(|p| p.1).fold(0.0f64, f64::max).max(1e-6) * 1.05;
    let mut chart = ChartBuilder::on(&right);
    chart
        .margin(12)
        .x_label_area_size(if text { 36 } else { 4 })
        .y_label_area_size(if text { 44 } else { 4 });
    if text {
        chart.caption("training loss (weighted total)", ("sans-serif", 18));
    }
    let mut loss = chart.build_cartesian_2d(0.5f64..epochs, 0f64..top)?;
    let mut mesh = loss.configure_mesh();
    mesh.light_line_style(WHITE);
    if !text {
        mesh.x_labels(0).y_labels(0);
    } else {
        mesh.x_desc("epoch");
    }
    mesh.draw()?;
    loss.draw_series(
        losses
            .iter()
            .map(|&p| Circle::new(p, 3, kd_plot::COLOURS[3].filled())),
    )?;
    loss.draw_series(LineSeries::new(losses, kd_plot::COLOURS[3].stroke_width(2)))?;
    root.present()?;
    Ok(())
}

/// Draws the curves of a run's history into a PNG file.
pub fn draw_curves(path: &Path, title: &str, state: &TrainState) -> Result<(), String> {
    let size = (1000u32, 420u32);
    let mut buffer = kd_plot::buffer(size);
    let text = kd_plot::font_available();
    draw(&mut buffer, size, title, state, text).map_err(|e| e.to_string())?;
    kd_plot::save_png(path, &buffer, size)
}

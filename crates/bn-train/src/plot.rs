//! Figures (SVG): panels of labelled lines side by side, used for learning curves and for
//! the experiments' sweeps.

use std::path::Path;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::report::EpochMetrics;

/// One labelled line of a panel.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// The legend entry.
    pub label: String,
    /// `(x, y)` points, drawn in order and marked.
    pub points: Vec<(f64, f64)>,
}

impl Line {
    /// A line from its label and points.
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            label: label.into(),
            points,
        }
    }
}

/// One chart of a figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// The axis description under the chart.
    pub x_label: String,
    /// The axis description left of the chart.
    pub y_label: String,
    /// A logarithmic x axis (learning rates, batch sizes).
    pub log_x: bool,
    /// The lines, each in its own colour.
    pub lines: Vec<Line>,
}

impl Panel {
    /// A panel with a linear x axis.
    pub fn new(x_label: impl Into<String>, y_label: impl Into<String>, lines: Vec<Line>) -> Self {
        Self {
            x_label: x_label.into(),
            y_label: y_label.into(),
            log_x: false,
            lines,
        }
    }

    /// The same panel with a logarithmic x axis.
    pub fn log_x(mut self) -> Self {
        self.log_x = true;
        self
    }
}

/// Draws `panels` side by side under `title` into an SVG file at `path`.
///
/// # Errors
/// When the file cannot be written.
pub fn draw_panels(
    path: &Path,
    title: &str,
    panels: &[Panel],
) -> Result<(), Box<dyn std::error::Error>> {
    const PANEL_WIDTH: u32 = 520;
    const MIN_WIDTH: u32 = 860;
    let width = (PANEL_WIDTH * panels.len().max(1) as u32).max(MIN_WIDTH);
    let root = SVGBackend::new(path, (width, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    for (area, panel) in root
        .split_evenly((1, panels.len().max(1)))
        .iter()
        .zip(panels)
    {
        let points = || panel.lines.iter().flat_map(|line| line.points.iter());
        let (x_lo, x_hi) = bounds(points().map(|p| p.0));
        let (y_lo, y_hi) = bounds(points().map(|p| p.1));
        let y_pad = ((y_hi - y_lo) * 0.08).max(1e-3);
        let y_range = (y_lo - y_pad)..(y_hi + y_pad);
        let mut chart = ChartBuilder::on(area);
        chart.margin(12).x_label_area_size(40).y_label_area_size(56);
        if panel.log_x {
            let x_range = (x_lo..x_hi.max(x_lo * 1.01)).log_scale();
            draw_lines(chart.build_cartesian_2d(x_range, y_range)?, panel)?;
        } else {
            let x_pad = if x_hi > x_lo { 0.0 } else { 1.0 };
            draw_lines(
                chart.build_cartesian_2d(x_lo..x_hi + x_pad, y_range)?,
                panel,
            )?;
        }
    }
    root.present()?;
    Ok(())
}

/// The smallest and largest finite value (`(0, 1)` when there is none).
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) }
}

/// Draws one panel's mesh, lines, point markers and legend; errors come back as text, which
/// frees them of the backend's lifetime.
fn draw_lines<'a, X>(
    mut chart: ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, RangedCoordf64>>,
    panel: &Panel,
) -> Result<(), String>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    std::ops::Range<f64>: AsRangedCoord,
{
    chart
        .configure_mesh()
        .x_labels(8)
        .x_label_formatter(&|x| compact(*x))
        .x_desc(panel.x_label.as_str())
        .y_desc(panel.y_label.as_str())
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, line) in panel.lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let finite: Vec<(f64, f64)> = line
            .points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(finite.clone(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(line.label.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
        chart
            .draw_series(
                finite
                    .into_iter()
                    .map(|point| Circle::new(point, 3, color.filled())),
            )
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// A tick label without trailing zeros: `0.01`, `2`, `128`.
fn compact(x: f64) -> String {
    let text = format!("{x:.4}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Draws `curves.svg`: loss on the left, accuracy on the right, train and test in each.
///
/// # Errors
/// When the file cannot be written.
pub fn draw_curves(
    path: &Path,
    title: &str,
    epochs: &[EpochMetrics],
) -> Result<(), Box<dyn std::error::Error>> {
    let series = |label: &str, value: fn(&EpochMetrics) -> f64| {
        Line::new(
            label,
            epochs.iter().map(|e| (e.epoch as f64, value(e))).collect(),
        )
    };
    let panels = [
        Panel::new(
            "epoch",
            "loss",
            vec![
                series("train", |e| e.train_loss),
                series("test (eval mode)", |e| e.test_loss),
            ],
        ),
        Panel::new(
            "epoch",
            "accuracy",
            vec![
                series("train", |e| e.train_accuracy),
                series("test (eval mode)", |e| e.test_accuracy),
            ],
        ),
    ];
    draw_panels(path, title, &panels)
}

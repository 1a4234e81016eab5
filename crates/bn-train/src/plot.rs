//! Learning curves: loss and accuracy per epoch, train and test on one figure (SVG).

use std::path::Path;

use plotters::prelude::*;

use crate::report::EpochMetrics;

/// Reads one value of an epoch's metrics.
type Series = fn(&EpochMetrics) -> f64;

/// Draws `curves.svg`: loss on the left, accuracy on the right, train and test in each.
pub fn draw_curves(
    path: &Path,
    title: &str,
    epochs: &[EpochMetrics],
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let (left, right) = root.split_horizontally(500);
    let panels: [(_, &str, Series, Series); 2] = [
        (&left, "loss", |e| e.train_loss, |e| e.test_loss),
        (
            &right,
            "accuracy",
            |e| e.train_accuracy,
            |e| e.test_accuracy,
        ),
    ];
    let last = epochs.last().map_or(1, |e| e.epoch).max(2) as f64;
    for (area, name, train, test) in panels {
        let values: Vec<f64> = epochs
            .iter()
            .flat_map(|e| [train(e), test(e)])
            .filter(|v| v.is_finite())
            .collect();
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
        let pad = ((hi - lo) * 0.08).max(1e-3);
        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(1.0..last, (lo - pad)..(hi + pad))?;
        chart.configure_mesh().x_desc("epoch").y_desc(name).draw()?;
        for (label, color, value) in [("train", BLUE, train), ("test (eval mode)", RED, test)] {
            let points = epochs.iter().map(|e| (e.epoch as f64, value(e)));
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

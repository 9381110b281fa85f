//! Every chart of the project, drawn with plotters into PNG files: labelled axes, a title and a
//! legend on each.

use std::path::Path;

use anyhow::{Context, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// Ten colours told apart easily (Tableau 10), one per digit.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The colour of series or class `i`.
pub fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn prepare(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

fn padded(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-6);
    (lo - pad, hi + pad)
}

type Chart<'a> = ChartContext<'a, BitMapBackend<'a>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;
type Drawn = std::result::Result<(), Box<dyn std::error::Error>>;

/// Draws the legend where asked and writes the file.
fn finish(
    root: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    chart: &mut Chart<'_>,
    legend: SeriesLabelPosition,
) -> Drawn {
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()?;
    root.present()?;
    Ok(())
}

/// Side of the square scatter plots, in pixels.
pub const SCATTER_SIDE: u32 = 900;

/// A scatter plot of 2-D `points` (row-major pairs), coloured by `labels`, with a legend
/// naming each class `0..classes`.
pub fn scatter_by_class(
    path: &Path,
    title: &str,
    axes: (&str, &str),
    points: &[f32],
    labels: &[usize],
    classes: usize,
) -> Result<()> {
    anyhow::ensure!(
        points.len() == 2 * labels.len(),
        "{} coordinates for {} labels",
        points.len(),
        labels.len()
    );
    prepare(path)?;
    let draw = || -> Drawn {
        let root = BitMapBackend::new(path, (SCATTER_SIDE, SCATTER_SIDE)).into_drawing_area();
        root.fill(&WHITE)?;
        let xs = padded(points.iter().step_by(2).map(|&v| v as f64));
        let ys = padded(points.iter().skip(1).step_by(2).map(|&v| v as f64));
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 24))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(xs.0..xs.1, ys.0..ys.1)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(axes.0)
            .y_desc(axes.1)
            .label_style(("sans-serif", 15))
            .draw()?;
        for class in 0..classes {
            let colour = colour(class);
            chart
                .draw_series(
                    points
                        .chunks_exact(2)
                        .zip(labels)
                        .filter(|(_, &l)| l == class)
                        .map(|(p, _)| {
                            Circle::new((p[0] as f64, p[1] as f64), 2, colour.mix(0.6).filled())
                        }),
                )?
                .label(class.to_string())
                .legend(move |(x, y)| Circle::new((x + 8, y), 5, colour.filled()));
        }
        finish(&root, &mut chart, SeriesLabelPosition::UpperRight)
    };
    draw().map_err(|e| anyhow::anyhow!("drawing {}: {e}", path.display()))
}

/// One line per series of (x, y) points, e.g. test error per EM iteration per seed.
pub fn lines(
    path: &Path,
    title: &str,
    axes: (&str, &str),
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<()> {
    prepare(path)?;
    let draw = || -> Drawn {
        let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
        root.fill(&WHITE)?;
        let all = || series.iter().flat_map(|(_, s)| s.iter());
        let xs = padded(all().map(|p| p.0));
        let ys = padded(all().map(|p| p.1).chain([0.0]));
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 24))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(xs.0..xs.1, ys.0..ys.1)?;
        chart
            .configure_mesh()
            .x_desc(axes.0)
            .y_desc(axes.1)
            .label_style(("sans-serif", 15))
            .draw()?;
        for (i, (name, points)) in series.iter().enumerate() {
            let colour = colour(i);
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    colour.stroke_width(2),
                ))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour));
        }
        finish(&root, &mut chart, SeriesLabelPosition::UpperRight)
    };
    draw().map_err(|e| anyhow::anyhow!("drawing {}: {e}", path.display()))
}

/// A group of bars side by side: one bar per series, each a value with an optional error bar
/// (`None`: missing, drawn as nothing and said so in the title).
pub struct BarGroup {
    pub name: String,
    pub bars: Vec<Option<(f64, Option<f64>)>>,
}

/// Grouped bars with error bars: one colour per series, a group per category.
pub fn grouped_bars(
    path: &Path,
    title: &str,
    y_label: &str,
    series: &[String],
    groups: &[BarGroup],
) -> Result<()> {
    prepare(path)?;
    let draw = || -> Drawn {
        // Many groups: narrower groups and their names written upwards.
        let many = groups.len() > 12;
        let width = if many {
            60 * groups.len() as u32 + 160
        } else {
            (160 * groups.len() as u32).max(700)
        };
        let height = if many { 760 } else { 620 };
        let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let top = groups
            .iter()
            .flat_map(|g| g.bars.iter().flatten())
            .map(|(v, e)| v + e.unwrap_or(0.0))
            .fold(1.0f64, f64::max)
            * 1.15;
        let n = groups.len().max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(14)
            .x_label_area_size(if many { 190 } else { 60 })
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0f64..top)?;
        // Group i is centred on x = i, where the mesh puts its integer labels; with many
        // groups the names are written below the axis, upwards, by hand (the mesh centres
        // rotated labels on their middle, into the plot).
        let name_of = |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && !many {
                groups
                    .get(i as usize)
                    .map(|g| g.name.clone())
                    .unwrap_or_default()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&name_of)
            .y_desc(y_label)
            .label_style(("sans-serif", 14))
            .draw()?;
        if many {
            let style = ("sans-serif", 14)
                .into_font()
                .transform(FontTransform::Rotate90)
                .into_text_style(&root);
            for (i, group) in groups.iter().enumerate() {
                let (x, y) = chart.backend_coord(&(i as f64, 0.0));
                root.draw(&Text::new(
                    group.name.clone(),
                    (x + 7, y + 8),
                    style.clone(),
                ))?;
            }
        }
        let per = series.len().max(1) as f64;
        let bar_width = 0.8 / per;
        for (s, name) in series.iter().enumerate() {
            let colour = colour(s);
            let bars = groups.iter().enumerate().filter_map(|(g, group)| {
                let (value, _) = group.bars.get(s).copied().flatten()?;
                let left = g as f64 - 0.4 + s as f64 * bar_width;
                Some(Rectangle::new(
                    [(left, 0.0), (left + bar_width * 0.92, value)],
                    colour.filled(),
                ))
            });
            chart
                .draw_series(bars)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.filled())
                });
            let errors = groups.iter().enumerate().filter_map(|(g, group)| {
                let (value, error) = group.bars.get(s).copied().flatten()?;
                let error = error?;
                let centre = g as f64 - 0.4 + (s as f64 + 0.46) * bar_width;
                Some(ErrorBar::new_vertical(
                    centre,
                    (value - error).max(0.0),
                    value,
                    value + error,
                    BLACK.stroke_width(2),
                    10,
                ))
            });
            chart.draw_series(errors)?;
        }
        finish(&root, &mut chart, SeriesLabelPosition::UpperLeft)
    };
    draw().map_err(|e| anyhow::anyhow!("drawing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scatter_plot_is_a_png_of_the_promised_size() {
        let dir = std::env::temp_dir().join(format!("ganem-plot-{}", std::process::id()));
        let path = dir.join("scatter.png");
        let points: Vec<f32> = (0..200).map(|i| (i as f32 * 0.37).sin()).collect();
        let labels: Vec<usize> = (0..100).map(|i| i % 10).collect();
        scatter_by_class(&path, "test", ("x", "y"), &points, &labels, 10).unwrap();
        let image = image::open(&path).unwrap();
        assert_eq!(
            (image.width(), image.height()),
            (SCATTER_SIDE, SCATTER_SIDE)
        );
        assert!(scatter_by_class(&path, "t", ("x", "y"), &points[1..], &labels, 10).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}

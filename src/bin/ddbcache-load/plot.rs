//! `--plot FILE.svg`: two panels per run, one line per target. Left: the latency distribution
//! as a percentile curve (x = 1/(1 - q) on a log scale, so 90, 99, 99.9 % are evenly spaced;
//! y = latency, log scale). Right: successful requests per second over the measured phase.

use std::path::Path;

use plotters::prelude::*;

use crate::report::RunReport;

const WIDTH: u32 = 1400;
const HEIGHT: u32 = 560;
/// 99.999 %: the last point of the curve.
const MAX_X: f64 = 1e5;

pub fn write_svg(path: &Path, report: &RunReport) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    draw(path, report).map_err(|e| format!("plot {}: {e}", path.display()))
}

fn draw(path: &Path, report: &RunReport) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        &format!("{}: {}", report.label, report.description),
        ("sans-serif", 18),
    )?;
    let (left, right) = root.split_horizontally(WIDTH * 11 / 20);
    latency_panel(&left, report)?;
    throughput_panel(&right, report)?;
    root.present()?;
    Ok(())
}

/// Tableau's 10 colours: distinct, and readable on white.
fn color(i: usize) -> RGBColor {
    const COLORS: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    let (r, g, b) = COLORS[i % COLORS.len()];
    RGBColor(r, g, b)
}

fn latency_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    report: &RunReport,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let values = report
        .targets
        .iter()
        .flat_map(|t| t.percentile_curve.iter().map(|&(_, us)| us as f64));
    let (lo, hi) = values.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if hi > 0.0 {
        ((lo / 1.3).max(1.0), hi * 1.3)
    } else {
        (1.0, 1000.0)
    };
    let mut chart = ChartBuilder::on(area)
        .caption("latency by percentile", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (1.0..MAX_X)
                .log_scale()
                .with_key_points(vec![1.0, 2.0, 10.0, 100.0, 1e3, 1e4, 1e5]),
            (lo..hi).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency")
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|us| micros_label(*us))
        .light_line_style(RGBColor(240, 240, 240))
        .draw()?;
    for (i, t) in report.targets.iter().enumerate() {
        let points: Vec<(f64, f64)> = t
            .percentile_curve
            .iter()
            .map(|&(p, us)| ((1.0 / (1.0 - p / 100.0)).min(MAX_X), (us as f64).max(lo)))
            .collect();
        let style = ShapeStyle::from(color(i)).stroke_width(2);
        chart
            .draw_series(LineSeries::new(points, style))?
            .label(format!(
                "{} (p99 {})",
                t.name,
                micros_label(t.latency_us.p99 as f64)
            ))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn throughput_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    report: &RunReport,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let seconds = report
        .targets
        .iter()
        .map(|t| t.timeline_rps.len())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let top = report
        .targets
        .iter()
        .flat_map(|t| t.timeline_rps.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1) as f64
        * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption("throughput", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..seconds, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("second of the measured phase")
        .y_desc("requests/s")
        .y_label_formatter(&|v| format!("{:.0}", v))
        .light_line_style(RGBColor(240, 240, 240))
        .draw()?;
    for (i, t) in report.targets.iter().enumerate() {
        let style = ShapeStyle::from(color(i)).stroke_width(2);
        // Each whole second's count, drawn at the second's middle.
        let points: Vec<(f64, f64)> = t
            .timeline_rps
            .iter()
            .enumerate()
            .map(|(s, &n)| (s as f64 + 0.5, n as f64))
            .collect();
        chart
            .draw_series(LineSeries::new(points, style))?
            .label(format!("{} ({:.0} req/s)", t.name, t.rps))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// x = 1/(1 - q) as a percentile: 1 -> `0%`, 10 -> `90%`, 1000 -> `99.9%`.
fn percentile_label(x: f64) -> String {
    let p = (1.0 - 1.0 / x) * 100.0;
    let text = format!("{p:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// Microseconds as `850µs`, `1.2ms`, `2s`.
fn micros_label(us: f64) -> String {
    if us >= 1e6 {
        let text = format!("{:.2}", us / 1e6);
        format!("{}s", text.trim_end_matches('0').trim_end_matches('.'))
    } else if us >= 1e3 {
        let ms = us / 1e3;
        if ms >= 100.0 {
            format!("{ms:.0}ms")
        } else {
            format!("{ms:.1}ms")
        }
    } else {
        format!("{us:.0}µs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Latency, TargetResult};

    #[test]
    fn labels() {
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(2.0), "50%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert_eq!(percentile_label(1e5), "99.999%");
        assert_eq!(micros_label(850.0), "850µs");
        assert_eq!(micros_label(1234.0), "1.2ms");
        assert_eq!(micros_label(250_000.0), "250ms");
        assert_eq!(micros_label(2_000_000.0), "2s");
    }

    #[test]
    fn writes_an_svg() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/plot.svg");
        let target = |name: &str, scale: u64| TargetResult {
            name: name.into(),
            rps: 1000.0 * scale as f64,
            latency_us: Latency {
                p99: 900 / scale,
                ..Latency::default()
            },
            timeline_rps: vec![1000 * scale; 5],
            percentile_curve: (0..=100)
                .map(|i| {
                    let q = 1.0 - 10f64.powf(-(i as f64) / 20.0);
                    (q * 100.0, (100 + i * 10) / scale)
                })
                .collect(),
            ..TargetResult::default()
        };
        let report = RunReport {
            tool: "t".into(),
            label: "get".into(),
            workload: "get".into(),
            description: "test".into(),
            parameters: Default::default(),
            targets: vec![target("backend", 1), target("proxy", 3)],
        };
        write_svg(&path, &report).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
        assert!(svg.contains("proxy (3000 req/s)"));
        assert!(svg.contains("99.9%"));
    }
}

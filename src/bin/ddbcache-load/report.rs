//! Results: the JSON shape of a run ([`RunReport`], one [`TargetResult`] per target), the
//! per-run tables (throughput, latency percentiles, ratios to the first target = the baseline,
//! cache hit ratio, per-operation breakdown, errors) and the cross-run summary table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::metrics::CacheStats;

/// One `run` invocation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub tool: String,
    /// `--label`, or the workload's name.
    pub label: String,
    pub workload: String,
    /// A one-line description of the workload and the load.
    pub description: String,
    pub parameters: BTreeMap<String, serde_json::Value>,
    pub targets: Vec<TargetResult>,
}

/// One target's measured phase.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TargetResult {
    pub name: String,
    pub url: String,
    /// Successful (2xx) answers.
    pub ok: u64,
    pub errors_total: u64,
    /// Errors by kind: `HTTP <status> <__type>` or `transport: ...`.
    pub errors: BTreeMap<String, u64>,
    pub elapsed_s: f64,
    /// Successful answers per second.
    pub rps: f64,
    pub bytes_received: u64,
    /// Latency of successful answers (from the intended send time with `--rate`).
    pub latency_us: Latency,
    pub operations: Vec<OperationResult>,
    /// Successful answers in each whole second of the measured phase.
    pub timeline_rps: Vec<u64>,
    /// (percentile, latency µs) along a log scale of 1/(1 - q), for plots.
    pub percentile_curve: Vec<(f64, u64)>,
    pub cache: Option<CacheStats>,
    /// Anything that went wrong around the run (failed scrapes, a target that could not run).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            min: h.min(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// One label of the workload (`GetItem`, `list_messages`, `create_message`...).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OperationResult {
    pub operation: String,
    pub ok: u64,
    pub errors: u64,
    pub latency_us: Latency,
}

/// The latency curve for plots: percentiles 0, 90, 99, 99.9 ... 99.999 % and 20 points per
/// decade between them.
pub fn percentile_curve(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    if h.is_empty() {
        return Vec::new();
    }
    (0..=100)
        .map(|i| {
            let q = 1.0 - 10f64.powf(-(i as f64) / 20.0);
            (q * 100.0, h.value_at_quantile(q))
        })
        .collect()
}

/// A pipe table (valid markdown) with padded columns; the first `left` columns are
/// left-aligned, the others right-aligned.
pub fn table(headers: &[&str], rows: &[Vec<String>], left: usize) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::from("|");
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            let pad = w - cell.chars().count();
            if i < left {
                let _ = write!(out, " {cell}{} |", " ".repeat(pad));
            } else {
                let _ = write!(out, " {}{cell} |", " ".repeat(pad));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(headers.iter().map(|h| h.to_string()).collect());
    out.push('|');
    for (i, w) in widths.iter().enumerate() {
        if i < left {
            let _ = write!(out, ":{}|", "-".repeat(w + 1));
        } else {
            let _ = write!(out, "{}:|", "-".repeat(w + 1));
        }
    }
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

/// `x2.31`-style ratio, or `-` when undefined.
pub fn ratio(value: f64, baseline: f64) -> String {
    if baseline > 0.0 && value.is_finite() && value > 0.0 {
        format!("{:.2}x", value / baseline)
    } else {
        "-".to_string()
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn hit_ratio(cache: &Option<CacheStats>) -> String {
    match cache.as_ref().and_then(|c| c.hit_ratio) {
        Some(r) => format!("{:.1}%", r * 100.0),
        None => "-".to_string(),
    }
}

/// The main table of one run: one row per target, ratios to the first.
pub fn targets_table(targets: &[TargetResult]) -> String {
    let Some(base) = targets.first() else {
        return String::new();
    };
    let has_cache = targets.iter().any(|t| t.cache.is_some());
    let mut headers = vec![
        "target",
        "requests",
        "req/s",
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "p99.9 µs",
        "errors",
    ];
    let vs_rps = format!("req/s vs {}", base.name);
    let vs_p99 = format!("p99 vs {}", base.name);
    headers.push(&vs_rps);
    headers.push(&vs_p99);
    if has_cache {
        headers.extend(["hit ratio", "upstream saved"]);
    }
    let rows: Vec<Vec<String>> = targets
        .iter()
        .map(|t| {
            let l = &t.latency_us;
            let mut row = vec![
                t.name.clone(),
                thousands(t.ok),
                format!("{:.0}", t.rps),
                l.p50.to_string(),
                l.p90.to_string(),
                l.p99.to_string(),
                l.p999.to_string(),
                thousands(t.errors_total),
                ratio(t.rps, base.rps),
                ratio(l.p99 as f64, base.latency_us.p99 as f64),
            ];
            if has_cache {
                row.push(hit_ratio(&t.cache));
                row.push(
                    t.cache
                        .as_ref()
                        .map_or("-".into(), |c| thousands(c.upstream_requests_saved)),
                );
            }
            row
        })
        .collect();
    table(&headers, &rows, 1)
}

/// Per-operation rows, for workloads with more than one kind of request.
pub fn operations_table(targets: &[TargetResult]) -> Option<String> {
    if targets.iter().all(|t| t.operations.len() <= 1) {
        return None;
    }
    let rows: Vec<Vec<String>> = targets
        .iter()
        .flat_map(|t| {
            let total = (t.ok + t.errors_total).max(1) as f64;
            t.operations.iter().map(move |op| {
                vec![
                    t.name.clone(),
                    op.operation.clone(),
                    format!("{:.1}%", (op.ok + op.errors) as f64 / total * 100.0),
                    thousands(op.ok),
                    op.latency_us.p50.to_string(),
                    op.latency_us.p99.to_string(),
                    thousands(op.errors),
                ]
            })
        })
        .collect();
    Some(table(
        &[
            "target",
            "operation",
            "share",
            "requests",
            "p50 µs",
            "p99 µs",
            "errors",
        ],
        &rows,
        2,
    ))
}

/// `target: count x kind` lines.
pub fn errors_text(targets: &[TargetResult]) -> String {
    let mut out = String::new();
    for t in targets {
        for (kind, count) in &t.errors {
            let _ = writeln!(out, "{}: {} x {kind}", t.name, thousands(*count));
        }
        for note in &t.notes {
            let _ = writeln!(out, "{}: note: {note}", t.name);
        }
    }
    out
}

/// Everything printed after a run.
pub fn render(report: &RunReport) -> String {
    let mut out = format!("\n## {}: {}\n\n", report.label, report.description);
    out.push_str(&targets_table(&report.targets));
    if let Some(ops) = operations_table(&report.targets) {
        out.push('\n');
        out.push_str(&ops);
    }
    let errors = errors_text(&report.targets);
    if !errors.is_empty() {
        out.push('\n');
        out.push_str(&errors);
    }
    out
}

/// One table over several runs (the `summary` subcommand): ratios to each run's first target.
pub fn summary(reports: &[RunReport]) -> String {
    let mut rows = Vec::new();
    for report in reports {
        let Some(base) = report.targets.first() else {
            continue;
        };
        for t in &report.targets {
            rows.push(vec![
                report.label.clone(),
                t.name.clone(),
                format!("{:.0}", t.rps),
                t.latency_us.p50.to_string(),
                t.latency_us.p99.to_string(),
                ratio(t.rps, base.rps),
                ratio(t.latency_us.p99 as f64, base.latency_us.p99 as f64),
                hit_ratio(&t.cache),
                thousands(t.errors_total),
            ]);
        }
    }
    let mut out = table(
        &[
            "run",
            "target",
            "req/s",
            "p50 µs",
            "p99 µs",
            "req/s vs first",
            "p99 vs first",
            "hit ratio",
            "errors",
        ],
        &rows,
        2,
    );
    out.push('\n');
    for report in reports {
        let _ = writeln!(out, "- {}: {}", report.label, report.description);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(name: &str, rps: f64, p99: u64) -> TargetResult {
        TargetResult {
            name: name.into(),
            ok: (rps * 10.0) as u64,
            rps,
            latency_us: Latency {
                p50: p99 / 4,
                p90: p99 / 2,
                p99,
                p999: p99 * 2,
                ..Latency::default()
            },
            ..TargetResult::default()
        }
    }

    #[test]
    fn percentile_table_is_aligned_with_ratios() {
        let mut proxy = target("proxy", 30_000.0, 500);
        proxy.cache = Some(crate::metrics::delta(
            Default::default(),
            crate::metrics::Counters {
                hits: 99.0,
                misses: 1.0,
                upstream: None,
            },
        ));
        let text = targets_table(&[target("backend", 15_000.0, 2_000), proxy]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("| target "), "{text}");
        assert!(lines[1].starts_with("|:-"), "{text}");
        let widths: Vec<usize> = lines.iter().map(|l| l.chars().count()).collect();
        assert!(widths.iter().all(|&w| w == widths[0]), "{text}");
        assert!(lines[2].contains(" 1.00x |"), "{text}");
        assert!(lines[3].contains(" 2.00x |"), "{text}");
        assert!(lines[3].contains(" 0.25x |"), "{text}");
        assert!(lines[3].contains("99.0%"), "{text}");
        assert!(lines[3].contains("300,000"), "{text}");
        assert!(lines[2].ends_with(" - |              - |"), "{text}");
    }

    #[test]
    fn ratios_and_numbers() {
        assert_eq!(ratio(3.0, 2.0), "1.50x");
        assert_eq!(ratio(3.0, 0.0), "-");
        assert_eq!(ratio(0.0, 2.0), "-");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn latency_from_a_histogram() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for v in 1..=1000 {
            h.record(v).unwrap();
        }
        let l = Latency::of(&h);
        assert_eq!((l.min, l.max), (1, 1000));
        assert!((499..=501).contains(&l.p50), "{l:?}");
        assert!((989..=991).contains(&l.p99), "{l:?}");
        let curve = percentile_curve(&h);
        assert_eq!(curve.len(), 101);
        assert_eq!(curve[0].0, 0.0);
        assert!((curve[20].0 - 90.0).abs() < 1e-9);
        assert!(curve.windows(2).all(|w| w[0].1 <= w[1].1));
    }

    #[test]
    fn summary_and_json_round_trip() {
        let report = RunReport {
            tool: "t".into(),
            label: "get".into(),
            workload: "get".into(),
            description: "d".into(),
            parameters: BTreeMap::new(),
            targets: vec![target("a", 100.0, 10), target("b", 300.0, 5)],
        };
        let json = serde_json::to_string(&report).unwrap();
        let back: RunReport = serde_json::from_str(&json).unwrap();
        let text = summary(&[back]);
        assert!(text.contains("| get | b      |"), "{text}");
        assert!(text.contains("3.00x"), "{text}");
        assert!(text.contains("- get: d"), "{text}");
    }
}

//! Running one target: `--connections` virtual users, each with its own keep-alive connection
//! and request generator, through a warm-up (not recorded) and a measured phase that ends after
//! `--duration` or `--requests`, with a per-request timeout, so every run stops by itself.
//!
//! Closed loop by default (each user sends its next request when the last is answered). With
//! `--rate R` it is an open loop: user `i` of `N` sends at `start + (i + kN)/R`, and when a user
//! falls behind that schedule, latency is measured from the intended time, so a stalled server is
//! charged for the requests it delayed (no coordinated omission). Each user records into its own
//! histograms; they are merged at the end.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::time::Instant;

use crate::endpoint::{CallError, Endpoint, Session, error_type};
use crate::metrics::{self, CacheStats};
use crate::report::{Latency, OperationResult, TargetResult, percentile_curve};
use crate::workload::{Factory, Request};

/// Highest latency recorded (60 s); longer ones are clamped.
const MAX_LATENCY_US: u64 = 60_000_000;

/// When the measured phase ends.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    After(Duration),
    Requests(u64),
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub connections: usize,
    pub warmup: Duration,
    pub stop: Stop,
    /// Total requests per second (open loop).
    pub rate: Option<f64>,
    pub timeout: Duration,
    pub quiet: bool,
}

/// What every virtual user of one target's run reads.
struct Shared {
    start: Instant,
    measure_start: Instant,
    end: Option<Instant>,
    budget: Option<u64>,
    issued: AtomicU64,
    /// Live counters for the progress line (both phases).
    ok: AtomicU64,
    errors: AtomicU64,
    /// Per-user send interval (open loop).
    interval: Option<Duration>,
    connections: usize,
}

/// Runs the plan against one endpoint; `metrics_url` is scraped before and after the measured
/// phase.
pub async fn run_target(
    endpoint: Arc<Endpoint>,
    factory: Arc<dyn Factory>,
    plan: &Plan,
    metrics_url: Option<String>,
    allow_remote: bool,
) -> TargetResult {
    let connections = plan.connections.max(1);
    let start = Instant::now();
    let measure_start = start + plan.warmup;
    let shared = Arc::new(Shared {
        start,
        measure_start,
        end: match plan.stop {
            Stop::After(d) => Some(measure_start + d),
            Stop::Requests(_) => None,
        },
        budget: match plan.stop {
            Stop::Requests(n) => Some(n),
            Stop::After(_) => None,
        },
        issued: AtomicU64::new(0),
        ok: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        interval: plan
            .rate
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64(connections as f64 / r)),
        connections,
    });

    let scrape_before = metrics_url.clone().map(|url| {
        tokio::spawn(async move {
            tokio::time::sleep_until(measure_start).await;
            scrape(&url, allow_remote).await
        })
    });
    let progress = (!plan.quiet).then(|| {
        tokio::spawn(progress(
            endpoint.name.clone(),
            shared.clone(),
            plan.warmup,
            plan.stop,
        ))
    });
    let users: Vec<_> = (0..connections)
        .map(|vu| {
            tokio::spawn(virtual_user(
                vu,
                Session::new(endpoint.clone(), plan.timeout),
                factory.generator(vu),
                shared.clone(),
            ))
        })
        .collect();
    let mut total = Recorder::new(measure_start);
    let mut notes = Vec::new();
    for user in users {
        match user.await {
            Ok(recorder) => total.merge(recorder),
            Err(e) => notes.push(format!("a virtual user failed: {e}")),
        }
    }
    if let Some(progress) = progress {
        progress.abort();
        let _ = progress.await;
    }
    let cache = match (scrape_before, metrics_url) {
        (Some(before), Some(url)) => {
            let before = before.await.map_err(|e| e.to_string()).and_then(|r| r);
            match (before, scrape(&url, allow_remote).await) {
                (Ok(before), Ok(after)) => Some(metrics::delta(before, after)),
                (Err(e), _) | (_, Err(e)) => {
                    notes.push(format!("metrics scrape of {url} failed: {e}"));
                    None
                }
            }
        }
        _ => None,
    };
    total.into_result(&endpoint, cache, notes)
}

/// Most distinct reads `--prime` sends.
pub const PRIME_MAX: u64 = 2_000_000;

/// Sends every distinct read of the workload once (`--prime`), from `connections` connections,
/// so that a cache starts the warm-up warm. Returns (requests, failed requests).
pub async fn prime(
    endpoint: Arc<Endpoint>,
    factory: Arc<dyn Factory>,
    connections: usize,
    timeout: Duration,
) -> Result<(u64, u64), String> {
    let total = factory.prime_len();
    if total > PRIME_MAX {
        return Err(format!(
            "--prime skipped: {total} distinct reads is more than {PRIME_MAX}"
        ));
    }
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..connections.max(1))
        .map(|_| {
            let (factory, next, failed) = (factory.clone(), next.clone(), failed.clone());
            let mut session = Session::new(endpoint.clone(), timeout);
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let request = factory.prime(i);
                    match session.call(request.op, request.body).await {
                        Ok(reply) if reply.status.is_success() => {}
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.map_err(|e| format!("--prime: {e}"))?;
    }
    Ok((total, failed.load(Ordering::Relaxed)))
}

async fn scrape(url: &str, allow_remote: bool) -> Result<metrics::Counters, String> {
    let text = crate::endpoint::http_get(url, allow_remote, Duration::from_secs(5)).await?;
    Ok(metrics::counters(&text))
}

async fn virtual_user(
    vu: usize,
    mut session: Session,
    mut generator: Box<dyn crate::workload::Generator>,
    shared: Arc<Shared>,
) -> Recorder {
    let mut recorder = Recorder::new(shared.measure_start);
    let mut next_send = shared
        .interval
        .map(|interval| shared.start + interval.mul_f64(vu as f64 / shared.connections as f64));
    loop {
        let intended = match (next_send.as_mut(), shared.interval) {
            (Some(next), Some(interval)) => {
                let at = *next;
                *next += interval;
                at
            }
            _ => Instant::now(),
        };
        if shared.end.is_some_and(|end| intended >= end) {
            break;
        }
        let measuring = intended >= shared.measure_start;
        if measuring
            && let Some(budget) = shared.budget
            && shared.issued.fetch_add(1, Ordering::Relaxed) >= budget
        {
            break;
        }
        // Latency counts from the intended send time when this user is behind schedule (the
        // server's slowness delayed this request), else from the actual send: the timer wakes up
        // to a millisecond late, and that delay is the generator's, not the server's.
        let since = if intended > Instant::now() {
            tokio::time::sleep_until(intended).await;
            Instant::now()
        } else {
            intended
        };
        let Request {
            label,
            op,
            body,
            lease,
        } = generator.next_request();
        let result = session.call(op, body).await;
        let done = Instant::now();
        drop(lease);
        match result {
            Ok(reply) if reply.status.is_success() => {
                shared.ok.fetch_add(1, Ordering::Relaxed);
                if measuring {
                    recorder.ok(label, done - since, reply.body.len(), done);
                }
            }
            Ok(reply) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                if measuring {
                    let kind = format!(
                        "HTTP {} {}",
                        reply.status.as_u16(),
                        error_type(&reply.body).unwrap_or_else(|| "-".into())
                    );
                    recorder.error(label, kind, done);
                }
            }
            Err(e) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                if measuring {
                    recorder.error(label, e.label(), done);
                }
                if matches!(e, CallError::Connect(_)) {
                    // Do not spin on a refused connection.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
    recorder
}

/// A progress bar on a terminal, else a line per second on stderr.
async fn progress(name: String, shared: Arc<Shared>, warmup: Duration, stop: Stop) {
    let tty = std::io::stderr().is_terminal();
    let bar = tty.then(|| {
        let (len, template) = match stop {
            Stop::After(d) => (
                (warmup + d).as_secs().max(1),
                "{prefix:>12} [{bar:30}] {elapsed_precise} {msg}",
            ),
            Stop::Requests(n) => (n, "{prefix:>12} [{bar:30}] {pos}/{len} {msg}"),
        };
        let bar = ProgressBar::new(len).with_prefix(name.clone());
        bar.set_style(
            ProgressStyle::with_template(template)
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar
    });
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    let (mut last_ok, mut second) = (0, 0u64);
    let _clear = ClearOnDrop(bar.clone());
    loop {
        ticker.tick().await;
        second += 1;
        let ok = shared.ok.load(Ordering::Relaxed);
        let errors = shared.errors.load(Ordering::Relaxed);
        // The phase most of the last second was in.
        let phase = if Instant::now() < shared.measure_start + Duration::from_millis(500) {
            "warm-up"
        } else {
            "measuring"
        };
        let message = format!("{phase}: {} req/s, {errors} errors", ok - last_ok);
        last_ok = ok;
        match &bar {
            Some(bar) => {
                bar.set_position(match stop {
                    Stop::After(_) => second,
                    Stop::Requests(_) => shared.issued.load(Ordering::Relaxed),
                });
                bar.set_message(message);
            }
            None => eprintln!("{name} {second:>4}s {message}"),
        }
    }
}

struct ClearOnDrop(Option<ProgressBar>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// One label's counts and latencies.
struct OpStats {
    label: &'static str,
    ok: u64,
    errors: u64,
    latency: Histogram<u64>,
}

/// What one virtual user measured.
pub struct Recorder {
    measure_start: Instant,
    ops: Vec<OpStats>,
    errors: HashMap<String, u64>,
    bytes: u64,
    timeline: Vec<u64>,
    last_done: Option<Instant>,
}

impl Recorder {
    pub fn new(measure_start: Instant) -> Self {
        Recorder {
            measure_start,
            ops: Vec::new(),
            errors: HashMap::new(),
            bytes: 0,
            timeline: Vec::new(),
            last_done: None,
        }
    }

    fn op(&mut self, label: &'static str) -> &mut OpStats {
        let i = match self.ops.iter().position(|o| o.label == label) {
            Some(i) => i,
            None => {
                self.ops.push(OpStats {
                    label,
                    ok: 0,
                    errors: 0,
                    latency: new_histogram(),
                });
                self.ops.len() - 1
            }
        };
        &mut self.ops[i]
    }

    fn finished(&mut self, done: Instant) {
        self.last_done = Some(self.last_done.map_or(done, |d| d.max(done)));
    }

    pub fn ok(&mut self, label: &'static str, latency: Duration, bytes: usize, done: Instant) {
        let op = self.op(label);
        op.ok += 1;
        op.latency
            .saturating_record((latency.as_micros() as u64).clamp(1, MAX_LATENCY_US));
        self.bytes += bytes as u64;
        let second = done.saturating_duration_since(self.measure_start).as_secs() as usize;
        if self.timeline.len() <= second {
            self.timeline.resize(second + 1, 0);
        }
        self.timeline[second] += 1;
        self.finished(done);
    }

    pub fn error(&mut self, label: &'static str, kind: String, done: Instant) {
        self.op(label).errors += 1;
        *self.errors.entry(kind).or_insert(0) += 1;
        self.finished(done);
    }

    pub fn merge(&mut self, other: Recorder) {
        for op in other.ops {
            let mine = self.op(op.label);
            mine.ok += op.ok;
            mine.errors += op.errors;
            mine.latency
                .add(&op.latency)
                .expect("histograms with the same bounds");
        }
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_insert(0) += count;
        }
        self.bytes += other.bytes;
        if self.timeline.len() < other.timeline.len() {
            self.timeline.resize(other.timeline.len(), 0);
        }
        for (mine, theirs) in self.timeline.iter_mut().zip(other.timeline) {
            *mine += theirs;
        }
        if let Some(done) = other.last_done {
            self.finished(done);
        }
    }

    pub fn into_result(
        self,
        endpoint: &Endpoint,
        cache: Option<CacheStats>,
        notes: Vec<String>,
    ) -> TargetResult {
        let mut all = new_histogram();
        for op in &self.ops {
            all.add(&op.latency).expect("same bounds");
        }
        let ok: u64 = self.ops.iter().map(|o| o.ok).sum();
        let errors_total: u64 = self.ops.iter().map(|o| o.errors).sum();
        let elapsed = self.last_done.map_or(Duration::ZERO, |d| {
            d.saturating_duration_since(self.measure_start)
        });
        let elapsed_s = elapsed.as_secs_f64();
        // Only whole seconds: the last partial one would read as a drop.
        let mut timeline = self.timeline;
        timeline.truncate(elapsed.as_secs() as usize);
        let mut ops: Vec<OperationResult> = self
            .ops
            .iter()
            .map(|o| OperationResult {
                operation: o.label.to_string(),
                ok: o.ok,
                errors: o.errors,
                latency_us: Latency::of(&o.latency),
            })
            .collect();
        ops.sort_by_key(|o| std::cmp::Reverse(o.ok + o.errors));
        TargetResult {
            name: endpoint.name.clone(),
            url: endpoint.url.clone(),
            ok,
            errors_total,
            errors: self.errors.into_iter().collect(),
            elapsed_s,
            rps: if elapsed_s > 0.0 {
                ok as f64 / elapsed_s
            } else {
                0.0
            },
            bytes_received: self.bytes,
            latency_us: Latency::of(&all),
            operations: ops,
            timeline_rps: timeline,
            percentile_curve: percentile_curve(&all),
            cache,
            notes,
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn recorders_merge() {
        let start = Instant::now();
        let mut a = Recorder::new(start);
        let mut b = Recorder::new(start);
        for i in 0..100u64 {
            a.ok(
                "GetItem",
                Duration::from_micros(100 + i),
                10,
                start + Duration::from_millis(i * 20),
            );
        }
        b.ok(
            "PutItem",
            Duration::from_micros(1000),
            5,
            start + Duration::from_millis(2500),
        );
        b.error(
            "PutItem",
            "HTTP 400 ValidationException".into(),
            start + Duration::from_millis(2600),
        );
        a.merge(b);
        let endpoint = Endpoint::resolve(
            &crate::cli::NamedUrl {
                name: "x".into(),
                url: "http://127.0.0.1:1".into(),
            },
            false,
        )
        .await
        .unwrap();
        let r = a.into_result(&endpoint, None, vec![]);
        assert_eq!((r.ok, r.errors_total), (101, 1));
        assert_eq!(r.errors["HTTP 400 ValidationException"], 1);
        assert_eq!(r.bytes_received, 1005);
        assert_eq!(r.timeline_rps, vec![50, 50]);
        assert!((r.elapsed_s - 2.6).abs() < 1e-6);
        assert_eq!(r.operations[0].operation, "GetItem");
        assert_eq!(r.operations[1].errors, 1);
        assert!((100..=200).contains(&r.latency_us.p50));
    }
}

//! The remote tier's circuit breaker: after `threshold` consecutive failures the tier is skipped
//! for `backoff`, then one request probes it; success closes the breaker, failure re-opens it.
//! Pure state transitions: time is passed in, so tests need no clock.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    /// Skipping the tier until the instant.
    Open(Instant),
    /// One probe is in flight since the instant; others skip. A probe that never reports
    /// (its request was cancelled) is replaced after `backoff`.
    HalfOpen(Instant),
}

impl State {
    /// The `ddbcache_remote_breaker_state` gauge value.
    pub fn gauge(self) -> i64 {
        match self {
            State::Closed => 0,
            State::Open(_) => 1,
            State::HalfOpen(_) => 2,
        }
    }
}

/// Whether an operation may use the tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Go,
    /// Go, as the probe of a half-open breaker.
    Probe,
    Skip,
}

#[derive(Debug, Clone)]
pub struct Breaker {
    threshold: u32,
    backoff: Duration,
    failures: u32,
    state: State,
}

impl Breaker {
    pub fn new(threshold: u32, backoff: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            backoff,
            failures: 0,
            state: State::Closed,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn admit(&mut self, now: Instant) -> Admit {
        match self.state {
            State::Closed => Admit::Go,
            State::Open(until) if now < until => Admit::Skip,
            State::HalfOpen(since) if now < since + self.backoff => Admit::Skip,
            State::Open(_) | State::HalfOpen(_) => {
                self.state = State::HalfOpen(now);
                Admit::Probe
            }
        }
    }

    pub fn success(&mut self) {
        self.failures = 0;
        self.state = State::Closed;
    }

    /// Counts a failure; true when this one opened the breaker.
    pub fn failure(&mut self, now: Instant) -> bool {
        self.failures = self.failures.saturating_add(1);
        let open = match self.state {
            State::HalfOpen(_) => true,
            State::Closed => self.failures >= self.threshold,
            State::Open(_) => false,
        };
        if open {
            self.state = State::Open(now + self.backoff);
        }
        open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn opens_after_threshold_consecutive_failures_only() {
        let t = Instant::now();
        let mut b = Breaker::new(3, S);
        assert!(!b.failure(t));
        assert!(!b.failure(t));
        b.success();
        assert!(!b.failure(t));
        assert!(!b.failure(t));
        assert_eq!(b.admit(t), Admit::Go);
        assert!(b.failure(t));
        assert_eq!(b.admit(t), Admit::Skip);
        assert_eq!(b.state().gauge(), 1);
    }

    #[test]
    fn probes_once_after_backoff_and_closes_on_success() {
        let t = Instant::now();
        let mut b = Breaker::new(1, S);
        b.failure(t);
        assert_eq!(b.admit(t + S / 2), Admit::Skip);
        assert_eq!(b.admit(t + S), Admit::Probe);
        assert_eq!(b.admit(t + S), Admit::Skip, "one probe at a time");
        b.success();
        assert_eq!(b.admit(t + S), Admit::Go);
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn a_failed_probe_reopens_for_another_backoff() {
        let t = Instant::now();
        let mut b = Breaker::new(5, S);
        for _ in 0..5 {
            b.failure(t);
        }
        assert_eq!(b.admit(t + S), Admit::Probe);
        assert!(b.failure(t + S));
        assert_eq!(b.admit(t + S + S / 2), Admit::Skip);
        assert_eq!(b.admit(t + 2 * S), Admit::Probe);
    }

    #[test]
    fn a_lost_probe_is_replaced_after_backoff() {
        let t = Instant::now();
        let mut b = Breaker::new(1, S);
        b.failure(t);
        assert_eq!(b.admit(t + S), Admit::Probe);
        assert_eq!(b.admit(t + S + S / 2), Admit::Skip);
        assert_eq!(b.admit(t + 2 * S), Admit::Probe);
    }
}

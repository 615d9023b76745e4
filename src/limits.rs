//! Overload protection for the upstream: at most `max_upstream_requests` requests at the
//! upstream at once, at most `max_queued_requests` waiting for a slot, each for at most
//! `queue_timeout`. A request that finds the queue full, or waits too long, gets
//! `ThrottlingException` (which every AWS SDK retries with back-off) instead of piling up in
//! memory. Cache hits never come here, so they keep being served while the upstream is saturated.

use crate::config::LimitsConfig;
use crate::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};

pub struct UpstreamLimiter {
    slots: Semaphore,
    max_slots: usize,
    waiting: AtomicUsize,
    max_waiting: usize,
    queue_timeout: Duration,
}

/// Why a request was refused a slot (for the metric label and the message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    QueueFull,
    QueueTimeout,
}

impl UpstreamLimiter {
    pub fn new(limits: &LimitsConfig) -> Self {
        UpstreamLimiter {
            slots: Semaphore::new(limits.max_upstream_requests),
            max_slots: limits.max_upstream_requests,
            waiting: AtomicUsize::new(0),
            max_waiting: limits.max_queued_requests,
            queue_timeout: limits.queue_timeout,
        }
    }

    /// A slot at the upstream, held until the permit drops.
    pub async fn acquire(&self) -> Result<SemaphorePermit<'_>, Error> {
        if let Ok(permit) = self.slots.try_acquire() {
            return Ok(permit);
        }
        // Count ourselves in the queue first; back out if that overfilled it.
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(self.refuse(Refusal::QueueFull));
        }
        let waited = tokio::time::timeout(self.queue_timeout, self.slots.acquire()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match waited {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; treat it like a timeout if it ever is.
            Ok(Err(_)) | Err(_) => Err(self.refuse(Refusal::QueueTimeout)),
        }
    }

    fn refuse(&self, why: Refusal) -> Error {
        let message = match why {
            Refusal::QueueFull => format!(
                "Rate of requests exceeds the allowed throughput: {} requests are at the \
                 upstream and {} waiting (limits.max_upstream_requests, \
                 limits.max_queued_requests)",
                self.max_slots, self.max_waiting
            ),
            Refusal::QueueTimeout => format!(
                "Rate of requests exceeds the allowed throughput: no upstream slot within {:?} \
                 (limits.queue_timeout)",
                self.queue_timeout
            ),
        };
        Error::Throttling(message)
    }

    /// Requests at the upstream now.
    pub fn in_flight(&self) -> usize {
        self.max_slots - self.slots.available_permits()
    }

    /// Requests waiting for a slot now.
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn limiter(slots: usize, queue: usize, timeout_ms: u64) -> Arc<UpstreamLimiter> {
        Arc::new(UpstreamLimiter::new(&LimitsConfig {
            max_upstream_requests: slots,
            max_queued_requests: queue,
            queue_timeout: Duration::from_millis(timeout_ms),
        }))
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once() {
        let l = limiter(1, 0, 60_000);
        let held = l.acquire().await.unwrap();
        assert_eq!(l.in_flight(), 1);
        let e = l.acquire().await.unwrap_err();
        assert_eq!(
            e.type_name(),
            "com.amazon.coral.availability#ThrottlingException"
        );
        assert!(e.to_string().contains("max_queued_requests"), "{e}");
        drop(held);
        assert!(l.acquire().await.is_ok());
    }

    #[tokio::test]
    async fn a_queued_request_gets_the_freed_slot() {
        let l = limiter(1, 1, 60_000);
        let held = l.acquire().await.unwrap();
        let l2 = l.clone();
        let waiter = tokio::spawn(async move { l2.acquire().await.map(|_| ()) });
        while l.queued() == 0 {
            tokio::task::yield_now().await;
        }
        // The queue (1) is full now: a third request is refused.
        assert!(l.acquire().await.is_err());
        drop(held);
        waiter.await.unwrap().unwrap();
        assert_eq!(l.queued(), 0);
    }

    #[tokio::test]
    async fn waiting_past_the_queue_timeout_is_refused() {
        let l = limiter(1, 4, 50);
        let _held = l.acquire().await.unwrap();
        let e = l.acquire().await.unwrap_err();
        assert!(e.to_string().contains("queue_timeout"), "{e}");
        assert_eq!(l.queued(), 0);
    }
}

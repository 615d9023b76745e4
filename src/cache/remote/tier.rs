//! How a proxy uses its [`RemoteStore`]: every operation bounded by `remote.timeout`, counted,
//! and guarded by a circuit breaker, so a slow or dead tier never fails a request and, once the
//! breaker is open, costs it no time. It also owns the recovery rule and the fan-out loop.
//!
//! # Recovery (missed invalidations)
//! When a write's invalidation after the upstream answered could not be applied (Redis down,
//! timed out, or skipped by the open breaker), buckets may hold values older than that
//! acknowledged write once Redis is reachable again. The tier is then *dirty*: this proxy neither reads nor fills it until a
//! [`RemoteStore::flush`] (a global epoch bump, which makes every bucket stored before
//! unreachable and refuses fills looked up before) has succeeded. The breaker opening and the
//! loss of the fan-out subscription mark the tier dirty too: they mean this proxy lost contact,
//! and a proxy that had no write of its own during an outage must not read what a peer's failed
//! invalidation left behind before that peer recovers. A successful flush is also published as
//! [`Invalidation::All`]: the missed writes were not published either, so every proxy of the
//! fleet drops its in-process tier.

use super::breaker::{Admit, Breaker};
use super::redis::RedisStore;
use super::{FillToken, Lookup, RemoteEntry, RemoteFuture, RemoteStore, fanout};
use crate::cache::{Invalidation, Scope};
use crate::config::{RemoteConfig, RemoteKind};
use crate::error::Error;
use crate::metrics::RemoteMetrics;
use futures::StreamExt;
use futures::stream::BoxStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub struct RemoteTier {
    store: Arc<dyn RemoteStore>,
    timeout: Duration,
    backoff: Duration,
    breaker: Mutex<Breaker>,
    /// Events that may have left buckets stale (missed invalidations, lost contact), counted...
    missed: AtomicU64,
    /// ...and how many of them the last successful flush covers. Dirty while they differ; a
    /// counter, not a flag, so a miss during a flush keeps the tier dirty.
    flushed: AtomicU64,
    fanout: bool,
    /// Random per process: the fan-out ignores messages carrying it.
    id: String,
    metrics: RemoteMetrics,
}

impl RemoteTier {
    /// The tier `config` asks for, or None for `kind = "none"`.
    pub fn from_config(
        config: &RemoteConfig,
        metrics: RemoteMetrics,
    ) -> Result<Option<Arc<RemoteTier>>, Error> {
        let store: Arc<dyn RemoteStore> = match config.kind {
            RemoteKind::None => return Ok(None),
            RemoteKind::Redis => Arc::new(RedisStore::new(
                &config.redis_url,
                &config.prefix,
                config.timeout,
            )?),
        };
        Ok(Some(Arc::new(Self::new(store, config, metrics))))
    }

    pub fn new(store: Arc<dyn RemoteStore>, config: &RemoteConfig, metrics: RemoteMetrics) -> Self {
        RemoteTier {
            store,
            timeout: config.timeout,
            backoff: config.breaker_backoff,
            breaker: Mutex::new(Breaker::new(
                config.breaker_failures,
                config.breaker_backoff,
            )),
            missed: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
            fanout: config.fanout,
            id: format!("{:016x}", fastrand::u64(..)),
            metrics,
        }
    }

    pub fn describe(&self) -> String {
        self.store.describe()
    }

    pub fn fanout(&self) -> bool {
        self.fanout
    }

    fn mark_dirty(&self) {
        self.missed.fetch_add(1, Ordering::SeqCst);
    }

    fn is_dirty(&self) -> bool {
        self.missed.load(Ordering::SeqCst) != self.flushed.load(Ordering::SeqCst)
    }

    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `fut` if the breaker allows, within the timeout. None: skipped, failed or late.
    async fn call<T>(&self, op: &'static str, fut: RemoteFuture<'_, T>) -> Option<T> {
        let admit = self.breaker().admit(Instant::now());
        if admit == Admit::Skip {
            self.metrics
                .errors
                .with_label_values(&["breaker_open"])
                .inc();
            return None;
        }
        if admit == Admit::Probe {
            self.metrics.breaker_state.set(2);
        }
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, fut).await;
        self.metrics
            .latency
            .with_label_values(&[op])
            .observe(started.elapsed().as_secs_f64());
        let (kind, message) = match result {
            Ok(Ok(v)) => {
                let mut b = self.breaker();
                b.success();
                self.metrics.breaker_state.set(b.state().gauge());
                return Some(v);
            }
            Ok(Err(e)) => ("error", e.to_string()),
            Err(_) => ("timeout", format!("no answer within {:?}", self.timeout)),
        };
        self.metrics.errors.with_label_values(&[kind]).inc();
        let mut b = self.breaker();
        let opened = b.failure(Instant::now());
        self.metrics.breaker_state.set(b.state().gauge());
        drop(b);
        if opened {
            self.mark_dirty();
            tracing::warn!(op, error = %message, backoff = ?self.backoff,
                "remote tier breaker open: skipping the tier");
        } else {
            tracing::debug!(op, error = %message, "remote tier operation failed");
        }
        None
    }

    /// Whether reads and fills may use the tier: not dirty, or a flush just succeeded.
    async fn usable(&self) -> bool {
        let missed = self.missed.load(Ordering::SeqCst);
        if missed == self.flushed.load(Ordering::SeqCst) {
            return true;
        }
        if self.call("flush", self.store.flush()).await.is_none() {
            return false;
        }
        // Covers the misses counted before the flush began, not one during it.
        self.flushed.fetch_max(missed, Ordering::SeqCst);
        self.metrics.flushes.inc();
        tracing::info!("remote tier reachable again: flushed (global epoch bumped)");
        // The writes whose invalidations were missed were not published either: every proxy
        // drops its in-process tier too.
        self.publish(&[Invalidation::All]).await;
        true
    }

    /// The remote entry, or the token for a fill; None when the tier is unusable or failed.
    pub async fn lookup(&self, scope: &Scope, key: &[u8]) -> Option<Lookup> {
        if !self.usable().await {
            return None;
        }
        let found = self.call("lookup", self.store.lookup(scope, key)).await?;
        match &found {
            Lookup::Hit(_) => self.metrics.hits.inc(),
            Lookup::Miss(_) => self.metrics.misses.inc(),
        }
        Some(found)
    }

    /// Stores `entry` if no write touched `scope` since the lookup that gave `token`.
    pub async fn fill(&self, scope: &Scope, key: &[u8], entry: &RemoteEntry, token: &FillToken) {
        if self.is_dirty() {
            return;
        }
        let stored = self
            .call("fill", self.store.fill(scope, key, entry, token))
            .await;
        if let Some(stored) = stored {
            let result = if stored { "stored" } else { "conflict" };
            self.metrics.fills.with_label_values(&[result]).inc();
        }
    }

    /// Applies a write's invalidations remotely. `after_answer`: this is the one made after the
    /// upstream answered; if it fails the tier turns dirty. (The one before forwarding is not
    /// needed for correctness: the one after deletes the buckets and refuses every fill that
    /// looked up before it. So its failure alone flushes nothing.)
    pub async fn invalidate(&self, what: &[Invalidation], after_answer: bool) {
        if what.is_empty() {
            return;
        }
        let done = self.call("invalidate", self.store.invalidate(what)).await;
        if done.is_none() && after_answer {
            tracing::warn!(
                "a write's remote invalidation failed: the remote tier is flushed before use"
            );
            self.mark_dirty();
        }
    }

    /// Tells the other proxies (when `remote.fanout` is on).
    pub async fn publish(&self, what: &[Invalidation]) {
        if !self.fanout || what.is_empty() {
            return;
        }
        let payload = fanout::encode(&self.id, what);
        if self
            .call("publish", self.store.publish(&payload))
            .await
            .is_some()
        {
            self.metrics.fanout_published.inc();
        }
    }

    /// One subscription attempt (bounded by the store's own timeout).
    pub async fn subscribe(&self) -> Option<BoxStream<'static, Vec<u8>>> {
        match self.store.subscribe().await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "fan-out subscription failed");
                None
            }
        }
    }

    /// Applies the other proxies' invalidations with `apply` until `stop`. `first` is a
    /// subscription made before (so the proxy starts subscribed). Each subscription, first
    /// included, applies [`Invalidation::All`]: messages may have been missed before it. After a
    /// lost subscription the tier also turns dirty (see the module docs). Retries every
    /// `remote.breaker_backoff`; while subscribed, a dirty tier is flushed at that period too.
    pub async fn run_fanout(
        self: Arc<Self>,
        mut first: Option<BoxStream<'static, Vec<u8>>>,
        apply: impl Fn(&[Invalidation]) + Send + Sync + 'static,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut lost = false;
        loop {
            let stream = match first.take() {
                Some(s) => Some(s),
                None => tokio::select! {
                    s = self.subscribe() => s,
                    _ = stop.changed() => return,
                },
            };
            if let Some(mut stream) = stream {
                if lost {
                    self.mark_dirty();
                }
                apply(&[Invalidation::All]);
                self.metrics.fanout_subscribed.inc();
                self.metrics.fanout_connected.set(1);
                let mut recover = tokio::time::interval(self.backoff);
                loop {
                    tokio::select! {
                        msg = stream.next() => match msg {
                            Some(payload) => self.receive(&payload, &apply),
                            None => break,
                        },
                        // A dirty tier is flushed without waiting for traffic, so peers do not
                        // read what this proxy's missed invalidations left behind.
                        _ = recover.tick() => {
                            if self.is_dirty() {
                                self.usable().await;
                            }
                        }
                        _ = stop.changed() => return,
                    }
                }
                self.metrics.fanout_connected.set(0);
                tracing::warn!("fan-out subscription lost; resubscribing");
            }
            lost = true;
            tokio::select! {
                _ = tokio::time::sleep(self.backoff) => {}
                _ = stop.changed() => return,
            }
        }
    }

    fn receive(&self, payload: &[u8], apply: &impl Fn(&[Invalidation])) {
        match fanout::decode(payload) {
            Some((from, _)) if from == self.id => {}
            Some((_, what)) => {
                apply(&what);
                self.metrics.fanout_applied.inc();
            }
            None => tracing::debug!("ignored a malformed fan-out message"),
        }
    }
}

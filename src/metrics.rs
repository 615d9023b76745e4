//! Prometheus metrics, registered on a registry the proxy owns (no globals). Counter names
//! follow DAX's CloudWatch metrics so operators recognise them.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder, core::Collector,
};

/// How a request was answered, as the `cache_status` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served from the cache (including a fetch shared with a concurrent miss).
    Hit,
    /// A cacheable read that went upstream.
    Miss,
    /// A read that is never cached (ConsistentRead, TransactGetItems, unknown schema...).
    Bypass,
    /// A cached "no such item".
    NegativeHit,
    /// An expired entry served because the upstream failed (`cache.serve_stale`).
    Stale,
    /// Missed the in-process tier, found in the remote tier (`[remote]`).
    RemoteHit,
    /// Not a read: writes, table operations, pass-through, local errors.
    None,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Bypass => "bypass",
            CacheStatus::NegativeHit => "negative_hit",
            CacheStatus::Stale => "stale",
            CacheStatus::RemoteHit => "remote_hit",
            CacheStatus::None => "none",
        }
    }
}

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub upstream_requests: IntCounterVec,
    pub upstream_errors: IntCounterVec,
    pub upstream_latency: HistogramVec,
    pub item_hits: IntCounterVec,
    pub item_misses: IntCounterVec,
    pub query_hits: IntCounterVec,
    pub query_misses: IntCounterVec,
    pub invalidations: IntCounterVec,
    pub deferred_invalidations: prometheus::IntCounter,
    pub evictions: IntCounterVec,
    pub errors: IntCounterVec,
    pub rcu_saved: prometheus::CounterVec,
    pub cache_entries: IntGauge,
    pub cache_bytes: IntGauge,
    pub upstream_in_flight: IntGauge,
    pub upstream_queued: IntGauge,
    pub hit_latency: Histogram,
    pub remote: RemoteMetrics,
}

/// The remote tier and the invalidation fan-out (`[remote]`). Registered even when the tier
/// is off, so dashboards see zeros instead of missing series.
#[derive(Clone)]
pub struct RemoteMetrics {
    pub hits: prometheus::IntCounter,
    pub misses: prometheus::IntCounter,
    /// By `kind`: timeout, error, breaker_open.
    pub errors: IntCounterVec,
    /// By `op`: lookup, fill, invalidate, flush, publish.
    pub latency: HistogramVec,
    /// By `result`: stored, conflict (a write moved the generations since the lookup).
    pub fills: IntCounterVec,
    /// 0 closed, 1 open, 2 half-open (probing).
    pub breaker_state: IntGauge,
    /// Global epoch bumps after missed invalidations (see docs/deployment.md "Fleets").
    pub flushes: prometheus::IntCounter,
    pub fanout_published: prometheus::IntCounter,
    /// Invalidations received from other proxies and applied to the local generations.
    pub fanout_applied: prometheus::IntCounter,
    /// Subscriptions (re)established; each one invalidates the whole local tier.
    pub fanout_subscribed: prometheus::IntCounter,
    pub fanout_connected: IntGauge,
}

impl RemoteMetrics {
    fn register(registry: &Registry) -> RemoteMetrics {
        let int = |name: &str, help: &str| {
            let c = prometheus::IntCounter::new(name, help).expect("valid metric");
            register(registry, &c);
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            register(registry, &g);
            g
        };
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "ddbcache_remote_request_duration_seconds",
                "Time of remote-tier operations, by op (failures and timeouts included)",
            )
            .buckets(prometheus::exponential_buckets(0.000_025, 2.0, 14).expect("valid buckets")),
            &["op"],
        )
        .expect("valid metric");
        register(registry, &latency);
        RemoteMetrics {
            hits: int(
                "ddbcache_remote_hits_total",
                "Reads that missed the in-process tier and were answered by the remote tier",
            ),
            misses: int(
                "ddbcache_remote_misses_total",
                "Reads that missed both the in-process and the remote tier",
            ),
            errors: counter(
                registry,
                "ddbcache_remote_errors_total",
                "Remote-tier operations that failed, timed out, or were skipped by the open breaker",
                &["kind"],
            ),
            latency,
            fills: counter(
                registry,
                "ddbcache_remote_fills_total",
                "Remote fills by result: stored, or conflict (a write moved the generations)",
                &["result"],
            ),
            breaker_state: gauge(
                "ddbcache_remote_breaker_state",
                "Remote-tier circuit breaker: 0 closed, 1 open, 2 half-open",
            ),
            flushes: int(
                "ddbcache_remote_flushes_total",
                "Remote namespace flushes (global epoch bumps) after the tier missed invalidations",
            ),
            fanout_published: int(
                "ddbcache_fanout_published_total",
                "Invalidation messages this proxy published for its writes",
            ),
            fanout_applied: int(
                "ddbcache_fanout_applied_total",
                "Invalidation messages from other proxies applied to the in-process tier",
            ),
            fanout_subscribed: int(
                "ddbcache_fanout_subscriptions_total",
                "Fan-out subscriptions established; each one invalidates the whole in-process tier",
            ),
            fanout_connected: gauge(
                "ddbcache_fanout_connected",
                "1 while subscribed to the invalidation channel",
            ),
        }
    }
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    register(registry, &c);
    c
}

fn register(registry: &Registry, c: &(impl Collector + Clone + 'static)) {
    registry
        .register(Box::new(c.clone()))
        .expect("metric names are unique");
}

impl Metrics {
    pub fn register(registry: &Registry) -> Metrics {
        let upstream_latency = HistogramVec::new(
            HistogramOpts::new(
                "ddbcache_upstream_request_duration_seconds",
                "Time from sending a request upstream to having its whole response",
            )
            .buckets(prometheus::exponential_buckets(0.0001, 2.0, 18).expect("valid buckets")),
            &["operation"],
        )
        .expect("valid metric");
        register(registry, &upstream_latency);
        let hit_latency = Histogram::with_opts(
            HistogramOpts::new(
                "ddbcache_cache_hit_duration_seconds",
                "Time to answer a cache hit, from a parsed request to a built response",
            )
            .buckets(prometheus::exponential_buckets(0.000_001, 2.0, 16).expect("valid buckets")),
        )
        .expect("valid metric");
        register(registry, &hit_latency);
        let rcu_saved = prometheus::CounterVec::new(
            Opts::new(
                "ddbcache_read_capacity_units_saved_total",
                "Estimated eventually consistent read capacity units that cache hits saved \
                 (0.5 per started 4 KB of response)",
            ),
            &["table"],
        )
        .expect("valid metric");
        register(registry, &rcu_saved);
        let cache_entries = IntGauge::new(
            "ddbcache_cache_entries",
            "Entries in the in-process cache tier (includes superseded ones not yet evicted)",
        )
        .expect("valid metric");
        register(registry, &cache_entries);
        let cache_bytes = IntGauge::new(
            "ddbcache_cache_bytes",
            "Weighted bytes in the in-process cache tier (keys, bodies and per-entry overhead)",
        )
        .expect("valid metric");
        register(registry, &cache_bytes);
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            register(registry, &g);
            g
        };
        let upstream_in_flight = gauge(
            "ddbcache_upstream_in_flight",
            "Requests at the upstream now (at most limits.max_upstream_requests)",
        );
        let upstream_queued = gauge(
            "ddbcache_upstream_queued",
            "Requests waiting for an upstream slot now (at most limits.max_queued_requests)",
        );
        let deferred_invalidations = prometheus::IntCounter::new(
            "ddbcache_deferred_invalidations_total",
            "Writes with no answer from upstream, invalidated again upstream.request_timeout later",
        )
        .expect("valid metric");
        register(registry, &deferred_invalidations);
        Metrics {
            deferred_invalidations,
            requests: counter(
                registry,
                "ddbcache_requests_total",
                "Client requests by operation and how the cache answered",
                &["operation", "cache_status"],
            ),
            upstream_requests: counter(
                registry,
                "ddbcache_upstream_requests_total",
                "Requests sent upstream, including the proxy's own DescribeTable lookups",
                &["operation"],
            ),
            upstream_errors: counter(
                registry,
                "ddbcache_upstream_errors_total",
                "Upstream requests that got no HTTP response (unreachable, reset, timeout)",
                &["operation", "type"],
            ),
            upstream_latency,
            item_hits: counter(
                registry,
                "ddbcache_item_cache_hits_total",
                "GetItem requests answered from the item cache (negative hits included)",
                &["table"],
            ),
            item_misses: counter(
                registry,
                "ddbcache_item_cache_misses_total",
                "Cacheable GetItem requests that went upstream",
                &["table"],
            ),
            query_hits: counter(
                registry,
                "ddbcache_query_cache_hits_total",
                "Query and Scan requests answered from the query cache",
                &["table"],
            ),
            query_misses: counter(
                registry,
                "ddbcache_query_cache_misses_total",
                "Cacheable Query and Scan requests that went upstream",
                &["table"],
            ),
            invalidations: counter(
                registry,
                "ddbcache_invalidations_total",
                "Invalidations applied, by table and scope (partition or table)",
                &["table", "scope"],
            ),
            evictions: counter(
                registry,
                "ddbcache_cache_evictions_total",
                "Entries removed from the in-process tier, by cause",
                &["cause"],
            ),
            errors: counter(
                registry,
                "ddbcache_errors_total",
                "Errors the proxy answered itself, by type",
                &["type"],
            ),
            rcu_saved,
            cache_entries,
            cache_bytes,
            upstream_in_flight,
            upstream_queued,
            hit_latency,
            remote: RemoteMetrics::register(registry),
            registry: registry.clone(),
        }
    }

    /// The Prometheus text exposition of everything registered.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8192);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into a Vec cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_dax_style_names() {
        let m = Metrics::register(&Registry::new());
        m.item_hits.with_label_values(&["Orders"]).inc();
        m.requests
            .with_label_values(&["GetItem", CacheStatus::Hit.as_str()])
            .inc();
        let text = String::from_utf8(m.render()).unwrap();
        assert!(
            text.contains("ddbcache_item_cache_hits_total{table=\"Orders\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("ddbcache_requests_total{cache_status=\"hit\",operation=\"GetItem\"} 1")
        );
    }
}

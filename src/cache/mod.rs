//! The cache: canonical keys ([`key`]), generation counters ([`generation`]), the in-process
//! moka tier, whose capacity is counted in bytes, and the [`remote`] tier shared by a fleet.

pub mod generation;
pub mod key;
pub mod plans;
pub mod remote;
pub mod replay;

use bytes::Bytes;
use moka::Expiry;
use moka::future::Cache;
use moka::notification::RemovalCause;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use generation::{Generations, Invalidation, Scope, Stamp};

/// A cache key: the canonical request ([`key::read_key`]) and the generation stamp its scope had
/// when the read began.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub request: Arc<[u8]>,
    pub stamp: Stamp,
}

/// A cached 200 response body, stored exactly as it will be replayed.
#[derive(Debug, Clone)]
pub struct Entry {
    pub body: Bytes,
    /// CRC32 of `body`, computed once at admission: a hit replaying `body` as is sends it as
    /// `x-amz-crc32` without hashing the body again.
    pub crc: u32,
    /// Admission time + TTL. Past it the entry no longer answers as a hit; it is kept (up to
    /// `cache.serve_stale` longer) only to answer when the upstream fails.
    pub fresh_until: Instant,
    /// A GetItem that found no item.
    pub negative: bool,
}

impl Entry {
    /// The body is copied into an allocation of its own size: bodies from the upstream client
    /// are views into hyper's read buffers, and keeping one would pin its whole buffer (measured:
    /// 5.3 KB of resident memory per 1 KB body, against 1.04 KB copied; `benches/memory.rs`),
    /// which the byte capacity would not see.
    pub fn new(body: Bytes, ttl: Duration, negative: bool) -> Self {
        Entry {
            crc: crc32fast::hash(&body),
            body: Bytes::copy_from_slice(&body),
            fresh_until: Instant::now() + ttl,
            negative,
        }
    }

    pub fn is_fresh(&self, now: Instant) -> bool {
        now < self.fresh_until
    }
}

/// Per-entry bookkeeping counted against the byte capacity, besides the key and body bytes:
/// moka's nodes and the entry structs, measured at about 470 B of resident memory per entry
/// (`benches/memory.rs`, 1 M entries). With 160 here, RSS ran 1.32x over `capacity_bytes`.
const ENTRY_OVERHEAD: usize = 480;

/// Entries leave moka `serve_stale` after they stop being fresh. Counted from the entry's own
/// deadline, not from insertion, so putting a stale entry back does not extend its life.
struct PerEntryTtl {
    serve_stale: Duration,
}

impl Expiry<CacheKey, Entry> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &Entry,
        now: Instant,
    ) -> Option<Duration> {
        Some((value.fresh_until + self.serve_stale).saturating_duration_since(now))
    }
}

/// The in-process tier.
#[derive(Clone)]
pub struct LocalCache {
    inner: Cache<CacheKey, Entry, foldhash::fast::RandomState>,
}

impl LocalCache {
    /// A cache holding at most `capacity_bytes` of keys, bodies and overhead. `on_evict` is told
    /// why each entry left (expired, size, replaced, explicit).
    pub fn new(
        capacity_bytes: u64,
        on_evict: impl Fn(RemovalCause) + Send + Sync + 'static,
    ) -> Self {
        Self::with_serve_stale(capacity_bytes, Duration::ZERO, on_evict)
    }

    /// [`LocalCache::new`], keeping entries `serve_stale` past their TTL (see [`Entry::fresh_until`]).
    pub fn with_serve_stale(
        capacity_bytes: u64,
        serve_stale: Duration,
        on_evict: impl Fn(RemovalCause) + Send + Sync + 'static,
    ) -> Self {
        let inner = Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|k: &CacheKey, v: &Entry| {
                let bytes = k.request.len() + v.body.len() + ENTRY_OVERHEAD;
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl { serve_stale })
            .eviction_listener(move |_k, _v, cause| on_evict(cause))
            .build_with_hasher(foldhash::fast::RandomState::default());
        LocalCache { inner }
    }

    pub async fn get(&self, key: &CacheKey) -> Option<Entry> {
        self.inner.get(key).await
    }

    /// Returns the entry for `key`, running `fetch` if there is none. Concurrent callers with the
    /// same key (request *and* stamp) share one `fetch`. An `Err` is handed to every caller that
    /// was waiting on that fetch and nothing is stored.
    pub async fn get_or_fetch<F, E>(&self, key: CacheKey, fetch: F) -> Result<Entry, Arc<E>>
    where
        F: std::future::Future<Output = Result<Entry, E>>,
        E: Send + Sync + 'static,
    {
        self.inner.try_get_with(key, fetch).await
    }

    pub async fn insert(&self, key: CacheKey, entry: Entry) {
        self.inner.insert(key, entry).await
    }

    pub async fn remove(&self, key: &CacheKey) {
        self.inner.invalidate(key).await
    }

    /// Entries and weighted bytes, after applying pending bookkeeping.
    pub async fn usage(&self) -> (u64, u64) {
        self.inner.run_pending_tasks().await;
        (self.inner.entry_count(), self.inner.weighted_size())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn key(s: &str) -> CacheKey {
        CacheKey {
            request: Arc::from(s.as_bytes()),
            stamp: [0, 0],
        }
    }

    fn entry(n: usize) -> Entry {
        Entry::new(Bytes::from(vec![b'x'; n]), Duration::from_secs(60), false)
    }

    #[tokio::test]
    async fn capacity_is_in_bytes() {
        let cache = LocalCache::new(100_000, |_| {});
        for i in 0..1000 {
            cache.insert(key(&format!("k{i}")), entry(1000)).await;
        }
        let (entries, bytes) = cache.usage().await;
        assert!(bytes <= 100_000, "weighted size {bytes} over capacity");
        assert!(
            entries < 100,
            "{entries} entries of >1 KB cannot fit in 100 KB"
        );
        assert!(entries > 0);
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_fetch() {
        let cache = LocalCache::new(1 << 20, |_| {});
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let cache = cache.clone();
            let calls = calls.clone();
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_fetch(key("same"), async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok::<_, ()>(entry(10))
                    })
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().body.len(), 10);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_different_stamp_is_a_different_entry() {
        let cache = LocalCache::new(1 << 20, |_| {});
        cache.insert(key("k"), entry(1)).await;
        let mut newer = key("k");
        newer.stamp = [0, 1];
        assert!(cache.get(&key("k")).await.is_some());
        assert!(cache.get(&newer).await.is_none());
    }

    #[tokio::test]
    async fn stale_entries_are_kept_only_with_serve_stale() {
        let short = || Entry::new(Bytes::from_static(b"x"), Duration::from_millis(1), false);
        let plain = LocalCache::new(1 << 20, |_| {});
        let keeping = LocalCache::with_serve_stale(1 << 20, Duration::from_secs(60), |_| {});
        plain.insert(key("k"), short()).await;
        keeping.insert(key("k"), short()).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(plain.get(&key("k")).await.is_none());
        let stale = keeping.get(&key("k")).await.expect("kept past its TTL");
        assert!(!stale.is_fresh(Instant::now()));
    }

    #[tokio::test]
    async fn errors_are_not_stored() {
        let cache = LocalCache::new(1 << 20, |_| {});
        let r = cache
            .get_or_fetch(key("e"), async { Err::<Entry, _>("boom") })
            .await;
        assert_eq!(*r.unwrap_err(), "boom");
        assert!(cache.get(&key("e")).await.is_none());
    }
}

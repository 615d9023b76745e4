//! Resident memory of the in-process tier.
//!
//! - `fill`: `MEMORY_BENCH_ITEMS` (default 1,000,000) entries of 1 KB bodies and ~60-byte keys
//!   inserted into a [`LocalCache`] big enough for all of them; RSS growth / body bytes is the
//!   figure to keep at or under 1.5x. `fill_fetched` is the same through `get_or_fetch`, the
//!   server's own insert path.
//! - `bodies`, `keys`: what the parts of an entry cost alone (the 1 KB `Bytes`, the
//!   `Arc<[u8]>` key); the rest of `fill` is moka's per-entry bookkeeping.
//! - `moka_as_local_cache`, `hashed_keys`, `no_expiry`, `hashed_keys_no_expiry`: a moka cache
//!   built like `LocalCache` (the control), then keyed by a 128-bit hash of the canonical key
//!   and/or without per-entry expiry: what those changes would save.
//! - `upstream_as_received`, `upstream_copied`, `upstream_cached`: 1 KB bodies as `HttpUpstream`
//!   hands them over (views into hyper's read buffer), copied out, and admitted into a
//!   `LocalCache` through `Entry::new` as the server does; at most 50,000 requests.
//! - `bounded`: a cache of 100 MiB (scaled down with `MEMORY_BENCH_ITEMS`) gets 10 rounds of
//!   100,000 entries each (1 GB in all); RSS after each round must stay flat once it is full.
//!
//! Each phase runs in a child process of its own (this binary, re-run with
//! `MEMORY_BENCH_PHASE`), so that memory freed by one phase cannot hide growth in the next.
//! Run: `cargo bench --bench memory`; quick: `MEMORY_BENCH_ITEMS=10000 cargo bench --bench memory`;
//! keys of another length: `MEMORY_BENCH_KEY_BYTES=300` (default 59).
//! Linux only (reads VmRSS from /proc/self/status).

use bytes::Bytes;
use ddbcache::cache::{CacheKey, Entry, LocalCache};
use serde_json::{Value, json};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hash::{Hash, Hasher};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const BODY: usize = 1024;
const GIB: u64 = 1 << 30;
const MIB: f64 = (1 << 20) as f64;
/// Requests through the HTTP upstream are ~30 µs each: the upstream phases use at most this many.
const UPSTREAM_MAX: usize = 50_000;

/// The system allocator, counting live bytes and allocations (what Rust asked for, before
/// malloc's own headers and rounding, which only RSS shows).
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_ALLOCS: AtomicUsize = AtomicUsize::new(0);
/// Live allocations by size, in 8-byte classes up to 2 KiB (the last class holds the rest).
static LIVE_BY_SIZE: [AtomicIsize; CLASSES] = [const { AtomicIsize::new(0) }; CLASSES];
const CLASSES: usize = 257;

fn class(size: usize) -> usize {
    size.div_ceil(8).min(CLASSES - 1)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        LIVE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        LIVE_BY_SIZE[class(layout.size())].fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        LIVE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        LIVE_BY_SIZE[class(layout.size())].fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        LIVE_ALLOCS.fetch_sub(1, Ordering::Relaxed);
        LIVE_BY_SIZE[class(layout.size())].fetch_sub(1, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        LIVE_BY_SIZE[class(layout.size())].fetch_sub(1, Ordering::Relaxed);
        LIVE_BY_SIZE[class(new_size)].fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux)");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

#[derive(Clone, Copy)]
struct Snapshot {
    rss: u64,
    heap: usize,
    allocs: usize,
    by_size: [isize; CLASSES],
}

fn snapshot() -> Snapshot {
    Snapshot {
        rss: rss_bytes(),
        heap: LIVE_BYTES.load(Ordering::Relaxed),
        allocs: LIVE_ALLOCS.load(Ordering::Relaxed),
        by_size: std::array::from_fn(|i| LIVE_BY_SIZE[i].load(Ordering::Relaxed)),
    }
}

/// Growth since `base` as a result line for the parent: `n` entries of `payload` body bytes.
fn report(phase: &str, base: Snapshot, n: usize, payload: u64, extra: Value) {
    let now = snapshot();
    // Size classes with at least one new live allocation per 20 entries: the per-entry ones.
    let per_entry: Vec<Value> = (0..CLASSES)
        .filter_map(|c| {
            let per = (now.by_size[c] - base.by_size[c]) as f64 / n as f64;
            let size = if c == CLASSES - 1 {
                "larger".to_string()
            } else {
                format!("{}-{}", (c * 8).saturating_sub(7), c * 8)
            };
            (per >= 0.05).then(|| json!([size, per]))
        })
        .collect();
    let mut out = json!({
        "phase": phase,
        "n": n,
        "payload": payload,
        "rss": now.rss as i64 - base.rss as i64,
        "heap": now.heap as i64 - base.heap as i64,
        "allocs": now.allocs as i64 - base.allocs as i64,
        "per_entry_allocations": per_entry,
    });
    if let Value::Object(extra) = extra {
        out.as_object_mut().unwrap().extend(extra);
    }
    println!("RESULT {out}");
}

/// A canonical GetItem key of `i`, as `key::read_key` writes it: 59 bytes, or
/// `MEMORY_BENCH_KEY_BYTES` (the user id is zero-padded; realistic keys with a projection are
/// 250-600 bytes, see the `hot_path` bench's output).
fn write_key(buf: &mut String, i: usize) {
    use std::fmt::Write;
    static WIDTH: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let width = *WIDTH.get_or_init(|| {
        std::env::var("MEMORY_BENCH_KEY_BYTES")
            .ok()
            .map(|v| {
                v.parse::<usize>()
                    .expect("MEMORY_BENCH_KEY_BYTES is a number")
            })
            .map_or(10, |bytes| bytes.saturating_sub(49).max(10))
    });
    buf.clear();
    write!(
        buf,
        "GetItem\n\"Orders\"\n{{\"Key\":{{\"UserId\":{{\"S\":\"user#{i:0width$}\"}}}}}}"
    )
    .unwrap();
}

fn cache_key(buf: &mut String, i: usize) -> CacheKey {
    write_key(buf, i);
    CacheKey {
        request: Arc::from(buf.as_bytes()),
        stamp: [0, 0],
    }
}

/// A 1 KB body in its own exact-size allocation (as `Bytes::from(Vec)` makes it).
fn body(i: usize) -> Bytes {
    let mut v = vec![b'x'; BODY];
    v[..8].copy_from_slice(&(i as u64).to_le_bytes());
    Bytes::from(v)
}

fn entry(body: Bytes) -> Entry {
    Entry::new(body, Duration::from_secs(3600), false)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn items() -> usize {
    std::env::var("MEMORY_BENCH_ITEMS")
        .ok()
        .map(|v| v.replace(['_', ','], ""))
        .map(|v| v.parse().expect("MEMORY_BENCH_ITEMS is a number"))
        .unwrap_or(1_000_000)
}

fn phase_fill(n: usize, fetched: bool) {
    let rt = runtime();
    let evictions = Arc::new(AtomicU64::new(0));
    let counter = evictions.clone();
    let cache = LocalCache::new(2 * GIB, move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let mut buf = String::with_capacity(128);
    let key_bytes = {
        write_key(&mut buf, 0);
        buf.len()
    };
    let base = snapshot();
    let started = Instant::now();
    let (entries, weighted) = rt.block_on(async {
        for i in 0..n {
            let key = cache_key(&mut buf, i);
            if fetched {
                let got = cache
                    .get_or_fetch(key, async { Ok::<_, ()>(entry(body(i))) })
                    .await
                    .unwrap();
                drop(got);
            } else {
                cache.insert(key, entry(body(i))).await;
            }
        }
        cache.usage().await
    });
    let elapsed = started.elapsed();
    assert_eq!(
        evictions.load(Ordering::Relaxed),
        0,
        "nothing may be evicted"
    );
    assert_eq!(entries, n as u64);
    report(
        if fetched { "fill_fetched" } else { "fill" },
        base,
        n,
        (n * BODY) as u64,
        json!({"weighted": weighted, "key_bytes": key_bytes,
               "ns_per_insert": elapsed.as_nanos() as f64 / n as f64}),
    );
    drop(cache);
}

/// The 1 KB bodies alone, in a holder allocated and touched before the baseline.
fn phase_bodies(n: usize) {
    let mut holder = vec![Bytes::new(); n];
    let base = snapshot();
    for (i, slot) in holder.iter_mut().enumerate() {
        *slot = body(i);
    }
    report("bodies", base, n, (n * BODY) as u64, json!({}));
    drop(holder);
}

/// The `Arc<[u8]>` keys alone.
fn phase_keys(n: usize) {
    let mut holder: Vec<Option<Arc<[u8]>>> = vec![None; n];
    let mut buf = String::with_capacity(128);
    let base = snapshot();
    for (i, slot) in holder.iter_mut().enumerate() {
        *slot = Some(cache_key(&mut buf, i).request);
    }
    report("keys", base, n, (n * BODY) as u64, json!({}));
    drop(holder);
}

/// A 128-bit hash of a canonical key, for the `hashed_*` variants. Two keyed passes of std's
/// SipHash; a real implementation would use xxh3-128 or similar (only the size matters here).
fn hash128(bytes: &[u8]) -> u128 {
    let half = |seed: u8| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        seed.hash(&mut h);
        bytes.hash(&mut h);
        h.finish() as u128
    };
    (half(0) << 64) | half(1)
}

/// A cache key made of a 128-bit hash of the canonical key and the stamp: 32 bytes inline, no
/// allocation of its own.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct HashedKey {
    hash: u128,
    stamp: [u64; 2],
}

struct PerEntryTtl;

impl<K> moka::Expiry<K, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _: &K, v: &Entry, now: Instant) -> Option<Duration> {
        Some(v.fresh_until.saturating_duration_since(now))
    }
}

/// `fill` on a moka cache built like `LocalCache` (same weigher, listener, policy) but with
/// one change: keys hashed to 128 bits (`hashed`), and/or no per-entry expiry (`expiry`
/// false: TTLs would then be checked on read against an expiry time stored in the entry, and
/// expired entries left to size eviction, as invalidated ones already are).
fn phase_variant(n: usize, hashed: bool, expiry: bool) {
    fn run<K: std::hash::Hash + Eq + Send + Sync + 'static>(
        name: &str,
        n: usize,
        expiry: bool,
        key: impl Fn(&mut String, usize) -> K,
        key_len: impl Fn(&K) -> usize + Send + Sync + 'static,
    ) {
        let rt = runtime();
        let mut builder = moka::future::Cache::builder()
            .max_capacity(2 * GIB)
            .weigher(move |k: &K, v: &Entry| (key_len(k) + v.body.len() + 160) as u32)
            .eviction_listener(|_k, _v, _cause| {});
        if expiry {
            builder = builder.expire_after(PerEntryTtl);
        }
        let cache: moka::future::Cache<K, Entry, _> =
            builder.build_with_hasher(foldhash::fast::RandomState::default());
        let mut buf = String::with_capacity(128);
        let base = snapshot();
        rt.block_on(async {
            for i in 0..n {
                cache.insert(key(&mut buf, i), entry(body(i))).await;
            }
            cache.run_pending_tasks().await;
        });
        assert_eq!(cache.entry_count(), n as u64);
        let weighted = cache.weighted_size();
        report(
            name,
            base,
            n,
            (n * BODY) as u64,
            json!({"weighted": weighted}),
        );
        drop(cache);
    }
    let name = match (hashed, expiry) {
        (true, true) => "hashed_keys",
        (true, false) => "hashed_keys_no_expiry",
        (false, false) => "no_expiry",
        (false, true) => "moka_as_local_cache",
    };
    if hashed {
        run(
            name,
            n,
            expiry,
            |buf, i| {
                write_key(buf, i);
                HashedKey {
                    hash: hash128(buf.as_bytes()),
                    stamp: [0, 0],
                }
            },
            |_| 16,
        )
    } else {
        run(name, n, expiry, cache_key, |k: &CacheKey| k.request.len())
    }
}

/// What is kept of each answer in the `upstream_*` phases.
#[derive(Clone, Copy, PartialEq)]
enum Keep {
    /// The `Bytes` as `HttpUpstream` returns it: a view into hyper's read buffer.
    AsReceived,
    /// An exact-size copy.
    Copied,
    /// An `Entry::new` of it in a `LocalCache`, as `server` admits a 200 answer.
    Cached,
}

/// 1 KB answers fetched through `HttpUpstream` from a local HTTP/1.1 endpoint answering like
/// DynamoDB, kept as `keep` says.
fn phase_upstream(n: usize, keep: Keep) {
    use ddbcache::upstream::http::HttpUpstream;
    use ddbcache::upstream::{Upstream, UpstreamRequest};
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    let n = n.min(UPSTREAM_MAX);
    let rt = runtime();
    let config = ddbcache::Config::default().upstream;
    let kept = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = body(0);
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let answer = answer.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |_req| {
                        let answer = answer.clone();
                        async move {
                            let mut resp = http::Response::new(Full::new(answer));
                            resp.headers_mut().insert(
                                http::header::CONTENT_TYPE,
                                http::HeaderValue::from_static(ddbcache::protocol::AMZ_JSON),
                            );
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let upstream = HttpUpstream::new(&format!("http://{addr}"), &config, None).unwrap();
        let request = |i: usize| {
            let mut headers = http::HeaderMap::new();
            headers.insert(
                "x-amz-target",
                http::HeaderValue::from_static("DynamoDB_20120810.GetItem"),
            );
            UpstreamRequest {
                method: http::Method::POST,
                path_and_query: "/".into(),
                headers,
                body: Bytes::from(format!(
                    "{{\"TableName\":\"Orders\",\"Key\":{{\"UserId\":{{\"S\":\"user#{i:010}\"}}}}}}"
                )),
            }
        };
        // Warm up: the connection, the pool, hyper's buffers.
        for i in 0..100 {
            upstream.send(request(i)).await.unwrap();
        }
        let cache = LocalCache::new(2 * GIB, |_| {});
        let mut buf = String::with_capacity(128);
        let mut kept: Vec<Bytes> = vec![Bytes::new(); n];
        let base = snapshot();
        for (i, slot) in kept.iter_mut().enumerate() {
            let resp = upstream.send(request(i)).await.unwrap();
            assert_eq!(resp.status, http::StatusCode::OK);
            assert_eq!(resp.body.len(), BODY);
            match keep {
                Keep::AsReceived => *slot = resp.body,
                Keep::Copied => *slot = Bytes::copy_from_slice(&resp.body),
                Keep::Cached => {
                    let entry = Entry::new(resp.body, Duration::from_secs(3600), false);
                    cache.insert(cache_key(&mut buf, i), entry).await;
                }
            }
        }
        let phase = match keep {
            Keep::AsReceived => "upstream_as_received",
            Keep::Copied => "upstream_copied",
            Keep::Cached => {
                assert_eq!(cache.usage().await.0, n as u64);
                "upstream_cached"
            }
        };
        report(phase, base, n, (n * BODY) as u64, json!({}));
        (kept, cache)
    });
    drop(kept);
}

/// Capacity 100 MiB (scaled by `n` / 1,000,000), `n` 1 KB entries (1 GB at the default)
/// inserted in 10 rounds: RSS must stop growing once the cache is full.
fn phase_bounded(n: usize) {
    const ROUNDS: usize = 10;
    let capacity = ((100u64 << 20) as f64 * n as f64 / 1_000_000.0) as u64;
    let rt = runtime();
    let evictions = Arc::new(AtomicU64::new(0));
    let counter = evictions.clone();
    let cache = LocalCache::new(capacity, move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let mut buf = String::with_capacity(128);
    let base = snapshot();
    let per_round = n / ROUNDS;
    let mut rounds = Vec::new();
    rt.block_on(async {
        for round in 0..ROUNDS {
            for i in round * per_round..(round + 1) * per_round {
                cache.insert(cache_key(&mut buf, i), entry(body(i))).await;
            }
            let (entries, weighted) = cache.usage().await;
            assert!(weighted <= capacity, "weighted {weighted} over {capacity}");
            rounds.push(json!({
                "inserted": (round + 1) * per_round * BODY,
                "entries": entries,
                "weighted": weighted,
                "evictions": evictions.load(Ordering::Relaxed),
                "rss": rss_bytes() as i64 - base.rss as i64,
            }));
        }
    });
    report(
        "bounded",
        base,
        n,
        (n * BODY) as u64,
        json!({"capacity": capacity, "rounds": rounds}),
    );
    drop(cache);
}

fn run_phase(phase: &str, n: usize) {
    match phase {
        "fill" => phase_fill(n, false),
        "fill_fetched" => phase_fill(n, true),
        "bodies" => phase_bodies(n),
        "keys" => phase_keys(n),
        "moka_as_local_cache" => phase_variant(n, false, true),
        "no_expiry" => phase_variant(n, false, false),
        "hashed_keys" => phase_variant(n, true, true),
        "hashed_keys_no_expiry" => phase_variant(n, true, false),
        "upstream_as_received" => phase_upstream(n, Keep::AsReceived),
        "upstream_copied" => phase_upstream(n, Keep::Copied),
        "upstream_cached" => phase_upstream(n, Keep::Cached),
        "bounded" => phase_bounded(n),
        other => panic!("unknown MEMORY_BENCH_PHASE {other}"),
    }
}

/// Runs `phase` in a child process and returns its result line.
fn child(phase: &str, n: usize) -> Value {
    let out = Command::new(std::env::current_exe().unwrap())
        .env("MEMORY_BENCH_PHASE", phase)
        .env("MEMORY_BENCH_ITEMS", n.to_string())
        .output()
        .expect("re-running the bench binary");
    assert!(
        out.status.success(),
        "phase {phase} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("phase {phase} printed no result: {stdout}"));
    serde_json::from_str(line).unwrap()
}

fn f(v: &Value, name: &str) -> f64 {
    v[name].as_f64().unwrap_or_else(|| panic!("{name} in {v}"))
}

fn main() {
    let n = items();
    if let Ok(phase) = std::env::var("MEMORY_BENCH_PHASE") {
        run_phase(&phase, n);
        return;
    }
    // `cargo bench` passes `--bench`; a name filter is not supported here.
    assert!(n >= 1000, "MEMORY_BENCH_ITEMS must be at least 1000");
    println!("ddbcache in-process tier memory, {n} entries of {BODY} B bodies");
    println!();
    println!(
        "| phase | entries | body MiB | RSS growth MiB | RSS / body bytes | RSS B/entry | heap B/entry | allocs/entry |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut results = std::collections::BTreeMap::new();
    for phase in [
        "fill",
        "fill_fetched",
        "bodies",
        "keys",
        "moka_as_local_cache",
        "no_expiry",
        "hashed_keys",
        "hashed_keys_no_expiry",
        "upstream_as_received",
        "upstream_copied",
        "upstream_cached",
    ] {
        let r = child(phase, n);
        let entries = f(&r, "n");
        println!(
            "| {phase} | {entries} | {:.1} | {:.1} | {:.3} | {:.0} | {:.0} | {:.2} |",
            f(&r, "payload") / MIB,
            f(&r, "rss") / MIB,
            f(&r, "rss") / f(&r, "payload"),
            f(&r, "rss") / entries,
            f(&r, "heap") / entries,
            f(&r, "allocs") / entries,
        );
        results.insert(phase, r);
    }
    let fill = &results["fill"];
    let per = |phase: &str, what: &str| f(&results[phase], what) / f(&results[phase], "n");
    let body_rss = per("bodies", "rss");
    let key_rss = per("keys", "rss");
    let total_rss = per("fill", "rss");
    println!();
    println!("Per entry (RSS), from the phases above:");
    println!("| part | bytes/entry |");
    println!("|---|---:|");
    println!("| 1 KB body (`Bytes`, own allocation) | {body_rss:.0} |");
    println!(
        "| key (`Arc<[u8]>`, {} B canonical key) | {key_rss:.0} |",
        fill["key_bytes"]
    );
    println!(
        "| moka (node, hash table, deques, timer wheel, sketch) + `CacheKey`/`Entry` structs | {:.0} |",
        total_rss - body_rss - key_rss
    );
    println!("| total (`fill`) | {total_rss:.0} |");
    println!(
        "| weigher's count (`weighted_size / entries`) | {:.0} |",
        f(fill, "weighted") / f(fill, "n")
    );
    println!();
    println!(
        "fill: RSS / body bytes = {:.3} (goal <= 1.5); RSS / weighted bytes = {:.3}; {:.0} ns per insert",
        f(fill, "rss") / f(fill, "payload"),
        f(fill, "rss") / f(fill, "weighted"),
        f(fill, "ns_per_insert"),
    );
    println!();
    println!("Live allocations per entry by requested size (bytes: count per entry):");
    for phase in [
        "fill",
        "bodies",
        "keys",
        "no_expiry",
        "hashed_keys",
        "upstream_as_received",
    ] {
        let classes: Vec<String> = results[phase]["per_entry_allocations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| format!("{}: {:.2}", c[0].as_str().unwrap(), c[1].as_f64().unwrap()))
            .collect();
        println!("- {phase}: {}", classes.join(", "));
    }
    println!();
    println!(
        "What each change would do (RSS per entry against `moka_as_local_cache`, the control):"
    );
    println!("| change | RSS B/entry | saved B/entry | RSS / body bytes |");
    println!("|---|---:|---:|---:|");
    let control = per("moka_as_local_cache", "rss");
    for (phase, what) in [
        ("moka_as_local_cache", "none (same build as `LocalCache`)"),
        ("hashed_keys", "key = 128-bit hash of the canonical key"),
        ("no_expiry", "no per-entry expiry (TTL checked on read)"),
        ("hashed_keys_no_expiry", "both"),
    ] {
        let rss = per(phase, "rss");
        println!(
            "| {what} | {rss:.0} | {:.0} | {:.3} |",
            control - rss,
            rss / BODY as f64
        );
    }
    println!();
    println!(
        "Bodies from HttpUpstream: kept as received {:.0} B RSS ({:.0} B allocated) per 1 KB body; copied out {:.0} B; admitted into a LocalCache (Entry::new) {:.0} B per entry.",
        per("upstream_as_received", "rss"),
        per("upstream_as_received", "heap"),
        per("upstream_copied", "rss"),
        per("upstream_cached", "rss"),
    );
    // A regression guard that does not depend on RSS noise: the allocator's count. An entry
    // pinning hyper's read buffer holds 8 KiB or more; an own copy holds 1 KiB + bookkeeping.
    let cached_heap = per("upstream_cached", "heap");
    assert!(
        cached_heap < 2.0 * BODY as f64,
        "an admitted 1 KB upstream body holds {cached_heap:.0} B of heap: it pins its read buffer"
    );

    let bounded = child("bounded", n);
    let capacity = f(&bounded, "capacity");
    println!();
    println!(
        "bounded: capacity {:.1} MiB, {:.1} MiB inserted in rounds",
        capacity / MIB,
        f(&bounded, "payload") / MIB
    );
    println!();
    println!("| round | inserted MiB | entries | weighted MiB | evictions | RSS growth MiB |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let rounds = bounded["rounds"].as_array().unwrap();
    for (i, r) in rounds.iter().enumerate() {
        println!(
            "| {} | {:.1} | {} | {:.1} | {} | {:.1} |",
            i + 1,
            f(r, "inserted") / MIB,
            r["entries"],
            f(r, "weighted") / MIB,
            r["evictions"],
            f(r, "rss") / MIB,
        );
    }
    let first = f(&rounds[0], "rss");
    let last = f(&rounds[rounds.len() - 1], "rss");
    let max = rounds.iter().map(|r| f(r, "rss")).fold(0.0, f64::max);
    println!();
    println!(
        "bounded: RSS growth first round {:.1} MiB, last {:.1} MiB (max {:.1}; last/first {:.3}; last / capacity {:.3})",
        first / MIB,
        last / MIB,
        max / MIB,
        last / first,
        last / capacity
    );
}

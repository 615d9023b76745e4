//! The read-through race: a GetItem miss whose upstream answer is still in flight when a write
//! is acknowledged must not fill the cache with the old value (and a read that starts after the
//! acknowledgement must not join that fetch). A delaying relay between the proxy and dynoxide
//! widens the window; writers publish each acknowledged value and readers check they never see
//! an older one. A negative control runs the same workload with race protection disabled and
//! must observe stale reads, which shows the first test can fail.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use common::{Dynoxide, TestProxy, create_table, key};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::Mutex;

const TABLE: &str = "race_t";
/// Keys under test: two share a partition.
const KEYS: [(&str, &str); 4] = [("pA", "a"), ("pA", "b"), ("pB", "a"), ("pC", "a")];
const READERS: usize = 16;

// ---------------------------------------------------------------------------------------------
// Delaying relay
// ---------------------------------------------------------------------------------------------

/// How the relay delays GetItem (every other operation passes straight through).
#[derive(Debug, Clone, Copy)]
enum Delay {
    /// 0-10 ms before forwarding and 0-10 ms after the upstream answered.
    Jitter,
    /// Forward at once, then hold the upstream's answer this long.
    HoldAnswer(Duration),
}

/// A loopback HTTP relay to a dynoxide server, delaying GetItem.
struct Relay {
    addr: SocketAddr,
    /// GetItem requests the upstream has answered (counted before any hold).
    answered_get_items: Arc<AtomicU64>,
}

async fn start_relay(upstream: SocketAddr, delay: Delay) -> Relay {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client: HttpClient<HttpConnector, Full<Bytes>> =
        HttpClient::builder(TokioExecutor::new()).build_http();
    let answered = Arc::new(AtomicU64::new(0));
    let answered_get_items = answered.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            let (client, answered) = (client.clone(), answered.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    relay(client.clone(), upstream, delay, answered.clone(), req)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Relay {
        addr,
        answered_get_items,
    }
}

async fn jitter() {
    tokio::time::sleep(Duration::from_micros(fastrand::u64(0..10_000))).await;
}

async fn relay(
    client: HttpClient<HttpConnector, Full<Bytes>>,
    upstream: SocketAddr,
    delay: Delay,
    answered: Arc<AtomicU64>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(bad_gateway(format!("relay: reading request: {e}"))),
    };
    let get_item = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.ends_with(".GetItem"));
    let mut out = Request::builder()
        .method(parts.method)
        .uri(format!("http://{upstream}{}", parts.uri.path()));
    for (k, v) in parts.headers.iter() {
        if k != hyper::header::HOST && k != hyper::header::CONNECTION {
            out = out.header(k, v);
        }
    }
    let out = out.body(Full::new(body)).unwrap();
    if get_item && matches!(delay, Delay::Jitter) {
        jitter().await;
    }
    let resp = match client.request(out).await {
        Ok(r) => r,
        Err(e) => return Ok(bad_gateway(format!("relay: upstream: {e}"))),
    };
    let (parts, body) = resp.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(bad_gateway(format!("relay: reading response: {e}"))),
    };
    if get_item {
        answered.fetch_add(1, Ordering::SeqCst);
        match delay {
            Delay::Jitter => jitter().await,
            Delay::HoldAnswer(d) => tokio::time::sleep(d).await,
        }
    }
    let mut resp = Response::from_parts(parts, Full::new(body));
    resp.headers_mut().remove(hyper::header::TRANSFER_ENCODING);
    Ok(resp)
}

fn bad_gateway(msg: String) -> Response<Full<Bytes>> {
    let body = serde_json::json!({
        "__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
        "message": msg,
    });
    Response::builder()
        .status(502)
        .header("content-type", "application/x-amz-json-1.0")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Workload
// ---------------------------------------------------------------------------------------------

struct Outcome {
    reads: u64,
    writes: u64,
    stale: Vec<String>,
    /// GetItems answered from cache (`requests_total{GetItem,hit}`).
    get_item_hits: f64,
}

/// How long a workload runs.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    /// Run at least this long...
    min: Duration,
    /// ...and on until this many reads and writes are done (however slow the machine)...
    min_reads: u64,
    min_writes: u64,
    /// ...but never longer than this.
    max: Duration,
    /// Stop at the first stale read.
    stop_on_stale: bool,
}

/// Writers SET `v` = 1, 2, 3... on their own key and publish each acknowledged value; readers
/// load the published value, then GetItem (eventually consistent) and check `v` is not older.
async fn run_workload(proxy: &TestProxy, bounds: Bounds) -> Outcome {
    let c = proxy.client();
    create_table(&c, TABLE).await;
    for (pk, sk) in KEYS {
        c.put_item()
            .table_name(TABLE)
            .set_item(Some(common::item(&[("pk", pk), ("sk", sk)])))
            .item("v", AttributeValue::N("0".into()))
            .send()
            .await
            .expect("seed PutItem");
    }
    let acked: Arc<Vec<AtomicU64>> = Arc::new(KEYS.iter().map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let stale = Arc::new(Mutex::new(Vec::<String>::new()));
    let reads = Arc::new(AtomicU64::new(0));
    let writes = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let go = {
        let (stop, reads, writes) = (stop.clone(), reads.clone(), writes.clone());
        Arc::new(move || {
            let elapsed = started.elapsed();
            !stop.load(Ordering::SeqCst)
                && elapsed < bounds.max
                && (elapsed < bounds.min
                    || reads.load(Ordering::SeqCst) < bounds.min_reads
                    || writes.load(Ordering::SeqCst) < bounds.min_writes)
        })
    };
    let m0 = proxy.metrics().await;

    let mut tasks = Vec::new();
    for (i, (pk, sk)) in KEYS.into_iter().enumerate() {
        let (c, acked, go, writes) = (c.clone(), acked.clone(), go.clone(), writes.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while go() && n < 100_000 {
                n += 1;
                c.update_item()
                    .table_name(TABLE)
                    .set_key(Some(key(pk, sk)))
                    .update_expression("SET v = :v")
                    .expression_attribute_values(":v", AttributeValue::N(n.to_string()))
                    .send()
                    .await
                    .expect("writer UpdateItem");
                acked[i].store(n, Ordering::SeqCst);
                writes.fetch_add(1, Ordering::SeqCst);
                // Leave the cache time to serve hits between writes.
                tokio::time::sleep(Duration::from_micros(fastrand::u64(1_000..8_000))).await;
            }
            n
        }));
    }
    let mut readers = Vec::new();
    for _ in 0..READERS {
        let (c, acked, stop, go, stale, reads) = (
            c.clone(),
            acked.clone(),
            stop.clone(),
            go.clone(),
            stale.clone(),
            reads.clone(),
        );
        readers.push(tokio::spawn(async move {
            let mut count = 0u64;
            while go() && count < 200_000 {
                count += 1;
                let i = fastrand::usize(0..KEYS.len());
                let (pk, sk) = KEYS[i];
                let floor = acked[i].load(Ordering::SeqCst);
                let out = c
                    .get_item()
                    .table_name(TABLE)
                    .set_key(Some(key(pk, sk)))
                    .send()
                    .await
                    .expect("reader GetItem");
                reads.fetch_add(1, Ordering::SeqCst);
                let item = out.item().expect("item exists");
                let v: u64 = item
                    .get("v")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse().ok())
                    .expect("numeric v");
                if v < floor {
                    stale.lock().await.push(format!(
                        "{pk}/{sk}: read v={v} after v={floor} was acknowledged"
                    ));
                    if bounds.stop_on_stale {
                        stop.store(true, Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    let mut writes = 0;
    for t in tasks {
        writes += t.await.expect("writer task");
    }
    for r in readers {
        r.await.expect("reader task");
    }
    let m1 = proxy.metrics().await;
    let stale = stale.lock().await.clone();
    Outcome {
        reads: reads.load(Ordering::SeqCst),
        writes,
        stale,
        get_item_hits: m1.requests("GetItem", "hit") - m0.requests("GetItem", "hit"),
    }
}

/// dynoxide, the delaying relay in front of it, and a proxy over the relay.
async fn stack(
    delay: Delay,
    options: Option<ddbcache::server::StartOptions>,
) -> (TestProxy, Relay, Dynoxide) {
    let dynoxide = Dynoxide::start().await;
    let relay = start_relay(dynoxide.addr, delay).await;
    let proxy = TestProxy::start_over_url(format!("http://{}", relay.addr), |_| {}, options).await;
    (proxy, relay, dynoxide)
}

fn unprotected() -> Option<ddbcache::server::StartOptions> {
    Some(ddbcache::server::StartOptions {
        disable_race_protection: true,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_never_leave_stale_reads() {
    let (proxy, _relay, _dynoxide) = stack(Delay::Jitter, None).await;
    let out = run_workload(
        &proxy,
        Bounds {
            min: Duration::from_secs(3),
            min_reads: 1_000,
            min_writes: 100,
            max: Duration::from_secs(30),
            stop_on_stale: false,
        },
    )
    .await;
    eprintln!(
        "protected: {} reads, {} writes, {} cache hits, {} stale",
        out.reads,
        out.writes,
        out.get_item_hits,
        out.stale.len()
    );
    assert!(
        out.stale.is_empty(),
        "{} stale reads, first ones: {:#?}",
        out.stale.len(),
        &out.stale[..out.stale.len().min(10)]
    );
    assert!(
        out.writes >= 100,
        "too few writes to exercise the race: {}",
        out.writes
    );
    assert!(
        out.get_item_hits >= 200.0,
        "the workload must be served from cache often, got {} hits of {} reads",
        out.get_item_hits,
        out.reads
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_race_protection_stale_reads_happen() {
    let (proxy, _relay, _dynoxide) = stack(Delay::Jitter, unprotected()).await;
    let out = run_workload(
        &proxy,
        Bounds {
            // Until the first stale read, for at most 15 s.
            min: Duration::from_secs(15),
            min_reads: 0,
            min_writes: 0,
            max: Duration::from_secs(15),
            stop_on_stale: true,
        },
    )
    .await;
    eprintln!(
        "unprotected: {} reads, {} writes, {} cache hits, {} stale",
        out.reads,
        out.writes,
        out.get_item_hits,
        out.stale.len()
    );
    assert!(
        !out.stale.is_empty(),
        "with race protection disabled the workload should observe a stale read \
         ({} reads, {} writes, {} hits): the race test is not sensitive",
        out.reads,
        out.writes,
        out.get_item_hits
    );
    proxy.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// The same race, step by step
// ---------------------------------------------------------------------------------------------

async fn seed(c: &Client) {
    create_table(c, TABLE).await;
    c.put_item()
        .table_name(TABLE)
        .set_item(Some(common::item(&[("pk", "pA"), ("sk", "a")])))
        .item("v", AttributeValue::N("1".into()))
        .send()
        .await
        .expect("seed PutItem");
}

async fn get_v(c: &Client) -> u64 {
    let out = c
        .get_item()
        .table_name(TABLE)
        .set_key(Some(key("pA", "a")))
        .send()
        .await
        .expect("GetItem");
    out.item()
        .and_then(|i| i.get("v"))
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .expect("numeric v")
}

async fn set_v(c: &Client, v: u64) {
    c.update_item()
        .table_name(TABLE)
        .set_key(Some(key("pA", "a")))
        .update_expression("SET v = :v")
        .expression_attribute_values(":v", AttributeValue::N(v.to_string()))
        .send()
        .await
        .expect("UpdateItem");
}

/// Values read by A (a miss whose answer, v=1, is held in the relay while v=2 is written and
/// acknowledged), B (started after the acknowledgement, while A is still in flight) and C
/// (started once A has finished, while B is still in flight).
async fn stepwise_race(options: Option<ddbcache::server::StartOptions>) -> (u64, u64, u64) {
    let hold = Duration::from_millis(1500);
    let (proxy, relay, _dynoxide) = stack(Delay::HoldAnswer(hold), options).await;
    let c = proxy.client();
    seed(&c).await;

    let a = tokio::spawn({
        let c = c.clone();
        async move { get_v(&c).await }
    });
    // Wait until the upstream has answered A (with v=1); the relay now holds that answer.
    let waited = Instant::now();
    while relay.answered_get_items.load(Ordering::SeqCst) < 1 {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "A never reached upstream"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    set_v(&c, 2).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let b = tokio::spawn({
        let c = c.clone();
        async move { get_v(&c).await }
    });
    let a = a.await.unwrap();
    let cv = get_v(&c).await;
    let b = b.await.unwrap();
    proxy.shutdown().await;
    (a, b, cv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_after_acknowledged_write_never_sees_in_flight_old_answer() {
    let (a, b, c) = stepwise_race(None).await;
    assert_eq!(
        a, 1,
        "A read upstream before the write, so it answers the old value"
    );
    assert_eq!(
        b, 2,
        "B started after the write was acknowledged: it must not join A's fetch"
    );
    assert_eq!(
        c, 2,
        "A's old answer must not be cached for reads after the write"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_race_protection_in_flight_old_answer_is_cached() {
    let (a, _b, c) = stepwise_race(unprotected()).await;
    assert_eq!(a, 1);
    assert_eq!(
        c, 1,
        "with race protection disabled, A's old answer should be cached and served to C: \
         the stepwise race test is not sensitive"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_for_one_key_make_one_upstream_call() {
    let (proxy, relay, _dynoxide) =
        stack(Delay::HoldAnswer(Duration::from_millis(1000)), None).await;
    let c = proxy.client();
    seed(&c).await;
    const N: usize = 8;
    let m0 = proxy.metrics().await;
    let before = relay.answered_get_items.load(Ordering::SeqCst);
    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { get_v(&c).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 1);
    }
    let m1 = proxy.metrics().await;
    let calls = relay.answered_get_items.load(Ordering::SeqCst) - before;
    assert_eq!(
        calls, 1,
        "{N} concurrent identical misses must make one upstream GetItem"
    );
    assert_eq!(m1.upstream("GetItem") - m0.upstream("GetItem"), 1.0);

    // Every request is counted exactly once: one miss, the others hits.
    let n = N as f64;
    let hits = m1.item_hits(TABLE) - m0.item_hits(TABLE);
    let misses = m1.item_misses(TABLE) - m0.item_misses(TABLE);
    assert_eq!(misses, 1.0, "item cache misses");
    assert_eq!(
        hits + misses,
        n,
        "item cache hits ({hits}) + misses ({misses}) must equal the {N} reads"
    );
    let statuses: f64 = ["hit", "miss", "bypass", "negative_hit", "none"]
        .iter()
        .map(|s| m1.requests("GetItem", s) - m0.requests("GetItem", s))
        .sum();
    assert_eq!(statuses, n, "requests_total counts each GetItem once");
    assert_eq!(
        m1.requests("GetItem", "hit") - m0.requests("GetItem", "hit"),
        n - 1.0
    );
    proxy.shutdown().await;
}

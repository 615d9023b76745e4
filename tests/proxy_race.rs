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

/// A loopback HTTP relay to `upstream` that holds every GetItem for 0-10 ms before forwarding it
/// and again for 0-10 ms after its response arrives.
async fn start_relay(upstream: SocketAddr) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client: HttpClient<HttpConnector, Full<Bytes>> =
        HttpClient::builder(TokioExecutor::new()).build_http();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            let client = client.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| relay(client.clone(), upstream, req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

async fn jitter() {
    tokio::time::sleep(Duration::from_micros(fastrand::u64(0..10_000))).await;
}

async fn relay(
    client: HttpClient<HttpConnector, Full<Bytes>>,
    upstream: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(bad_gateway(format!("relay: reading request: {e}"))),
    };
    let delayed = parts
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
    if delayed {
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
    if delayed {
        jitter().await;
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
    item_hits: f64,
}

/// Writers SET `v` = 1, 2, 3... on their own key and publish each acknowledged value; readers
/// load the published value, then GetItem (eventually consistent) and check `v` is not older.
/// Runs until `duration`, or the first stale read when `stop_on_stale`.
async fn run_workload(proxy: &TestProxy, duration: Duration, stop_on_stale: bool) -> Outcome {
    let c = proxy.client();
    create_table(&c, TABLE).await;
    for (pk, sk) in KEYS {
        c.put_item()
            .table_name(TABLE)
            .set_item(Some(common::item(&[("pk", pk), ("sk", sk)])))
            .item("v", aws_sdk_dynamodb::types::AttributeValue::N("0".into()))
            .send()
            .await
            .expect("seed PutItem");
    }
    let acked: Arc<Vec<AtomicU64>> = Arc::new(KEYS.iter().map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let stale = Arc::new(Mutex::new(Vec::<String>::new()));
    let reads = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let m0 = proxy.metrics().await;

    let mut tasks = Vec::new();
    for (i, (pk, sk)) in KEYS.into_iter().enumerate() {
        let (c, acked, stop) = (c.clone(), acked.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline && n < 100_000 {
                n += 1;
                c.update_item()
                    .table_name(TABLE)
                    .set_key(Some(key(pk, sk)))
                    .update_expression("SET v = :v")
                    .expression_attribute_values(
                        ":v",
                        aws_sdk_dynamodb::types::AttributeValue::N(n.to_string()),
                    )
                    .send()
                    .await
                    .expect("writer UpdateItem");
                acked[i].store(n, Ordering::SeqCst);
                // Leave the cache time to serve hits between writes.
                tokio::time::sleep(Duration::from_micros(fastrand::u64(1_000..8_000))).await;
            }
            n
        }));
    }
    let mut readers = Vec::new();
    for _ in 0..READERS {
        let (c, acked, stop, stale, reads) = (
            c.clone(),
            acked.clone(),
            stop.clone(),
            stale.clone(),
            reads.clone(),
        );
        readers.push(tokio::spawn(async move {
            let mut count = 0u64;
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline && count < 200_000 {
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
                reads.fetch_add(1, Ordering::Relaxed);
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
                    if stop_on_stale {
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
        reads: reads.load(Ordering::Relaxed),
        writes,
        stale,
        item_hits: m1.item_hits(TABLE) - m0.item_hits(TABLE),
    }
}

/// dynoxide, the delaying relay in front of it, and a proxy over the relay.
async fn stack(options: Option<ddbcache::server::StartOptions>) -> (TestProxy, Dynoxide) {
    let dynoxide = Dynoxide::start().await;
    let relay = start_relay(dynoxide.addr).await;
    let proxy = TestProxy::start_over_url(format!("http://{relay}"), |_| {}, options).await;
    (proxy, dynoxide)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_never_leave_stale_reads() {
    let (proxy, _dynoxide) = stack(None).await;
    let out = run_workload(&proxy, Duration::from_secs(3), false).await;
    eprintln!(
        "protected: {} reads, {} writes, {} item cache hits, {} stale",
        out.reads,
        out.writes,
        out.item_hits,
        out.stale.len()
    );
    assert!(
        out.stale.is_empty(),
        "{} stale reads, first ones: {:#?}",
        out.stale.len(),
        &out.stale[..out.stale.len().min(10)]
    );
    assert!(
        out.writes >= 20,
        "too few writes to exercise the race: {}",
        out.writes
    );
    assert!(
        out.item_hits >= 100.0,
        "the workload must be served from cache often, got {} hits of {} reads",
        out.item_hits,
        out.reads
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_race_protection_stale_reads_happen() {
    let (proxy, _dynoxide) = stack(Some(ddbcache::server::StartOptions {
        disable_race_protection: true,
    }))
    .await;
    let out = run_workload(&proxy, Duration::from_secs(10), true).await;
    eprintln!(
        "unprotected: {} reads, {} writes, {} item cache hits, {} stale",
        out.reads,
        out.writes,
        out.item_hits,
        out.stale.len()
    );
    assert!(
        !out.stale.is_empty(),
        "with race protection disabled the workload should observe a stale read \
         ({} reads, {} writes, {} hits): the race test is not sensitive",
        out.reads,
        out.writes,
        out.item_hits
    );
    proxy.shutdown().await;
}

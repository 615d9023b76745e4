//! Fleets: several proxies sharing a remote tier (a real `redis-server`) and one dynoxide HTTP
//! server. A fill by one proxy is a remote hit for the others; a write through one proxy is
//! never read stale through another once its fan-out is applied; a fill that raced with a write
//! is refused by the remote compare-and-set; a dead tier fails no request and is used again
//! once it is back.
//!
//! `redis-server` is started by the tests on a free loopback port (no persistence) and killed
//! when dropped. When it is not on PATH, Debian's `redis-server` package is installed once per
//! test binary (`apt-get install -y redis-server`, through `sudo` when not root); if that is not
//! possible the tests fail saying so. Override the binary with `DDBCACHE_TEST_REDIS_SERVER`.
//!
//! Measurements (fan-out delay, remote-hit vs local-hit latency) are printed, never asserted.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use common::{Dynoxide, RawConn, TestProxy, create_table, key};
use ddbcache::config::RemoteKind;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

// ---------------------------------------------------------------------------------------------
// redis-server
// ---------------------------------------------------------------------------------------------

/// The `redis-server` binary, installed on first use.
fn redis_server_bin() -> &'static PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("DDBCACHE_TEST_REDIS_SERVER") {
            return Ok(PathBuf::from(p));
        }
        let works = |bin: &str| {
            Command::new(bin)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if works("redis-server") {
            return Ok(PathBuf::from("redis-server"));
        }
        // Serialise installs across test binaries running at once.
        let lock = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("redis-install.lock");
        let deadline = Instant::now() + Duration::from_secs(600);
        while std::fs::create_dir(&lock).is_err() {
            if Instant::now() > deadline {
                return Err(format!("waited 10 min for {}", lock.display()));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let result = install_redis();
        let _ = std::fs::remove_dir(&lock);
        result?;
        for bin in ["redis-server", "/usr/bin/redis-server"] {
            if works(bin) {
                return Ok(PathBuf::from(bin));
            }
        }
        Err("redis-server installed but not runnable".into())
    });
    match found {
        Ok(p) => p,
        Err(e) => panic!(
            "tests/fleet.rs needs redis-server: not on PATH and could not be installed \
             (apt-get install -y redis-server): {e}\nInstall it, or set DDBCACHE_TEST_REDIS_SERVER."
        ),
    }
}

fn install_redis() -> Result<(), String> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let run = |args: &[&str]| -> Result<(), String> {
        let mut cmd = if root {
            Command::new(args[0])
        } else {
            let mut c = Command::new("sudo");
            c.arg("-n").arg(args[0]);
            c
        };
        cmd.args(&args[1..])
            .env("DEBIAN_FRONTEND", "noninteractive");
        eprintln!("[fleet] running {cmd:?}");
        let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{cmd:?} failed: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    };
    let install = [
        "apt-get",
        "install",
        "-y",
        "--no-install-recommends",
        "redis-server",
    ];
    if run(&install).is_ok() {
        return Ok(());
    }
    run(&["apt-get", "update"])?;
    run(&install)
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A `redis-server` on a loopback port, killed when dropped.
struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    async fn start() -> Redis {
        let mut r = Redis {
            port: free_port(),
            child: None,
        };
        r.restart().await;
        r
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port; waits until it answers PING.
    async fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(redis_server_bin())
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--protected-mode", "no", "--loglevel", "warning"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.ping().await {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not come up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn ping(&self) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        let mut buf = [0u8; 16];
        s.write_all(b"PING\r\n").await.is_ok()
            && matches!(s.read(&mut buf).await, Ok(n) if buf[..n].starts_with(b"+PONG"))
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// Fleet helpers
// ---------------------------------------------------------------------------------------------

const TABLE: &str = "fleet_t";

fn remote(redis: &Redis, prefix: &str) -> impl FnOnce(&mut ddbcache::Config) + use<> {
    let (url, prefix) = (redis.url(), prefix.to_owned());
    move |c| {
        c.remote.kind = RemoteKind::Redis;
        c.remote.redis_url = url;
        c.remote.prefix = prefix;
        c.remote.breaker_backoff = Duration::from_millis(300);
        c.remote.breaker_failures = 3;
    }
}

async fn fleet(n: usize, upstream: &str, redis: &Redis, prefix: &str) -> Vec<TestProxy> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(TestProxy::start_over_url(upstream.to_owned(), remote(redis, prefix), None).await);
    }
    out
}

async fn put(c: &Client, pk: &str, sk: &str, v: u64) {
    c.put_item()
        .table_name(TABLE)
        .set_item(Some(common::item(&[("pk", pk), ("sk", sk)])))
        .item("v", AttributeValue::N(v.to_string()))
        .send()
        .await
        .expect("PutItem");
}

async fn get_v(c: &Client, pk: &str, sk: &str) -> Option<u64> {
    let out = c
        .get_item()
        .table_name(TABLE)
        .set_key(Some(key(pk, sk)))
        .send()
        .await
        .expect("GetItem");
    out.item()?.get("v")?.as_n().ok()?.parse().ok()
}

fn metric(m: &common::Metrics, name: &str) -> f64 {
    m.sum(name, &[])
}

/// Polls `proxy` until `name` reaches `at_least` (at most 10 s).
async fn wait_metric(proxy: &TestProxy, name: &str, at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = metric(&proxy.metrics().await, name);
        if v >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} stayed at {v} < {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(name: &str, mut d: Vec<Duration>) -> String {
    d.sort();
    format!(
        "{name}: n={} p50={:?} p99={:?} max={:?}",
        d.len(),
        percentile(&d, 0.5),
        percentile(&d, 0.99),
        d[d.len() - 1]
    )
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_by_one_proxy_is_a_remote_hit_for_the_others_and_writes_fan_out() {
    let redis = Redis::start().await;
    let dynoxide = Dynoxide::start().await;
    let f = fleet(3, &dynoxide.url(), &redis, "t1:").await;
    let (a, b, c) = (f[0].client(), f[1].client(), f[2].client());
    create_table(&a, TABLE).await;
    put(&a, "p1", "s", 1).await;

    assert_eq!(get_v(&a, "p1", "s").await, Some(1));
    let ma = f[0].metrics().await;
    assert_eq!(ma.upstream("GetItem"), 1.0);
    assert_eq!(
        ma.sum("ddbcache_remote_fills_total", &[("result", "stored")]),
        1.0
    );

    assert_eq!(get_v(&b, "p1", "s").await, Some(1));
    assert_eq!(get_v(&b, "p1", "s").await, Some(1));
    let mb = f[1].metrics().await;
    assert_eq!(
        mb.upstream("GetItem"),
        0.0,
        "B read A's fill from the remote tier"
    );
    assert_eq!(metric(&mb, "ddbcache_remote_hits_total"), 1.0);
    assert_eq!(mb.requests("GetItem", "remote_hit"), 1.0);
    assert_eq!(mb.requests("GetItem", "hit"), 1.0, "then B's own tier");

    // A write through A: B (cached locally) and C must see it once the fan-out is applied.
    let applied_b = metric(&mb, "ddbcache_fanout_applied_total");
    let applied_c = metric(&f[2].metrics().await, "ddbcache_fanout_applied_total");
    put(&a, "p1", "s", 2).await;
    wait_metric(&f[1], "ddbcache_fanout_applied_total", applied_b + 1.0).await;
    wait_metric(&f[2], "ddbcache_fanout_applied_total", applied_c + 1.0).await;
    assert_eq!(get_v(&b, "p1", "s").await, Some(2));
    assert_eq!(get_v(&c, "p1", "s").await, Some(2));
    assert_eq!(
        metric(&f[0].metrics().await, "ddbcache_fanout_applied_total"),
        0.0,
        "A ignores its own messages"
    );

    // Measured, not asserted: fan-out delay (write acknowledged through A -> B answers the new
    // value, B having the old one cached), and remote-hit vs local-hit latency (raw HTTP).
    let mut fanout = Vec::new();
    let mut rb = RawConn::connect(f[1].addr).await;
    let p1 = serde_json::json!({"TableName": TABLE, "Key": {"pk": {"S": "p1"}, "sk": {"S": "s"}}});
    for n in 3..203u64 {
        assert_eq!(get_v(&b, "p1", "s").await, Some(n - 1));
        put(&a, "p1", "s", n).await;
        let acked = Instant::now();
        let want = format!("\"v\":{{\"N\":\"{n}\"}}");
        // The fan-out was applied before the first poll that sees the new value began (its
        // stamp is taken first): that poll's start bounds the delay from above, without the
        // miss it then makes.
        loop {
            let poll = acked.elapsed();
            if rb.ddb_json("GetItem", &p1).await.text().contains(&want) {
                fanout.push(poll);
                break;
            }
        }
    }
    println!(
        "{}",
        summary(
            "fan-out delay (ack via A -> B invalidated; upper bound)",
            fanout
        )
    );
    let (mut remote_hits, mut local_hits) = (Vec::new(), Vec::new());
    let mut ra = RawConn::connect(f[0].addr).await;
    let mut rc = RawConn::connect(f[2].addr).await;
    for i in 0..200 {
        let pk = format!("lat{i}");
        put(&a, &pk, "s", 1).await;
        let body =
            serde_json::json!({"TableName": TABLE, "Key": {"pk": {"S": pk}, "sk": {"S": "s"}}});
        assert_eq!(ra.ddb_json("GetItem", &body).await.status, 200);
        let t = Instant::now();
        assert_eq!(rc.ddb_json("GetItem", &body).await.status, 200);
        remote_hits.push(t.elapsed());
        let t = Instant::now();
        assert_eq!(rc.ddb_json("GetItem", &body).await.status, 200);
        local_hits.push(t.elapsed());
    }
    let mc = f[2].metrics().await;
    assert!(metric(&mc, "ddbcache_remote_hits_total") >= 200.0);
    let lookups = |suffix: &str| {
        mc.sum(
            &format!("ddbcache_remote_request_duration_seconds_{suffix}"),
            &[("op", "lookup")],
        )
    };
    println!(
        "remote lookup inside the proxy (C): mean {:?} over {}",
        Duration::from_secs_f64(lookups("sum") / lookups("count")),
        lookups("count")
    );
    println!(
        "{}",
        summary("remote hit (client-side, raw HTTP)", remote_hits)
    );
    println!(
        "{}",
        summary("local hit (client-side, raw HTTP)", local_hits)
    );
}

/// Writers through one proxy each, readers through all three; a read that starts `GRACE` after
/// a write's acknowledgement must not see an older value. `GRACE` is far above the measured
/// fan-out p99 (sub-millisecond on loopback); it is a bound on delivery, not an assertion.
const GRACE: Duration = Duration::from_millis(200);
const KEYS: [(&str, &str); 4] = [("pA", "a"), ("pA", "b"), ("pB", "a"), ("pC", "a")];

/// Per key: (value, acknowledged at), in write order.
type AckLog = Arc<Vec<Mutex<Vec<(u64, Instant)>>>>;

async fn fleet_workload(f: &[TestProxy], run: Duration) -> (u64, u64, Vec<String>) {
    let a = f[0].client();
    for (pk, sk) in KEYS {
        put(&a, pk, sk, 0).await;
    }
    let acked: AckLog = Arc::new(
        KEYS.iter()
            .map(|_| Mutex::new(vec![(0, Instant::now())]))
            .collect(),
    );
    let stale = Arc::new(Mutex::new(Vec::new()));
    let (reads, checked) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let end = Instant::now() + run;
    let mut tasks = Vec::new();
    for (i, (pk, sk)) in KEYS.into_iter().enumerate() {
        let (c, acked) = (f[i % f.len()].client(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while Instant::now() < end {
                n += 1;
                c.update_item()
                    .table_name(TABLE)
                    .set_key(Some(key(pk, sk)))
                    .update_expression("SET v = :v")
                    .expression_attribute_values(":v", AttributeValue::N(n.to_string()))
                    .send()
                    .await
                    .expect("writer UpdateItem");
                acked[i].lock().unwrap().push((n, Instant::now()));
                tokio::time::sleep(Duration::from_micros(fastrand::u64(2_000..20_000))).await;
            }
        }));
    }
    for r in 0..9 {
        let c = f[r % f.len()].client();
        let (acked, stale, reads, checked) =
            (acked.clone(), stale.clone(), reads.clone(), checked.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                let i = fastrand::usize(0..KEYS.len());
                let started = Instant::now();
                let floor = acked[i]
                    .lock()
                    .unwrap()
                    .iter()
                    .rev()
                    .find(|(_, at)| *at + GRACE <= started)
                    .map_or(0, |(v, _)| *v);
                let v = get_v(&c, KEYS[i].0, KEYS[i].1).await.expect("item exists");
                reads.fetch_add(1, Ordering::SeqCst);
                if floor > 0 {
                    checked.fetch_add(1, Ordering::SeqCst);
                }
                if v < floor {
                    stale.lock().unwrap().push(format!(
                        "proxy {} key {i}: read v={v}, v={floor} acknowledged >= {GRACE:?} before",
                        r % 3
                    ));
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let stale = stale.lock().unwrap().clone();
    (
        reads.load(Ordering::SeqCst),
        checked.load(Ordering::SeqCst),
        stale,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_and_readers_across_the_fleet_never_read_stale_after_fanout() {
    let redis = Redis::start().await;
    let dynoxide = Dynoxide::start().await;
    let f = fleet(3, &dynoxide.url(), &redis, "t2:").await;
    create_table(&f[0].client(), TABLE).await;
    let (reads, checked, stale) = fleet_workload(&f, Duration::from_secs(3)).await;
    let hits: f64 = {
        let mut h = 0.0;
        for p in &f {
            let m = p.metrics().await;
            h += m.requests("GetItem", "hit") + m.requests("GetItem", "remote_hit");
        }
        h
    };
    println!(
        "fleet: {reads} reads ({checked} checked), {hits} cache hits, {} stale",
        stale.len()
    );
    assert!(checked > 100, "too few reads were checked: {checked}");
    assert!(hits > 0.0, "the workload must exercise the caches");
    assert!(
        stale.is_empty(),
        "stale reads: {:#?}",
        &stale[..stale.len().min(10)]
    );
}

/// The negative control: the same workload without fan-out must read stale values (each proxy's
/// in-process tier keeps what the others' writes made old), which shows the test above can fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_fanout_the_same_workload_reads_stale() {
    let redis = Redis::start().await;
    let dynoxide = Dynoxide::start().await;
    let mut f = Vec::new();
    for _ in 0..3 {
        let configure = remote(&redis, "t3:");
        f.push(
            TestProxy::start_over_url(
                dynoxide.url(),
                |c| {
                    configure(c);
                    c.remote.fanout = false;
                },
                None,
            )
            .await,
        );
    }
    create_table(&f[0].client(), TABLE).await;
    let (reads, checked, stale) = fleet_workload(&f, Duration::from_secs(2)).await;
    println!(
        "no fan-out: {reads} reads ({checked} checked), {} stale",
        stale.len()
    );
    assert!(
        !stale.is_empty(),
        "without fan-out, stale reads were expected"
    );
}

// ---------------------------------------------------------------------------------------------
// The remote compare-and-set
// ---------------------------------------------------------------------------------------------

/// A loopback relay to `upstream` holding every GetItem answer for `hold`.
async fn holding_relay(
    upstream: SocketAddr,
    hold: Duration,
    answered: Arc<AtomicU64>,
) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client: HttpClient<HttpConnector, Full<Bytes>> =
        HttpClient::builder(TokioExecutor::new()).build_http();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (client, answered) = (client.clone(), answered.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let (client, answered) = (client.clone(), answered.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.unwrap().to_bytes();
                        let get_item = parts
                            .headers
                            .get("x-amz-target")
                            .is_some_and(|t| t.as_bytes().ends_with(b".GetItem"));
                        let mut out = Request::builder()
                            .method(parts.method)
                            .uri(format!("http://{upstream}{}", parts.uri.path()));
                        for (k, v) in parts.headers.iter() {
                            if k != hyper::header::HOST && k != hyper::header::CONNECTION {
                                out = out.header(k, v);
                            }
                        }
                        let resp = client
                            .request(out.body(Full::new(body)).unwrap())
                            .await
                            .unwrap();
                        let (parts, body) = resp.into_parts();
                        let body = body.collect().await.unwrap().to_bytes();
                        if get_item {
                            answered.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(hold).await;
                        }
                        let mut resp = Response::from_parts(parts, Full::new(body));
                        resp.headers_mut().remove(hyper::header::TRANSFER_ENCODING);
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_that_started_before_a_write_is_not_stored_remotely() {
    let redis = Redis::start().await;
    let dynoxide = Dynoxide::start().await;
    let answered = Arc::new(AtomicU64::new(0));
    let relay = holding_relay(dynoxide.addr, Duration::from_millis(500), answered.clone()).await;
    // A reads through the holding relay; W writes and C reads straight to dynoxide.
    let a = TestProxy::start_over_url(format!("http://{relay}"), remote(&redis, "t4:"), None).await;
    let w = TestProxy::start_over_url(dynoxide.url(), remote(&redis, "t4:"), None).await;
    let c = TestProxy::start_over_url(dynoxide.url(), remote(&redis, "t4:"), None).await;
    create_table(&w.client(), TABLE).await;
    put(&w.client(), "p", "s", 1).await;

    let ac = a.client();
    let slow_read = tokio::spawn(async move { get_v(&ac, "p", "s").await });
    // The upstream has answered A with v=1; A holds it (relay) while the write is acknowledged.
    while answered.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    put(&w.client(), "p", "s", 2).await;
    assert_eq!(
        slow_read.await.unwrap(),
        Some(1),
        "A's read began before the write"
    );

    let ma = a.metrics().await;
    assert_eq!(
        ma.sum("ddbcache_remote_fills_total", &[("result", "conflict")]),
        1.0
    );
    assert_eq!(
        ma.sum("ddbcache_remote_fills_total", &[("result", "stored")]),
        0.0
    );
    assert_eq!(
        get_v(&c.client(), "p", "s").await,
        Some(2),
        "C must not get A's old fill"
    );
    let mc = c.metrics().await;
    assert_eq!(metric(&mc, "ddbcache_remote_hits_total"), 0.0);
    assert_eq!(mc.upstream("GetItem"), 1.0);
}

// ---------------------------------------------------------------------------------------------
// A dead tier
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_remote_tier_fails_no_request_and_is_used_again_after_restart() {
    let mut redis = Redis::start().await;
    let dynoxide = Dynoxide::start().await;
    let f = fleet(2, &dynoxide.url(), &redis, "t5:").await;
    let (a, b) = (f[0].client_no_retry(), f[1].client_no_retry());
    create_table(&a, TABLE).await;
    put(&a, "k0", "s", 1).await;
    assert_eq!(get_v(&a, "k0", "s").await, Some(1));
    assert_eq!(get_v(&b, "k0", "s").await, Some(1));
    assert_eq!(
        metric(&f[1].metrics().await, "ddbcache_remote_hits_total"),
        1.0
    );

    redis.kill();
    let mut down = Vec::new();
    for i in 0..30 {
        let pk = format!("down{i}");
        put(&a, &pk, "s", 7).await; // SDK errors would panic: every request must succeed
        let t = Instant::now();
        assert_eq!(get_v(&b, &pk, "s").await, Some(7));
        down.push(t.elapsed());
    }
    println!(
        "{}",
        summary("GetItem miss with the tier down (client-side)", down)
    );
    for p in &f {
        let m = p.metrics().await;
        let errors = m.sum("ddbcache_remote_errors_total", &[("kind", "error")])
            + m.sum("ddbcache_remote_errors_total", &[("kind", "timeout")]);
        assert!(errors >= 3.0, "errors counted: {errors}");
        assert!(
            m.sum("ddbcache_remote_errors_total", &[("kind", "breaker_open")]) > 0.0,
            "the open breaker skipped the tier"
        );
        assert_ne!(
            metric(&m, "ddbcache_remote_breaker_state"),
            0.0,
            "breaker open"
        );
    }

    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut i = 0;
    loop {
        i += 1;
        let pk = format!("up{i}");
        put(&a, &pk, "s", 9).await;
        assert_eq!(get_v(&a, &pk, "s").await, Some(9));
        assert_eq!(get_v(&b, &pk, "s").await, Some(9));
        let mb = f[1].metrics().await;
        if metric(&mb, "ddbcache_remote_hits_total") >= 2.0 {
            assert_eq!(metric(&mb, "ddbcache_remote_breaker_state"), 0.0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the tier was not used again after restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ma = f[0].metrics().await;
    assert!(
        metric(&ma, "ddbcache_remote_flushes_total") >= 1.0,
        "recovered by a flush"
    );
}

// ---------------------------------------------------------------------------------------------
// One proxy cut off from Redis alone
// ---------------------------------------------------------------------------------------------

/// A TCP relay to `target` that can be cut (open connections dropped, new ones closed at once)
/// and restored: one proxy's network path to Redis.
struct CutRelay {
    addr: SocketAddr,
    cut: Arc<std::sync::atomic::AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl CutRelay {
    async fn start(target: SocketAddr) -> CutRelay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (c, cs) = (cut.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if c.load(Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                cs.lock().unwrap().push(task);
            }
        });
        CutRelay { addr, cut, conns }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for t in self.conns.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_cut_off_alone_makes_the_fleet_drop_what_its_writes_missed_once_it_is_back() {
    let redis = Redis::start().await;
    let dynoxide = Dynoxide::start().await;
    let relay = CutRelay::start(format!("127.0.0.1:{}", redis.port).parse().unwrap()).await;
    let via_relay = |c: &mut ddbcache::Config| {
        remote(&redis, "t6:")(c);
        c.remote.redis_url = format!("redis://{}", relay.addr);
    };
    let a = TestProxy::start_over_url(dynoxide.url(), via_relay, None).await;
    let b = TestProxy::start_over_url(dynoxide.url(), remote(&redis, "t6:"), None).await;
    let (ac, bc) = (a.client_no_retry(), b.client_no_retry());
    create_table(&bc, TABLE).await;
    put(&bc, "p", "s", 1).await;
    assert_eq!(get_v(&bc, "p", "s").await, Some(1)); // fills B's tier and the remote one
    let applied = metric(&b.metrics().await, "ddbcache_fanout_applied_total");

    relay.cut();
    put(&ac, "p", "s", 2).await; // acknowledged: the upstream has it; Redis never heard of it
    // The documented residual window: B still has the old value (local tier and remote bucket).
    println!(
        "B while A is cut off: v={:?} (old value expected)",
        get_v(&bc, "p", "s").await
    );

    relay.restore();
    wait_metric(&a, "ddbcache_remote_flushes_total", 1.0).await;
    wait_metric(&b, "ddbcache_fanout_applied_total", applied + 1.0).await;
    assert_eq!(
        get_v(&bc, "p", "s").await,
        Some(2),
        "after A's flush and its fleet-wide invalidation"
    );
    let mb = b.metrics().await;
    assert_eq!(
        mb.upstream("GetItem"),
        2.0,
        "the old remote entry was not served"
    );
}

//! Faults and overload, with a real upstream (a dynoxide HTTP server) behind a loopback TCP relay
//! the test controls: the relay can forward, refuse (listener closed), reset every connection,
//! hold requests without answering, or delay them. Covers: retryable DynamoDB-shaped 5xx for each
//! fault, recovery when the upstream returns, re-invalidation of writes whose outcome is unknown,
//! serve-stale, ThrottlingException under overload while hits keep being served, and graceful
//! shutdown finishing in-flight requests.

mod common;

use common::*;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

// ---------------------------------------------------------------------------------------------
// The relay
// ---------------------------------------------------------------------------------------------

/// What the relay does with client bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Forward,
    /// Accept, then close with a TCP reset.
    Reset,
    /// Accept and read, never forward or answer.
    Hold,
    /// Forward each chunk of client bytes after this delay.
    Delay(Duration),
}

/// A loopback TCP relay in front of `upstream`. `stop` closes the listener and every open
/// connection (so connecting is refused); `start` listens on the same port again.
struct Relay {
    addr: SocketAddr,
    upstream: SocketAddr,
    mode: watch::Sender<Mode>,
    /// Bumped by `stop`: connection tasks end when it changes.
    epoch: watch::Sender<u64>,
    accepted: Arc<AtomicU64>,
    listener_task: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    async fn start_new(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut relay = Relay {
            addr: listener.local_addr().unwrap(),
            upstream,
            mode: watch::channel(Mode::Forward).0,
            epoch: watch::channel(0).0,
            accepted: Arc::new(AtomicU64::new(0)),
            listener_task: None,
        };
        relay.run(listener);
        relay
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    fn run(&mut self, listener: TcpListener) {
        let upstream = self.upstream;
        let mode = self.mode.subscribe();
        let epoch = self.epoch.subscribe();
        let accepted = self.accepted.clone();
        self.listener_task = Some(tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(connection(client, upstream, mode.clone(), epoch.clone()));
            }
        }));
    }

    /// Closes the listener and every connection.
    async fn stop(&mut self) {
        if let Some(t) = self.listener_task.take() {
            t.abort();
            let _ = t.await;
        }
        self.epoch.send_modify(|e| *e += 1);
    }

    /// Listens on the same port again, forwarding.
    async fn restart(&mut self) {
        self.set(Mode::Forward);
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.run(listener);
    }
}

async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    mode: watch::Receiver<Mode>,
    mut epoch: watch::Receiver<u64>,
) {
    epoch.borrow_and_update();
    if *mode.borrow() == Mode::Reset {
        let _ = client.set_zero_linger();
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    // Ends with true when the client must be reset.
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(n) if n > 0 => n,
                // The client left; like a real server, the upstream still gets to finish what
                // it was sent (a closed connection would cancel it in hyper).
                _ => {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    return false;
                }
            };
            let m = *mode.borrow();
            match m {
                Mode::Forward => {}
                Mode::Reset => return true,
                Mode::Hold => std::future::pending::<()>().await,
                Mode::Delay(d) => tokio::time::sleep(d).await,
            }
            if sw.write_all(&buf[..n]).await.is_err() {
                return false;
            }
        }
    };
    let down = async {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
        false
    };
    let reset = tokio::select! {
        r = up => r,
        r = down => r,
        _ = epoch.changed() => false,
    };
    if reset && let Ok(client) = cr.reunite(cw) {
        let _ = client.set_zero_linger();
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

const TABLE: &str = "faults";

/// dynoxide, a relay in front of it, and a proxy over the relay (`configure` applied), with a
/// table created and `pk=a` (v1) put and read once (so it is cached).
async fn stack(configure: impl FnOnce(&mut ddbcache::Config)) -> (TestProxy, Relay, Dynoxide) {
    let dynoxide = Dynoxide::start().await;
    let relay = Relay::start_new(dynoxide.addr).await;
    let proxy = TestProxy::start_over_url(relay.url(), configure, None).await;
    let client = proxy.client();
    create_simple_table(&client, TABLE).await;
    put(&proxy, "a", "v1").await;
    assert_eq!(get(&proxy, "a").await.status, 200);
    (proxy, relay, dynoxide)
}

fn key_of(pk: &str) -> serde_json::Value {
    json!({ "TableName": TABLE, "Key": { "pk": { "S": pk } } })
}

async fn get(proxy: &TestProxy, pk: &str) -> RawResponse {
    RawConn::connect(proxy.addr)
        .await
        .ddb_json("GetItem", &key_of(pk))
        .await
}

async fn put(proxy: &TestProxy, pk: &str, v: &str) -> RawResponse {
    let body = json!({ "TableName": TABLE, "Item": { "pk": { "S": pk }, "v": { "S": v } } });
    RawConn::connect(proxy.addr)
        .await
        .ddb_json("PutItem", &body)
        .await
}

fn value(resp: &RawResponse) -> Option<String> {
    resp.json()["Item"]["v"]["S"].as_str().map(str::to_string)
}

/// Polls the admin `/metrics` at `admin` until `ready` holds.
async fn wait_for_metrics(admin: SocketAddr, ready: impl Fn(&Metrics) -> bool) {
    while !ready(&scrape(admin).await) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn assert_service_unavailable(resp: &RawResponse, what: &str) {
    assert_eq!(resp.status, 503, "{what}: {}", resp.text());
    assert_eq!(
        resp.error_type().as_deref(),
        Some("com.amazonaws.dynamodb.v20120810#ServiceUnavailable"),
        "{what}: {}",
        resp.text()
    );
}

// ---------------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn upstream_refusing_gives_503_hits_still_served_and_recovery_is_immediate() {
    let (proxy, mut relay, _dynoxide) = stack(|_| {}).await;
    relay.stop().await;

    let miss = get(&proxy, "other").await;
    assert_service_unavailable(&miss, "a miss with the upstream down");
    assert!(
        miss.text().contains("upstream unavailable"),
        "{}",
        miss.text()
    );
    let write = put(&proxy, "b", "v1").await;
    assert_service_unavailable(&write, "a write with the upstream down");
    // The cached item is still served, and the admin listener still answers.
    let hit = get(&proxy, "a").await;
    assert_eq!(hit.status, 200);
    assert_eq!(value(&hit).as_deref(), Some("v1"));
    assert_eq!(http_get(proxy.admin_addr, "/healthz").await.status, 200);

    // The first request after the upstream is back succeeds: no dead pooled connection, no
    // back-off period.
    relay.restart().await;
    let write = put(&proxy, "b", "v2").await;
    assert_eq!(
        write.status,
        200,
        "first write after recovery: {}",
        write.text()
    );
    let read = get(&proxy, "b").await;
    assert_eq!(value(&read).as_deref(), Some("v2"));
}

#[tokio::test]
async fn nothing_listening_fails_fast_with_503() {
    // A port nobody listens on: bind, note it, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let proxy = TestProxy::start_over_url(format!("http://127.0.0.1:{port}"), |_| {}, None).await;
    let resp = RawConn::connect(proxy.addr)
        .await
        .ddb_json("ListTables", &json!({}))
        .await;
    assert_service_unavailable(&resp, "ListTables to a closed port");
    let m = proxy.metrics().await;
    assert_eq!(
        m.sum("ddbcache_errors_total", &[("type", "upstream_unavailable")]),
        1.0
    );
}

#[tokio::test]
async fn upstream_resetting_connections_gives_503_and_proxy_survives() {
    let (proxy, relay, _dynoxide) = stack(|_| {}).await;
    relay.set(Mode::Reset);
    for pk in ["r1", "r2", "r3"] {
        assert_service_unavailable(&get(&proxy, pk).await, "a miss over resets");
    }
    assert_service_unavailable(&put(&proxy, "r1", "x").await, "a write over resets");
    relay.set(Mode::Forward);
    // Pooled connections were reset: the next request must not trip over one.
    let resp = put(&proxy, "r1", "y").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(value(&get(&proxy, "r1").await).as_deref(), Some("y"));
}

#[tokio::test]
async fn slow_upstream_times_out_with_503_naming_the_timeout() {
    let (proxy, relay, _dynoxide) = stack(|c| {
        c.upstream.request_timeout = Duration::from_millis(300);
    })
    .await;
    relay.set(Mode::Hold);
    let resp = get(&proxy, "slow").await;
    assert_service_unavailable(&resp, "a held miss");
    assert!(
        resp.text().contains("upstream.request_timeout"),
        "{}",
        resp.text()
    );
    let m = proxy.metrics().await;
    assert!(m.sum("ddbcache_errors_total", &[("type", "upstream_timeout")]) >= 1.0);
    // Held connections do not block recovery.
    relay.set(Mode::Forward);
    let resp = get(&proxy, "a").await;
    assert_eq!(value(&resp).as_deref(), Some("v1"));
    let resp = put(&proxy, "slow", "ok").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
}

/// A write the proxy gave up on (timeout) but the upstream applied later: a read in between
/// re-caches the old value; the deferred invalidation, one request_timeout later, drops it.
#[tokio::test]
async fn write_with_unknown_outcome_is_invalidated_again_later() {
    let timeout = Duration::from_millis(500);
    let (proxy, relay, dynoxide) = stack(|c| c.upstream.request_timeout = timeout).await;
    let direct = sdk_client(&dynoxide.url(), false);

    // The write reaches dynoxide 600 ms after it was sent: after the proxy's 500 ms timeout,
    // before the deferred invalidation at about 1 s.
    relay.set(Mode::Delay(Duration::from_millis(600)));
    let resp = put(&proxy, "a", "v2").await;
    assert_service_unavailable(&resp, "the delayed write");
    relay.set(Mode::Forward);

    // Until the write lands, reads see v1 and cache it under the new generation.
    let before = get(&proxy, "a").await;
    // Wait for the write to be applied upstream.
    loop {
        let out = direct
            .get_item()
            .table_name(TABLE)
            .key("pk", s("a"))
            .send()
            .await
            .unwrap();
        if out.item().and_then(|i| attr(i, "v")).as_deref() == Some("v2") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Then for the deferred invalidation.
    wait_for_metrics(proxy.admin_addr, |m| {
        m.sum("ddbcache_deferred_invalidations_total", &[]) >= 1.0
    })
    .await;
    let after = get(&proxy, "a").await;
    assert_eq!(
        value(&after).as_deref(),
        Some("v2"),
        "read after the write landed and the deferred invalidation (the read in between saw {:?})",
        value(&before)
    );
}

// ---------------------------------------------------------------------------------------------
// Serve-stale
// ---------------------------------------------------------------------------------------------

async fn stale_scenario(serve_stale: Duration) -> (RawResponse, TestProxy) {
    let (proxy, mut relay, _dynoxide) = stack(|c| {
        c.cache.ttl.item = Duration::from_millis(200);
        c.cache.serve_stale = serve_stale;
    })
    .await;
    relay.stop().await;
    // Let the entry's TTL pass.
    tokio::time::sleep(Duration::from_millis(400)).await;
    (get(&proxy, "a").await, proxy)
}

#[tokio::test]
async fn serve_stale_answers_with_an_expired_entry_when_the_upstream_fails() {
    let (resp, proxy) = stale_scenario(Duration::from_secs(60)).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(value(&resp).as_deref(), Some("v1"));
    assert_eq!(resp.header("x-ddbcache-stale"), Some("true"));
    let crc: u32 = resp.header("x-amz-crc32").unwrap().parse().unwrap();
    assert_eq!(crc, crc32fast::hash(&resp.body));
    // It is kept for the next read too.
    let again = get(&proxy, "a").await;
    assert_eq!(again.header("x-ddbcache-stale"), Some("true"));
    let m = proxy.metrics().await;
    assert_eq!(m.requests("GetItem", "stale"), 2.0);
}

#[tokio::test]
async fn without_serve_stale_an_expired_entry_is_not_served() {
    let (resp, _proxy) = stale_scenario(Duration::ZERO).await;
    assert_service_unavailable(&resp, "expired entry, serve-stale off");
}

#[tokio::test]
async fn serve_stale_never_answers_with_an_entry_older_than_a_write() {
    let (proxy, relay, _dynoxide) = stack(|c| {
        c.cache.ttl.item = Duration::from_millis(200);
        c.cache.serve_stale = Duration::from_secs(60);
    })
    .await;
    assert_eq!(put(&proxy, "a", "v2").await.status, 200);
    relay.set(Mode::Reset);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The v1 entry belongs to the generation before the write: never found again.
    assert_service_unavailable(&get(&proxy, "a").await, "after a write, upstream down");
}

// ---------------------------------------------------------------------------------------------
// Overload
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn overload_gives_throttling_quickly_while_hits_keep_being_served() {
    let (proxy, relay, _dynoxide) = stack(|c| {
        c.limits.max_upstream_requests = 2;
        c.limits.max_queued_requests = 2;
        c.limits.queue_timeout = Duration::from_secs(30);
        c.upstream.request_timeout = Duration::from_secs(60);
    })
    .await;
    relay.set(Mode::Hold);

    // 2 requests take the slots, 2 wait; every further one is refused at once.
    let mut held = Vec::new();
    for i in 0..4 {
        let proxy_addr = proxy.addr;
        held.push(tokio::spawn(async move {
            RawConn::connect(proxy_addr)
                .await
                .ddb_json("GetItem", &key_of(&format!("held{i}")))
                .await
        }));
    }
    wait_for_metrics(proxy.admin_addr, |m| {
        m.sum("ddbcache_upstream_in_flight", &[]) == 2.0
            && m.sum("ddbcache_upstream_queued", &[]) == 2.0
    })
    .await;
    for i in 0..5 {
        let resp = get(&proxy, &format!("over{i}")).await;
        assert_eq!(resp.status, 400, "{}", resp.text());
        assert_eq!(
            resp.error_type().as_deref(),
            Some("com.amazon.coral.availability#ThrottlingException")
        );
    }
    let write = put(&proxy, "over", "x").await;
    assert_eq!(
        write.error_type().as_deref(),
        Some("com.amazon.coral.availability#ThrottlingException")
    );
    // The cached item is answered while the upstream is saturated.
    for _ in 0..20 {
        let hit = get(&proxy, "a").await;
        assert_eq!(value(&hit).as_deref(), Some("v1"));
    }
    let m = proxy.metrics().await;
    assert_eq!(
        m.sum("ddbcache_errors_total", &[("type", "throttled")]),
        6.0
    );

    // Released, the held ones complete.
    relay.set(Mode::Forward);
    // The held connections' bytes were swallowed; end them so the proxy's requests fail and free
    // their slots, then check new requests get through.
    drop(relay);
    for h in held {
        let resp = h.await.unwrap();
        assert!(resp.status == 503 || resp.status == 200, "{}", resp.text());
    }
}

#[tokio::test]
async fn the_queue_timeout_throttles_requests_that_wait_too_long() {
    let (proxy, relay, _dynoxide) = stack(|c| {
        c.limits.max_upstream_requests = 1;
        c.limits.max_queued_requests = 10;
        c.limits.queue_timeout = Duration::from_millis(100);
        c.upstream.request_timeout = Duration::from_secs(60);
    })
    .await;
    relay.set(Mode::Hold);
    let addr = proxy.addr;
    let _held = tokio::spawn(async move {
        RawConn::connect(addr)
            .await
            .ddb_json("GetItem", &key_of("held"))
            .await
    });
    wait_for_metrics(proxy.admin_addr, |m| {
        m.sum("ddbcache_upstream_in_flight", &[]) == 1.0
    })
    .await;
    let resp = get(&proxy, "waits").await;
    assert_eq!(
        resp.error_type().as_deref(),
        Some("com.amazon.coral.availability#ThrottlingException"),
        "{}",
        resp.text()
    );
    assert!(
        resp.text().contains("limits.queue_timeout"),
        "{}",
        resp.text()
    );
}

// ---------------------------------------------------------------------------------------------
// Graceful shutdown
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_and_stops_accepting() {
    let (proxy, relay, _dynoxide) = stack(|_| {}).await;
    relay.set(Mode::Delay(Duration::from_millis(500)));
    let addr = proxy.addr;
    let in_flight = tokio::spawn(async move { put_at(addr, "late", "v").await });
    // Wait until the request is at the upstream.
    wait_for_metrics(proxy.admin_addr, |m| m.upstream("PutItem") >= 2.0).await;
    proxy.shutdown().await;
    let resp = in_flight.await.unwrap();
    assert_eq!(resp.status, 200, "in-flight write: {}", resp.text());
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed after shutdown"
    );
}

async fn put_at(addr: SocketAddr, pk: &str, v: &str) -> RawResponse {
    let body = json!({ "TableName": TABLE, "Item": { "pk": { "S": pk }, "v": { "S": v } } });
    RawConn::connect(addr)
        .await
        .ddb_json("PutItem", &body)
        .await
}

/// The real binary, stopped by a signal while a write is in flight: the write is answered, the
/// process exits 0, and the port is closed.
async fn signal_stops_the_binary_after_in_flight_requests(signal: &str) {
    let dynoxide = Dynoxide::start().await;
    let relay = Relay::start_new(dynoxide.addr).await;
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };
    let (listen, admin) = (free(), free());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ddbcache"))
        .args(["--listen", &listen.to_string()])
        .args(["--admin-listen", &admin.to_string()])
        .args(["--upstream", &relay.url()])
        .args(["--log-level", "warn"])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Ready when the admin listener answers.
    loop {
        if TcpStream::connect(admin).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    create_simple_table(&sdk_client(&format!("http://{listen}"), true), TABLE).await;

    relay.set(Mode::Delay(Duration::from_millis(500)));
    let in_flight = tokio::spawn(async move { put_at(listen, "sig", "v").await });
    wait_for_metrics(admin, |m| m.upstream("PutItem") >= 1.0).await;
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let resp = in_flight.await.unwrap();
    assert_eq!(resp.status, 200, "in-flight write: {}", resp.text());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the process exits")
        .unwrap();
    assert!(status.success(), "exit status after {signal}: {status:?}");
    assert!(TcpStream::connect(listen).await.is_err());
}

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_and_exits_0() {
    signal_stops_the_binary_after_in_flight_requests("TERM").await;
}

#[tokio::test]
async fn sigint_finishes_in_flight_requests_and_exits_0() {
    signal_stops_the_binary_after_in_flight_requests("INT").await;
}

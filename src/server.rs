//! The listeners and the request path: accept (HTTP/1.1 keep-alive), body limit, decode,
//! plan, cache or upstream, invalidate, reply; the admin listener (`/metrics`, `/healthz`,
//! `/readyz`); graceful shutdown.

use crate::auth::{self, Auth, ClientKey};
use crate::cache::plans::Plans;
use crate::cache::remote::{Lookup, RemoteEntry, RemoteTier};
use crate::cache::replay::{has_item, replay_body, strip_consumed_capacity};
use crate::cache::{CacheKey, Entry, Generations, Invalidation, LocalCache};
use crate::config::Config;
use crate::error::Error;
use crate::limits::UpstreamLimiter;
use crate::metrics::{CacheStatus, Metrics};
use crate::plan::{self, CapacityReport, Plan, ReadKind, ReadPlan};
use crate::protocol::json::Json;
use crate::protocol::{self, AMZ_JSON, Operation, response};
use crate::schema::{Schemas, TableSchema, parse_describe_table};
use crate::upstream::{self, Upstream, UpstreamRequest, UpstreamResponse};
use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// How long shutdown waits for in-flight requests.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// Knobs for tests, not for users.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartOptions {
    /// Stamps fills with the generations seen *after* the upstream answered, instead of before
    /// the fetch began: the classic stale-fill race. Only for proving the race test can fail.
    #[doc(hidden)]
    pub disable_race_protection: bool,
}

/// A started proxy.
pub struct Running {
    /// The client listener's address (the real port when configured with port 0).
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish (up to a deadline), then returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

pub async fn start(config: Config) -> Result<Running, Error> {
    start_with_options(config, StartOptions::default()).await
}

pub async fn start_with_options(config: Config, options: StartOptions) -> Result<Running, Error> {
    config
        .validate()
        .map_err(|e| Error::Config(e.to_string()))?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::io(format!("binding listen address {}", config.listen), e))?;
    let admin = TcpListener::bind(config.admin_listen).await.map_err(|e| {
        Error::io(
            format!("binding admin_listen address {}", config.admin_listen),
            e,
        )
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("reading the listen address", e))?;
    let admin_addr = admin
        .local_addr()
        .map_err(|e| Error::io("reading the admin address", e))?;

    let tls = crate::tls::acceptor(&config.tls)?;
    let auth = Auth::from_config(&config.auth)?;
    match &auth {
        Some(a) => tracing::info!(keys = a.key_count(), "client authentication on"),
        None if !config.listen.ip().is_loopback() => tracing::warn!(
            listen = %config.listen,
            "client authentication is off on a non-loopback address (allow_unauthenticated)"
        ),
        None => {}
    }
    let upstream = upstream::build(&config.upstream).await?;
    tracing::info!(upstream = %upstream.describe(), "upstream ready");
    let metrics = Metrics::register(&prometheus::Registry::new());
    let evictions = metrics.evictions.clone();
    let cache = LocalCache::with_serve_stale(
        config.cache.capacity_bytes,
        config.cache.serve_stale,
        move |cause| {
            let label = match cause {
                moka::notification::RemovalCause::Expired => "expired",
                moka::notification::RemovalCause::Size => "size",
                moka::notification::RemovalCause::Replaced => "replaced",
                moka::notification::RemovalCause::Explicit => "explicit",
            };
            evictions.with_label_values(&[label]).inc();
        },
    );
    let remote = RemoteTier::from_config(&config.remote, metrics.remote.clone())?;
    // Subscribed before the proxy answers anything, so no write of a peer is missed from then.
    let first_subscription = match &remote {
        Some(r) if r.fanout() => r.subscribe().await,
        _ => None,
    };
    if let Some(r) = &remote {
        tracing::info!(remote = %r.describe(), fanout = r.fanout(), "remote tier on");
    }
    let (stop, stopped) = watch::channel(false);
    let proxy = Arc::new(Proxy {
        remote: remote.clone(),
        limiter: UpstreamLimiter::new(&config.limits),
        config,
        options,
        addr,
        auth,
        upstream,
        cache,
        generations: Generations::new(),
        schemas: Schemas::new(),
        plans: Plans::new(),
        metrics,
        stopping: stopped.clone(),
    });

    let p = proxy.clone();
    let client_service = move |req| {
        let p = p.clone();
        async move { Ok::<_, Infallible>(p.handle(req).await) }
    };
    let p = proxy.clone();
    let admin_service = move |req| {
        let p = p.clone();
        async move { Ok::<_, Infallible>(p.admin(req).await) }
    };
    let mut tasks = vec![
        tokio::spawn(serve(listener, tls, client_service, stopped.clone())),
        tokio::spawn(serve(admin, None, admin_service, stopped.clone())),
    ];
    if let Some(r) = remote.filter(|r| r.fanout()) {
        let p = proxy.clone();
        let apply = move |what: &[Invalidation]| p.invalidate(what);
        tasks.push(tokio::spawn(r.run_fanout(
            first_subscription,
            apply,
            stopped,
        )));
    }
    Ok(Running {
        addr,
        admin_addr,
        stop,
        tasks,
    })
}

/// How long a client may take to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections (over TLS when `tls` is set) until `stop` turns true, then waits for
/// open connections to finish their in-flight request (idle keep-alive connections are closed).
async fn serve<S, F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    service: S,
    mut stop: watch::Receiver<bool>,
) where
    S: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Result<response::Reply, Infallible>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = service_fn(service.clone());
                let Some(tls) = &tls else {
                    let conn = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service);
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    });
                    continue;
                };
                let (tls, watcher) = (tls.clone(), graceful.watcher());
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_DEADLINE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown deadline passed with requests still in flight");
    }
}

struct Proxy {
    config: Config,
    options: StartOptions,
    addr: SocketAddr,
    /// Some when `[auth]` is enabled.
    auth: Option<Auth>,
    upstream: Arc<dyn Upstream>,
    limiter: UpstreamLimiter,
    cache: LocalCache,
    /// The shared tier between `cache` and the upstream (`[remote]`), if configured.
    remote: Option<Arc<RemoteTier>>,
    generations: Generations,
    schemas: Schemas,
    plans: Plans,
    metrics: Metrics,
    stopping: watch::Receiver<bool>,
}

/// Whether the upstream may have acted on a forwarded request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// It answered (any status).
    Answered,
    /// The proxy never sent it (throttled by `limits`).
    NotSent,
    /// Sent, or maybe sent, and no answer came (timeout, reset, refused).
    Unknown,
}

/// What a shared fetch ended with when it produced no cache entry.
enum Uncached {
    /// An HTTP response that is not cached (not 200, or a zero TTL).
    Response(UpstreamResponse),
    /// No HTTP response at all.
    Failed(Error),
}

/// Whether a fetch failed in a way serve-stale covers: no answer, a 5xx, or throttling.
fn upstream_failed(uncached: &Uncached) -> bool {
    match uncached {
        Uncached::Failed(_) => true,
        Uncached::Response(r) if r.status.is_server_error() => true,
        Uncached::Response(r) if r.status == StatusCode::BAD_REQUEST => {
            let body = &r.body[..r.body.len().min(256)];
            let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
            has(b"ThrottlingException")
                || has(b"ProvisionedThroughputExceededException")
                || has(b"RequestLimitExceeded")
        }
        Uncached::Response(_) => false,
    }
}

/// The content type replies use: the request's own, when it is plain JSON.
fn reply_content_type(headers: &HeaderMap) -> HeaderValue {
    let base = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    match base {
        Some(ct) if ct.eq_ignore_ascii_case("application/json") => {
            HeaderValue::from_static("application/json")
        }
        _ => HeaderValue::from_static(AMZ_JSON),
    }
}

/// Reads the whole body, refusing more than `limit` bytes. An oversized body is drained (and
/// discarded) so the connection stays usable.
async fn read_body(body: Incoming, headers: &HeaderMap, limit: usize) -> Result<Bytes, Error> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = body;
    if let Some(len) = declared.filter(|&len| len > limit as u64) {
        drain(&mut body).await;
        return Err(Error::PayloadTooLarge { size: len, limit });
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::Serialization(format!("reading the body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                let size = (buf.len() + data.len()) as u64;
                drain(&mut body).await;
                return Err(Error::PayloadTooLarge { size, limit });
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Discards the rest of a body, up to a bound past which the connection is given up.
async fn drain(body: &mut Incoming) {
    let mut left: usize = 64 * 1024 * 1024;
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            left = left.saturating_sub(data.len());
            if left == 0 {
                return;
            }
        }
    }
}

impl Proxy {
    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> response::Reply {
        let (parts, body) = req.into_parts();
        let content_type = reply_content_type(&parts.headers);
        let body = match read_body(body, &parts.headers, self.config.max_body_bytes).await {
            Ok(b) => b,
            Err(e) => return self.local_error(None, e, &content_type),
        };
        // Who is asking, before anything else is looked at (nothing to do when auth is off).
        let key = match &self.auth {
            None => None,
            Some(a) => match a.verify(&parts, &body, SystemTime::now()) {
                Ok(key) => Some(key),
                Err(e) => return self.local_error(None, e, &content_type),
            },
        };
        if parts.method != Method::POST || parts.uri.path() != "/" {
            // Not a DynamoDB API call (health checks of local engines, ...): forwarded as is.
            return self.forward("other", &parts, body, CacheStatus::None).await;
        }
        let target = parts.headers.get("x-amz-target").map(HeaderValue::as_bytes);
        let op = match protocol::parse_target(target) {
            Ok(op) => op,
            Err(e) => return self.local_error(None, e, &content_type),
        };
        // What it may do, before any remembered plan or cache entry is used.
        if let Some(key) = key
            && let Err(e) = Self::authorize(key, op, &body)
        {
            return self.local_error(Some(op), e, &content_type);
        }
        // Read before any schema is looked up: a plan remembered under it was made with schemas
        // that were current then.
        let schema_epoch = self.schemas.epoch();
        if let Some(read) = self.plans.get(op, &body, schema_epoch) {
            return self.read(op, &read, &parts, body, &content_type).await;
        }
        let parsed = Json::parse(&body);
        let request = match &parsed {
            Ok(Json::Object(map)) => map,
            Ok(_) => {
                let e = Error::Serialization("the request body must be a JSON object".into());
                return self.local_error(Some(op), e, &content_type);
            }
            Err(e) => {
                let e = Error::Serialization(format!("the request body is not valid JSON: {e}"));
                return self.local_error(Some(op), e, &content_type);
            }
        };

        let mut schemas: Vec<(String, Arc<TableSchema>)> = Vec::new();
        for table in plan::tables_to_describe(op, request) {
            if let Some(s) = self.schema(&table, &parts.headers).await {
                schemas.push((table, s));
            }
        }
        let schema_of = |t: &str| {
            schemas
                .iter()
                .find(|(name, _)| name == t)
                .map(|(_, s)| s.as_ref())
        };
        match plan::plan(op, request, schema_of) {
            Plan::Read(read) => {
                let read = Arc::new(read);
                self.plans.insert(op, &body, schema_epoch, read.clone());
                self.read(op, &read, &parts, body, &content_type).await
            }
            Plan::Bypass => {
                self.forward(op.as_str(), &parts, body, CacheStatus::Bypass)
                    .await
            }
            Plan::PassThrough => {
                self.forward(op.as_str(), &parts, body, CacheStatus::None)
                    .await
            }
            Plan::Write(invalidations) => {
                self.invalidate(&invalidations);
                self.invalidate_remote(&invalidations, false).await;
                let (reply, outcome) = self
                    .forward_outcome(op.as_str(), &parts, body, CacheStatus::None)
                    .await;
                // Again after the answer, whatever it was: a timeout may have applied the write.
                self.invalidate(&invalidations);
                self.invalidate_remote(&invalidations, true).await;
                if outcome == Outcome::Unknown {
                    self.invalidate_later(invalidations);
                }
                reply
            }
            Plan::TableChange(table) => {
                let inv = [Invalidation::Table(table.clone())];
                self.invalidate(&inv);
                self.invalidate_remote(&inv, false).await;
                self.schemas.forget(&table).await;
                let reply = self
                    .forward(op.as_str(), &parts, body, CacheStatus::None)
                    .await;
                self.schemas.forget(&table).await;
                self.invalidate(&inv);
                self.invalidate_remote(&inv, true).await;
                reply
            }
            Plan::DescribeEndpoints => self.describe_endpoints(&parts.headers, &content_type),
        }
    }

    /// A write whose outcome is unknown (sent, then no answer) may still be applied by the
    /// upstream after the proxy gave up, and a read in between may cache the old value again.
    /// So its partitions are invalidated once more, `upstream.request_timeout` later: a write the
    /// upstream takes longer than that to apply after the proxy stopped waiting is not covered.
    fn invalidate_later(self: &Arc<Self>, invalidations: Vec<Invalidation>) {
        let proxy = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(proxy.config.upstream.request_timeout).await;
            proxy.invalidate(&invalidations);
            proxy.invalidate_remote(&invalidations, true).await;
            proxy.metrics.deferred_invalidations.inc();
        });
    }

    /// Checks `key`'s policy against every table the request touches. A body that is not a JSON
    /// object is refused here as it would be later.
    fn authorize(key: &ClientKey, op: Operation, body: &[u8]) -> Result<(), Error> {
        match Json::parse(body) {
            Ok(Json::Object(request)) => auth::authorize(key, op, &request),
            Ok(_) => Err(Error::Serialization(
                "the request body must be a JSON object".into(),
            )),
            Err(e) => Err(Error::Serialization(format!(
                "the request body is not valid JSON: {e}"
            ))),
        }
    }

    fn invalidate(&self, invalidations: &[Invalidation]) {
        for inv in invalidations {
            self.generations.bump(inv);
            self.metrics
                .invalidations
                .with_label_values(&[inv.table(), inv.label()])
                .inc();
        }
    }

    /// The remote side of a write's invalidation, run where the local generations are bumped
    /// (before forwarding, and after the answer: `publish`). After the answer the other
    /// proxies are told too, before the client is: once the client has the acknowledgement,
    /// the message is on its way and the shared buckets are clean.
    async fn invalidate_remote(&self, invalidations: &[Invalidation], publish: bool) {
        let Some(remote) = &self.remote else {
            return;
        };
        remote.invalidate(invalidations, publish).await;
        if publish {
            remote.publish(invalidations).await;
        }
    }

    fn count(&self, op: &str, status: CacheStatus) {
        self.metrics
            .requests
            .with_label_values(&[op, status.as_str()])
            .inc();
    }

    fn local_error(
        &self,
        op: Option<Operation>,
        e: Error,
        content_type: &HeaderValue,
    ) -> response::Reply {
        tracing::debug!(error = %e, "refused a request");
        self.metrics
            .errors
            .with_label_values(&[e.metric_label()])
            .inc();
        self.count(op.map_or("unknown", Operation::as_str), CacheStatus::None);
        response::error(&e, content_type)
    }

    /// Sends to upstream, counting and timing it, once the overload limiter gives a slot.
    async fn send(&self, op: &str, request: UpstreamRequest) -> Result<UpstreamResponse, Error> {
        let _slot = self.limiter.acquire().await?;
        self.metrics
            .upstream_requests
            .with_label_values(&[op])
            .inc();
        let started = Instant::now();
        let result = self.upstream.send(request).await;
        self.metrics
            .upstream_latency
            .with_label_values(&[op])
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            tracing::warn!(operation = op, error = %e, "upstream request failed");
            self.metrics
                .upstream_errors
                .with_label_values(&[op, e.metric_label()])
                .inc();
        }
        result
    }

    fn upstream_request(parts: &Parts, body: Bytes) -> UpstreamRequest {
        UpstreamRequest {
            method: parts.method.clone(),
            path_and_query: parts
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
            headers: parts.headers.clone(),
            body,
        }
    }

    /// Forwards the request untouched and passes the answer back untouched.
    async fn forward(
        &self,
        op: &str,
        parts: &Parts,
        body: Bytes,
        status: CacheStatus,
    ) -> response::Reply {
        self.forward_outcome(op, parts, body, status).await.0
    }

    /// [`Proxy::forward`], also telling whether the upstream may have acted on the request.
    async fn forward_outcome(
        &self,
        op: &str,
        parts: &Parts,
        body: Bytes,
        status: CacheStatus,
    ) -> (response::Reply, Outcome) {
        self.count(op, status);
        match self.send(op, Self::upstream_request(parts, body)).await {
            Ok(r) => (
                response::forwarded(r.status, &r.headers, r.body),
                Outcome::Answered,
            ),
            Err(e) => {
                self.metrics
                    .errors
                    .with_label_values(&[e.metric_label()])
                    .inc();
                let outcome = match e {
                    Error::Throttling(_) => Outcome::NotSent,
                    _ => Outcome::Unknown,
                };
                (
                    response::error(&e, &reply_content_type(&parts.headers)),
                    outcome,
                )
            }
        }
    }

    /// The key schema of `table`, from DescribeTable on first use. The client's own credential
    /// headers go along, so engines that keep tables per access key (DynamoDB Local) answer for
    /// the right tables; with `aws` they are replaced by the proxy's signature.
    async fn schema(&self, table: &str, client_headers: &HeaderMap) -> Option<Arc<TableSchema>> {
        let load = async {
            let mut headers = HeaderMap::new();
            for name in crate::upstream::aws::CLIENT_AUTH_HEADERS {
                if let Some(v) = client_headers.get(*name) {
                    headers.insert(*name, v.clone());
                }
            }
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(AMZ_JSON));
            headers.insert(
                "x-amz-target",
                HeaderValue::from_static("DynamoDB_20120810.DescribeTable"),
            );
            let body = serde_json::to_vec(&serde_json::json!({ "TableName": table }))
                .expect("JSON serialises");
            let request = UpstreamRequest {
                method: Method::POST,
                path_and_query: "/".into(),
                headers,
                body: Bytes::from(body),
            };
            let resp = self.send("DescribeTable", request).await?;
            if resp.status != StatusCode::OK {
                return Err(Error::Internal(format!(
                    "DescribeTable answered {}: {}",
                    resp.status,
                    String::from_utf8_lossy(&resp.body)
                )));
            }
            parse_describe_table(&resp.body)
                .map(Arc::new)
                .ok_or_else(|| Error::Internal("DescribeTable answer has no key schema".into()))
        };
        match self.schemas.get_or_load(table, load).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::debug!(table, error = %e, "no schema: reads bypass the cache, writes invalidate the table");
                None
            }
        }
    }

    async fn read(
        &self,
        op: Operation,
        read: &ReadPlan,
        parts: &Parts,
        body: Bytes,
        content_type: &HeaderValue,
    ) -> response::Reply {
        let started = Instant::now();
        let stamp = self.generations.stamp(&read.scope);
        let key = CacheKey {
            request: read.key.clone(),
            stamp,
        };
        // An expired entry the cache still holds (only with `cache.serve_stale`) is not a hit:
        // it is taken out, so the fetch below replaces it, and kept aside in case that fails.
        let mut stale = None;
        if let Some(entry) = self.cache.get(&key).await {
            if entry.is_fresh(started) {
                return self.hit(op, read, &entry, content_type, started);
            }
            self.cache.remove(&key).await;
            if !self.config.cache.serve_stale.is_zero() {
                stale = Some(entry);
            }
        }
        let misses = match read.kind {
            ReadKind::Item => &self.metrics.item_misses,
            ReadKind::Query => &self.metrics.query_misses,
        };
        let request = Self::upstream_request(parts, body);
        if self.options.disable_race_protection {
            misses.with_label_values(&[&read.table]).inc();
            self.count(op.as_str(), CacheStatus::Miss);
            return match self.send(op.as_str(), request).await {
                Ok(resp) => {
                    if let Some(entry) = self.admit(read, &resp) {
                        let late = CacheKey {
                            request: key.request.clone(),
                            stamp: self.generations.stamp(&read.scope),
                        };
                        self.cache.insert(late, entry).await;
                    }
                    response::forwarded(resp.status, &resp.headers, resp.body)
                }
                Err(e) => response::error(&e, content_type),
            };
        }

        let ran = AtomicBool::new(false);
        let from_remote = AtomicBool::new(false);
        let own: std::sync::Mutex<Option<UpstreamResponse>> = std::sync::Mutex::new(None);
        // Shared by concurrent misses of the same key and stamp: the remote lookup, the upstream
        // fetch and the remote fill all happen once.
        let fetch = async {
            ran.store(true, Ordering::Relaxed);
            let mut token = None;
            if let Some(remote) = &self.remote {
                match remote.lookup(&read.scope, &read.key).await {
                    Some(Lookup::Hit(e)) => {
                        from_remote.store(true, Ordering::Relaxed);
                        return Ok(Entry::new(e.body, e.ttl, e.negative));
                    }
                    Some(Lookup::Miss(t)) => token = Some(t),
                    None => {}
                }
            }
            match self.send(op.as_str(), request).await {
                Err(e) => Err(Uncached::Failed(e)),
                Ok(resp) => match self.admit(read, &resp) {
                    Some(entry) => {
                        if let (Some(remote), Some(token)) = (&self.remote, &token) {
                            let stored = RemoteEntry {
                                body: entry.body.clone(),
                                negative: entry.negative,
                                ttl: entry.fresh_until.saturating_duration_since(Instant::now()),
                            };
                            remote.fill(&read.scope, &read.key, &stored, token).await;
                        }
                        *own.lock().expect("not poisoned") = Some(resp);
                        Ok(entry)
                    }
                    None => Err(Uncached::Response(resp)),
                },
            }
        };
        let result = self.cache.get_or_fetch(key.clone(), fetch).await;
        let fetched = ran.load(Ordering::Relaxed);
        if fetched && !from_remote.load(Ordering::Relaxed) {
            misses.with_label_values(&[&read.table]).inc();
        }
        match result {
            Ok(entry) => match own.into_inner().expect("not poisoned") {
                Some(resp) => {
                    self.count(op.as_str(), CacheStatus::Miss);
                    response::forwarded(resp.status, &resp.headers, resp.body)
                }
                // Another request's fetch, started under the same stamp, answered for us, or
                // the remote tier did.
                None => {
                    let remote = from_remote.load(Ordering::Relaxed);
                    self.hit_from(op, read, &entry, content_type, started, remote)
                }
            },
            Err(uncached) => {
                if !fetched {
                    misses.with_label_values(&[&read.table]).inc();
                }
                if let Some(entry) = stale.filter(|_| upstream_failed(&uncached)) {
                    return self.serve_stale(op, read, key, entry, content_type).await;
                }
                self.count(op.as_str(), CacheStatus::Miss);
                match uncached.as_ref() {
                    Uncached::Response(r) => {
                        response::forwarded(r.status, &r.headers, r.body.clone())
                    }
                    Uncached::Failed(e) => {
                        self.metrics
                            .errors
                            .with_label_values(&[e.metric_label()])
                            .inc();
                        response::error(e, content_type)
                    }
                }
            }
        }
    }

    /// Answers with an expired entry because the upstream failed (`cache.serve_stale`), and puts
    /// it back for the next read. Its stamp is still current (the key holds it), so no write
    /// acknowledged through this proxy came after it.
    async fn serve_stale(
        &self,
        op: Operation,
        read: &ReadPlan,
        key: CacheKey,
        entry: Entry,
        content_type: &HeaderValue,
    ) -> response::Reply {
        self.count(op.as_str(), CacheStatus::Stale);
        let body = match read.capacity {
            CapacityReport::None => entry.body.clone(),
            capacity => replay_body(&entry.body, capacity, &read.table),
        };
        let mut reply = response::local(StatusCode::OK, content_type, body);
        reply
            .headers_mut()
            .insert("x-ddbcache-stale", HeaderValue::from_static("true"));
        self.cache.insert(key, entry).await;
        reply
    }

    /// The entry a 200 response makes, or None when it is not cached (not 200, zero TTL).
    fn admit(&self, read: &ReadPlan, resp: &UpstreamResponse) -> Option<Entry> {
        if resp.status != StatusCode::OK {
            return None;
        }
        let body = match read.capacity {
            CapacityReport::None => resp.body.clone(),
            _ => strip_consumed_capacity(&resp.body),
        };
        let negative = read.kind == ReadKind::Item && !has_item(&body);
        let ttls = self
            .config
            .cache
            .ttl
            .for_table(&self.config.cache.tables, &read.table);
        let ttl = match (read.kind, negative) {
            (ReadKind::Item, true) => ttls.negative,
            (ReadKind::Item, false) => ttls.item,
            (ReadKind::Query, _) => ttls.query,
        };
        (!ttl.is_zero()).then(|| Entry::new(body, ttl, negative))
    }

    fn hit(
        &self,
        op: Operation,
        read: &ReadPlan,
        entry: &Entry,
        content_type: &HeaderValue,
        started: Instant,
    ) -> response::Reply {
        self.hit_from(op, read, entry, content_type, started, false)
    }

    /// [`Proxy::hit`]; `remote`: the entry came from the remote tier (a `remote_hit`).
    fn hit_from(
        &self,
        op: Operation,
        read: &ReadPlan,
        entry: &Entry,
        content_type: &HeaderValue,
        started: Instant,
        remote: bool,
    ) -> response::Reply {
        let m = &self.metrics;
        match read.kind {
            ReadKind::Item => m.item_hits.with_label_values(&[&read.table]).inc(),
            ReadKind::Query => m.query_hits.with_label_values(&[&read.table]).inc(),
        }
        let status = if remote {
            CacheStatus::RemoteHit
        } else if entry.negative {
            CacheStatus::NegativeHit
        } else {
            CacheStatus::Hit
        };
        self.count(op.as_str(), status);
        let units = entry.body.len().div_ceil(4096).max(1) as f64 * 0.5;
        m.rcu_saved.with_label_values(&[&read.table]).inc_by(units);
        let reply = match read.capacity {
            CapacityReport::None => response::local_with_crc(
                StatusCode::OK,
                content_type,
                entry.body.clone(),
                entry.crc,
            ),
            capacity => response::local(
                StatusCode::OK,
                content_type,
                replay_body(&entry.body, capacity, &read.table),
            ),
        };
        m.hit_latency.observe(started.elapsed().as_secs_f64());
        reply
    }

    /// DescribeEndpoints names the proxy itself, so SDKs with endpoint discovery keep using it.
    fn describe_endpoints(
        &self,
        headers: &HeaderMap,
        content_type: &HeaderValue,
    ) -> response::Reply {
        self.count(Operation::DescribeEndpoints.as_str(), CacheStatus::None);
        let address = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map_or_else(|| self.addr.to_string(), str::to_string);
        let body = serde_json::json!({
            "Endpoints": [{ "Address": address, "CachePeriodInMinutes": 1440 }]
        });
        response::local(
            StatusCode::OK,
            content_type,
            Bytes::from(serde_json::to_vec(&body).expect("JSON serialises")),
        )
    }

    async fn admin(self: Arc<Self>, req: Request<Incoming>) -> response::Reply {
        let text = |status: StatusCode, body: Bytes, ct: &'static str| {
            let mut r = http::Response::new(Full::new(body));
            *r.status_mut() = status;
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            r
        };
        match (req.method(), req.uri().path()) {
            (&Method::GET, "/metrics") => {
                let (entries, bytes) = self.cache.usage().await;
                self.metrics.cache_entries.set(entries as i64);
                self.metrics
                    .upstream_in_flight
                    .set(self.limiter.in_flight() as i64);
                self.metrics
                    .upstream_queued
                    .set(self.limiter.queued() as i64);
                self.metrics.cache_bytes.set(bytes as i64);
                text(
                    StatusCode::OK,
                    Bytes::from(self.metrics.render()),
                    "text/plain; version=0.0.4",
                )
            }
            (&Method::GET, "/healthz") => {
                text(StatusCode::OK, Bytes::from_static(b"ok\n"), "text/plain")
            }
            (&Method::GET, "/readyz") => {
                if *self.stopping.borrow() {
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        Bytes::from_static(b"shutting down\n"),
                        "text/plain",
                    )
                } else {
                    text(StatusCode::OK, Bytes::from_static(b"ready\n"), "text/plain")
                }
            }
            _ => text(
                StatusCode::NOT_FOUND,
                Bytes::from_static(b"not found: try /metrics, /healthz or /readyz\n"),
                "text/plain",
            ),
        }
    }
}

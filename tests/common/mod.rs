//! Shared helpers for the proxy integration tests: starting a proxy (over the embedded engine or
//! over an in-test dynoxide HTTP server), SDK clients, Prometheus scraping, a raw HTTP/1.1 client
//! and table fixtures.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, LocalSecondaryIndex, Projection, ProjectionType, ScalarAttributeType,
};
use ddbcache::config::UpstreamTarget;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// Which upstream a test proxy forwards to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamKind {
    /// dynoxide in process (`UpstreamTarget::Embedded`).
    Embedded,
    /// A dynoxide HTTP server started by the test (`UpstreamTarget::Url`).
    Http,
}

// ---------------------------------------------------------------------------------------------
// dynoxide HTTP server
// ---------------------------------------------------------------------------------------------

/// A dynoxide HTTP server on a loopback port, stopped when dropped.
pub struct Dynoxide {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Dynoxide {
    pub async fn start() -> Dynoxide {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind dynoxide listener");
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let db = dynoxide::Database::memory().expect("in-memory dynoxide database");
        tokio::spawn(dynoxide::server::serve_with_shutdown(
            listener,
            db,
            async move {
                let _ = rx.await;
            },
        ));
        Dynoxide {
            addr,
            shutdown: Some(tx),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Dynoxide {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Proxy
// ---------------------------------------------------------------------------------------------

/// A proxy listening on loopback ports, with the upstream server it owns (if any).
pub struct TestProxy {
    running: Option<ddbcache::Running>,
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The dynoxide HTTP server behind the proxy, for `UpstreamKind::Http`.
    pub upstream: Option<Dynoxide>,
}

/// A config listening on ephemeral loopback ports with `target` as upstream.
pub fn test_config(target: UpstreamTarget) -> ddbcache::Config {
    let mut config = ddbcache::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    config.upstream.target = target;
    config.log.level = "warn".into();
    config
}

impl TestProxy {
    /// A proxy with the default test config over `kind`.
    pub async fn start(kind: UpstreamKind) -> TestProxy {
        Self::start_with(kind, |_| {}).await
    }

    /// A proxy over `kind`, with `configure` applied to the test config before start.
    pub async fn start_with(
        kind: UpstreamKind,
        configure: impl FnOnce(&mut ddbcache::Config),
    ) -> TestProxy {
        let (target, upstream) = match kind {
            UpstreamKind::Embedded => (UpstreamTarget::Embedded, None),
            UpstreamKind::Http => {
                let d = Dynoxide::start().await;
                (UpstreamTarget::Url(d.url()), Some(d))
            }
        };
        let mut config = test_config(target);
        configure(&mut config);
        let running = ddbcache::server::start(config)
            .await
            .expect("ddbcache::server::start");
        Self::from_running(running, upstream)
    }

    /// A proxy over an arbitrary `http://` URL.
    pub async fn start_over_url(
        url: String,
        configure: impl FnOnce(&mut ddbcache::Config),
        options: Option<ddbcache::server::StartOptions>,
    ) -> TestProxy {
        let mut config = test_config(UpstreamTarget::Url(url));
        configure(&mut config);
        let running = match options {
            None => ddbcache::server::start(config).await,
            Some(o) => ddbcache::server::start_with_options(config, o).await,
        }
        .expect("ddbcache::server::start");
        Self::from_running(running, None)
    }

    fn from_running(running: ddbcache::Running, upstream: Option<Dynoxide>) -> TestProxy {
        TestProxy {
            addr: running.addr,
            admin_addr: running.admin_addr,
            running: Some(running),
            upstream,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An SDK client for the proxy with the SDK's default retry policy.
    pub fn client(&self) -> Client {
        sdk_client(&self.endpoint(), true)
    }

    /// An SDK client for the proxy that never retries (for error tests).
    pub fn client_no_retry(&self) -> Client {
        sdk_client(&self.endpoint(), false)
    }

    /// Scrape the admin `/metrics` endpoint.
    pub async fn metrics(&self) -> Metrics {
        scrape(self.admin_addr).await
    }

    pub async fn shutdown(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

/// An SDK client for `endpoint` (static test credentials, us-east-1).
pub fn sdk_client(endpoint: &str, retries: bool) -> Client {
    let retry = if retries {
        RetryConfig::standard()
    } else {
        RetryConfig::disabled()
    };
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .retry_config(retry)
        .build();
    Client::from_conf(conf)
}

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

/// One Prometheus sample.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed `/metrics` scrape.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub samples: Vec<Sample>,
    pub text: String,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let samples = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| parse_sample(l).unwrap_or_else(|| panic!("unparsable metrics line: {l:?}")))
            .collect();
        Metrics {
            samples,
            text: text.to_string(),
        }
    }

    /// Sum of every sample called `name` whose labels include all of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }

    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }

    /// Upstream calls for one operation (the proxy's own DescribeTable calls are separate).
    pub fn upstream(&self, op: &str) -> f64 {
        self.sum("ddbcache_upstream_requests_total", &[("operation", op)])
    }

    pub fn item_hits(&self, table: &str) -> f64 {
        self.sum("ddbcache_item_cache_hits_total", &[("table", table)])
    }

    pub fn item_misses(&self, table: &str) -> f64 {
        self.sum("ddbcache_item_cache_misses_total", &[("table", table)])
    }

    pub fn query_hits(&self, table: &str) -> f64 {
        self.sum("ddbcache_query_cache_hits_total", &[("table", table)])
    }

    pub fn query_misses(&self, table: &str) -> f64 {
        self.sum("ddbcache_query_cache_misses_total", &[("table", table)])
    }

    /// `ddbcache_requests_total{operation, cache_status}`.
    pub fn requests(&self, op: &str, status: &str) -> f64 {
        self.sum(
            "ddbcache_requests_total",
            &[("operation", op), ("cache_status", status)],
        )
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let (name_labels, value) = match line.find('{') {
        Some(_) => {
            let close = line.rfind('}')?;
            (&line[..=close], line[close + 1..].trim())
        }
        None => {
            let sp = line.find(char::is_whitespace)?;
            (&line[..sp], line[sp..].trim())
        }
    };
    // A sample may carry a timestamp after the value.
    let value = value.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let mut labels = BTreeMap::new();
    let name = match name_labels.find('{') {
        None => name_labels.to_string(),
        Some(open) => {
            let inner = &name_labels[open + 1..name_labels.len() - 1];
            let mut chars = inner.chars().peekable();
            loop {
                while matches!(chars.peek(), Some(',') | Some(' ')) {
                    chars.next();
                }
                if chars.peek().is_none() {
                    break;
                }
                let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                if chars.next() != Some('"') {
                    return None;
                }
                let mut val = String::new();
                loop {
                    match chars.next()? {
                        '\\' => match chars.next()? {
                            'n' => val.push('\n'),
                            c => val.push(c),
                        },
                        '"' => break,
                        c => val.push(c),
                    }
                }
                labels.insert(key.trim().to_string(), val);
            }
            name_labels[..open].to_string()
        }
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// GET `path` on `addr` over a fresh connection with `Connection: close`.
pub async fn http_get(addr: SocketAddr, path: &str) -> RawResponse {
    let mut conn = RawConn::connect(addr).await;
    conn.request("GET", path, &[("Connection", "close")], b"")
        .await
        .unwrap_or_else(|e| panic!("GET {path} on {addr}: {e}"))
}

/// Scrape and parse `/metrics` from the admin listener.
pub async fn scrape(admin_addr: SocketAddr) -> Metrics {
    let resp = http_get(admin_addr, "/metrics").await;
    assert_eq!(resp.status, 200, "GET /metrics: {}", resp.text());
    Metrics::parse(&resp.text())
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 client
// ---------------------------------------------------------------------------------------------

/// A response read off the wire.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// First header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }

    /// The `__type` of a DynamoDB error body, if it is one.
    pub fn error_type(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        v.get("__type")?.as_str().map(str::to_string)
    }
}

/// One keep-alive HTTP/1.1 connection.
pub struct RawConn {
    pub addr: SocketAddr,
    stream: TcpStream,
    buf: Vec<u8>,
}

pub const FAKE_AMZ_DATE: &str = "20260101T000000Z";
pub const FAKE_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 \
    Credential=test/20260101/us-east-1/dynamodb/aws4_request, \
    SignedHeaders=content-type;host;x-amz-date;x-amz-target, \
    Signature=0000000000000000000000000000000000000000000000000000000000000000";

const RAW_TIMEOUT: Duration = Duration::from_secs(20);

impl RawConn {
    pub async fn connect(addr: SocketAddr) -> RawConn {
        let stream = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_nodelay(true).unwrap();
        RawConn {
            addr,
            stream,
            buf: Vec::new(),
        }
    }

    /// Send a request and read its response.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<RawResponse> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        if method != "GET" || !body.is_empty() {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut wire = head.into_bytes();
        wire.extend_from_slice(body);
        tokio::time::timeout(RAW_TIMEOUT, async {
            self.stream.write_all(&wire).await?;
            self.read_response(method == "HEAD").await
        })
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "raw HTTP timeout"))?
    }

    /// POST a DynamoDB JSON request; `op` None sends no X-Amz-Target header.
    pub async fn ddb(&mut self, op: Option<&str>, body: &[u8]) -> RawResponse {
        let target = op.map(|o| format!("DynamoDB_20120810.{o}"));
        // Shaped like an SDK's SigV4 headers (dynoxide insists on their presence; nobody checks
        // the signature unless the proxy's auth is on, which these tests do not enable).
        let mut headers = vec![
            ("Content-Type", "application/x-amz-json-1.0"),
            ("X-Amz-Date", FAKE_AMZ_DATE),
            ("Authorization", FAKE_AUTHORIZATION),
        ];
        if let Some(t) = &target {
            headers.push(("X-Amz-Target", t.as_str()));
        }
        self.request("POST", "/", &headers, body)
            .await
            .unwrap_or_else(|e| panic!("raw {op:?} request: {e}"))
    }

    /// `ddb` with a JSON value body.
    pub async fn ddb_json(&mut self, op: &str, body: &serde_json::Value) -> RawResponse {
        self.ddb(Some(op), body.to_string().as_bytes()).await
    }

    /// Read more bytes into the buffer; Ok(false) on EOF.
    async fn fill(&mut self) -> std::io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    async fn read_response(&mut self, head_only: bool) -> std::io::Result<RawResponse> {
        let eof = |what: &str| {
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("connection closed while reading {what}"),
            )
        };
        loop {
            // Skip any 1xx interim response.
            let head_end = loop {
                if let Some(p) = find(&self.buf, b"\r\n\r\n") {
                    break p;
                }
                if !self.fill().await? {
                    return Err(eof("the response head"));
                }
            };
            let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
            self.buf.drain(..head_end + 4);
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap_or_default();
            let status: u16 = status_line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("bad status line {status_line:?}"),
                    )
                })?;
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect();
            if (100..200).contains(&status) {
                continue;
            }
            let get = |n: &str| {
                headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(n))
                    .map(|(_, v)| v.clone())
            };
            let body = if head_only || status == 204 || status == 304 {
                Vec::new()
            } else if get("transfer-encoding")
                .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
            {
                self.read_chunked().await?
            } else if let Some(len) = get("content-length") {
                let len: usize = len.parse().map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "bad content-length")
                })?;
                while self.buf.len() < len {
                    if !self.fill().await? {
                        return Err(eof("the body"));
                    }
                }
                self.buf.drain(..len).collect()
            } else {
                // Delimited by connection close.
                while self.fill().await? {}
                std::mem::take(&mut self.buf)
            };
            return Ok(RawResponse {
                status,
                headers,
                body,
            });
        }
    }

    async fn read_chunked(&mut self) -> std::io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(p) = find(&self.buf, b"\r\n") {
                    break p;
                }
                if !self.fill().await? {
                    return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
                }
            };
            let size_line = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
            self.buf.drain(..line_end + 2);
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunk size")
                })?;
            if size == 0 {
                // Trailers end with an empty line.
                loop {
                    if let Some(p) = find(&self.buf, b"\r\n") {
                        let empty = p == 0;
                        self.buf.drain(..p + 2);
                        if empty {
                            return Ok(body);
                        }
                    } else if !self.fill().await? {
                        return Ok(body);
                    }
                }
            }
            while self.buf.len() < size + 2 {
                if !self.fill().await? {
                    return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
                }
            }
            body.extend_from_slice(&self.buf[..size]);
            self.buf.drain(..size + 2);
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// Items and tables
// ---------------------------------------------------------------------------------------------

/// Local secondary index of the fixture table: (pk, lsk).
pub const LSI: &str = "lsi";
/// Global secondary index of the fixture table: (gpk, sk).
pub const GSI: &str = "gsi";

pub fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

/// An item whose attributes are all strings.
pub fn item(attrs: &[(&str, &str)]) -> HashMap<String, AttributeValue> {
    attrs.iter().map(|(k, v)| (k.to_string(), s(v))).collect()
}

/// The key of the fixture table.
pub fn key(pk: &str, sk: &str) -> HashMap<String, AttributeValue> {
    item(&[("pk", pk), ("sk", sk)])
}

/// A string attribute of an item.
pub fn attr(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn kse(name: &str, kt: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kt)
        .build()
        .unwrap()
}

fn attr_def(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .unwrap()
}

/// Create the fixture table: pk (S, HASH) + sk (S, RANGE), LSI `lsi` on (pk, lsk), GSI `gsi`
/// on (gpk, sk), all projecting ALL, on demand.
pub async fn create_table(client: &Client, name: &str) {
    let all = Projection::builder()
        .projection_type(ProjectionType::All)
        .build();
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr_def("pk"))
        .attribute_definitions(attr_def("sk"))
        .attribute_definitions(attr_def("lsk"))
        .attribute_definitions(attr_def("gpk"))
        .key_schema(kse("pk", KeyType::Hash))
        .key_schema(kse("sk", KeyType::Range))
        .local_secondary_indexes(
            LocalSecondaryIndex::builder()
                .index_name(LSI)
                .key_schema(kse("pk", KeyType::Hash))
                .key_schema(kse("lsk", KeyType::Range))
                .projection(all.clone())
                .build()
                .unwrap(),
        )
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(GSI)
                .key_schema(kse("gpk", KeyType::Hash))
                .key_schema(kse("sk", KeyType::Range))
                .projection(all)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateTable {name}: {e:?}"));
    wait_active(client, name).await;
}

/// Create a table with only a string hash key `pk`.
pub async fn create_simple_table(client: &Client, name: &str) {
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr_def("pk"))
        .key_schema(kse("pk", KeyType::Hash))
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateTable {name}: {e:?}"));
    wait_active(client, name).await;
}

/// Create a table with only a number hash key `pk`.
pub async fn create_numeric_table(client: &Client, name: &str) {
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::N)
                .build()
                .unwrap(),
        )
        .key_schema(kse("pk", KeyType::Hash))
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateTable {name}: {e:?}"));
    wait_active(client, name).await;
}

async fn wait_active(client: &Client, name: &str) {
    for _ in 0..100 {
        let d = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DescribeTable {name}: {e:?}"));
        let status = d
            .table()
            .and_then(|t| t.table_status())
            .map(|s| s.as_str().to_string());
        if status.as_deref() == Some("ACTIVE") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("table {name} never became ACTIVE");
}

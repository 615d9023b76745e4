//! Endpoints and connections. A [`Session`] is one HTTP/1.1 keep-alive connection
//! (`hyper::client::conn::http1`), opened lazily and reopened after the server closes it; each
//! virtual user owns one, so `--connections N` means exactly N sockets.
//!
//! Requests carry DynamoDB's JSON 1.0 headers and fake SigV4-looking `Authorization` and
//! `X-Amz-Date` headers: dynoxide and dynalite want both present, and check no signature.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::cli::NamedUrl;
use crate::workload::Op;

static AMZ_JSON: HeaderValue = HeaderValue::from_static("application/x-amz-json-1.0");
static FAKE_DATE: HeaderValue = HeaderValue::from_static("20260101T000000Z");
static FAKE_AUTHORIZATION: HeaderValue = HeaderValue::from_static(
    "AWS4-HMAC-SHA256 Credential=bench/20260101/us-east-1/dynamodb/aws4_request, \
     SignedHeaders=host;x-amz-date;x-amz-target, Signature=0000",
);
static X_AMZ_TARGET: HeaderName = HeaderName::from_static("x-amz-target");
static X_AMZ_DATE: HeaderName = HeaderName::from_static("x-amz-date");

/// A resolved target: where to connect and what to send as `Host` and request path.
#[derive(Debug)]
pub struct Endpoint {
    pub name: String,
    pub url: String,
    pub addr: SocketAddr,
    host: HeaderValue,
    path: Uri,
}

impl Endpoint {
    /// Resolves the URL's host; refuses non-loopback addresses unless `allow_remote`.
    pub async fn resolve(target: &NamedUrl, allow_remote: bool) -> Result<Arc<Self>, String> {
        let uri: Uri = target
            .url
            .parse()
            .map_err(|e| format!("{}: {e}", target.url))?;
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{}: no host", target.url))?;
        let port = authority.port_u16().unwrap_or(80);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((authority.host(), port))
            .await
            .map_err(|e| format!("{}: cannot resolve {}: {e}", target.url, authority.host()))?
            .collect();
        let addr = *addrs
            .first()
            .ok_or_else(|| format!("{}: {} resolves to nothing", target.url, authority.host()))?;
        if !allow_remote && addrs.iter().any(|a| !a.ip().is_loopback()) {
            return Err(format!(
                "{}: {} is not a loopback address; pass --allow-remote to load it anyway",
                target.url,
                addr.ip()
            ));
        }
        let path = match uri.path_and_query() {
            Some(pq) => pq.as_str().parse().expect("a path of a valid URI"),
            None => Uri::from_static("/"),
        };
        Ok(Arc::new(Endpoint {
            name: target.name.clone(),
            url: target.url.clone(),
            addr,
            host: HeaderValue::from_str(authority.as_str()).map_err(|e| e.to_string())?,
            path,
        }))
    }
}

/// A complete HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

/// Why a call got no HTTP answer.
#[derive(Debug)]
pub enum CallError {
    Connect(std::io::Error),
    Timeout,
    Http(hyper::Error),
}

impl CallError {
    /// A short, low-cardinality label for the error table.
    pub fn label(&self) -> String {
        match self {
            CallError::Connect(e) => format!("transport: connect {:?}", e.kind()),
            CallError::Timeout => "transport: timeout".to_string(),
            CallError::Http(e) => format!("transport: {e}"),
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Connect(e) => write!(f, "cannot connect: {e}"),
            CallError::Timeout => f.write_str("timed out"),
            CallError::Http(e) => write!(f, "{e}"),
        }
    }
}

/// One keep-alive connection to an endpoint, reopened on demand.
pub struct Session {
    endpoint: Arc<Endpoint>,
    sender: Option<SendRequest<Full<Bytes>>>,
    timeout: Duration,
}

impl Session {
    pub fn new(endpoint: Arc<Endpoint>, timeout: Duration) -> Self {
        Session {
            endpoint,
            sender: None,
            timeout,
        }
    }

    /// Sends one DynamoDB request and reads the whole answer. A connection the server closed
    /// (keep-alive limits) is replaced before sending; after any error the next call reconnects.
    pub async fn call(&mut self, op: Op, body: Bytes) -> Result<Reply, CallError> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.endpoint.path.clone();
        let headers = request.headers_mut();
        headers.insert(HOST, self.endpoint.host.clone());
        headers.insert(CONTENT_TYPE, AMZ_JSON.clone());
        headers.insert(&X_AMZ_TARGET, HeaderValue::from_static(op.target()));
        headers.insert(&X_AMZ_DATE, FAKE_DATE.clone());
        headers.insert(AUTHORIZATION, FAKE_AUTHORIZATION.clone());
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.send(request)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                self.sender = None;
                Err(CallError::Timeout)
            }
        }
    }

    async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<Reply, CallError> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.sender = Some(connect(self.endpoint.addr).await?);
        }
        let sender = self.sender.as_mut().expect("connected above");
        if sender.ready().await.is_err() {
            // Closed between the check and now: one fresh connection, then give up.
            *sender = connect(self.endpoint.addr).await?;
            sender.ready().await.map_err(CallError::Http)?;
        }
        let response = sender
            .send_request(request)
            .await
            .map_err(CallError::Http)?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(CallError::Http)?
            .to_bytes();
        Ok(Reply { status, body })
    }

    /// Sends a request and parses a 200 answer as JSON; anything else is an error message.
    pub async fn call_json(&mut self, op: Op, body: String) -> Result<serde_json::Value, String> {
        let reply = self
            .call(op, Bytes::from(body))
            .await
            .map_err(|e| format!("{} {}: {e}", self.endpoint.name, op.name()))?;
        if reply.status != StatusCode::OK {
            return Err(format!(
                "{} {}: HTTP {}: {}",
                self.endpoint.name,
                op.name(),
                reply.status,
                String::from_utf8_lossy(&reply.body)
            ));
        }
        serde_json::from_slice(&reply.body).map_err(|e| {
            format!(
                "{} {}: answer is not JSON: {e}",
                self.endpoint.name,
                op.name()
            )
        })
    }
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, CallError> {
    let stream = TcpStream::connect(addr).await.map_err(CallError::Connect)?;
    stream.set_nodelay(true).map_err(CallError::Connect)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(CallError::Http)?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes the connection.
        let _ = connection.await;
    });
    Ok(sender)
}

/// `GET url` on a fresh connection (Prometheus scrapes), returning the body of a 200.
pub async fn http_get(url: &str, allow_remote: bool, timeout: Duration) -> Result<String, String> {
    let target = NamedUrl {
        name: url.to_string(),
        url: url.to_string(),
    };
    let endpoint = Endpoint::resolve(&target, allow_remote).await?;
    let get = async {
        let stream = TcpStream::connect(endpoint.addr)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut request = Request::new(Empty::new());
        *request.uri_mut() = endpoint.path.clone();
        request.headers_mut().insert(HOST, endpoint.host.clone());
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(format!("HTTP {status}"));
        }
        String::from_utf8(body.to_vec()).map_err(|e| e.to_string())
    };
    tokio::time::timeout(timeout, get)
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| format!("GET {url}: {e}"))
}

/// The short DynamoDB error name of an error body (`"com.amazonaws...#Name"` -> `Name`).
pub fn error_type(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        #[serde(rename = "__type")]
        kind: Option<String>,
    }
    let kind = serde_json::from_slice::<ErrorBody>(body).ok()?.kind?;
    Some(match kind.rsplit_once('#') {
        Some((_, name)) => name.to_string(),
        None => kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types() {
        let body = br#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"x"}"#;
        assert_eq!(
            error_type(body).as_deref(),
            Some("ResourceNotFoundException")
        );
        assert_eq!(
            error_type(br#"{"__type":"Throttling"}"#).as_deref(),
            Some("Throttling")
        );
        assert_eq!(error_type(b"not json"), None);
        assert_eq!(error_type(b"{}"), None);
    }

    #[tokio::test]
    async fn loopback_only_by_default() {
        let local = NamedUrl {
            name: "l".into(),
            url: "http://127.0.0.1:9/x".into(),
        };
        let ep = Endpoint::resolve(&local, false).await.unwrap();
        assert_eq!(ep.path, "/x");
        assert_eq!(ep.host, "127.0.0.1:9");
        let remote = NamedUrl {
            name: "r".into(),
            url: "http://192.0.2.1:80".into(),
        };
        assert!(Endpoint::resolve(&remote, false).await.is_err());
    }
}

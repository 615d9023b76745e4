//! A pooled HTTP/1.1 (and HTTPS) client for any DynamoDB-compatible endpoint. Headers and body
//! are forwarded unchanged, except hop-by-hop headers and `Host`; with a [`Signer`] the request
//! is re-signed for AWS first.

use super::aws::Signer;
use super::{Upstream, UpstreamFuture, UpstreamRequest, UpstreamResponse};
use crate::config::UpstreamConfig;
use crate::error::Error;
use crate::protocol::response::is_hop_by_hop;
use bytes::Bytes;
use http::{HeaderValue, Request, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

pub struct HttpUpstream {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// `scheme://authority`, no trailing slash.
    base: String,
    host: HeaderValue,
    signer: Option<Signer>,
    request_timeout: Duration,
}

impl HttpUpstream {
    pub fn new(url: &str, config: &UpstreamConfig, signer: Option<Signer>) -> Result<Self, Error> {
        let uri: Uri = url
            .parse()
            .map_err(|e| Error::Config(format!("upstream URL {url:?}: {e}")))?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(Error::Config(format!(
                "upstream URL {url:?} needs a scheme and a host"
            )));
        };
        if scheme != "http" && scheme != "https" {
            return Err(Error::Config(format!(
                "upstream URL {url:?}: only http:// and https:// are supported"
            )));
        }
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_nodelay(true);
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS set-up: {e}")))?
        .with_root_certificates(crate::tls::upstream_roots(config.ca_file.as_deref())?)
        .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(HttpUpstream {
            client,
            base: format!("{scheme}://{authority}"),
            host: HeaderValue::from_str(authority.as_str())
                .map_err(|e| Error::Config(format!("upstream host: {e}")))?,
            signer,
            request_timeout: config.request_timeout,
        })
    }

    async fn send_inner(&self, req: UpstreamRequest) -> Result<UpstreamResponse, Error> {
        let uri = format!("{}{}", self.base, req.path_and_query);
        let mut out = Request::builder()
            .method(req.method)
            .uri(&uri)
            .body(Full::new(req.body.clone()))
            .map_err(|e| Error::Internal(format!("building upstream request: {e}")))?;
        let headers = out.headers_mut();
        for (name, value) in &req.headers {
            if !is_hop_by_hop(name) && name != header::HOST {
                headers.append(name.clone(), value.clone());
            }
        }
        headers.insert(header::HOST, self.host.clone());
        if let Some(signer) = &self.signer {
            signer.sign(&mut out, &req.body).await?;
        }
        let resp = self
            .client
            .request(out)
            .await
            .map_err(|e| Error::UpstreamUnavailable(error_chain(&e)))?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| {
                Error::UpstreamUnavailable(format!("reading the response: {}", error_chain(&e)))
            })?
            .to_bytes();
        Ok(UpstreamResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

/// An error and its sources, `: `-joined (hyper's top-level messages alone say little).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

impl Upstream for HttpUpstream {
    fn send(&self, request: UpstreamRequest) -> UpstreamFuture<'_> {
        Box::pin(async move {
            match tokio::time::timeout(self.request_timeout, self.send_inner(request)).await {
                Ok(r) => r,
                Err(_) => Err(Error::UpstreamTimeout(self.request_timeout)),
            }
        })
    }

    fn describe(&self) -> String {
        match &self.signer {
            Some(s) => format!("{} (AWS, SigV4 for {})", self.base, s.region()),
            None => self.base.clone(),
        }
    }
}

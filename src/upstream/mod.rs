//! Where requests the cache cannot answer go: one [`Upstream`] trait, chosen by
//! `upstream.target`. [`http::HttpUpstream`] talks to any DynamoDB-compatible endpoint and,
//! for `aws`, re-signs each request with SigV4 ([`aws::Signer`]); [`embedded`] runs dynoxide-rs
//! inside the process.

pub mod aws;
pub mod embedded;
pub mod http;

use crate::config::{UpstreamConfig, UpstreamTarget};
use crate::error::Error;
use ::http::{HeaderMap, Method, StatusCode};
use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A request to forward: the client's own method, path, headers and body bytes.
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    pub method: Method,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The upstream's whole response.
#[derive(Debug, Clone)]
pub struct UpstreamResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub type UpstreamFuture<'a> =
    Pin<Box<dyn Future<Output = Result<UpstreamResponse, Error>> + Send + 'a>>;

pub trait Upstream: Send + Sync {
    /// Sends one request. `Err` means no HTTP response arrived (unreachable, reset, timeout);
    /// any HTTP response, error statuses included, is `Ok`.
    fn send(&self, request: UpstreamRequest) -> UpstreamFuture<'_>;

    /// For logs: what this upstream is.
    fn describe(&self) -> String;
}

/// Builds the upstream `config` names (starting the embedded engine if that is the choice).
pub async fn build(config: &UpstreamConfig) -> Result<Arc<dyn Upstream>, Error> {
    Ok(match &config.target {
        UpstreamTarget::Embedded => Arc::new(embedded::EmbeddedUpstream::start(config).await?),
        UpstreamTarget::Url(url) => Arc::new(http::HttpUpstream::new(url, config, None)?),
        UpstreamTarget::Aws => {
            let signer = aws::Signer::from_environment(config).await?;
            let endpoint = config
                .endpoint
                .clone()
                .unwrap_or_else(|| format!("https://dynamodb.{}.amazonaws.com", signer.region()));
            Arc::new(http::HttpUpstream::new(&endpoint, config, Some(signer))?)
        }
    })
}

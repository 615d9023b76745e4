//! The crate's one error type, and how each variant reaches a client as DynamoDB error JSON.

use bytes::Bytes;
use http::StatusCode;
use std::time::Duration;

/// Everything that can go wrong in ddbcache. Each variant knows its HTTP status and its DynamoDB
/// `__type`, so a client SDK parses it like any DynamoDB error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The body is not a JSON object.
    #[error("{0}")]
    Serialization(String),
    /// `X-Amz-Target` is missing or names an operation DynamoDB does not have.
    #[error("{0}")]
    UnknownOperation(String),
    #[error("request body of {size} bytes exceeds the limit of {limit} bytes (max_body_bytes)")]
    PayloadTooLarge { size: u64, limit: usize },
    /// The upstream could not be reached or broke the connection.
    #[error("upstream unavailable: {0}")]
    UpstreamUnavailable(String),
    #[error("upstream did not answer within {0:?} (upstream.request_timeout)")]
    UpstreamTimeout(Duration),
    /// No usable credentials for signing requests to AWS.
    #[error("no AWS credentials for the upstream: {0}")]
    Credentials(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Too many requests waiting for the upstream (`limits.*`); SDKs retry with back-off.
    #[error("{0}")]
    Throttling(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// The remote cache tier failed; never sent to a client (the request goes upstream).
    #[error("remote tier: {0}")]
    Remote(String),
    /// Auth is on and the request carries no `Authorization` header.
    #[error("Request is missing Authentication Token")]
    MissingAuthenticationToken,
    /// The `Authorization` header (or the date header it needs) is malformed or incomplete.
    #[error("{0}")]
    IncompleteSignature(String),
    /// The signature does not match, is outside the clock-skew window, or its scope is wrong.
    #[error("{0}")]
    InvalidSignature(String),
    /// The access key id is not one of the configured client keys (or a session token was sent).
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient,
    /// A verified key whose policy does not allow this operation on this table.
    #[error("{0}")]
    AccessDenied(String),
}

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The HTTP status DynamoDB would use for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            // DynamoDB answers every authentication and authorization failure with 400.
            Error::Serialization(_)
            | Error::UnknownOperation(_)
            | Error::MissingAuthenticationToken
            | Error::IncompleteSignature(_)
            | Error::InvalidSignature(_)
            | Error::UnrecognizedClient
            | Error::AccessDenied(_)
            | Error::Throttling(_) => StatusCode::BAD_REQUEST,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UpstreamUnavailable(_) | Error::UpstreamTimeout(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::Config(_)
            | Error::Credentials(_)
            | Error::Io { .. }
            | Error::Internal(_)
            | Error::Remote(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `__type` of DynamoDB's error JSON. 5xx types are retried by every AWS SDK.
    pub fn type_name(&self) -> &'static str {
        match self {
            Error::Serialization(_) => "com.amazon.coral.service#SerializationException",
            Error::UnknownOperation(_) => "com.amazon.coral.service#UnknownOperationException",
            Error::PayloadTooLarge { .. } => "com.amazon.coral.service#RequestEntityTooLarge",
            Error::Throttling(_) => "com.amazon.coral.availability#ThrottlingException",
            Error::MissingAuthenticationToken => {
                "com.amazon.coral.service#MissingAuthenticationTokenException"
            }
            Error::IncompleteSignature(_) => {
                "com.amazon.coral.service#IncompleteSignatureException"
            }
            Error::InvalidSignature(_) => "com.amazon.coral.service#InvalidSignatureException",
            Error::UnrecognizedClient => "com.amazon.coral.service#UnrecognizedClientException",
            Error::AccessDenied(_) => "com.amazon.coral.service#AccessDeniedException",
            Error::UpstreamUnavailable(_) | Error::UpstreamTimeout(_) => {
                "com.amazonaws.dynamodb.v20120810#ServiceUnavailable"
            }
            _ => "com.amazonaws.dynamodb.v20120810#InternalServerError",
        }
    }

    /// A short label for the `ddbcache_errors_total{type}` metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::Serialization(_) => "serialization",
            Error::UnknownOperation(_) => "unknown_operation",
            Error::PayloadTooLarge { .. } => "payload_too_large",
            Error::UpstreamUnavailable(_) => "upstream_unavailable",
            Error::UpstreamTimeout(_) => "upstream_timeout",
            Error::Credentials(_) => "credentials",
            Error::Io { .. } => "io",
            Error::Throttling(_) => "throttled",
            Error::Internal(_) => "internal",
            Error::Remote(_) => "remote",
            Error::MissingAuthenticationToken => "missing_authentication_token",
            Error::IncompleteSignature(_) => "incomplete_signature",
            Error::InvalidSignature(_) => "invalid_signature",
            Error::UnrecognizedClient => "unrecognized_client",
            Error::AccessDenied(_) => "access_denied",
        }
    }

    /// DynamoDB's error body: `{"__type": "...", "message": "..."}`.
    pub fn to_body(&self) -> Bytes {
        let body = serde_json::json!({ "__type": self.type_name(), "message": self.to_string() });
        Bytes::from(serde_json::to_vec(&body).expect("a JSON object serialises"))
    }
}

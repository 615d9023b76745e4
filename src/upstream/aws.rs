//! Re-signing for real DynamoDB: credentials from the standard AWS chain (env, profile, SSO,
//! container and instance roles, via aws-config), and SigV4 from `aws-sigv4`. The client's own
//! `Authorization`, `X-Amz-Date`, `X-Amz-Security-Token` and `X-Amz-Content-Sha256` are removed
//! first, and only `host`, `content-type` and `x-amz-target` are signed (SDK bookkeeping headers
//! such as `amz-sdk-invocation-id` are forwarded unsigned).

use crate::config::UpstreamConfig;
use crate::error::Error;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;

/// Headers a client signed with its own credentials; never forwarded to AWS.
pub const CLIENT_AUTH_HEADERS: &[&str] = &[
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

/// The headers included in our signature.
const SIGNED_HEADERS: &[&str] = &["host", "content-type", "x-amz-target"];

/// Credentials are refreshed this long before they expire.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

pub struct Signer {
    region: String,
    provider: SharedCredentialsProvider,
    cached: Mutex<Option<Credentials>>,
}

impl Signer {
    /// Region from `upstream.region` or the AWS chain; credentials from the AWS chain.
    pub async fn from_environment(config: &UpstreamConfig) -> Result<Self, Error> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = &config.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        let sdk = loader.load().await;
        let region = sdk.region().map(|r| r.to_string()).ok_or_else(|| {
            Error::Config(
                "upstream.region: no region configured and none found in the AWS chain \
                 (AWS_REGION, profile)"
                    .into(),
            )
        })?;
        let provider = sdk.credentials_provider().ok_or_else(|| {
            Error::Credentials("the AWS chain has no credentials provider".into())
        })?;
        Ok(Signer::new(region, provider))
    }

    pub fn new(region: String, provider: SharedCredentialsProvider) -> Self {
        Signer {
            region,
            provider,
            cached: Mutex::new(None),
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    async fn credentials(&self) -> Result<Credentials, Error> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            let fresh = c
                .expiry()
                .is_none_or(|exp| exp > SystemTime::now() + REFRESH_MARGIN);
            if fresh {
                return Ok(c.clone());
            }
        }
        let creds = self
            .provider
            .provide_credentials()
            .await
            .map_err(|e| Error::Credentials(e.to_string()))?;
        *cached = Some(creds.clone());
        Ok(creds)
    }

    /// Replaces the client's signature on `req` (whose `host` is already the upstream's) with
    /// ours.
    pub async fn sign(&self, req: &mut Request<Full<Bytes>>, body: &[u8]) -> Result<(), Error> {
        let creds = self.credentials().await?;
        sign_with(req, body, &creds, &self.region, SystemTime::now())
    }
}

/// Signs `req` for DynamoDB in `region` at `time`: pure, so it can be tested with known answers.
pub fn sign_with(
    req: &mut Request<Full<Bytes>>,
    body: &[u8],
    creds: &Credentials,
    region: &str,
    time: SystemTime,
) -> Result<(), Error> {
    for name in CLIENT_AUTH_HEADERS {
        req.headers_mut().remove(*name);
    }
    let identity: Identity = creds.clone().into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("dynamodb")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| Error::Internal(format!("SigV4 parameters: {e}")))?
        .into();
    let uri = req.uri().to_string();
    let signed: Vec<(&str, &str)> = req
        .headers()
        .iter()
        .filter(|(name, _)| SIGNED_HEADERS.contains(&name.as_str()))
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect();
    let signable = SignableRequest::new(
        req.method().as_str(),
        &uri,
        signed.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| Error::Internal(format!("SigV4 request: {e}")))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| Error::Internal(format!("SigV4 signing: {e}")))?
        .into_parts();
    instructions.apply_to_request_http1x(req);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request<Full<Bytes>> {
        Request::builder()
            .method("POST")
            .uri("https://dynamodb.eu-west-1.amazonaws.com/")
            .header("host", "dynamodb.eu-west-1.amazonaws.com")
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", "DynamoDB_20120810.GetItem")
            .header("authorization", "AWS4-HMAC-SHA256 Credential=CLIENTKEY/20200101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=00")
            .header("x-amz-date", "20200101T000000Z")
            .header("x-amz-security-token", "client-token")
            .header("amz-sdk-invocation-id", "abc")
            .body(Full::new(Bytes::new()))
            .unwrap()
    }

    #[test]
    fn replaces_the_client_signature_with_ours() {
        let creds = Credentials::new("AKIDPROXY", "secret", None, None, "test");
        let mut req = request();
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000); // 2023-11-14
        sign_with(&mut req, b"{}", &creds, "eu-west-1", time).unwrap();
        let auth = req.headers()["authorization"].to_str().unwrap();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDPROXY/20231114/eu-west-1/dynamodb/aws4_request"
            ),
            "{auth}"
        );
        assert!(
            auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-target"),
            "{auth}"
        );
        assert_eq!(req.headers()["x-amz-date"], "20231114T221320Z");
        assert!(req.headers().get("x-amz-security-token").is_none());
        assert_eq!(req.headers()["amz-sdk-invocation-id"], "abc");
    }

    #[test]
    fn signature_depends_on_body_and_secret() {
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let sig = |secret: &str, body: &[u8]| {
            let creds = Credentials::new("AKID", secret, Some("session".into()), None, "test");
            let mut req = request();
            sign_with(&mut req, body, &creds, "eu-west-1", time).unwrap();
            assert_eq!(req.headers()["x-amz-security-token"], "session");
            req.headers()["authorization"].to_str().unwrap().to_string()
        };
        assert_ne!(sig("a", b"{}"), sig("b", b"{}"));
        assert_ne!(sig("a", b"{}"), sig("a", b"{\"x\":1}"));
        assert_eq!(sig("a", b"{}"), sig("a", b"{}"));
    }
}

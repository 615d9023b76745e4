//! Fuzz target `sigv4_verify`: the client SigV4 verifier (`ddbcache::auth::sigv4::verify`).
//!
//! Checked besides "no panic" on any input:
//! - arbitrary `Authorization` and `X-Amz-Date` bytes never verify;
//! - a request signed by `aws-sigv4` (the signer the AWS SDKs use) with a known key, at the
//!   verifier's own clock, over an arbitrary path, extra headers and body, verifies and names its
//!   key;
//! - the same request does not verify under another secret, with one body byte changed, or
//!   outside the clock-skew window.

#![no_main]

use arbitrary::Arbitrary;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use ddbcache::auth::policy::Policy;
use ddbcache::auth::sigv4::{DEFAULT_MAX_SKEW, verify};
use ddbcache::auth::{ClientKey, KeyStore, Secret};
use http::HeaderMap;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

#[derive(Debug, Arbitrary)]
struct Input {
    /// Path and query after `/`.
    path: String,
    /// Extra headers (names are prefixed `x-fuzz-` so they are signed like any SDK header).
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Seconds since 2020-01-01 of the signing time.
    at: u32,
    /// Which body byte to flip for the negative case.
    flip: u16,
    raw_authorization: Vec<u8>,
    raw_date: Vec<u8>,
}

const KEY_ID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn store(secret: &str) -> KeyStore {
    KeyStore::new([ClientKey::new(KEY_ID, Secret::new(secret), Policy::allow_all())]).unwrap()
}

static KEYS: LazyLock<KeyStore> = LazyLock::new(|| store(SECRET));
static OTHER: LazyLock<KeyStore> = LazyLock::new(|| store("another secret"));

fn check(parts: &http::request::Parts, body: &[u8], keys: &KeyStore, now: SystemTime) -> bool {
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    verify(parts.method.as_str(), pq, &parts.headers, body, now, keys, DEFAULT_MAX_SKEW).is_ok()
}

fuzz_target!(|input: Input| {
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_836_800 + u64::from(input.at));

    // Garbage never verifies.
    let mut garbage = HeaderMap::new();
    garbage.insert("host", http::HeaderValue::from_static("localhost:8000"));
    if let Ok(v) = http::HeaderValue::from_bytes(&input.raw_authorization) {
        garbage.insert("authorization", v);
    }
    if let Ok(v) = http::HeaderValue::from_bytes(&input.raw_date) {
        garbage.insert("x-amz-date", v);
    }
    assert!(
        verify("POST", "/", &garbage, &input.body, at, &KEYS, DEFAULT_MAX_SKEW).is_err(),
        "an unsigned or garbage-signed request verified"
    );

    // A correctly signed request verifies; changed ones do not.
    let Ok(uri) = format!("/{}", input.path).parse::<http::Uri>() else {
        return;
    };
    let mut builder = http::Request::builder()
        .method("POST")
        .uri(uri.clone())
        .header("host", "localhost:8000")
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amz-target", "DynamoDB_20120810.GetItem");
    for (k, v) in &input.headers {
        let name: String = k
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(32)
            .collect::<String>()
            .to_ascii_lowercase();
        builder = builder.header(format!("x-fuzz-{name}"), v.as_str());
    }
    let Ok(mut req) = builder.body(input.body.clone()) else {
        return;
    };
    let identity = Credentials::new(KEY_ID, SECRET, None, None, "fuzz").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("dynamodb")
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .expect("signing params")
        .into();
    let headers: Vec<(&str, &str)> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    if headers.len() != req.headers().len() {
        return; // a header value that is not text: the SDKs never sign those
    }
    let Ok(signable) = SignableRequest::new(
        "POST",
        uri.to_string(),
        headers.into_iter(),
        SignableBody::Bytes(&input.body),
    ) else {
        return;
    };
    let Ok(out) = sign(signable, &params) else {
        return;
    };
    let (instructions, _signature) = out.into_parts();
    instructions.apply_to_request_http1x(&mut req);
    let (parts, body) = req.into_parts();
    assert!(
        check(&parts, &body, &KEYS, at),
        "a request signed by aws-sigv4 did not verify: {parts:?}"
    );
    assert!(!check(&parts, &body, &OTHER, at), "verified under another secret");
    let late = at + DEFAULT_MAX_SKEW + Duration::from_secs(1);
    assert!(!check(&parts, &body, &KEYS, late), "verified outside the skew window");
    if !body.is_empty() {
        let mut changed = body.clone();
        let i = usize::from(input.flip) % changed.len();
        changed[i] ^= 1;
        assert!(!check(&parts, &changed, &KEYS, at), "verified with a changed body");
    }
});

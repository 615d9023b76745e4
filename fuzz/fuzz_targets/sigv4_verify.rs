//! Fuzz target `sigv4_verify` (NOT BUILT YET): the client-side SigV4 verifier of `src/auth/`.
//!
//! Written against the API assumed below, before `src/auth/` exists (branch `auth`). To enable:
//! adjust the `use` and the `verify` call to the real signature, add to fuzz/Cargo.toml
//!
//! ```toml
//! arbitrary = { version = "1", features = ["derive"] }
//! http = "1"
//! aws-sigv4 = "1"
//! aws-credential-types = { version = "1", features = ["hardcoded-credentials"] }
//! aws-smithy-runtime-api = { version = "1", features = ["client"] }
//!
//! [[bin]]
//! name = "sigv4_verify"
//! path = "fuzz_targets/sigv4_verify.rs"
//! test = false
//! doc = false
//! bench = false
//! ```
//!
//! and seed `corpus/sigv4_verify/` (see docs/fuzzing.md).
//!
//! Assumed API:
//! `ddbcache::auth::sigv4::verify(parts: &http::request::Parts, body: &[u8],
//!     secret_for: impl Fn(&str) -> Option<String>, now: std::time::SystemTime)
//!     -> Result<String /* the access key id */, ddbcache::Error>`
//!
//! Checked besides "no panic" (on any header bytes, any `Authorization` text):
//! - a request signed by `aws-sigv4` (the signer every AWS SDK uses) with a known secret, at a
//!   time inside the allowed skew, verifies and names its access key;
//! - the same request with one byte of its body, of a signed header, of the path or of the
//!   signature changed does not verify; nor does it under another secret;
//! - arbitrary `Authorization` / `X-Amz-Date` / `X-Amz-Content-Sha256` values never verify.

#![no_main]

use arbitrary::Arbitrary;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, SystemTime};

#[derive(Debug, Arbitrary)]
struct Input {
    /// Path and query after `/`.
    path: String,
    /// Extra headers, signed along with host and x-amz-*.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Seconds since 2020-01-01 of the signing time.
    at: u32,
    /// Which byte to flip for the negative case (modulo the mutable material).
    flip: u16,
    /// Raw header values tried as they are.
    raw_authorization: Vec<u8>,
}

const KEY_ID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fuzz_target!(|input: Input| {
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_836_800 + u64::from(input.at));
    let secret_for = |id: &str| (id == KEY_ID).then(|| SECRET.to_string());

    // Garbage never verifies and never panics.
    if let Ok(mut req) = http::Request::builder()
        .method("POST")
        .uri("/")
        .header("host", "localhost:8000")
        .header("x-amz-target", "DynamoDB_20120810.GetItem")
        .body(())
    {
        if let Ok(v) = http::HeaderValue::from_bytes(&input.raw_authorization) {
            req.headers_mut().insert("authorization", v);
        }
        let (parts, ()) = req.into_parts();
        assert!(ddbcache::auth::sigv4::verify(&parts, &input.body, secret_for, at).is_err());
    }

    // A correctly signed request verifies; a changed byte does not.
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
        builder = builder.header(k.as_str(), v.as_str());
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
    assert_eq!(
        ddbcache::auth::sigv4::verify(&parts, &body, secret_for, at).ok().as_deref(),
        Some(KEY_ID),
        "a request signed by aws-sigv4 did not verify"
    );
    assert!(
        ddbcache::auth::sigv4::verify(&parts, &body, |_| Some("other".into()), at).is_err(),
        "verified under another secret"
    );
    if !body.is_empty() {
        let mut changed = body.clone();
        let i = usize::from(input.flip) % changed.len();
        changed[i] ^= 1;
        assert!(
            ddbcache::auth::sigv4::verify(&parts, &changed, secret_for, at).is_err(),
            "verified with a changed body"
        );
    }
});

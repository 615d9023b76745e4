//! The `aws` upstream, end to end through the real binary: credentials come from the standard
//! AWS chain (environment variables here), every forwarded request is re-signed with them, and
//! the client's own signature never reaches upstream. The upstream is a loopback relay that
//! recomputes each SigV4 signature with the proxy's secret before relaying to dynoxide.

use aws_credential_types::Credentials;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;

const PROXY_KEY: &str = "AKIDPROXYEXAMPLE";
const PROXY_SECRET: &str = "proxy-secret-key";
const REGION: &str = "eu-west-3";

#[derive(Default)]
struct Seen {
    valid: Vec<String>,
    invalid: Vec<String>,
}

fn x_amz_date_to_time(v: &str) -> Option<SystemTime> {
    // 20231114T221320Z -> 2023-11-14T22:13:20Z
    let b = v.as_bytes();
    if b.len() != 16 {
        return None;
    }
    let rfc = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &v[0..4],
        &v[4..6],
        &v[6..8],
        &v[9..11],
        &v[11..13],
        &v[13..15]
    );
    humantime::parse_rfc3339(&rfc).ok()
}

/// Recomputes the signature of a received request with the proxy's credentials; Err says why
/// it does not match.
fn verify(parts: &http::request::Parts, body: &[u8]) -> Result<String, String> {
    let h = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let auth = h("authorization").ok_or("no Authorization")?;
    let date = h("x-amz-date").ok_or("no X-Amz-Date")?;
    if h("x-amz-security-token").is_some() {
        return Err("the client's session token was forwarded".into());
    }
    let signed_headers = auth
        .split("SignedHeaders=")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .ok_or("no SignedHeaders")?;
    let time = x_amz_date_to_time(&date).ok_or("bad X-Amz-Date")?;
    let creds = Credentials::new(PROXY_KEY, PROXY_SECRET, None, None, "test");
    let identity: Identity = creds.into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("dynamodb")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let headers: Vec<(String, String)> = signed_headers
        .split(';')
        .filter(|n| *n != "x-amz-date")
        .map(|n| (n.to_string(), h(n).unwrap_or_default()))
        .collect();
    let uri = format!("http://{}{}", h("host").ok_or("no Host")?, parts.uri.path());
    let signable = SignableRequest::new(
        parts.method.as_str(),
        &uri,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let expected = instructions
        .headers()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.to_string())
        .ok_or("signer produced no Authorization")?;
    if expected == auth {
        Ok(h("x-amz-target").unwrap_or_default())
    } else {
        Err(format!(
            "signature mismatch: got {auth}, expected {expected}"
        ))
    }
}

/// A loopback upstream that checks signatures, then relays to dynoxide.
async fn verifying_relay(seen: Arc<Mutex<Seen>>) -> std::net::SocketAddr {
    let engine = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let engine_addr = engine.local_addr().unwrap();
    tokio::spawn(dynoxide::server::serve_on(
        engine,
        dynoxide::Database::memory().unwrap(),
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            let client = client.clone();
            let svc = service_fn(move |req: http::Request<Incoming>| {
                let seen = seen.clone();
                let client = client.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let body = body.collect().await.unwrap().to_bytes();
                    if let Err(why) = verify(&parts, &body) {
                        seen.lock().unwrap().invalid.push(why.clone());
                        let err = serde_json::json!({
                            "__type": "com.amazon.coral.service#InvalidSignatureException",
                            "message": why,
                        });
                        let resp = http::Response::builder()
                            .status(400)
                            .header("content-type", "application/x-amz-json-1.0")
                            .body(Full::new(Bytes::from(err.to_string())))
                            .unwrap();
                        return Ok::<_, std::convert::Infallible>(resp);
                    }
                    let target = parts.headers["x-amz-target"].to_str().unwrap().to_string();
                    seen.lock().unwrap().valid.push(target);
                    let mut fwd = http::Request::builder()
                        .method("POST")
                        .uri(format!("http://{engine_addr}/"));
                    for (k, v) in &parts.headers {
                        if k != "host" && k != "content-length" {
                            fwd = fwd.header(k, v);
                        }
                    }
                    let resp = client
                        .request(fwd.body(Full::new(body)).unwrap())
                        .await
                        .unwrap();
                    let (p, b) = resp.into_parts();
                    let b = b.collect().await.unwrap().to_bytes();
                    Ok(http::Response::from_parts(p, Full::new(b)))
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// Starts the real binary with `--upstream aws`, returns it and its listen address.
async fn start_binary(upstream: std::net::SocketAddr) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ddbcache"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--upstream",
            "aws",
            "--region",
            REGION,
            "--aws-endpoint",
            &format!("http://{upstream}"),
            "--log-level",
            "info",
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", PROXY_KEY)
        .env("AWS_SECRET_ACCESS_KEY", PROXY_SECRET)
        .env("AWS_CONFIG_FILE", "/nonexistent/config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the ddbcache binary starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let listen = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            eprintln!("ddbcache: {line}");
            if let Some(rest) = line.split("listen=").nth(1) {
                return rest.split_whitespace().next().unwrap().to_string();
            }
        }
        panic!("ddbcache exited before it was ready");
    })
    .await
    .expect("ddbcache became ready");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, listen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_upstream_resigns_every_request_with_chain_credentials() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let relay = verifying_relay(seen.clone()).await;
    let (mut child, listen) = start_binary(relay).await;

    // The client signs with credentials of its own, including a session token.
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_dynamodb::config::Region::new(REGION))
        .endpoint_url(format!("http://{listen}"))
        .credentials_provider(Credentials::new(
            "AKIDCLIENT",
            "client-secret",
            Some("client-session".into()),
            None,
            "client",
        ))
        .build();
    let ddb = aws_sdk_dynamodb::Client::from_conf(conf);
    use aws_sdk_dynamodb::types::AttributeValue;
    use aws_sdk_dynamodb::types::*;
    ddb.create_table()
        .table_name("Signed")
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("CreateTable through the aws upstream");
    ddb.put_item()
        .table_name("Signed")
        .item("pk", AttributeValue::S("a".into()))
        .item("v", AttributeValue::N("1".into()))
        .send()
        .await
        .expect("PutItem");
    for _ in 0..2 {
        let got = ddb
            .get_item()
            .table_name("Signed")
            .key("pk", AttributeValue::S("a".into()))
            .send()
            .await
            .expect("GetItem");
        assert_eq!(
            got.item().unwrap().get("v"),
            Some(&AttributeValue::N("1".into()))
        );
    }

    let (valid, invalid) = {
        let seen = seen.lock().unwrap();
        (seen.valid.clone(), seen.invalid.clone())
    };
    assert!(invalid.is_empty(), "bad signatures: {invalid:?}");
    let targets: Vec<&str> = valid
        .iter()
        .map(|t| t.rsplit('.').next().unwrap())
        .collect();
    // CreateTable, DescribeTable (the proxy's schema lookup), PutItem, one GetItem: the second
    // GetItem was a cache hit and never reached upstream.
    assert_eq!(
        targets.iter().filter(|t| **t == "GetItem").count(),
        1,
        "{targets:?}"
    );
    for op in ["CreateTable", "PutItem", "DescribeTable"] {
        assert!(targets.contains(&op), "{op} missing from {targets:?}");
    }
    child.kill().await.unwrap();
}

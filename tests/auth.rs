//! Client authentication and least privilege, end to end: the real aws-sdk-dynamodb client (and
//! raw requests signed with aws-sigv4) against a proxy with `[auth]` enabled over the embedded
//! upstream. Refusals must carry DynamoDB's error types, and a refused key must never be served
//! from the cache, even for an item another key put there.

mod common;

use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{KeysAndAttributes, Put, TransactWriteItem};
use common::{RawConn, RawResponse, TestProxy, UpstreamKind, create_simple_table, item, s};
use ddbcache::auth::Secret;
use ddbcache::config::KeyConfig;

const ADMIN: (&str, &str) = ("AKIDADMIN", "admin/Secret+Key0");
const A_ONLY: (&str, &str) = ("AKIDAONLY", "a-only/Secret+Key1");
const READER: (&str, &str) = ("AKIDREADER", "reader/Secret+Key2");

fn key(id: (&str, &str), tables: &[&str], operations: &[&str]) -> KeyConfig {
    KeyConfig {
        access_key_id: id.0.into(),
        secret_access_key: Secret::new(id.1),
        tables: tables.iter().map(|t| t.to_string()).collect(),
        operations: operations.iter().map(|o| o.to_string()).collect(),
    }
}

async fn start() -> TestProxy {
    TestProxy::start_with(UpstreamKind::Embedded, |c| {
        c.auth.enabled = true;
        c.auth.keys = vec![
            key(ADMIN, &["*"], &["*"]),
            key(A_ONLY, &["AuthA"], &["*"]),
            key(
                READER,
                &["*"],
                &["GetItem", "Query", "Scan", "BatchGetItem", "Describe*"],
            ),
        ];
    })
    .await
}

fn client(proxy: &TestProxy, id: &str, secret: &str) -> Client {
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(proxy.endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(id, secret, None, None, "static"))
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(conf)
}

/// Tables AuthA and AuthB, each holding item pk=x, created by the admin key.
async fn tables(admin: &Client) {
    for t in ["AuthA", "AuthB"] {
        create_simple_table(admin, t).await;
        admin
            .put_item()
            .table_name(t)
            .set_item(Some(item(&[("pk", "x"), ("v", t)])))
            .send()
            .await
            .unwrap();
    }
}

async fn get(c: &Client, table: &str) -> Result<Option<String>, (String, String)> {
    c.get_item()
        .table_name(table)
        .key("pk", s("x"))
        .send()
        .await
        .map(|o| {
            o.item
                .and_then(|i| i.get("v").and_then(|v| v.as_s().ok()).cloned())
        })
        .map_err(|e| {
            let e = e.into_service_error();
            (
                e.code().unwrap_or_default().to_owned(),
                e.message().unwrap_or_default().to_owned(),
            )
        })
}

/// A DynamoDB request signed with aws-sigv4 at `time`, sent raw.
async fn signed_raw(
    proxy: &TestProxy,
    id: (&str, &str),
    time: SystemTime,
    op: &str,
    body: &str,
) -> RawResponse {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4::SigningParams;
    let identity = aws_credential_types::Credentials::new(id.0, id.1, None, None, "test").into();
    let params = SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("dynamodb")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let host = proxy.addr.to_string();
    let target = format!("DynamoDB_20120810.{op}");
    let headers = [
        ("host", host.as_str()),
        ("content-type", "application/x-amz-json-1.0"),
        ("x-amz-target", target.as_str()),
    ];
    let request = SignableRequest::new(
        "POST",
        format!("http://{host}/"),
        headers.iter().copied(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(request, &params).unwrap().into_parts();
    let extra: Vec<(String, String)> = instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut all: Vec<(&str, &str)> = headers[1..].to_vec();
    all.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    RawConn::connect(proxy.addr)
        .await
        .request("POST", "/", &all, body.as_bytes())
        .await
        .unwrap()
}

#[tokio::test]
async fn right_key_works_including_a_cache_hit() {
    let proxy = start().await;
    let admin = client(&proxy, ADMIN.0, ADMIN.1);
    tables(&admin).await;
    assert_eq!(
        get(&admin, "AuthA").await.unwrap().as_deref(),
        Some("AuthA")
    );
    assert_eq!(
        get(&admin, "AuthA").await.unwrap().as_deref(),
        Some("AuthA")
    );
    let m = proxy.metrics().await;
    assert_eq!(m.item_hits("AuthA"), 1.0);
    assert_eq!(m.upstream("GetItem"), 1.0);
    // A raw request signed by aws-sigv4 now also verifies (and is a hit).
    let r = signed_raw(
        &proxy,
        ADMIN,
        SystemTime::now(),
        "GetItem",
        r#"{"TableName":"AuthA","Key":{"pk":{"S":"x"}}}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["Item"]["v"]["S"], "AuthA");
    assert_eq!(proxy.metrics().await.item_hits("AuthA"), 2.0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn wrong_secret_unknown_key_and_stale_signatures_are_refused() {
    let proxy = start().await;
    let admin = client(&proxy, ADMIN.0, ADMIN.1);
    tables(&admin).await;
    get(&admin, "AuthA").await.unwrap(); // cached now

    let (code, msg) = get(&client(&proxy, ADMIN.0, "not-the-secret"), "AuthA")
        .await
        .unwrap_err();
    assert_eq!(code, "InvalidSignatureException");
    assert!(
        msg.starts_with("The request signature we calculated does not match"),
        "{msg}"
    );

    let (code, msg) = get(&client(&proxy, "AKIDNOBODY", ADMIN.1), "AuthA")
        .await
        .unwrap_err();
    assert_eq!(code, "UnrecognizedClientException");
    assert_eq!(
        msg,
        "The security token included in the request is invalid."
    );

    // Temporary credentials (a session token) are not accepted.
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(proxy.endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            ADMIN.0,
            ADMIN.1,
            Some("token".into()),
            None,
            "static",
        ))
        .retry_config(RetryConfig::disabled())
        .build();
    let (code, _) = get(&Client::from_conf(conf), "AuthA").await.unwrap_err();
    assert_eq!(code, "UnrecognizedClientException");

    let body = r#"{"TableName":"AuthA","Key":{"pk":{"S":"x"}}}"#;
    let stale = SystemTime::now() - Duration::from_secs(20 * 60);
    let r = signed_raw(&proxy, ADMIN, stale, "GetItem", body).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.error_type().as_deref(),
        Some("com.amazon.coral.service#InvalidSignatureException")
    );
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("Signature expired: "),
        "{}",
        r.text()
    );
    let future = SystemTime::now() + Duration::from_secs(20 * 60);
    let r = signed_raw(&proxy, ADMIN, future, "GetItem", body).await;
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("Signature not yet current: "),
        "{}",
        r.text()
    );

    // None of those was served from the cache.
    let m = proxy.metrics().await;
    assert_eq!(m.item_hits("AuthA"), 0.0);
    assert_eq!(m.upstream("GetItem"), 1.0);
    assert_eq!(
        m.sum("ddbcache_errors_total", &[("type", "invalid_signature")]),
        3.0
    );
    assert_eq!(
        m.sum("ddbcache_errors_total", &[("type", "unrecognized_client")]),
        2.0
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn unsigned_and_malformed_requests_are_refused() {
    let proxy = start().await;
    let body = br#"{"TableName":"AuthA","Key":{"pk":{"S":"x"}}}"#;
    let mut conn = RawConn::connect(proxy.addr).await;
    let base = [
        ("Content-Type", "application/x-amz-json-1.0"),
        ("X-Amz-Target", "DynamoDB_20120810.GetItem"),
        ("X-Amz-Date", "20260101T000000Z"),
    ];
    let r = conn.request("POST", "/", &base, body).await.unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(
        r.error_type().as_deref(),
        Some("com.amazon.coral.service#MissingAuthenticationTokenException")
    );
    assert_eq!(
        r.json()["message"],
        "Request is missing Authentication Token"
    );

    for bad in [
        "AWS4-HMAC-SHA256 Credential=garbage",
        "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00",
        "Bearer abc",
    ] {
        let mut h = base.to_vec();
        h.push(("Authorization", bad));
        let r = conn.request("POST", "/", &h, body).await.unwrap();
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(
            r.error_type().as_deref(),
            Some("com.amazon.coral.service#IncompleteSignatureException"),
            "{bad}: {}",
            r.text()
        );
    }
    // The shared fake signature of the other tests: well formed, unknown key.
    let r = conn.ddb(Some("GetItem"), body).await;
    assert_eq!(
        r.error_type().as_deref(),
        Some("com.amazon.coral.service#UnrecognizedClientException")
    );

    // Requests that are not DynamoDB calls must be signed too (they would reach the upstream).
    let r = conn.request("GET", "/shell/", &[], b"").await.unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(
        r.error_type().as_deref(),
        Some("com.amazon.coral.service#MissingAuthenticationTokenException")
    );
    assert_eq!(proxy.metrics().await.upstream("other"), 0.0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_cached_item_never_reaches_a_key_not_allowed_its_table() {
    let proxy = start().await;
    let admin = client(&proxy, ADMIN.0, ADMIN.1);
    tables(&admin).await;
    // The admin fills the cache with B's item (second read is a hit).
    assert_eq!(
        get(&admin, "AuthB").await.unwrap().as_deref(),
        Some("AuthB")
    );
    assert_eq!(
        get(&admin, "AuthB").await.unwrap().as_deref(),
        Some("AuthB")
    );
    let before = proxy.metrics().await;
    assert_eq!(before.item_hits("AuthB"), 1.0);

    let a_only = client(&proxy, A_ONLY.0, A_ONLY.1);
    for _ in 0..2 {
        let (code, msg) = get(&a_only, "AuthB").await.unwrap_err();
        assert_eq!(code, "AccessDeniedException");
        assert_eq!(
            msg,
            "User: AKIDAONLY is not authorized to perform: dynamodb:GetItem on resource: table/AuthB"
        );
    }
    // By ARN too.
    let arn = a_only
        .get_item()
        .table_name("arn:aws:dynamodb:us-east-1:000000000000:table/AuthB")
        .key("pk", s("x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        arn.into_service_error().code(),
        Some("AccessDeniedException")
    );
    // PartiQL on B.
    let pq = a_only
        .execute_statement()
        .statement("SELECT * FROM \"AuthB\" WHERE pk = 'x'")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        pq.into_service_error().code(),
        Some("AccessDeniedException")
    );

    let after = proxy.metrics().await;
    assert_eq!(
        after.item_hits("AuthB"),
        1.0,
        "no hit served to the refused key"
    );
    assert_eq!(after.upstream("GetItem"), before.upstream("GetItem"));
    assert_eq!(after.upstream("ExecuteStatement"), 0.0);
    assert_eq!(
        after.sum("ddbcache_errors_total", &[("type", "access_denied")]),
        4.0
    );

    // Its own table works, from the cache on the second read.
    assert_eq!(
        get(&a_only, "AuthA").await.unwrap().as_deref(),
        Some("AuthA")
    );
    assert_eq!(
        get(&a_only, "AuthA").await.unwrap().as_deref(),
        Some("AuthA")
    );
    assert_eq!(proxy.metrics().await.item_hits("AuthA"), 1.0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn multi_table_requests_need_every_table() {
    let proxy = start().await;
    let admin = client(&proxy, ADMIN.0, ADMIN.1);
    tables(&admin).await;
    let a_only = client(&proxy, A_ONLY.0, A_ONLY.1);
    let keys = || {
        KeysAndAttributes::builder()
            .keys([("pk".to_string(), s("x"))].into())
            .build()
            .unwrap()
    };

    let e = a_only
        .batch_get_item()
        .request_items("AuthA", keys())
        .request_items("AuthB", keys())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(e.code(), Some("AccessDeniedException"));
    assert!(e.message().unwrap().ends_with("table/AuthB"), "{e:?}");
    let ok = a_only
        .batch_get_item()
        .request_items("AuthA", keys())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.responses.unwrap()["AuthA"].len(), 1);

    let put = |table: &str, pk: &str| {
        TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(table)
                    .set_item(Some(item(&[("pk", pk)])))
                    .build()
                    .unwrap(),
            )
            .build()
    };
    let e = a_only
        .transact_write_items()
        .transact_items(put("AuthA", "new"))
        .transact_items(put("AuthB", "new"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(e.code(), Some("AccessDeniedException"));
    // Nothing was written, to either table.
    for t in ["AuthA", "AuthB"] {
        let got = admin
            .get_item()
            .table_name(t)
            .key("pk", s("new"))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        assert!(got.item.is_none(), "{t}");
    }
    assert_eq!(proxy.metrics().await.upstream("TransactWriteItems"), 0.0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn operation_allow_list() {
    let proxy = start().await;
    let admin = client(&proxy, ADMIN.0, ADMIN.1);
    tables(&admin).await;
    let reader = client(&proxy, READER.0, READER.1);
    assert_eq!(
        get(&reader, "AuthB").await.unwrap().as_deref(),
        Some("AuthB")
    );
    reader
        .describe_table()
        .table_name("AuthA")
        .send()
        .await
        .unwrap();
    let e = reader
        .put_item()
        .table_name("AuthA")
        .set_item(Some(item(&[("pk", "y")])))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(e.code(), Some("AccessDeniedException"));
    assert_eq!(
        e.message(),
        Some(
            "User: AKIDREADER is not authorized to perform: dynamodb:PutItem on resource: table/AuthA"
        )
    );
    let e = reader
        .list_tables()
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(e.code(), Some("AccessDeniedException"));
    assert_eq!(
        admin
            .list_tables()
            .send()
            .await
            .unwrap()
            .table_names()
            .len(),
        2
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn non_loopback_listen_needs_auth_or_the_opt_out() {
    let mut config = common::test_config(ddbcache::config::UpstreamTarget::Embedded);
    config.listen = "0.0.0.0:0".parse().unwrap();
    let e = ddbcache::server::start(config.clone())
        .await
        .err()
        .expect("must refuse");
    let msg = e.to_string();
    assert!(msg.contains("--allow-unauthenticated"), "{msg}");
    assert!(
        msg.starts_with("invalid configuration: listen: 0.0.0.0:0 is not a loopback address"),
        "{msg}"
    );

    config.allow_unauthenticated = true;
    let running = ddbcache::server::start(config.clone()).await.unwrap();
    running.shutdown().await;

    config.allow_unauthenticated = false;
    config.auth.enabled = true;
    config.auth.keys = vec![key(ADMIN, &["*"], &["*"])];
    let running = ddbcache::server::start(config).await.unwrap();
    running.shutdown().await;

    // The binary exits with 2, naming the flag.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ddbcache"))
        .args(["--listen", "0.0.0.0:0", "--admin-listen", "127.0.0.1:0"])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--allow-unauthenticated"), "{stderr}");
}

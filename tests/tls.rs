//! TLS with a self-signed certificate generated per test (rcgen): the client listener over
//! HTTPS (a rustls client that trusts the certificate gets answers and cache hits; a plain-HTTP
//! client and an untrusting TLS client are refused, and the proxy keeps serving), an `https://`
//! upstream (a TLS terminator in front of dynoxide) trusted through `upstream.ca_file` and
//! refused without it, and unusable PEM files stopping the start with a message naming the key.

mod common;

use bytes::Bytes;
use common::*;
use ddbcache::config::UpstreamTarget;
use http_body_util::{BodyExt, Full};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A self-signed certificate for `localhost` and 127.0.0.1, written as PEM files.
struct Cert {
    _dir: tempfile::TempDir,
    cert_file: PathBuf,
    key_file: PathBuf,
    der: CertificateDer<'static>,
}

fn self_signed() -> Cert {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_file = dir.path().join("cert.pem");
    let key_file = dir.path().join("key.pem");
    std::fs::write(&cert_file, ck.cert.pem()).unwrap();
    std::fs::write(&key_file, ck.signing_key.serialize_pem()).unwrap();
    Cert {
        _dir: dir,
        cert_file,
        key_file,
        der: ck.cert.der().clone(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn connector(trusted: Option<&CertificateDer<'static>>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(c) = trusted {
        roots.add(c.clone()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// One DynamoDB request over a fresh TLS connection: (status, headers, body).
async fn tls_ddb(
    addr: SocketAddr,
    trusted: &CertificateDer<'static>,
    op: &str,
    body: serde_json::Value,
) -> Result<(u16, http::HeaderMap, Bytes), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let tls = connector(Some(trusted))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = http::Request::post("/")
        .header("host", "localhost")
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amz-target", format!("DynamoDB_20120810.{op}"))
        .header("x-amz-date", FAKE_AMZ_DATE)
        .header("authorization", FAKE_AUTHORIZATION)
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Ok((status, headers, body))
}

async fn start_tls_proxy(cert: &Cert) -> TestProxy {
    TestProxy::start_with(UpstreamKind::Embedded, |c| {
        c.tls.cert_file = Some(cert.cert_file.clone());
        c.tls.key_file = Some(cert.key_file.clone());
    })
    .await
}

#[tokio::test]
async fn client_listener_serves_https_with_cache_hits() {
    let cert = self_signed();
    let proxy = start_tls_proxy(&cert).await;
    let create = json!({
        "TableName": "tls",
        "KeySchema": [{ "AttributeName": "pk", "KeyType": "HASH" }],
        "AttributeDefinitions": [{ "AttributeName": "pk", "AttributeType": "S" }],
        "BillingMode": "PAY_PER_REQUEST"
    });
    let (status, _, body) = tls_ddb(proxy.addr, &cert.der, "CreateTable", create)
        .await
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let put = json!({ "TableName": "tls", "Item": { "pk": { "S": "a" }, "v": { "S": "1" } } });
    let (status, _, _) = tls_ddb(proxy.addr, &cert.der, "PutItem", put)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let get = json!({ "TableName": "tls", "Key": { "pk": { "S": "a" } } });
    for _ in 0..2 {
        let (status, headers, body) = tls_ddb(proxy.addr, &cert.der, "GetItem", get.clone())
            .await
            .unwrap();
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["Item"]["v"]["S"], "1");
        let crc: u32 = headers["x-amz-crc32"].to_str().unwrap().parse().unwrap();
        assert_eq!(crc, crc32fast::hash(&body));
    }
    let m = proxy.metrics().await;
    assert_eq!(m.item_hits("tls"), 1.0);
    assert_eq!(m.item_misses("tls"), 1.0);
}

#[tokio::test]
async fn plain_http_and_untrusting_clients_are_refused_and_the_proxy_keeps_serving() {
    let cert = self_signed();
    let proxy = start_tls_proxy(&cert).await;

    // Plain HTTP to the TLS port: no HTTP answer.
    let mut conn = RawConn::connect(proxy.addr).await;
    let plain = conn
        .request(
            "POST",
            "/",
            &[("X-Amz-Target", "DynamoDB_20120810.ListTables")],
            b"{}",
        )
        .await;
    assert!(
        plain.is_err() || plain.as_ref().is_ok_and(|r| r.status >= 400),
        "plain HTTP got {plain:?}"
    );

    // A TLS client that does not trust the certificate fails the handshake.
    let tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let refused = connector(None)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await;
    assert!(
        refused.is_err(),
        "handshake without trusting the certificate"
    );

    let (status, _, body) = tls_ddb(proxy.addr, &cert.der, "ListTables", json!({}))
        .await
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(http_get(proxy.admin_addr, "/healthz").await.status, 200);
}

/// A TLS terminator on loopback in front of `upstream`, with `cert`.
async fn tls_front(cert: &Cert, upstream: SocketAddr) -> SocketAddr {
    let certs = vec![cert.der.clone()];
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&cert.key_file).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut server) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
            });
        }
    });
    addr
}

use rustls::pki_types::pem::PemObject;

async fn https_upstream_proxy(trust: bool) -> (TestProxy, Dynoxide, Cert) {
    let cert = self_signed();
    let dynoxide = Dynoxide::start().await;
    let front = tls_front(&cert, dynoxide.addr).await;
    let ca = cert.cert_file.clone();
    let proxy = TestProxy::start_over_url(
        format!("https://localhost:{}", front.port()),
        |c| {
            if trust {
                c.upstream.ca_file = Some(ca);
            }
        },
        None,
    )
    .await;
    (proxy, dynoxide, cert)
}

#[tokio::test]
async fn https_upstream_is_trusted_through_ca_file() {
    let (proxy, _dynoxide, _cert) = https_upstream_proxy(true).await;
    let client = proxy.client();
    create_simple_table(&client, "tls_up").await;
    client
        .put_item()
        .table_name("tls_up")
        .set_item(Some(item(&[("pk", "a"), ("v", "1")])))
        .send()
        .await
        .unwrap();
    let out = client
        .get_item()
        .table_name("tls_up")
        .key("pk", s("a"))
        .send()
        .await
        .unwrap();
    assert_eq!(attr(out.item().unwrap(), "v").as_deref(), Some("1"));
}

#[tokio::test]
async fn https_upstream_with_an_unknown_ca_is_a_503_naming_the_certificate() {
    let (proxy, _dynoxide, _cert) = https_upstream_proxy(false).await;
    let resp = RawConn::connect(proxy.addr)
        .await
        .ddb_json("ListTables", &json!({}))
        .await;
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert!(
        resp.text().to_lowercase().contains("certificate"),
        "{}",
        resp.text()
    );
}

#[tokio::test]
async fn unusable_pem_files_stop_the_start_naming_the_key() {
    let cert = self_signed();
    let empty = tempfile::NamedTempFile::new().unwrap();
    let start = |cert_file: PathBuf, key_file: PathBuf| {
        let mut c = test_config(UpstreamTarget::Embedded);
        c.tls.cert_file = Some(cert_file);
        c.tls.key_file = Some(key_file);
        async move {
            ddbcache::server::start(c)
                .await
                .err()
                .map(|e| e.to_string())
        }
    };
    let e = start(empty.path().into(), cert.key_file.clone())
        .await
        .unwrap();
    assert!(e.contains("tls.cert_file"), "{e}");
    let e = start(cert.cert_file.clone(), empty.path().into())
        .await
        .unwrap();
    assert!(e.contains("tls.key_file"), "{e}");
    let e = start(cert.cert_file.clone(), "/nonexistent/key.pem".into())
        .await
        .unwrap();
    assert!(e.contains("tls.key_file"), "{e}");

    let mut c = test_config(UpstreamTarget::Url("https://localhost:1".into()));
    c.upstream.ca_file = Some(empty.path().into());
    let e = ddbcache::server::start(c).await.err().unwrap().to_string();
    assert!(e.contains("upstream.ca_file"), "{e}");
}

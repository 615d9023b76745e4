//! Helper servers for side-by-side runs. `backend`: dynoxide (in-memory DynamoDB) over HTTP, the
//! upstream the proxy is compared with. `static`: a minimal hyper HTTP/1.1 server that answers
//! every request with the same bytes, doing no work: the ceiling of what any server could reach
//! on this machine with the same response size.
//!
//! Both run until SIGINT/SIGTERM, or `--exit-after`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::workload::padding;

pub fn check_listen(addr: SocketAddr, allow_remote: bool) -> Result<(), String> {
    if addr.ip().is_loopback() || allow_remote {
        Ok(())
    } else {
        Err(format!(
            "{addr} is not a loopback address; pass --allow-remote to listen on it"
        ))
    }
}

/// Resolves on SIGINT, SIGTERM or after `exit_after`.
pub async fn shutdown_signal(exit_after: Option<Duration>) {
    let limit = async {
        match exit_after {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
        () = limit => {}
    }
}

/// dynoxide on `listen`, in memory.
pub async fn backend(listen: SocketAddr, exit_after: Option<Duration>) -> Result<(), String> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let db = dynoxide::Database::memory().map_err(|e| format!("dynoxide: {e}"))?;
    eprintln!("dynoxide backend listening on http://{listen}");
    dynoxide::server::serve_with_shutdown(listener, db, shutdown_signal(exit_after)).await
}

/// A GetItem answer whose item (shaped like the `get` workload's) has about `item_bytes`.
pub fn synthetic_get_item_body(item_bytes: usize) -> Bytes {
    let pad = padding(item_bytes.saturating_sub(2 + 11 + 1 + 2 + 7));
    Bytes::from(format!(
        r#"{{"Item":{{"n":{{"N":"0"}},"payload":{{"S":"{pad}"}},"pk":{{"S":"k0000000000"}}}}}}"#
    ))
}

/// Answers every request on `listen` with `body`.
pub async fn static_server(
    listen: SocketAddr,
    body: Bytes,
    exit_after: Option<Duration>,
) -> Result<(), String> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let crc = HeaderValue::from(crc32fast::hash(&body));
    eprintln!(
        "static server listening on http://{listen}, answering {} bytes",
        body.len()
    );
    let serve = async {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    eprintln!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let (body, crc) = (body.clone(), crc.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let (body, crc) = (body.clone(), crc.clone());
                    async move {
                        // Read the request so the connection stays reusable.
                        let _ = request.into_body().collect().await;
                        Ok::<_, Infallible>(static_response(body, crc))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    };
    tokio::select! {
        () = serve => Ok(()),
        () = shutdown_signal(exit_after) => Ok(()),
    }
}

fn static_response(body: Bytes, crc: HeaderValue) -> Response<Full<Bytes>> {
    static REQUEST_ID: HeaderName = HeaderName::from_static("x-amzn-requestid");
    static CRC32: HeaderName = HeaderName::from_static("x-amz-crc32");
    let mut response = Response::new(Full::new(body));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    headers.insert(
        &REQUEST_ID,
        HeaderValue::from_static("STATICSTATICSTATICSTATICSTATICSTATICSTATICSTATICSTAT"),
    );
    headers.insert(&CRC32, crc);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::NamedUrl;
    use crate::endpoint::{Endpoint, Session};
    use crate::workload::Op;

    #[test]
    fn synthetic_body_is_a_get_item_answer() {
        let body = synthetic_get_item_body(1024);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["Item"]["pk"]["S"], "k0000000000");
        assert!((1000..1100).contains(&body.len()), "{}", body.len());
    }

    #[tokio::test]
    async fn static_server_answers_every_request_on_one_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let body = synthetic_get_item_body(100);
        let server = tokio::spawn(static_server(
            addr,
            body.clone(),
            Some(Duration::from_secs(30)),
        ));
        let endpoint = Endpoint::resolve(
            &NamedUrl {
                name: "static".into(),
                url: format!("http://{addr}"),
            },
            false,
        )
        .await
        .unwrap();
        let mut session = Session::new(endpoint, Duration::from_secs(5));
        let mut reply = None;
        for _ in 0..100 {
            match session.call(Op::GetItem, Bytes::from_static(b"{}")).await {
                Ok(r) => {
                    reply = Some(r);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        let reply = reply.expect("the server came up");
        assert_eq!(reply.body, body);
        for _ in 0..10 {
            let r = session
                .call(Op::Query, Bytes::from_static(b"{}"))
                .await
                .unwrap();
            assert_eq!(r.status, 200);
        }
        server.abort();
    }
}

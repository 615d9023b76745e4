//! `ddbcache healthcheck`: one `GET` of the admin listener's `/healthz`, for container health
//! checks in images without curl (the Dockerfile's `HEALTHCHECK` runs it).
//!
//! By default the URL is built from the same configuration the server loads (`--config`,
//! `DDBCACHE_*` env vars, flags), so a container that moves the admin listener with
//! `DDBCACHE_ADMIN_LISTEN` is probed where it listens. An unspecified bind address (`0.0.0.0`,
//! `[::]`) is probed on the matching loopback address. Only plain `http://` is supported, which
//! is all the admin listener speaks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::Error;

/// The path probed by default.
pub const HEALTHZ_PATH: &str = "/healthz";

/// The default time allowed for the whole probe (connect, request, response head).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// The `healthcheck` subcommand's arguments.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct HealthcheckArgs {
    /// URL to GET [default: /healthz on the configured admin_listen; 0.0.0.0 and [::] are probed on loopback]
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,

    /// Time allowed for the whole probe
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = crate::config::parse_duration)]
    pub timeout: Duration,
}

/// `http://ADDR/healthz` for an admin listener bound to `admin_listen`; unspecified addresses
/// become loopback, since a wildcard cannot be connected to.
pub fn default_url(admin_listen: SocketAddr) -> String {
    let ip = match admin_listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!(
        "http://{}{HEALTHZ_PATH}",
        SocketAddr::new(ip, admin_listen.port())
    )
}

/// GETs `url` and succeeds only on `200 OK`, all within `timeout`. Errors say what failed:
/// a bad URL, the connection, the timeout or the status.
pub async fn check(url: &str, timeout: Duration) -> Result<(), Error> {
    let uri: Uri = url
        .parse()
        .map_err(|e| Error::Config(format!("healthcheck URL {url:?}: {e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(Error::Config(format!(
            "healthcheck URL {url:?}: only http:// is supported"
        )));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| Error::Config(format!("healthcheck URL {url:?} has no host")))?
        .clone();
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let target = format!("GET {url}");

    let probe = async {
        let stream = TcpStream::connect((host, port))
            .await
            .map_err(|e| Error::io(format!("{target}: cannot connect"), e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Error::io(target.clone(), std::io::Error::other(e)))?;
        tokio::spawn(conn);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let request = Request::get(path)
            .header(header::HOST, authority.as_str())
            .body(Empty::<Bytes>::new())
            .map_err(|e| Error::Config(format!("healthcheck URL {url:?}: {e}")))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| Error::io(target.clone(), std::io::Error::other(e)))?;
        Ok::<_, Error>(response.status())
    };
    let status = tokio::time::timeout(timeout, probe).await.map_err(|_| {
        Error::io(
            target.clone(),
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {timeout:?}"),
            ),
        )
    })??;
    if status == StatusCode::OK {
        Ok(())
    } else {
        Err(Error::io(
            target,
            std::io::Error::other(format!("answered {status}, expected 200 OK")),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_url_probes_loopback_for_wildcard_binds() {
        assert_eq!(
            default_url("0.0.0.0:9464".parse().unwrap()),
            "http://127.0.0.1:9464/healthz"
        );
        assert_eq!(
            default_url("[::]:9000".parse().unwrap()),
            "http://[::1]:9000/healthz"
        );
        assert_eq!(
            default_url("10.1.2.3:9464".parse().unwrap()),
            "http://10.1.2.3:9464/healthz"
        );
    }

    #[tokio::test]
    async fn rejects_urls_it_cannot_probe() {
        for url in ["https://127.0.0.1:9464/healthz", "not a url", "/healthz"] {
            let err = check(url, DEFAULT_TIMEOUT).await.unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{url}: {err}");
        }
    }
}

//! The default upstream: dynoxide-rs, a DynamoDB-compatible engine on SQLite, run inside this
//! process (in memory, or in `<data_dir>/ddbcache.sqlite`). Its own HTTP front end listens on
//! an ephemeral loopback port and the proxy talks to it like any other endpoint, so the embedded
//! engine answers exactly as the `dynoxide` server would.

use super::http::HttpUpstream;
use super::{Upstream, UpstreamFuture, UpstreamRequest};
use crate::config::UpstreamConfig;
use crate::error::Error;
use tokio::sync::oneshot;

pub struct EmbeddedUpstream {
    http: HttpUpstream,
    location: String,
    /// Dropping this stops the engine's listener.
    _stop: oneshot::Sender<()>,
}

impl EmbeddedUpstream {
    pub async fn start(config: &UpstreamConfig) -> Result<Self, Error> {
        let (db, location) = match &config.data_dir {
            None => (
                dynoxide::Database::memory()
                    .map_err(|e| Error::Internal(format!("starting the embedded engine: {e}")))?,
                "memory".to_string(),
            ),
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    Error::io(format!("creating upstream.data_dir {}", dir.display()), e)
                })?;
                let path = dir.join("ddbcache.sqlite");
                let path_text = path.to_string_lossy().into_owned();
                let db = dynoxide::Database::new(&path_text).map_err(|e| {
                    Error::Internal(format!("opening the embedded engine at {path_text}: {e}"))
                })?;
                (db, path_text)
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::io("binding the embedded engine's loopback port", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("reading the embedded engine's port", e))?;
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(e) = dynoxide::server::serve_with_shutdown(listener, db, shutdown).await {
                tracing::error!(error = %e, "embedded engine stopped");
            }
        });
        let http = HttpUpstream::new(&format!("http://{addr}"), config, None)?;
        Ok(EmbeddedUpstream {
            http,
            location,
            _stop: stop,
        })
    }
}

impl Upstream for EmbeddedUpstream {
    fn send(&self, request: UpstreamRequest) -> UpstreamFuture<'_> {
        self.http.send(request)
    }

    fn describe(&self) -> String {
        format!(
            "embedded dynoxide ({}) via {}",
            self.location,
            self.http.describe()
        )
    }
}

//! Client authentication and least privilege: who may ask, and for what.
//!
//! - [`sigv4`]: verifies a request's SigV4 signature against the client keys (pure, fuzzable).
//! - [`policy`]: lists the tables a request touches and checks them, and the operation, against
//!   the key's allow-lists.
//! - [`keys`]: the client keys (secrets zeroized, redacted, compared in constant time) and the
//!   [`KeyStore`] built from the `[auth]` configuration.
//!
//! [`Auth`] bundles what the server needs: the key store and the clock-skew window.

pub mod keys;
pub mod policy;
pub mod sigv4;

pub use keys::{ClientKey, KeyStore, Secret};
pub use policy::{Policy, RequestTables, authorize, request_tables};
pub use sigv4::verify;

use crate::config::AuthConfig;
use crate::error::Error;
use http::request::Parts;
use std::time::{Duration, SystemTime};

/// The server's view of `[auth]` when it is enabled.
#[derive(Debug)]
pub struct Auth {
    keys: KeyStore,
    max_skew: Duration,
}

impl Auth {
    /// None when auth is disabled; else the key store (the keys file is read now).
    pub fn from_config(config: &AuthConfig) -> Result<Option<Auth>, Error> {
        if !config.enabled {
            return Ok(None);
        }
        Ok(Some(Auth {
            keys: KeyStore::from_config(config)?,
            max_skew: config.max_clock_skew,
        }))
    }

    /// Verifies the signature of a request whose body has been read.
    pub fn verify(&self, parts: &Parts, body: &[u8], now: SystemTime) -> Result<&ClientKey, Error> {
        let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        sigv4::verify(
            parts.method.as_str(),
            path_and_query,
            &parts.headers,
            body,
            now,
            &self.keys,
            self.max_skew,
        )
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }
}

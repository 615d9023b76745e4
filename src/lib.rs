//! ddbcache: a DAX-style read-through caching proxy for Amazon DynamoDB.
//!
//! # Layout
//! A request reads top to bottom through these modules:
//! - [`server`]: client and admin listeners, body limit, graceful shutdown.
//! - [`protocol`]: `X-Amz-Target` -> [`protocol::Operation`], DynamoDB error JSON, response headers.
//! - [`auth`]: SigV4 verification of clients and per-key allow-lists of tables and operations,
//!   checked before any cache lookup.
//! - [`plan`]: operation + body -> [`plan::Plan`] (read, write, table change, pass-through); pure.
//! - [`cache`]: canonical keys, the moka tier, generation counters that make invalidation race-free,
//!   the remote tier shared by a fleet (`cache::remote`) and its invalidation fan-out.
//! - [`schema`]: table key schemas from DescribeTable, dropped on table changes.
//! - [`limits`]: overload protection: bounded upstream concurrency and queue, ThrottlingException.
//! - [`upstream`]: where misses and writes go (embedded dynoxide, any HTTP endpoint, AWS with SigV4).
//! - [`tls`]: rustls set-up from PEM files, for the client listener and https upstreams.
//! - [`metrics`]: Prometheus counters and histograms, registered on a registry we own.
//! - [`config`]: the configuration tree and its loading.
//! - [`error`]: the one error type.
//! - [`healthcheck`]: the `ddbcache healthcheck` probe of `/healthz` (container health checks).

pub mod auth;
pub mod cache;
pub mod config;
pub mod error;
pub mod healthcheck;
pub mod limits;
pub mod metrics;
pub mod plan;
pub mod protocol;
pub mod schema;
pub mod server;
pub mod tls;
pub mod upstream;

pub use config::Config;
pub use error::Error;
pub use server::{Running, start};

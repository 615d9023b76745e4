//! Configuration: the [`Config`] tree and its loading.
//!
//! This module owns the configuration contract of the crate (the types below, which the rest of
//! the crate codes against), the command line ([`Cli`]), and how a `Config` is built from layers,
//! each overriding the one before:
//!
//! 1. built-in defaults ([`Config::default`]),
//! 2. a TOML file (`--config PATH`, or env `DDBCACHE_CONFIG`),
//! 3. `DDBCACHE_*` environment variables,
//! 4. command-line flags.
//!
//! Within one layer the general `ttl` knob is applied before `item_ttl`/`query_ttl`/
//! `negative_ttl`, so the specific ones win. The result is checked by [`Config::validate`];
//! errors name the offending key and where its value came from. `docs/config.md` is the
//! reference for every knob.
//!
//! The environment is injected ([`load_with_env`]), so nothing here reads or writes global
//! state except [`load`], which reads the process environment once.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Deserializer};

use crate::auth::keys::{Secret, check_key_config, parse_env_keys};

/// Where requests that the cache cannot answer go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamTarget {
    /// dynoxide-rs in process (in memory, or SQLite under `data_dir`).
    Embedded,
    /// Real DynamoDB in `region`, credentials from the standard AWS chain; requests re-signed.
    Aws,
    /// Any DynamoDB-compatible endpoint, `http://` or `https://`.
    Url(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub max_body_bytes: usize,
    pub upstream: UpstreamConfig,
    pub cache: CacheConfig,
    pub log: LogConfig,
    pub tls: TlsConfig,
    pub limits: LimitsConfig,
    pub auth: AuthConfig,
    pub remote: RemoteConfig,
    /// Lets the proxy listen on a non-loopback address with auth disabled.
    pub allow_unauthenticated: bool,
}

/// Which remote tier sits between the in-process tier and the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteKind {
    /// No remote tier (the default): local tier, then upstream.
    None,
    /// A Redis server shared by a fleet of proxies (docs/deployment.md "Fleets").
    Redis,
}

/// `[remote]`: the shared tier and the invalidation fan-out between proxies.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteConfig {
    pub kind: RemoteKind,
    /// `redis://[user:password@]host:port[/db]`.
    pub redis_url: String,
    /// Prepended to every Redis key and to the pub/sub channel: fleets sharing one Redis (or
    /// other users of it) keep apart by prefix.
    pub prefix: String,
    /// Longest wait for one remote operation before falling back to the upstream.
    pub timeout: Duration,
    /// Consecutive failures that open the circuit breaker (the tier is skipped while open).
    pub breaker_failures: u32,
    /// How long the breaker stays open before one request probes the tier again.
    pub breaker_backoff: Duration,
    /// Publish this proxy's invalidations and apply the other proxies' ones.
    pub fanout: bool,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            kind: RemoteKind::None,
            redis_url: "redis://127.0.0.1:6379".into(),
            prefix: "ddbcache:".into(),
            timeout: Duration::from_millis(50),
            breaker_failures: 5,
            breaker_backoff: Duration::from_secs(1),
            fanout: true,
        }
    }
}

impl fmt::Display for RemoteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RemoteKind::None => "none",
            RemoteKind::Redis => "redis",
        })
    }
}

impl FromStr for RemoteKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(RemoteKind::None),
            "redis" => Ok(RemoteKind::Redis),
            _ => Err(format!("{s:?} is not \"none\" or \"redis\"")),
        }
    }
}

/// `[auth]`: SigV4 verification of client requests and per-key allow-lists (docs/security.md).
#[derive(Debug, Clone, PartialEq)]
pub struct AuthConfig {
    pub enabled: bool,
    /// A TOML file of `[[keys]]`, read at start.
    pub keys_file: Option<PathBuf>,
    /// Inline `[[auth.keys]]`, or those of `DDBCACHE_AUTH_KEYS` (which replace them).
    pub keys: Vec<KeyConfig>,
    /// How far a request's date may be from the proxy's clock, either way.
    pub max_clock_skew: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            enabled: false,
            keys_file: None,
            keys: Vec::new(),
            max_clock_skew: crate::auth::sigv4::DEFAULT_MAX_SKEW,
        }
    }
}

/// One client key as configured. `Debug` redacts the secret.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// Table names or globs (`*`, `?`) this key may touch.
    pub tables: Vec<String>,
    /// Operation names or globs this key may call.
    pub operations: Vec<String>,
}

/// TLS on the client listener: both files set, or neither (plain HTTP).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
}

impl TlsConfig {
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some()
    }
}

/// Overload protection: how many requests may be at the upstream at once, and how many may
/// wait for a slot. Requests beyond that get `ThrottlingException` at once; cache hits never
/// take a slot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitsConfig {
    pub max_upstream_requests: usize,
    pub max_queued_requests: usize,
    /// How long a request may wait for a slot before it is throttled.
    pub queue_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    pub target: UpstreamTarget,
    /// Region for `aws` (None: from the AWS chain).
    pub region: Option<String>,
    /// Embedded only: SQLite directory; None means in memory.
    pub data_dir: Option<PathBuf>,
    /// `aws` only: endpoint override (VPC endpoints, FIPS, tests).
    pub endpoint: Option<String>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Extra PEM CA certificates trusted for `https://` upstreams (besides the webpki roots).
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    pub capacity_bytes: u64,
    pub ttl: TtlConfig,
    /// How long past its TTL an entry may still answer a read when the upstream fails (no
    /// answer, or a 5xx). Zero (the default) turns serve-stale off.
    pub serve_stale: Duration,
    /// Per-table TTL overrides; a field left None falls back to `ttl`.
    pub tables: BTreeMap<String, TableTtlConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TtlConfig {
    pub item: Duration,
    pub query: Duration,
    pub negative: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TableTtlConfig {
    pub item: Option<Duration>,
    pub query: Option<Duration>,
    pub negative: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub format: LogFormat,
    /// An EnvFilter directive, e.g. "info" or "ddbcache=debug".
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8000".parse().unwrap(),
            admin_listen: "127.0.0.1:9464".parse().unwrap(),
            max_body_bytes: 16 * 1024 * 1024,
            upstream: UpstreamConfig {
                target: UpstreamTarget::Embedded,
                region: None,
                data_dir: None,
                endpoint: None,
                connect_timeout: Duration::from_secs(2),
                request_timeout: Duration::from_secs(30),
                ca_file: None,
            },
            cache: CacheConfig {
                capacity_bytes: 256 * 1024 * 1024,
                ttl: TtlConfig {
                    item: Duration::from_secs(300),
                    query: Duration::from_secs(300),
                    negative: Duration::from_secs(300),
                },
                tables: BTreeMap::new(),
                serve_stale: Duration::ZERO,
            },
            log: LogConfig {
                format: LogFormat::Text,
                level: "info".into(),
            },
            tls: TlsConfig::default(),
            limits: LimitsConfig {
                max_upstream_requests: 256,
                max_queued_requests: 1024,
                queue_timeout: Duration::from_secs(1),
            },
            auth: AuthConfig::default(),
            remote: RemoteConfig::default(),
            allow_unauthenticated: false,
        }
    }
}

impl TtlConfig {
    /// The TTLs in force for `table`.
    pub fn for_table(&self, tables: &BTreeMap<String, TableTtlConfig>, table: &str) -> TtlConfig {
        match tables.get(table) {
            None => *self,
            Some(t) => TtlConfig {
                item: t.item.unwrap_or(self.item),
                query: t.query.unwrap_or(self.query),
                negative: t.negative.unwrap_or(self.negative),
            },
        }
    }
}

impl fmt::Display for UpstreamTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamTarget::Embedded => f.write_str("embedded"),
            UpstreamTarget::Aws => f.write_str("aws"),
            UpstreamTarget::Url(url) => f.write_str(url),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            t if t.eq_ignore_ascii_case("text") => Ok(LogFormat::Text),
            t if t.eq_ignore_ascii_case("json") => Ok(LogFormat::Json),
            _ => Err(format!("{s:?} is not \"text\" or \"json\"")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

/// Largest accepted `max_body_bytes` (64 MiB; DynamoDB's own request limit is 16 MB).
pub const MAX_BODY_BYTES_LIMIT: usize = 64 * 1024 * 1024;

/// Largest accepted TTL (365 days); longer ones risk overflowing `Instant` arithmetic.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a configuration could not be built. `Display` gives a one-line message naming the key
/// (and the file, env var or flag its value came from).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {message}", path.display())]
    Read { path: PathBuf, message: String },
    /// The config file is not valid TOML, has an unknown key, or a value of the wrong type.
    #[error("{location}: {message}")]
    Parse {
        /// `path:line:column` (or `<toml>:line:column` for [`Config::from_toml_str`]).
        location: String,
        message: String,
    },
    /// A value is out of range or inconsistent with another, or an env var does not parse.
    #[error("{key}{}: {message}", origin.as_ref().map(|o| format!(" ({o})")).unwrap_or_default())]
    Invalid {
        /// The TOML key, e.g. `upstream.target` or `cache.tables.Orders.item`.
        key: String,
        /// Where the value came from, e.g. `set in /etc/ddbcache.toml` or `set by --upstream`;
        /// None for a value that was not loaded by [`load`] (or is the default).
        origin: Option<String>,
        message: String,
    },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            origin: None,
            message: message.into(),
        }
    }

    /// The TOML key this error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------

/// The `ddbcache` command line. Every flag also has a `DDBCACHE_*` env var; flags win over env
/// vars, which win over the `--config` file, which wins over the built-in defaults.
#[derive(Debug, Clone, Default, PartialEq, Parser)]
#[command(
    name = "ddbcache",
    version,
    about = "A DAX-style read-through caching proxy for Amazon DynamoDB",
    after_help = "Settings are layered: built-in defaults < TOML file (--config) < DDBCACHE_* \
                  environment variables < flags. Durations use units (\"250ms\", \"5m\"); byte \
                  sizes accept a plain number or a unit (\"64KiB\", \"256MiB\", \"1GB\"). \
                  See docs/config.md for every setting."
)]
pub struct Cli {
    /// Run a subcommand instead of the server (flags before it still configure it).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// TOML config file to load (see config/ddbcache.toml) [env: DDBCACHE_CONFIG]
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Address for the DynamoDB API clients connect to [env: DDBCACHE_LISTEN] [default: 127.0.0.1:8000]
    #[arg(long, value_name = "ADDR", value_parser = parse_socket_addr)]
    pub listen: Option<SocketAddr>,

    /// Address for the admin listener (Prometheus /metrics) [env: DDBCACHE_ADMIN_LISTEN] [default: 127.0.0.1:9464]
    #[arg(long, value_name = "ADDR", value_parser = parse_socket_addr)]
    pub admin_listen: Option<SocketAddr>,

    /// Largest request body accepted, up to 64MiB [env: DDBCACHE_MAX_BODY_BYTES] [default: 16MiB]
    #[arg(long, value_name = "BYTES", value_parser = parse_byte_size)]
    pub max_body_bytes: Option<u64>,

    /// Where cache misses and writes go: embedded, aws, or an http(s):// URL [env: DDBCACHE_UPSTREAM] [default: embedded]
    #[arg(long, value_name = "TARGET", value_parser = parse_upstream_target)]
    pub upstream: Option<UpstreamTarget>,

    /// AWS region (upstream aws only; default: the AWS chain) [env: DDBCACHE_REGION]
    #[arg(long, value_name = "REGION", value_parser = parse_string)]
    pub region: Option<String>,

    /// Directory for the embedded store's SQLite files (upstream embedded only; default: in memory) [env: DDBCACHE_DATA_DIR]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// DynamoDB endpoint override (upstream aws only) [env: DDBCACHE_AWS_ENDPOINT]
    #[arg(long, value_name = "URL", value_parser = parse_string)]
    pub aws_endpoint: Option<String>,

    /// Upstream connect timeout [env: DDBCACHE_CONNECT_TIMEOUT] [default: 2s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub connect_timeout: Option<Duration>,

    /// Upstream request timeout [env: DDBCACHE_REQUEST_TIMEOUT] [default: 30s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub request_timeout: Option<Duration>,

    /// Cache size limit [env: DDBCACHE_CACHE_CAPACITY_BYTES] [default: 256MiB]
    #[arg(long, value_name = "BYTES", value_parser = parse_byte_size)]
    pub cache_capacity_bytes: Option<u64>,

    /// Sets the item, query and negative TTLs at once [env: DDBCACHE_TTL]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub ttl: Option<Duration>,

    /// TTL of cached GetItem/BatchGetItem items; 0s disables [env: DDBCACHE_ITEM_TTL] [default: 5m]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub item_ttl: Option<Duration>,

    /// TTL of cached Query/Scan results; 0s disables [env: DDBCACHE_QUERY_TTL] [default: 5m]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub query_ttl: Option<Duration>,

    /// TTL of cached "item not found" answers; 0s disables [env: DDBCACHE_NEGATIVE_TTL] [default: 5m]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub negative_ttl: Option<Duration>,

    /// Extra PEM CA certificates to trust for an https:// upstream [env: DDBCACHE_UPSTREAM_CA_FILE]
    #[arg(long, value_name = "PATH")]
    pub upstream_ca_file: Option<PathBuf>,

    /// Serve an expired entry for up to this long past its TTL when the upstream fails; 0s (default) disables [env: DDBCACHE_SERVE_STALE]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub serve_stale: Option<Duration>,

    /// PEM certificate chain: serve clients over TLS (needs --tls-key-file) [env: DDBCACHE_TLS_CERT_FILE]
    #[arg(long, value_name = "PATH")]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key for --tls-cert-file [env: DDBCACHE_TLS_KEY_FILE]
    #[arg(long, value_name = "PATH")]
    pub tls_key_file: Option<PathBuf>,

    /// Requests allowed at the upstream at once [env: DDBCACHE_MAX_UPSTREAM_REQUESTS] [default: 256]
    #[arg(long, value_name = "N")]
    pub max_upstream_requests: Option<usize>,

    /// Requests allowed to wait for an upstream slot; beyond, ThrottlingException [env: DDBCACHE_MAX_QUEUED_REQUESTS] [default: 1024]
    #[arg(long, value_name = "N")]
    pub max_queued_requests: Option<usize>,

    /// Longest wait for an upstream slot before ThrottlingException [env: DDBCACHE_QUEUE_TIMEOUT] [default: 1s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub queue_timeout: Option<Duration>,

    /// Log output format: text or json [env: DDBCACHE_LOG_FORMAT] [default: text]
    #[arg(long, value_name = "FORMAT", value_parser = parse_log_format)]
    pub log_format: Option<LogFormat>,

    /// Log filter, a tracing EnvFilter directive such as "info" or "ddbcache=debug" (RUST_LOG, if set, wins) [env: DDBCACHE_LOG_LEVEL] [default: info]
    #[arg(long, value_name = "FILTER", value_parser = parse_string)]
    pub log_level: Option<String>,

    /// Verify each request's SigV4 signature against the client keys and apply their allow-lists; --auth=false turns it off [env: DDBCACHE_AUTH] [default: false]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_bool)]
    pub auth: Option<bool>,

    /// TOML file of client keys ([[keys]] tables) [env: DDBCACHE_AUTH_KEYS_FILE]
    #[arg(long, value_name = "PATH", value_parser = parse_path)]
    pub auth_keys_file: Option<PathBuf>,

    /// How far a request's signing date may be from the proxy's clock [env: DDBCACHE_AUTH_MAX_CLOCK_SKEW] [default: 15m]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub auth_max_clock_skew: Option<Duration>,

    /// Allow listening on a non-loopback address with auth disabled [env: DDBCACHE_ALLOW_UNAUTHENTICATED] [default: false]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_bool)]
    pub allow_unauthenticated: Option<bool>,

    /// Remote tier shared by a fleet of proxies: none or redis [env: DDBCACHE_REMOTE] [default: none]
    #[arg(long, value_name = "KIND", value_parser = parse_remote_kind)]
    pub remote: Option<RemoteKind>,

    /// Redis server of the remote tier: redis://host:port, optionally with user:password@ and /db [env: DDBCACHE_REDIS_URL] [default: redis://127.0.0.1:6379]
    #[arg(long, value_name = "URL", value_parser = parse_string)]
    pub redis_url: Option<String>,

    /// Prefix of every remote key and of the fan-out channel [env: DDBCACHE_REMOTE_PREFIX] [default: ddbcache:]
    #[arg(long, value_name = "PREFIX", value_parser = parse_string)]
    pub remote_prefix: Option<String>,

    /// Longest wait for one remote operation before going upstream [env: DDBCACHE_REMOTE_TIMEOUT] [default: 50ms]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub remote_timeout: Option<Duration>,

    /// Consecutive remote failures that open the circuit breaker [env: DDBCACHE_REMOTE_BREAKER_FAILURES] [default: 5]
    #[arg(long, value_name = "N", value_parser = parse_u32)]
    pub remote_breaker_failures: Option<u32>,

    /// How long an open breaker skips the remote tier before probing it [env: DDBCACHE_REMOTE_BREAKER_BACKOFF] [default: 1s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub remote_breaker_backoff: Option<Duration>,

    /// Publish this proxy's invalidations to the fleet and apply the others' [env: DDBCACHE_REMOTE_FANOUT] [default: true]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_bool)]
    pub remote_fanout: Option<bool>,

    /// Client keys from DDBCACHE_AUTH_KEYS (environment only: secrets do not belong on a command line).
    #[arg(skip)]
    pub auth_keys: Option<Vec<KeyConfig>>,
}

/// Subcommands; without one, `ddbcache` runs the server.
#[derive(Debug, Clone, PartialEq, clap::Subcommand)]
pub enum Command {
    /// GET the admin listener's /healthz: exit 0 on 200 OK, 1 otherwise (for container health checks)
    Healthcheck(crate::healthcheck::HealthcheckArgs),
}

// ---------------------------------------------------------------------------------------------
// Value parsers (shared by flags, env vars and, where it makes sense, the TOML file)
// ---------------------------------------------------------------------------------------------

/// Parses a byte size: a plain integer (bytes), or an integer with a unit: `B`, decimal `KB`
/// `MB` `GB` `TB` (powers of 1000) or binary `KiB` `MiB` `GiB` `TiB` (powers of 1024). Units are
/// case-insensitive and may be separated from the number by spaces: `"256MiB"`, `"1 GB"`.
pub fn parse_byte_size(s: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "{s:?} is not a byte size (expected a whole number of bytes, or one with a unit \
             such as \"64KiB\", \"256MiB\", \"1GB\")"
        )
    };
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    if number.is_empty() {
        return Err(bad());
    }
    let multiplier: u64 = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(bad()),
    };
    let too_big = || format!("{s:?} is too large");
    number
        .parse::<u64>()
        .map_err(|_| too_big())?
        .checked_mul(multiplier)
        .ok_or_else(too_big)
}

/// Parses a humantime duration such as `"250ms"`, `"30s"`, `"5m"`, `"1h 30m"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!("{s:?} is not a duration ({e}; expected e.g. \"250ms\", \"30s\", \"5m\")")
    })
}

fn parse_socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        format!("{s:?} is not a socket address (expected IP:PORT, e.g. \"127.0.0.1:8000\")")
    })
}

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    s.parse()
}

/// Never fails: a target that is neither keyword nor http(s) URL is rejected by
/// [`Config::validate`], so the message names the key and where the value came from.
fn parse_upstream_target(s: &str) -> Result<UpstreamTarget, String> {
    let t = s.trim();
    Ok(if t.eq_ignore_ascii_case("embedded") {
        UpstreamTarget::Embedded
    } else if t.eq_ignore_ascii_case("aws") {
        UpstreamTarget::Aws
    } else {
        UpstreamTarget::Url(t.to_owned())
    })
}

/// `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off` (case-insensitive).
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("{s:?} is not a boolean (true or false)")),
    }
}

fn parse_string(s: &str) -> Result<String, String> {
    Ok(s.trim().to_owned())
}

fn parse_u32(s: &str) -> Result<u32, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number"))
}

fn parse_remote_kind(s: &str) -> Result<RemoteKind, String> {
    s.parse()
}

fn parse_count(s: &str) -> Result<usize, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number"))
}

fn parse_path(s: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(s))
}

// ---------------------------------------------------------------------------------------------
// The file shape
// ---------------------------------------------------------------------------------------------

/// `config/ddbcache.toml` as written: every field optional, unknown keys rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
    max_body_bytes: Option<ByteSize>,
    upstream: FileUpstream,
    cache: FileCache,
    log: FileLog,
    tls: FileTls,
    limits: FileLimits,
    auth: FileAuth,
    remote: FileRemote,
    allow_unauthenticated: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileRemote {
    #[serde(deserialize_with = "de_remote_kind")]
    kind: Option<RemoteKind>,
    redis_url: Option<String>,
    prefix: Option<String>,
    #[serde(with = "humantime_serde")]
    timeout: Option<Duration>,
    breaker_failures: Option<u32>,
    #[serde(with = "humantime_serde")]
    breaker_backoff: Option<Duration>,
    fanout: Option<bool>,
}

fn de_remote_kind<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RemoteKind>, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map(Some).map_err(serde::de::Error::custom)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileTls {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileLimits {
    max_upstream_requests: Option<usize>,
    max_queued_requests: Option<usize>,
    #[serde(with = "humantime_serde")]
    queue_timeout: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileAuth {
    enabled: Option<bool>,
    keys_file: Option<PathBuf>,
    keys: Option<Vec<KeyConfig>>,
    #[serde(with = "humantime_serde")]
    max_clock_skew: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileUpstream {
    #[serde(deserialize_with = "de_upstream_target")]
    target: Option<UpstreamTarget>,
    region: Option<String>,
    data_dir: Option<PathBuf>,
    endpoint: Option<String>,
    #[serde(with = "humantime_serde")]
    connect_timeout: Option<Duration>,
    #[serde(with = "humantime_serde")]
    request_timeout: Option<Duration>,
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileCache {
    capacity_bytes: Option<ByteSize>,
    ttl: FileTtl,
    tables: BTreeMap<String, FileTtl>,
    #[serde(with = "humantime_serde")]
    serve_stale: Option<Duration>,
}

/// Used for both `[cache.ttl]` and `[cache.tables.NAME]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileTtl {
    #[serde(with = "humantime_serde")]
    item: Option<Duration>,
    #[serde(with = "humantime_serde")]
    query: Option<Duration>,
    #[serde(with = "humantime_serde")]
    negative: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileLog {
    #[serde(deserialize_with = "de_log_format")]
    format: Option<LogFormat>,
    level: Option<String>,
}

/// A byte size in the file: an integer, or a string with a unit (see [`parse_byte_size`]).
#[derive(Debug, Clone, Copy)]
struct ByteSize(u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte size: an integer, or a string such as \"256MiB\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("{v} is negative; expected a byte size")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                parse_byte_size(v).map(ByteSize).map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

fn de_upstream_target<'de, D: Deserializer<'de>>(d: D) -> Result<Option<UpstreamTarget>, D::Error> {
    let s = String::deserialize(d)?;
    parse_upstream_target(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn de_log_format<'de, D: Deserializer<'de>>(d: D) -> Result<Option<LogFormat>, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map(Some).map_err(serde::de::Error::custom)
}

fn parse_file(text: &str, name: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let location = match e.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("{name}:{line}:{column}")
            }
            None => name.to_owned(),
        };
        let message = e.message().trim();
        let message = match e.span().and_then(|span| key_at(text, span.start)) {
            Some(key) => format!("{key}: {message}"),
            None => message.to_owned(),
        };
        ConfigError::Parse { location, message }
    })
}

/// Best effort: the dotted key of the `key = value` line holding byte `offset` of a TOML
/// document, e.g. `cache.ttl.item`, so type errors name the full key. None when the line or its
/// table header is not of the simple form the shipped file uses.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or_default();
    let key = line.split_once('=')?.0.trim();
    let bare = |k: &str| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    if !bare(key) {
        return None;
    }
    let header = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['));
    let table = match header {
        None => return Some(key.to_owned()),
        Some(h) => {
            let h = h.split_once('#').map_or(h, |(before, _)| before).trim_end();
            let inner = h.strip_prefix('[')?.strip_suffix(']')?.trim();
            if inner.starts_with('[') {
                return None;
            }
            inner
        }
    };
    Some(format!("{table}.{key}"))
}

// ---------------------------------------------------------------------------------------------
// Layering
// ---------------------------------------------------------------------------------------------

/// One overridable setting: its TOML key, env var and flag.
struct Knob {
    key: &'static str,
    env: &'static str,
    flag: &'static str,
}

macro_rules! knobs {
    ($($name:ident = $key:literal, $env:literal, $flag:literal;)*) => {
        $(const $name: Knob = Knob { key: $key, env: $env, flag: $flag };)*
    };
}

knobs! {
    LISTEN = "listen", "DDBCACHE_LISTEN", "--listen";
    ADMIN_LISTEN = "admin_listen", "DDBCACHE_ADMIN_LISTEN", "--admin-listen";
    MAX_BODY_BYTES = "max_body_bytes", "DDBCACHE_MAX_BODY_BYTES", "--max-body-bytes";
    UPSTREAM = "upstream.target", "DDBCACHE_UPSTREAM", "--upstream";
    REGION = "upstream.region", "DDBCACHE_REGION", "--region";
    DATA_DIR = "upstream.data_dir", "DDBCACHE_DATA_DIR", "--data-dir";
    AWS_ENDPOINT = "upstream.endpoint", "DDBCACHE_AWS_ENDPOINT", "--aws-endpoint";
    CONNECT_TIMEOUT = "upstream.connect_timeout", "DDBCACHE_CONNECT_TIMEOUT", "--connect-timeout";
    REQUEST_TIMEOUT = "upstream.request_timeout", "DDBCACHE_REQUEST_TIMEOUT", "--request-timeout";
    CAPACITY = "cache.capacity_bytes", "DDBCACHE_CACHE_CAPACITY_BYTES", "--cache-capacity-bytes";
    TTL = "cache.ttl", "DDBCACHE_TTL", "--ttl";
    ITEM_TTL = "cache.ttl.item", "DDBCACHE_ITEM_TTL", "--item-ttl";
    QUERY_TTL = "cache.ttl.query", "DDBCACHE_QUERY_TTL", "--query-ttl";
    NEGATIVE_TTL = "cache.ttl.negative", "DDBCACHE_NEGATIVE_TTL", "--negative-ttl";
    LOG_FORMAT = "log.format", "DDBCACHE_LOG_FORMAT", "--log-format";
    LOG_LEVEL = "log.level", "DDBCACHE_LOG_LEVEL", "--log-level";
    UPSTREAM_CA_FILE = "upstream.ca_file", "DDBCACHE_UPSTREAM_CA_FILE", "--upstream-ca-file";
    SERVE_STALE = "cache.serve_stale", "DDBCACHE_SERVE_STALE", "--serve-stale";
    TLS_CERT_FILE = "tls.cert_file", "DDBCACHE_TLS_CERT_FILE", "--tls-cert-file";
    TLS_KEY_FILE = "tls.key_file", "DDBCACHE_TLS_KEY_FILE", "--tls-key-file";
    MAX_UPSTREAM = "limits.max_upstream_requests", "DDBCACHE_MAX_UPSTREAM_REQUESTS", "--max-upstream-requests";
    MAX_QUEUED = "limits.max_queued_requests", "DDBCACHE_MAX_QUEUED_REQUESTS", "--max-queued-requests";
    QUEUE_TIMEOUT = "limits.queue_timeout", "DDBCACHE_QUEUE_TIMEOUT", "--queue-timeout";
    AUTH = "auth.enabled", "DDBCACHE_AUTH", "--auth";
    AUTH_KEYS_FILE = "auth.keys_file", "DDBCACHE_AUTH_KEYS_FILE", "--auth-keys-file";
    MAX_CLOCK_SKEW = "auth.max_clock_skew", "DDBCACHE_AUTH_MAX_CLOCK_SKEW", "--auth-max-clock-skew";
    ALLOW_UNAUTHENTICATED = "allow_unauthenticated", "DDBCACHE_ALLOW_UNAUTHENTICATED", "--allow-unauthenticated";
    REMOTE = "remote.kind", "DDBCACHE_REMOTE", "--remote";
    REDIS_URL = "remote.redis_url", "DDBCACHE_REDIS_URL", "--redis-url";
    REMOTE_PREFIX = "remote.prefix", "DDBCACHE_REMOTE_PREFIX", "--remote-prefix";
    REMOTE_TIMEOUT = "remote.timeout", "DDBCACHE_REMOTE_TIMEOUT", "--remote-timeout";
    BREAKER_FAILURES = "remote.breaker_failures", "DDBCACHE_REMOTE_BREAKER_FAILURES", "--remote-breaker-failures";
    BREAKER_BACKOFF = "remote.breaker_backoff", "DDBCACHE_REMOTE_BREAKER_BACKOFF", "--remote-breaker-backoff";
    FANOUT = "remote.fanout", "DDBCACHE_REMOTE_FANOUT", "--remote-fanout";
}

/// The env var holding client keys in the compact form (see [`crate::auth::keys`]); no flag.
pub const AUTH_KEYS_ENV: &str = "DDBCACHE_AUTH_KEYS";
const AUTH_KEYS_KEY: &str = "auth.keys";

/// The env var naming the config file (the `--config` flag wins over it).
pub const CONFIG_ENV: &str = "DDBCACHE_CONFIG";

#[derive(Debug, Clone, Copy)]
enum Layer {
    Env,
    Flag,
}

/// Where each key's value came from (keys absent here hold their default).
#[derive(Debug, Default)]
struct Origins(BTreeMap<String, String>);

impl Origins {
    fn set(&mut self, key: &str, origin: String) {
        self.0.insert(key.to_owned(), origin);
    }

    fn knob(&mut self, knob: &Knob, layer: Layer) {
        self.set(knob.key, layer_origin(knob, layer));
    }

    /// Attaches the origin of the key an `Invalid` error is about.
    fn annotate(&self, err: ConfigError) -> ConfigError {
        match err {
            ConfigError::Invalid {
                key,
                origin: None,
                message,
            } => ConfigError::Invalid {
                origin: self.0.get(&key).cloned(),
                key,
                message,
            },
            other => other,
        }
    }
}

fn layer_origin(knob: &Knob, layer: Layer) -> String {
    match layer {
        Layer::Env => format!("set by {}", knob.env),
        Layer::Flag => format!("set by {}", knob.flag),
    }
}

/// A per-table TTL key, quoting table names that are not bare TOML keys (e.g. `a.b`).
fn table_key(table: &str, field: &str) -> String {
    let bare = !table.is_empty()
        && table
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        format!("cache.tables.{table}.{field}")
    } else {
        format!("cache.tables.{table:?}.{field}")
    }
}

fn apply_file(cfg: &mut Config, file: FileConfig, origins: &mut Origins, origin: &str) {
    let mut set = |key: &str| origins.set(key, origin.to_owned());
    if let Some(v) = file.listen {
        cfg.listen = v;
        set(LISTEN.key);
    }
    if let Some(v) = file.admin_listen {
        cfg.admin_listen = v;
        set(ADMIN_LISTEN.key);
    }
    if let Some(ByteSize(v)) = file.max_body_bytes {
        cfg.max_body_bytes = usize::try_from(v).unwrap_or(usize::MAX);
        set(MAX_BODY_BYTES.key);
    }
    let up = file.upstream;
    if let Some(v) = up.target {
        cfg.upstream.target = v;
        set(UPSTREAM.key);
    }
    if let Some(v) = up.region {
        cfg.upstream.region = Some(v);
        set(REGION.key);
    }
    if let Some(v) = up.data_dir {
        cfg.upstream.data_dir = Some(v);
        set(DATA_DIR.key);
    }
    if let Some(v) = up.endpoint {
        cfg.upstream.endpoint = Some(v);
        set(AWS_ENDPOINT.key);
    }
    if let Some(v) = up.connect_timeout {
        cfg.upstream.connect_timeout = v;
        set(CONNECT_TIMEOUT.key);
    }
    if let Some(v) = up.request_timeout {
        cfg.upstream.request_timeout = v;
        set(REQUEST_TIMEOUT.key);
    }
    if let Some(v) = up.ca_file {
        cfg.upstream.ca_file = Some(v);
        set(UPSTREAM_CA_FILE.key);
    }
    if let Some(v) = file.cache.serve_stale {
        cfg.cache.serve_stale = v;
        set(SERVE_STALE.key);
    }
    if let Some(v) = file.tls.cert_file {
        cfg.tls.cert_file = Some(v);
        set(TLS_CERT_FILE.key);
    }
    if let Some(v) = file.tls.key_file {
        cfg.tls.key_file = Some(v);
        set(TLS_KEY_FILE.key);
    }
    if let Some(v) = file.limits.max_upstream_requests {
        cfg.limits.max_upstream_requests = v;
        set(MAX_UPSTREAM.key);
    }
    if let Some(v) = file.limits.max_queued_requests {
        cfg.limits.max_queued_requests = v;
        set(MAX_QUEUED.key);
    }
    if let Some(v) = file.limits.queue_timeout {
        cfg.limits.queue_timeout = v;
        set(QUEUE_TIMEOUT.key);
    }
    if let Some(ByteSize(v)) = file.cache.capacity_bytes {
        cfg.cache.capacity_bytes = v;
        set(CAPACITY.key);
    }
    let ttl = file.cache.ttl;
    if let Some(v) = ttl.item {
        cfg.cache.ttl.item = v;
        set(ITEM_TTL.key);
    }
    if let Some(v) = ttl.query {
        cfg.cache.ttl.query = v;
        set(QUERY_TTL.key);
    }
    if let Some(v) = ttl.negative {
        cfg.cache.ttl.negative = v;
        set(NEGATIVE_TTL.key);
    }
    for (table, t) in file.cache.tables {
        for (field, value) in [
            ("item", t.item),
            ("query", t.query),
            ("negative", t.negative),
        ] {
            if value.is_some() {
                set(&table_key(&table, field));
            }
        }
        cfg.cache.tables.insert(
            table,
            TableTtlConfig {
                item: t.item,
                query: t.query,
                negative: t.negative,
            },
        );
    }
    if let Some(v) = file.log.format {
        cfg.log.format = v;
        set(LOG_FORMAT.key);
    }
    if let Some(v) = file.log.level {
        cfg.log.level = v;
        set(LOG_LEVEL.key);
    }
    if let Some(v) = file.auth.enabled {
        cfg.auth.enabled = v;
        set(AUTH.key);
    }
    if let Some(v) = file.auth.keys_file {
        cfg.auth.keys_file = Some(v);
        set(AUTH_KEYS_FILE.key);
    }
    if let Some(v) = file.auth.keys {
        cfg.auth.keys = v;
        set(AUTH_KEYS_KEY);
    }
    if let Some(v) = file.auth.max_clock_skew {
        cfg.auth.max_clock_skew = v;
        set(MAX_CLOCK_SKEW.key);
    }
    if let Some(v) = file.allow_unauthenticated {
        cfg.allow_unauthenticated = v;
        set(ALLOW_UNAUTHENTICATED.key);
    }
    let r = file.remote;
    if let Some(v) = r.kind {
        cfg.remote.kind = v;
        set(REMOTE.key);
    }
    if let Some(v) = r.redis_url {
        cfg.remote.redis_url = v;
        set(REDIS_URL.key);
    }
    if let Some(v) = r.prefix {
        cfg.remote.prefix = v;
        set(REMOTE_PREFIX.key);
    }
    if let Some(v) = r.timeout {
        cfg.remote.timeout = v;
        set(REMOTE_TIMEOUT.key);
    }
    if let Some(v) = r.breaker_failures {
        cfg.remote.breaker_failures = v;
        set(BREAKER_FAILURES.key);
    }
    if let Some(v) = r.breaker_backoff {
        cfg.remote.breaker_backoff = v;
        set(BREAKER_BACKOFF.key);
    }
    if let Some(v) = r.fanout {
        cfg.remote.fanout = v;
        set(FANOUT.key);
    }
}

/// Applies the settings present in `args` (flags, or env vars parsed into the same shape).
fn apply_overrides(cfg: &mut Config, args: &Cli, origins: &mut Origins, layer: Layer) {
    if let Some(v) = args.listen {
        cfg.listen = v;
        origins.knob(&LISTEN, layer);
    }
    if let Some(v) = args.admin_listen {
        cfg.admin_listen = v;
        origins.knob(&ADMIN_LISTEN, layer);
    }
    if let Some(v) = args.max_body_bytes {
        cfg.max_body_bytes = usize::try_from(v).unwrap_or(usize::MAX);
        origins.knob(&MAX_BODY_BYTES, layer);
    }
    if let Some(v) = &args.upstream {
        cfg.upstream.target = v.clone();
        origins.knob(&UPSTREAM, layer);
    }
    if let Some(v) = &args.region {
        cfg.upstream.region = Some(v.clone());
        origins.knob(&REGION, layer);
    }
    if let Some(v) = &args.data_dir {
        cfg.upstream.data_dir = Some(v.clone());
        origins.knob(&DATA_DIR, layer);
    }
    if let Some(v) = &args.aws_endpoint {
        cfg.upstream.endpoint = Some(v.clone());
        origins.knob(&AWS_ENDPOINT, layer);
    }
    if let Some(v) = args.connect_timeout {
        cfg.upstream.connect_timeout = v;
        origins.knob(&CONNECT_TIMEOUT, layer);
    }
    if let Some(v) = args.request_timeout {
        cfg.upstream.request_timeout = v;
        origins.knob(&REQUEST_TIMEOUT, layer);
    }
    if let Some(v) = &args.upstream_ca_file {
        cfg.upstream.ca_file = Some(v.clone());
        origins.knob(&UPSTREAM_CA_FILE, layer);
    }
    if let Some(v) = args.serve_stale {
        cfg.cache.serve_stale = v;
        origins.knob(&SERVE_STALE, layer);
    }
    if let Some(v) = &args.tls_cert_file {
        cfg.tls.cert_file = Some(v.clone());
        origins.knob(&TLS_CERT_FILE, layer);
    }
    if let Some(v) = &args.tls_key_file {
        cfg.tls.key_file = Some(v.clone());
        origins.knob(&TLS_KEY_FILE, layer);
    }
    if let Some(v) = args.max_upstream_requests {
        cfg.limits.max_upstream_requests = v;
        origins.knob(&MAX_UPSTREAM, layer);
    }
    if let Some(v) = args.max_queued_requests {
        cfg.limits.max_queued_requests = v;
        origins.knob(&MAX_QUEUED, layer);
    }
    if let Some(v) = args.queue_timeout {
        cfg.limits.queue_timeout = v;
        origins.knob(&QUEUE_TIMEOUT, layer);
    }
    if let Some(v) = args.cache_capacity_bytes {
        cfg.cache.capacity_bytes = v;
        origins.knob(&CAPACITY, layer);
    }
    // The general TTL first, so the specific ones of the same layer win.
    if let Some(v) = args.ttl {
        cfg.cache.ttl = TtlConfig {
            item: v,
            query: v,
            negative: v,
        };
        for key in [ITEM_TTL.key, QUERY_TTL.key, NEGATIVE_TTL.key] {
            origins.set(key, layer_origin(&TTL, layer));
        }
    }
    if let Some(v) = args.item_ttl {
        cfg.cache.ttl.item = v;
        origins.knob(&ITEM_TTL, layer);
    }
    if let Some(v) = args.query_ttl {
        cfg.cache.ttl.query = v;
        origins.knob(&QUERY_TTL, layer);
    }
    if let Some(v) = args.negative_ttl {
        cfg.cache.ttl.negative = v;
        origins.knob(&NEGATIVE_TTL, layer);
    }
    if let Some(v) = args.log_format {
        cfg.log.format = v;
        origins.knob(&LOG_FORMAT, layer);
    }
    if let Some(v) = &args.log_level {
        cfg.log.level = v.clone();
        origins.knob(&LOG_LEVEL, layer);
    }
    if let Some(v) = args.auth {
        cfg.auth.enabled = v;
        origins.knob(&AUTH, layer);
    }
    if let Some(v) = &args.auth_keys_file {
        cfg.auth.keys_file = Some(v.clone());
        origins.knob(&AUTH_KEYS_FILE, layer);
    }
    if let Some(v) = args.auth_max_clock_skew {
        cfg.auth.max_clock_skew = v;
        origins.knob(&MAX_CLOCK_SKEW, layer);
    }
    if let Some(v) = &args.auth_keys {
        cfg.auth.keys = v.clone();
        origins.set(AUTH_KEYS_KEY, format!("set by {AUTH_KEYS_ENV}"));
    }
    if let Some(v) = args.allow_unauthenticated {
        cfg.allow_unauthenticated = v;
        origins.knob(&ALLOW_UNAUTHENTICATED, layer);
    }
    if let Some(v) = args.remote {
        cfg.remote.kind = v;
        origins.knob(&REMOTE, layer);
    }
    if let Some(v) = &args.redis_url {
        cfg.remote.redis_url = v.clone();
        origins.knob(&REDIS_URL, layer);
    }
    if let Some(v) = &args.remote_prefix {
        cfg.remote.prefix = v.clone();
        origins.knob(&REMOTE_PREFIX, layer);
    }
    if let Some(v) = args.remote_timeout {
        cfg.remote.timeout = v;
        origins.knob(&REMOTE_TIMEOUT, layer);
    }
    if let Some(v) = args.remote_breaker_failures {
        cfg.remote.breaker_failures = v;
        origins.knob(&BREAKER_FAILURES, layer);
    }
    if let Some(v) = args.remote_breaker_backoff {
        cfg.remote.breaker_backoff = v;
        origins.knob(&BREAKER_BACKOFF, layer);
    }
    if let Some(v) = args.remote_fanout {
        cfg.remote.fanout = v;
        origins.knob(&FANOUT, layer);
    }
}

/// Reads the `DDBCACHE_*` variables into a [`Cli`] (everything but `config`). Empty or
/// whitespace-only values count as unset.
fn env_overrides(env: &dyn Fn(&str) -> Option<String>) -> Result<Cli, ConfigError> {
    fn var<T>(
        env: &dyn Fn(&str) -> Option<String>,
        knob: &Knob,
        parse: fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match env(knob.env) {
            Some(v) if !v.trim().is_empty() => {
                parse(&v).map(Some).map_err(|message| ConfigError::Invalid {
                    key: knob.key.to_owned(),
                    origin: Some(layer_origin(knob, Layer::Env)),
                    message,
                })
            }
            _ => Ok(None),
        }
    }
    Ok(Cli {
        command: None,
        config: None,
        listen: var(env, &LISTEN, parse_socket_addr)?,
        admin_listen: var(env, &ADMIN_LISTEN, parse_socket_addr)?,
        max_body_bytes: var(env, &MAX_BODY_BYTES, parse_byte_size)?,
        upstream: var(env, &UPSTREAM, parse_upstream_target)?,
        region: var(env, &REGION, parse_string)?,
        data_dir: var(env, &DATA_DIR, parse_path)?,
        aws_endpoint: var(env, &AWS_ENDPOINT, parse_string)?,
        connect_timeout: var(env, &CONNECT_TIMEOUT, parse_duration)?,
        request_timeout: var(env, &REQUEST_TIMEOUT, parse_duration)?,
        cache_capacity_bytes: var(env, &CAPACITY, parse_byte_size)?,
        ttl: var(env, &TTL, parse_duration)?,
        item_ttl: var(env, &ITEM_TTL, parse_duration)?,
        query_ttl: var(env, &QUERY_TTL, parse_duration)?,
        negative_ttl: var(env, &NEGATIVE_TTL, parse_duration)?,
        log_format: var(env, &LOG_FORMAT, parse_log_format)?,
        log_level: var(env, &LOG_LEVEL, parse_string)?,
        upstream_ca_file: var(env, &UPSTREAM_CA_FILE, parse_path)?,
        serve_stale: var(env, &SERVE_STALE, parse_duration)?,
        tls_cert_file: var(env, &TLS_CERT_FILE, parse_path)?,
        tls_key_file: var(env, &TLS_KEY_FILE, parse_path)?,
        max_upstream_requests: var(env, &MAX_UPSTREAM, parse_count)?,
        max_queued_requests: var(env, &MAX_QUEUED, parse_count)?,
        queue_timeout: var(env, &QUEUE_TIMEOUT, parse_duration)?,
        auth: var(env, &AUTH, parse_bool)?,
        auth_keys_file: var(env, &AUTH_KEYS_FILE, parse_path)?,
        auth_max_clock_skew: var(env, &MAX_CLOCK_SKEW, parse_duration)?,
        allow_unauthenticated: var(env, &ALLOW_UNAUTHENTICATED, parse_bool)?,
        remote: var(env, &REMOTE, parse_remote_kind)?,
        redis_url: var(env, &REDIS_URL, parse_string)?,
        remote_prefix: var(env, &REMOTE_PREFIX, parse_string)?,
        remote_timeout: var(env, &REMOTE_TIMEOUT, parse_duration)?,
        remote_breaker_failures: var(env, &BREAKER_FAILURES, parse_u32)?,
        remote_breaker_backoff: var(env, &BREAKER_BACKOFF, parse_duration)?,
        remote_fanout: var(env, &FANOUT, parse_bool)?,
        auth_keys: match env(AUTH_KEYS_ENV) {
            Some(v) if !v.trim().is_empty() => {
                let v = zeroize::Zeroizing::new(v);
                Some(parse_env_keys(&v).map_err(|message| ConfigError::Invalid {
                    key: AUTH_KEYS_KEY.to_owned(),
                    origin: Some(format!("set by {AUTH_KEYS_ENV}")),
                    message,
                })?)
            }
            _ => None,
        },
    })
}

/// Builds the validated configuration from `cli`, the process environment and the config file
/// (`--config`, else `DDBCACHE_CONFIG`, else none). See the module docs for the precedence.
pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
    load_with_env(cli, |name| {
        std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
    })
}

/// [`load`] with the environment supplied by `env` (name -> value), for tests and embedding.
pub fn load_with_env(
    cli: &Cli,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut cfg = Config::default();
    let mut origins = Origins::default();

    let path = cli.config.clone().or_else(|| {
        env(CONFIG_ENV)
            .filter(|v| !v.trim().is_empty())
            .map(PathBuf::from)
    });
    if let Some(path) = path {
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::Read {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let name = path.display().to_string();
        let file = parse_file(&text, &name)?;
        apply_file(&mut cfg, file, &mut origins, &format!("set in {name}"));
    }

    let from_env = env_overrides(&env)?;
    apply_overrides(&mut cfg, &from_env, &mut origins, Layer::Env);
    apply_overrides(&mut cfg, cli, &mut origins, Layer::Flag);

    cfg.validate().map_err(|e| origins.annotate(e))?;
    Ok(cfg)
}

impl Config {
    /// Defaults overlaid with a TOML document (the shape of `config/ddbcache.toml`), validated.
    /// No env vars or flags are consulted.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        Self::from_toml_str_named(text, "<toml>")
    }

    /// [`Config::from_toml_str`], reading `path`; errors name the file.
    pub fn from_toml_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Self::from_toml_str_named(&text, &path.display().to_string())
    }

    fn from_toml_str_named(text: &str, name: &str) -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        let mut origins = Origins::default();
        apply_file(
            &mut cfg,
            parse_file(text, name)?,
            &mut origins,
            &format!("set in {name}"),
        );
        cfg.validate().map_err(|e| origins.annotate(e))?;
        Ok(cfg)
    }

    /// Checks ranges and consistency. The first problem found is returned, naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_body_bytes == 0 || self.max_body_bytes > MAX_BODY_BYTES_LIMIT {
            return Err(ConfigError::invalid(
                MAX_BODY_BYTES.key,
                format!(
                    "must be between 1 and {MAX_BODY_BYTES_LIMIT} (64MiB), got {}",
                    self.max_body_bytes
                ),
            ));
        }
        if addrs_conflict(self.listen, self.admin_listen) {
            return Err(ConfigError::invalid(
                ADMIN_LISTEN.key,
                format!(
                    "{} conflicts with listen ({}); use another port, or port 0 for any free one",
                    self.admin_listen, self.listen
                ),
            ));
        }

        let up = &self.upstream;
        if let UpstreamTarget::Url(url) = &up.target
            && !is_http_url(url)
        {
            return Err(ConfigError::invalid(
                UPSTREAM.key,
                format!("{url:?} is not \"embedded\", \"aws\" or an http(s):// URL"),
            ));
        }
        if let Some(region) = &up.region {
            if up.target != UpstreamTarget::Aws {
                return Err(only_with(REGION.key, "aws", &up.target));
            }
            let plausible = !region.is_empty()
                && region
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !plausible {
                return Err(ConfigError::invalid(
                    REGION.key,
                    format!("{region:?} is not a region name (e.g. \"us-east-1\")"),
                ));
            }
        }
        if let Some(dir) = &up.data_dir {
            if up.target != UpstreamTarget::Embedded {
                return Err(only_with(DATA_DIR.key, "embedded", &up.target));
            }
            if dir.as_os_str().is_empty() {
                return Err(ConfigError::invalid(DATA_DIR.key, "must not be empty"));
            }
        }
        if let Some(endpoint) = &up.endpoint {
            if up.target != UpstreamTarget::Aws {
                return Err(only_with(AWS_ENDPOINT.key, "aws", &up.target));
            }
            if !is_http_url(endpoint) {
                return Err(ConfigError::invalid(
                    AWS_ENDPOINT.key,
                    format!("{endpoint:?} is not an http(s):// URL"),
                ));
            }
        }
        for (knob, timeout) in [
            (&CONNECT_TIMEOUT, up.connect_timeout),
            (&REQUEST_TIMEOUT, up.request_timeout),
        ] {
            if timeout.is_zero() {
                return Err(ConfigError::invalid(knob.key, "must be > 0"));
            }
        }

        if self.cache.capacity_bytes == 0 {
            return Err(ConfigError::invalid(CAPACITY.key, "must be > 0"));
        }
        let ttl = &self.cache.ttl;
        for (key, value) in [
            (ITEM_TTL.key.to_owned(), Some(ttl.item)),
            (QUERY_TTL.key.to_owned(), Some(ttl.query)),
            (NEGATIVE_TTL.key.to_owned(), Some(ttl.negative)),
        ]
        .into_iter()
        .chain(self.cache.tables.iter().flat_map(|(table, t)| {
            [
                (table_key(table, "item"), t.item),
                (table_key(table, "query"), t.query),
                (table_key(table, "negative"), t.negative),
            ]
        })) {
            if value.is_some_and(|v| v > MAX_TTL) {
                return Err(ConfigError::invalid(key, "must be at most 365 days"));
            }
        }
        for table in self.cache.tables.keys() {
            if !is_table_name(table) {
                return Err(ConfigError::invalid(
                    format!("cache.tables.{table:?}"),
                    "not a DynamoDB table name (3 to 255 of a-z, A-Z, 0-9, '_', '-', '.')",
                ));
            }
        }

        if self.cache.serve_stale > MAX_TTL {
            return Err(ConfigError::invalid(
                SERVE_STALE.key,
                "must be at most 365 days",
            ));
        }
        if let Some(ca) = &up.ca_file
            && ca.as_os_str().is_empty()
        {
            return Err(ConfigError::invalid(
                UPSTREAM_CA_FILE.key,
                "must not be empty",
            ));
        }
        match (&self.tls.cert_file, &self.tls.key_file) {
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    TLS_KEY_FILE.key,
                    "must be set when tls.cert_file is",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    TLS_CERT_FILE.key,
                    "must be set when tls.key_file is",
                ));
            }
            _ => {}
        }
        let limits = &self.limits;
        if limits.max_upstream_requests == 0 {
            return Err(ConfigError::invalid(MAX_UPSTREAM.key, "must be > 0"));
        }
        if limits.queue_timeout.is_zero() && limits.max_queued_requests > 0 {
            return Err(ConfigError::invalid(
                QUEUE_TIMEOUT.key,
                "must be > 0 (set limits.max_queued_requests = 0 for no queue)",
            ));
        }

        if self.log.level.trim().is_empty() {
            return Err(ConfigError::invalid(LOG_LEVEL.key, "must not be empty"));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(ConfigError::invalid(
                LOG_LEVEL.key,
                format!("{:?} is not a valid filter directive: {e}", self.log.level),
            ));
        }
        self.validate_remote()?;
        self.validate_auth()
    }

    fn validate_remote(&self) -> Result<(), ConfigError> {
        let r = &self.remote;
        if r.kind == RemoteKind::None {
            return Ok(());
        }
        let url = r.redis_url.as_str();
        if !(url.starts_with("redis://") || url.starts_with("unix://")) {
            return Err(ConfigError::invalid(
                REDIS_URL.key,
                "must be a redis:// (or unix://) URL",
            ));
        }
        if r.timeout.is_zero() {
            return Err(ConfigError::invalid(REMOTE_TIMEOUT.key, "must be > 0"));
        }
        if r.breaker_failures == 0 {
            return Err(ConfigError::invalid(BREAKER_FAILURES.key, "must be > 0"));
        }
        if r.breaker_backoff.is_zero() {
            return Err(ConfigError::invalid(BREAKER_BACKOFF.key, "must be > 0"));
        }
        if r.prefix.chars().any(|c| c.is_whitespace()) {
            return Err(ConfigError::invalid(
                REMOTE_PREFIX.key,
                "must not contain whitespace",
            ));
        }
        Ok(())
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        let auth = &self.auth;
        let skew = auth.max_clock_skew;
        if skew < Duration::from_secs(1) || skew > Duration::from_secs(3600) {
            return Err(ConfigError::invalid(
                MAX_CLOCK_SKEW.key,
                "must be between 1s and 1h (AWS uses 15m)",
            ));
        }
        if auth
            .keys_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err(ConfigError::invalid(
                AUTH_KEYS_FILE.key,
                "must not be empty",
            ));
        }
        let mut ids = std::collections::BTreeSet::new();
        for (i, k) in auth.keys.iter().enumerate() {
            check_key_config(k)
                .map_err(|m| ConfigError::invalid(AUTH_KEYS_KEY, format!("key #{}: {m}", i + 1)))?;
            if !ids.insert(k.access_key_id.as_str()) {
                return Err(ConfigError::invalid(
                    AUTH_KEYS_KEY,
                    format!("access key id {:?} is configured twice", k.access_key_id),
                ));
            }
        }
        if auth.enabled && auth.keys.is_empty() && auth.keys_file.is_none() {
            return Err(ConfigError::invalid(
                AUTH.key,
                "auth is enabled but no client keys are configured: add [[auth.keys]], \
                 auth.keys_file (--auth-keys-file) or DDBCACHE_AUTH_KEYS",
            ));
        }
        if !auth.enabled && !self.allow_unauthenticated && !self.listen.ip().is_loopback() {
            return Err(ConfigError::invalid(
                LISTEN.key,
                format!(
                    "{} is not a loopback address and auth is disabled, so anyone who can reach \
                     it could read every cached item: enable auth ([auth] enabled = true, --auth) \
                     or pass --allow-unauthenticated (DDBCACHE_ALLOW_UNAUTHENTICATED=true)",
                    self.listen
                ),
            ));
        }
        Ok(())
    }
}

fn only_with(key: &str, wanted: &str, actual: &UpstreamTarget) -> ConfigError {
    ConfigError::invalid(
        key,
        format!("only valid with upstream.target = \"{wanted}\" (the target is \"{actual}\")"),
    )
}

fn is_http_url(s: &str) -> bool {
    match s.parse::<http::Uri>() {
        Ok(uri) => {
            matches!(uri.scheme_str(), Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"))
                && uri.authority().is_some_and(|a| !a.host().is_empty())
        }
        Err(_) => false,
    }
}

/// Whether two listeners would collide: same non-zero port, and the same IP or either a
/// wildcard (`0.0.0.0` / `::`).
fn addrs_conflict(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn is_table_name(name: &str) -> bool {
    (3..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::Write;

    const SHIPPED: &str = include_str!("../config/ddbcache.toml");

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("ddbcache").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn temp_toml(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    /// Validation error for `text` loaded as a file: (key, full message).
    fn invalid_toml(text: &str) -> (String, String) {
        let e = Config::from_toml_str(text).expect_err(text);
        (e.key().unwrap_or_default().to_owned(), e.to_string())
    }

    fn invalid(mutate: impl FnOnce(&mut Config)) -> (String, String) {
        let mut c = Config::default();
        mutate(&mut c);
        let e = c.validate().expect_err("expected a validation error");
        (e.key().unwrap_or_default().to_owned(), e.to_string())
    }

    #[test]
    fn remote_defaults_to_none_and_loads_from_each_layer() {
        let d = Config::default();
        assert_eq!(d.remote.kind, RemoteKind::None);
        assert_eq!(d.remote.timeout, Duration::from_millis(50));
        assert!(d.remote.fanout);
        let c = Config::from_toml_str(
            r#"
            [remote]
            kind = "redis"
            redis_url = "redis://cache.internal:6380/2"
            prefix = "fleet-a:"
            timeout = "20ms"
            breaker_failures = 3
            breaker_backoff = "5s"
            fanout = false
            "#,
        )
        .unwrap();
        assert_eq!(c.remote.kind, RemoteKind::Redis);
        assert_eq!(c.remote.redis_url, "redis://cache.internal:6380/2");
        assert_eq!(c.remote.prefix, "fleet-a:");
        assert_eq!(c.remote.timeout, Duration::from_millis(20));
        assert_eq!(c.remote.breaker_failures, 3);
        assert_eq!(c.remote.breaker_backoff, Duration::from_secs(5));
        assert!(!c.remote.fanout);

        let env = env_of(&[
            ("DDBCACHE_REMOTE", "redis"),
            ("DDBCACHE_REDIS_URL", "redis://10.0.0.1:6379"),
            ("DDBCACHE_REMOTE_TIMEOUT", "30ms"),
            ("DDBCACHE_REMOTE_FANOUT", "false"),
            ("DDBCACHE_REMOTE_BREAKER_FAILURES", "7"),
        ]);
        let c = load_with_env(
            &cli(&[
                "--remote-timeout",
                "40ms",
                "--remote-prefix",
                "p:",
                "--remote-breaker-backoff",
                "2s",
            ]),
            env,
        )
        .unwrap();
        assert_eq!(c.remote.kind, RemoteKind::Redis);
        assert_eq!(c.remote.redis_url, "redis://10.0.0.1:6379");
        assert_eq!(c.remote.timeout, Duration::from_millis(40), "the flag wins");
        assert_eq!(c.remote.prefix, "p:");
        assert_eq!(c.remote.breaker_failures, 7);
        assert_eq!(c.remote.breaker_backoff, Duration::from_secs(2));
        assert!(!c.remote.fanout);
    }

    #[test]
    fn remote_validation_names_the_key() {
        for (toml, key) in [
            ("kind = \"memcached\"", None),
            (
                "kind = \"redis\"\nredis_url = \"http://x\"",
                Some("remote.redis_url"),
            ),
            ("kind = \"redis\"\ntimeout = \"0s\"", Some("remote.timeout")),
            (
                "kind = \"redis\"\nbreaker_failures = 0",
                Some("remote.breaker_failures"),
            ),
            (
                "kind = \"redis\"\nbreaker_backoff = \"0s\"",
                Some("remote.breaker_backoff"),
            ),
            ("kind = \"redis\"\nprefix = \"a b\"", Some("remote.prefix")),
        ] {
            let e = Config::from_toml_str(&format!("[remote]\n{toml}")).unwrap_err();
            match key {
                Some(k) => assert_eq!(e.key(), Some(k), "{toml}: {e}"),
                None => assert!(e.to_string().contains("memcached"), "{e}"),
            }
        }
        // With the tier off nothing else is checked: no behaviour change by default.
        assert!(Config::from_toml_str("[remote]\ntimeout = \"0s\"").is_ok());
        let e = load_with_env(&cli(&[]), env_of(&[("DDBCACHE_REMOTE", "x")])).unwrap_err();
        assert_eq!(e.key(), Some("remote.kind"));
    }

    #[test]
    fn tls_limits_and_serve_stale_load_from_each_layer() {
        let c = Config::from_toml_str(
            r#"
            [tls]
            cert_file = "/c.pem"
            key_file = "/k.pem"
            [limits]
            max_upstream_requests = 8
            max_queued_requests = 0
            queue_timeout = "250ms"
            [cache]
            serve_stale = "10m"
            [upstream]
            target = "https://ddb.internal:8443"
            ca_file = "/ca.pem"
            "#,
        )
        .unwrap();
        assert!(c.tls.enabled());
        assert_eq!(c.tls.key_file.as_deref(), Some(Path::new("/k.pem")));
        assert_eq!(c.limits.max_upstream_requests, 8);
        assert_eq!(c.limits.max_queued_requests, 0);
        assert_eq!(c.limits.queue_timeout, Duration::from_millis(250));
        assert_eq!(c.cache.serve_stale, Duration::from_secs(600));
        assert_eq!(c.upstream.ca_file.as_deref(), Some(Path::new("/ca.pem")));

        let env = env_of(&[
            ("DDBCACHE_MAX_UPSTREAM_REQUESTS", "3"),
            ("DDBCACHE_SERVE_STALE", "1m"),
            ("DDBCACHE_TLS_CERT_FILE", "/env-c.pem"),
            ("DDBCACHE_TLS_KEY_FILE", "/env-k.pem"),
        ]);
        let c = load_with_env(&cli(&["--max-upstream-requests", "5"]), env).unwrap();
        assert_eq!(c.limits.max_upstream_requests, 5, "the flag wins");
        assert_eq!(c.cache.serve_stale, Duration::from_secs(60));
        assert_eq!(c.tls.cert_file.as_deref(), Some(Path::new("/env-c.pem")));
        let e = load_with_env(
            &cli(&[]),
            env_of(&[("DDBCACHE_MAX_QUEUED_REQUESTS", "many")]),
        )
        .unwrap_err();
        assert_eq!(e.key(), Some("limits.max_queued_requests"));
    }

    #[test]
    fn tls_needs_both_files_and_limits_must_be_usable() {
        let (key, _) = invalid(|c| c.tls.cert_file = Some("/c.pem".into()));
        assert_eq!(key, "tls.key_file");
        let (key, _) = invalid(|c| c.tls.key_file = Some("/k.pem".into()));
        assert_eq!(key, "tls.cert_file");
        let (key, _) = invalid(|c| c.limits.max_upstream_requests = 0);
        assert_eq!(key, "limits.max_upstream_requests");
        let (key, msg) = invalid(|c| c.limits.queue_timeout = Duration::ZERO);
        assert_eq!(key, "limits.queue_timeout");
        assert!(msg.contains("max_queued_requests = 0"), "{msg}");
        let mut no_queue = Config::default();
        no_queue.limits.max_queued_requests = 0;
        no_queue.limits.queue_timeout = Duration::ZERO;
        no_queue.validate().unwrap();
    }

    #[test]
    fn shipped_file_equals_defaults() {
        assert_eq!(Config::from_toml_str(SHIPPED).unwrap(), Config::default());
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ddbcache.toml");
        assert_eq!(Config::from_toml_file(&path).unwrap(), Config::default());
    }

    #[test]
    fn defaults_are_valid_and_empty_inputs_give_defaults() {
        Config::default().validate().unwrap();
        assert_eq!(Config::from_toml_str("").unwrap(), Config::default());
        assert_eq!(
            load_with_env(&Cli::default(), no_env).unwrap(),
            Config::default()
        );
        assert_eq!(load_with_env(&cli(&[]), no_env).unwrap(), Config::default());
    }

    #[test]
    fn full_file_is_applied() {
        let c = Config::from_toml_str(
            r#"
            listen = "0.0.0.0:8100"
            admin_listen = "0.0.0.0:9100"
            allow_unauthenticated = true
            max_body_bytes = "1MiB"
            [upstream]
            target = "aws"
            region = "eu-west-1"
            endpoint = "https://dynamodb.eu-west-1.amazonaws.com"
            connect_timeout = "250ms"
            request_timeout = "10s"
            [cache]
            capacity_bytes = "1GB"
            [cache.ttl]
            item = "1m"
            query = "2m"
            negative = "0s"
            [cache.tables.Orders]
            item = "0s"
            [log]
            format = "json"
            level = "ddbcache=debug,info"
            "#,
        )
        .unwrap();
        assert_eq!(c.listen, "0.0.0.0:8100".parse().unwrap());
        assert_eq!(c.admin_listen, "0.0.0.0:9100".parse().unwrap());
        assert_eq!(c.max_body_bytes, 1 << 20);
        assert_eq!(c.upstream.target, UpstreamTarget::Aws);
        assert_eq!(c.upstream.region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            c.upstream.endpoint.as_deref(),
            Some("https://dynamodb.eu-west-1.amazonaws.com")
        );
        assert_eq!(c.upstream.connect_timeout, Duration::from_millis(250));
        assert_eq!(c.upstream.request_timeout, Duration::from_secs(10));
        assert_eq!(c.cache.capacity_bytes, 1_000_000_000);
        assert_eq!(
            c.cache.ttl,
            TtlConfig {
                item: Duration::from_secs(60),
                query: Duration::from_secs(120),
                negative: Duration::ZERO,
            }
        );
        assert_eq!(
            c.cache.tables["Orders"],
            TableTtlConfig {
                item: Some(Duration::ZERO),
                ..Default::default()
            }
        );
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.log.level, "ddbcache=debug,info");
    }

    #[test]
    fn precedence_defaults_file_env_flag() {
        let file = temp_toml(
            r#"
            listen = "127.0.0.1:1001"
            admin_listen = "127.0.0.1:2001"
            [upstream]
            request_timeout = "11s"
            connect_timeout = "1s"
            [cache]
            capacity_bytes = 1000
            "#,
        );
        let path = file.path().to_str().unwrap();
        // listen: file, env and flag; admin_listen: file and env; request_timeout: file only;
        // capacity: env and flag.
        let env = env_of(&[
            ("DDBCACHE_CONFIG", path),
            ("DDBCACHE_LISTEN", "127.0.0.1:1002"),
            ("DDBCACHE_ADMIN_LISTEN", "127.0.0.1:2002"),
            ("DDBCACHE_CACHE_CAPACITY_BYTES", "2KiB"),
            ("DDBCACHE_LOG_FORMAT", "json"),
        ]);
        let c = load_with_env(
            &cli(&[
                "--listen",
                "127.0.0.1:1003",
                "--cache-capacity-bytes",
                "3000",
            ]),
            &env,
        )
        .unwrap();
        assert_eq!(c.listen.port(), 1003);
        assert_eq!(c.admin_listen.port(), 2002);
        assert_eq!(c.upstream.request_timeout, Duration::from_secs(11));
        assert_eq!(c.upstream.connect_timeout, Duration::from_secs(1));
        assert_eq!(c.cache.capacity_bytes, 3000);
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.log.level, "info"); // default, untouched by any layer

        // Without the flags, env wins over the file.
        let c = load_with_env(&cli(&[]), &env).unwrap();
        assert_eq!(c.listen.port(), 1002);
        assert_eq!(c.cache.capacity_bytes, 2048);
        // Without env either, the file wins over the defaults.
        let c = load_with_env(&cli(&["--config", path]), no_env).unwrap();
        assert_eq!(c.listen.port(), 1001);
        assert_eq!(c.cache.capacity_bytes, 1000);
    }

    #[test]
    fn config_flag_wins_over_config_env() {
        let a = temp_toml("listen = \"127.0.0.1:1111\"");
        let b = temp_toml("listen = \"127.0.0.1:2222\"");
        let env = env_of(&[("DDBCACHE_CONFIG", a.path().to_str().unwrap())]);
        let flags = cli(&["--config", b.path().to_str().unwrap()]);
        assert_eq!(load_with_env(&flags, &env).unwrap().listen.port(), 2222);
        assert_eq!(load_with_env(&cli(&[]), &env).unwrap().listen.port(), 1111);
    }

    #[test]
    fn every_env_var_and_flag_is_applied() {
        let env = env_of(&[
            ("DDBCACHE_LISTEN", "0.0.0.0:1"),
            ("DDBCACHE_ADMIN_LISTEN", "0.0.0.0:2"),
            ("DDBCACHE_MAX_BODY_BYTES", "1MiB"),
            ("DDBCACHE_UPSTREAM", "aws"),
            ("DDBCACHE_REGION", "us-west-2"),
            ("DDBCACHE_AWS_ENDPOINT", "http://localhost:4566"),
            ("DDBCACHE_CONNECT_TIMEOUT", "3s"),
            ("DDBCACHE_REQUEST_TIMEOUT", "4s"),
            ("DDBCACHE_CACHE_CAPACITY_BYTES", "5MB"),
            ("DDBCACHE_TTL", "1m"),
            ("DDBCACHE_QUERY_TTL", "2m"),
            ("DDBCACHE_LOG_FORMAT", "json"),
            ("DDBCACHE_LOG_LEVEL", "debug"),
            ("DDBCACHE_ALLOW_UNAUTHENTICATED", "true"),
            ("DDBCACHE_AUTH_MAX_CLOCK_SKEW", "5m"),
        ]);
        let from_env = load_with_env(&cli(&[]), &env).unwrap();
        let from_flags = load_with_env(
            &cli(&[
                "--listen=0.0.0.0:1",
                "--admin-listen=0.0.0.0:2",
                "--max-body-bytes=1MiB",
                "--upstream=aws",
                "--region=us-west-2",
                "--aws-endpoint=http://localhost:4566",
                "--connect-timeout=3s",
                "--request-timeout=4s",
                "--cache-capacity-bytes=5MB",
                "--ttl=1m",
                "--query-ttl=2m",
                "--log-format=json",
                "--log-level=debug",
                "--allow-unauthenticated",
                "--auth-max-clock-skew=5m",
            ]),
            no_env,
        )
        .unwrap();
        let expected = Config {
            listen: "0.0.0.0:1".parse().unwrap(),
            admin_listen: "0.0.0.0:2".parse().unwrap(),
            max_body_bytes: 1 << 20,
            upstream: UpstreamConfig {
                target: UpstreamTarget::Aws,
                region: Some("us-west-2".into()),
                data_dir: None,
                endpoint: Some("http://localhost:4566".into()),
                connect_timeout: Duration::from_secs(3),
                request_timeout: Duration::from_secs(4),
                ca_file: None,
            },
            cache: CacheConfig {
                capacity_bytes: 5_000_000,
                ttl: TtlConfig {
                    item: Duration::from_secs(60),
                    query: Duration::from_secs(120),
                    negative: Duration::from_secs(60),
                },
                tables: BTreeMap::new(),
                serve_stale: Duration::ZERO,
            },
            log: LogConfig {
                format: LogFormat::Json,
                level: "debug".into(),
            },
            tls: TlsConfig::default(),
            limits: Config::default().limits,
            auth: AuthConfig {
                max_clock_skew: Duration::from_secs(300),
                ..AuthConfig::default()
            },
            remote: RemoteConfig::default(),
            allow_unauthenticated: true,
        };
        assert_eq!(from_env, expected);
        assert_eq!(from_flags, expected);

        let embedded = load_with_env(
            &cli(&[
                "--data-dir",
                "/tmp/x",
                "--item-ttl",
                "7s",
                "--negative-ttl",
                "8s",
            ]),
            env_of(&[("DDBCACHE_DATA_DIR", "/tmp/y")]),
        )
        .unwrap();
        assert_eq!(embedded.upstream.data_dir, Some(PathBuf::from("/tmp/x")));
        assert_eq!(embedded.cache.ttl.item, Duration::from_secs(7));
        assert_eq!(embedded.cache.ttl.negative, Duration::from_secs(8));
        let url = load_with_env(
            &cli(&[]),
            env_of(&[("DDBCACHE_UPSTREAM", "http://localhost:8001")]),
        )
        .unwrap();
        assert_eq!(
            url.upstream.target,
            UpstreamTarget::Url("http://localhost:8001".into())
        );
    }

    #[test]
    fn ttl_layering() {
        // Within a layer the specific TTL wins over DDBCACHE_TTL / --ttl.
        let c = load_with_env(
            &cli(&[]),
            env_of(&[("DDBCACHE_ITEM_TTL", "1s"), ("DDBCACHE_TTL", "9s")]),
        )
        .unwrap();
        assert_eq!(c.cache.ttl.item, Duration::from_secs(1));
        assert_eq!(c.cache.ttl.query, Duration::from_secs(9));
        // A later layer's general TTL wins over an earlier layer's specific one.
        let c = load_with_env(
            &cli(&["--ttl", "3s"]),
            env_of(&[("DDBCACHE_ITEM_TTL", "1s")]),
        )
        .unwrap();
        assert_eq!(c.cache.ttl.item, Duration::from_secs(3));
        // Per-table overrides from the file are untouched by the global knobs.
        let f = temp_toml("[cache.tables.Orders]\nquery = \"0s\"\n");
        let c = load_with_env(
            &cli(&["--config", f.path().to_str().unwrap(), "--ttl", "3s"]),
            no_env,
        )
        .unwrap();
        let orders = c.cache.ttl.for_table(&c.cache.tables, "Orders");
        assert_eq!(orders.query, Duration::ZERO);
        assert_eq!(orders.item, Duration::from_secs(3));
    }

    #[test]
    fn empty_env_values_are_unset() {
        let env = env_of(&[
            ("DDBCACHE_LISTEN", ""),
            ("DDBCACHE_REGION", "  "),
            ("DDBCACHE_CONFIG", ""),
        ]);
        assert_eq!(load_with_env(&cli(&[]), env).unwrap(), Config::default());
    }

    #[test]
    fn unparsable_env_var_names_the_var_and_key() {
        let e = load_with_env(
            &cli(&[]),
            env_of(&[("DDBCACHE_MAX_BODY_BYTES", "12 parsecs")]),
        )
        .unwrap_err();
        assert_eq!(e.key(), Some("max_body_bytes"));
        let msg = e.to_string();
        assert!(msg.contains("DDBCACHE_MAX_BODY_BYTES"), "{msg}");
        assert!(msg.contains("12 parsecs"), "{msg}");
        let e = load_with_env(&cli(&[]), env_of(&[("DDBCACHE_ITEM_TTL", "soon")])).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cache.ttl.item (set by DDBCACHE_ITEM_TTL): ")
        );
        let e = load_with_env(&cli(&[]), env_of(&[("DDBCACHE_LOG_FORMAT", "xml")])).unwrap_err();
        assert!(e.to_string().contains("DDBCACHE_LOG_FORMAT"));
    }

    #[test]
    fn bad_flags_are_rejected_by_clap() {
        for args in [
            &["--listen", "nope"][..],
            &["--max-body-bytes", "1XB"],
            &["--connect-timeout", "fast"],
            &["--log-format", "xml"],
            &["--bogus"],
        ] {
            let argv = std::iter::once("ddbcache").chain(args.iter().copied());
            assert!(Cli::try_parse_from(argv).is_err(), "{args:?}");
        }
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        for (text, key, line) in [
            ("bogus = 1\n", "bogus", 1),
            (
                "[upstream]\ntarget = \"aws\"\nregoin = \"x\"\n",
                "regoin",
                3,
            ),
            ("[cache.ttl]\nitme = \"1m\"\n", "itme", 2),
            (
                "[cache.tables.Orders]\nitem = \"1m\"\nquerry = \"1s\"\n",
                "querry",
                3,
            ),
            ("[metrics]\n", "metrics", 1),
        ] {
            let e = Config::from_toml_str(text).unwrap_err();
            let msg = e.to_string();
            assert!(matches!(e, ConfigError::Parse { .. }), "{msg}");
            assert!(msg.contains(&format!("`{key}`")), "{msg}");
            assert!(msg.starts_with(&format!("<toml>:{line}:")), "{msg}");
        }
    }

    #[test]
    fn file_errors_name_the_file() {
        let f = temp_toml("[log]\nformat = \"xml\"\n");
        let path = f.path().to_str().unwrap();
        let msg = load_with_env(&cli(&["--config", path]), no_env)
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with(&format!("{path}:2:")), "{msg}");
        assert!(msg.contains("\"xml\" is not \"text\" or \"json\""), "{msg}");

        let f = temp_toml("[upstream]\ntarget = \"ftp://x\"\n");
        let path = f.path().to_str().unwrap();
        let msg = load_with_env(&cli(&["--config", path]), no_env)
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            format!(
                "upstream.target (set in {path}): \"ftp://x\" is not \"embedded\", \"aws\" or an http(s):// URL"
            )
        );

        let missing =
            load_with_env(&cli(&["--config", "/nonexistent/ddbcache.toml"]), no_env).unwrap_err();
        assert!(matches!(missing, ConfigError::Read { .. }));
        assert!(missing.to_string().contains("/nonexistent/ddbcache.toml"));
    }

    #[test]
    fn type_errors_name_the_key() {
        for (text, expected) in [
            (
                "# c\nlisten = \"localhost\"",
                "<toml>:2:10: listen: invalid socket address syntax",
            ),
            (
                "[cache.ttl] # ttls\nitem = \"5m\"\nquery = \"5 parsecs\"",
                "<toml>:3:9: cache.ttl.query: invalid value: string \"5 parsecs\", expected a duration",
            ),
            (
                "[cache.tables.\"a.b\"]\nitem = 5",
                "<toml>:2:8: cache.tables.\"a.b\".item: invalid type: integer `5`, expected a duration",
            ),
        ] {
            assert_eq!(
                Config::from_toml_str(text).unwrap_err().to_string(),
                expected
            );
        }
        let msg = Config::from_toml_str("[cache]\ncapacity_bytes = \"lots\"")
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("<toml>:2:18: cache.capacity_bytes: \"lots\" is not a byte size"),
            "{msg}"
        );
    }

    #[test]
    fn type_errors_in_the_file() {
        for text in [
            "listen = \"localhost\"",
            "listen = 8000",
            "max_body_bytes = -1",
            "max_body_bytes = \"lots\"",
            "[upstream]\nconnect_timeout = 2",
            "[upstream]\nconnect_timeout = \"2 fortnights\"",
            "[cache]\ncapacity_bytes = \"1.5GiB\"",
            "[cache]\nttl = \"5m\"",
        ] {
            let e = Config::from_toml_str(text).unwrap_err();
            assert!(matches!(e, ConfigError::Parse { .. }), "{text}: {e}");
        }
    }

    #[test]
    fn validate_upstream_target() {
        let (key, msg) = invalid_toml("[upstream]\ntarget = \"ftp://x\"");
        assert_eq!(key, "upstream.target");
        assert!(msg.contains("\"ftp://x\" is not \"embedded\", \"aws\" or an http(s):// URL"));
        for bad in ["http://", "localhost:8001", "dynamo"] {
            let (key, _) = invalid(|c| c.upstream.target = UpstreamTarget::Url(bad.into()));
            assert_eq!(key, "upstream.target", "{bad}");
        }
        for good in [
            "http://localhost:8001",
            "HTTPS://dynamodb.example.com/",
            "http://[::1]:1",
        ] {
            let mut c = Config::default();
            c.upstream.target = UpstreamTarget::Url(good.into());
            c.validate().unwrap();
        }
        // The keywords are case-insensitive.
        let c = Config::from_toml_str("[upstream]\ntarget = \"AWS\"").unwrap();
        assert_eq!(c.upstream.target, UpstreamTarget::Aws);
    }

    #[test]
    fn validate_target_specific_keys() {
        let (key, msg) = invalid(|c| c.upstream.region = Some("us-east-1".into()));
        assert_eq!(key, "upstream.region");
        assert!(
            msg.contains("only valid with upstream.target = \"aws\""),
            "{msg}"
        );
        let (key, _) = invalid(|c| {
            c.upstream.target = UpstreamTarget::Aws;
            c.upstream.region = Some("US East".into());
        });
        assert_eq!(key, "upstream.region");

        let (key, msg) = invalid(|c| {
            c.upstream.target = UpstreamTarget::Aws;
            c.upstream.data_dir = Some("/var/lib/ddbcache".into());
        });
        assert_eq!(key, "upstream.data_dir");
        assert!(
            msg.contains("only valid with upstream.target = \"embedded\""),
            "{msg}"
        );
        let (key, _) = invalid(|c| c.upstream.data_dir = Some(PathBuf::new()));
        assert_eq!(key, "upstream.data_dir");

        let (key, msg) = invalid(|c| {
            c.upstream.target = UpstreamTarget::Url("http://localhost:8001".into());
            c.upstream.endpoint = Some("http://localhost:8002".into());
        });
        assert_eq!(key, "upstream.endpoint");
        assert!(
            msg.contains("(the target is \"http://localhost:8001\")"),
            "{msg}"
        );
        let (key, _) = invalid(|c| {
            c.upstream.target = UpstreamTarget::Aws;
            c.upstream.endpoint = Some("dynamodb.local".into());
        });
        assert_eq!(key, "upstream.endpoint");

        // The flag that caused the conflict is named.
        let e = load_with_env(&cli(&["--region", "us-east-1"]), no_env).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("upstream.region (set by --region): "),
            "{e}"
        );
    }

    #[test]
    fn validate_timeouts() {
        let (key, msg) = invalid(|c| c.upstream.connect_timeout = Duration::ZERO);
        assert_eq!(key, "upstream.connect_timeout");
        assert!(msg.ends_with("must be > 0"));
        let e = load_with_env(&cli(&["--request-timeout", "0s"]), no_env).unwrap_err();
        assert_eq!(
            e.to_string(),
            "upstream.request_timeout (set by --request-timeout): must be > 0"
        );
    }

    #[test]
    fn validate_sizes() {
        let (key, msg) = invalid_toml("[cache]\ncapacity_bytes = 0");
        assert_eq!(key, "cache.capacity_bytes");
        assert!(msg.ends_with("must be > 0"));
        assert!(msg.contains("(set in <toml>)"));

        let (key, msg) = invalid(|c| c.max_body_bytes = 0);
        assert_eq!(key, "max_body_bytes");
        assert!(msg.contains("must be between 1 and 67108864"), "{msg}");
        let (key, _) = invalid(|c| c.max_body_bytes = MAX_BODY_BYTES_LIMIT + 1);
        assert_eq!(key, "max_body_bytes");
        let c = Config::from_toml_str("max_body_bytes = \"64MiB\"").unwrap();
        assert_eq!(c.max_body_bytes, MAX_BODY_BYTES_LIMIT);
        let e =
            load_with_env(&cli(&[]), env_of(&[("DDBCACHE_MAX_BODY_BYTES", "1TiB")])).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("max_body_bytes (set by DDBCACHE_MAX_BODY_BYTES): ")
        );
    }

    #[test]
    fn validate_listeners() {
        let (key, msg) = invalid(|c| c.admin_listen = c.listen);
        assert_eq!(key, "admin_listen");
        assert!(msg.contains("conflicts with listen"), "{msg}");
        let (key, _) = invalid(|c| c.admin_listen = "0.0.0.0:8000".parse().unwrap());
        assert_eq!(key, "admin_listen");
        // Port 0 twice is fine (two ephemeral ports), as are different IPs on one port.
        let mut c = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            ..Config::default()
        };
        c.validate().unwrap();
        c.listen = "127.0.0.1:8000".parse().unwrap();
        c.admin_listen = "127.0.0.2:8000".parse().unwrap();
        c.validate().unwrap();
    }

    #[test]
    fn validate_ttls_and_tables() {
        let (key, msg) = invalid(|c| c.cache.ttl.query = MAX_TTL + Duration::from_secs(1));
        assert_eq!(key, "cache.ttl.query");
        assert!(msg.contains("at most 365 days"));
        let (key, _) = invalid_toml("[cache.tables.Orders]\nnegative = \"400days\"");
        assert_eq!(key, "cache.tables.Orders.negative");
        let (key, _) = invalid_toml("[cache.tables.\"my table\"]\nitem = \"1m\"");
        assert_eq!(key, "cache.tables.\"my table\"");
        // Zero TTLs (caching disabled) are valid, globally and per table.
        Config::from_toml_str("[cache.ttl]\nitem = \"0s\"\n[cache.tables.\"a.b\"]\nitem = \"0s\"")
            .unwrap();
    }

    #[test]
    fn validate_log_level() {
        let (key, msg) = invalid_toml("[log]\nlevel = \"ddbcache=loud\"");
        assert_eq!(key, "log.level");
        assert!(msg.contains("ddbcache=loud"), "{msg}");
        let (key, _) = invalid(|c| c.log.level = " ".into());
        assert_eq!(key, "log.level");
        for good in ["warn", "ddbcache=debug,hyper=info", "ddbcache::cache=trace"] {
            let mut c = Config::default();
            c.log.level = good.into();
            c.validate().unwrap();
        }
    }

    #[test]
    fn auth_settings_from_every_layer() {
        let c = Config::from_toml_str(
            r#"
            [auth]
            enabled = true
            max_clock_skew = "5m"
            keys_file = "/etc/ddbcache/keys.toml"
            [[auth.keys]]
            access_key_id = "AKIDFILE"
            secret_access_key = "file-secret"
            tables = ["Orders*"]
            operations = ["GetItem", "Query"]
            "#,
        )
        .unwrap();
        assert!(c.auth.enabled);
        assert_eq!(c.auth.max_clock_skew, Duration::from_secs(300));
        assert_eq!(
            c.auth.keys_file,
            Some(PathBuf::from("/etc/ddbcache/keys.toml"))
        );
        assert_eq!(c.auth.keys.len(), 1);
        assert_eq!(c.auth.keys[0].secret_access_key.expose(), "file-secret");
        assert!(!format!("{c:?}").contains("file-secret"));

        let env = env_of(&[
            ("DDBCACHE_AUTH", "true"),
            ("DDBCACHE_AUTH_KEYS", "AKIDENV:env-secret:*:Get*"),
            ("DDBCACHE_AUTH_MAX_CLOCK_SKEW", "1m"),
            ("DDBCACHE_AUTH_KEYS_FILE", "/k.toml"),
        ]);
        let c = load_with_env(&cli(&[]), &env).unwrap();
        assert!(c.auth.enabled);
        assert_eq!(c.auth.keys[0].access_key_id, "AKIDENV");
        assert_eq!(c.auth.max_clock_skew, Duration::from_secs(60));
        assert_eq!(c.auth.keys_file, Some(PathBuf::from("/k.toml")));
        let c = load_with_env(
            &cli(&[
                "--auth=false",
                "--auth-max-clock-skew",
                "2m",
                "--auth-keys-file",
                "/f.toml",
            ]),
            &env,
        )
        .unwrap();
        assert!(!c.auth.enabled);
        assert_eq!(c.auth.max_clock_skew, Duration::from_secs(120));
        assert_eq!(c.auth.keys_file, Some(PathBuf::from("/f.toml")));
        let c = load_with_env(&cli(&["--auth", "--auth-keys-file", "/f.toml"]), no_env).unwrap();
        assert!(c.auth.enabled);

        // A bad env key names the variable, never the secret.
        let e = load_with_env(
            &cli(&[]),
            env_of(&[("DDBCACHE_AUTH_KEYS", "AKIDENV:env-secret:*:Frobnicate")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("auth.keys (set by DDBCACHE_AUTH_KEYS): "),
            "{e}"
        );
        assert!(!e.contains("env-secret"), "{e}");
    }

    #[test]
    fn validate_auth() {
        let (key, msg) = invalid(|c| c.auth.enabled = true);
        assert_eq!(key, "auth.enabled");
        assert!(msg.contains("no client keys"), "{msg}");
        let (key, _) = invalid(|c| c.auth.max_clock_skew = Duration::ZERO);
        assert_eq!(key, "auth.max_clock_skew");
        let (key, _) = invalid(|c| c.auth.max_clock_skew = Duration::from_secs(7200));
        assert_eq!(key, "auth.max_clock_skew");
        let k = |id: &str, ops: &[&str]| KeyConfig {
            access_key_id: id.into(),
            secret_access_key: Secret::new("s"),
            tables: vec!["*".into()],
            operations: ops.iter().map(|o| o.to_string()).collect(),
        };
        let (key, msg) = invalid(|c| c.auth.keys = vec![k("AKID", &["GetItems"])]);
        assert_eq!(key, "auth.keys");
        assert!(
            msg.contains("\"GetItems\" is not a DynamoDB operation"),
            "{msg}"
        );
        let (key, msg) = invalid(|c| c.auth.keys = vec![k("AKID", &["*"]), k("AKID", &["*"])]);
        assert_eq!(key, "auth.keys");
        assert!(msg.contains("configured twice"), "{msg}");

        // A non-loopback listen needs auth or the explicit opt-out.
        for addr in ["0.0.0.0:8000", "[::]:8000", "10.1.2.3:8000"] {
            let (key, msg) = invalid(|c| c.listen = addr.parse().unwrap());
            assert_eq!(key, "listen", "{addr}");
            assert!(msg.contains("--allow-unauthenticated"), "{msg}");
        }
        let e = load_with_env(&cli(&["--listen", "0.0.0.0:8000"]), no_env).unwrap_err();
        assert!(
            e.to_string().starts_with("listen (set by --listen): "),
            "{e}"
        );
        load_with_env(
            &cli(&["--listen", "0.0.0.0:8000", "--allow-unauthenticated"]),
            no_env,
        )
        .unwrap();
        load_with_env(
            &cli(&["--listen", "0.0.0.0:8000"]),
            env_of(&[("DDBCACHE_ALLOW_UNAUTHENTICATED", "1")]),
        )
        .unwrap();
        Config::from_toml_str("listen = \"0.0.0.0:8000\"\nallow_unauthenticated = true").unwrap();
        let mut c = Config {
            listen: "0.0.0.0:8000".parse().unwrap(),
            ..Config::default()
        };
        c.auth.enabled = true;
        c.auth.keys = vec![k("AKID", &["*"])];
        c.validate().unwrap();
        assert!(Cli::try_parse_from(["ddbcache", "--allow-unauthenticated=maybe"]).is_err());
    }

    #[test]
    fn byte_sizes() {
        for (s, n) in [
            ("0", 0),
            ("1024", 1024),
            ("12B", 12),
            ("64KiB", 64 * 1024),
            ("256MiB", 256 << 20),
            ("2GiB", 2 << 30),
            ("1TiB", 1 << 40),
            ("1KB", 1000),
            ("1MB", 1_000_000),
            ("1GB", 1_000_000_000),
            ("3TB", 3_000_000_000_000),
            ("256mib", 256 << 20),
            (" 1 GB ", 1_000_000_000),
        ] {
            assert_eq!(parse_byte_size(s), Ok(n), "{s:?}");
        }
        for s in [
            "",
            "MiB",
            "-1",
            "1.5GiB",
            "1 M",
            "1MiBs",
            "12 parsecs",
            "1e6",
        ] {
            let e = parse_byte_size(s).unwrap_err();
            assert!(e.contains("not a byte size"), "{s:?}: {e}");
        }
        assert!(
            parse_byte_size("99999999999999999999")
                .unwrap_err()
                .contains("too large")
        );
        assert!(
            parse_byte_size("16777216TiB")
                .unwrap_err()
                .contains("too large")
        );
        // In the file: an integer or a string.
        assert_eq!(
            Config::from_toml_str("[cache]\ncapacity_bytes = 1_048_576")
                .unwrap()
                .cache
                .capacity_bytes,
            1 << 20
        );
    }

    #[test]
    fn per_table_ttl_override() {
        let c = Config::from_toml_str(
            r#"
            [cache.ttl]
            item = "5m"
            query = "1m"
            negative = "30s"
            [cache.tables.Orders]
            item = "10s"
            [cache.tables.Sessions]
            query = "0s"
            negative = "0s"
            "#,
        )
        .unwrap();
        let ttl = c.cache.ttl;
        let orders = ttl.for_table(&c.cache.tables, "Orders");
        assert_eq!(orders.item, Duration::from_secs(10));
        assert_eq!(orders.query, Duration::from_secs(60));
        assert_eq!(orders.negative, Duration::from_secs(30));
        let sessions = ttl.for_table(&c.cache.tables, "Sessions");
        assert_eq!(sessions.item, Duration::from_secs(300));
        assert_eq!(sessions.query, Duration::ZERO);
        assert_eq!(sessions.negative, Duration::ZERO);
        assert_eq!(ttl.for_table(&c.cache.tables, "Other"), ttl);
        assert_eq!(ttl.for_table(&c.cache.tables, "orders"), ttl); // names are case-sensitive
    }

    #[test]
    fn display_round_trips() {
        for t in [
            UpstreamTarget::Embedded,
            UpstreamTarget::Aws,
            UpstreamTarget::Url("http://localhost:8001".into()),
        ] {
            assert_eq!(parse_upstream_target(&t.to_string()), Ok(t));
        }
        for f in [LogFormat::Text, LogFormat::Json] {
            assert_eq!(f.to_string().parse::<LogFormat>(), Ok(f));
        }
    }

    const ALL_KNOBS: [&Knob; 20] = [
        &LISTEN,
        &ADMIN_LISTEN,
        &MAX_BODY_BYTES,
        &UPSTREAM,
        &REGION,
        &DATA_DIR,
        &AWS_ENDPOINT,
        &CONNECT_TIMEOUT,
        &REQUEST_TIMEOUT,
        &CAPACITY,
        &TTL,
        &ITEM_TTL,
        &QUERY_TTL,
        &NEGATIVE_TTL,
        &LOG_FORMAT,
        &LOG_LEVEL,
        &AUTH,
        &AUTH_KEYS_FILE,
        &MAX_CLOCK_SKEW,
        &ALLOW_UNAUTHENTICATED,
    ];

    #[test]
    fn docs_table_lists_every_knob() {
        let docs = include_str!("../docs/config.md");
        for knob in ALL_KNOBS {
            let row = docs
                .lines()
                .find(|l| l.contains(&format!("| `{}` |", knob.env)))
                .unwrap_or_else(|| panic!("docs/config.md has no row for {}", knob.env));
            assert!(row.contains(&format!("`{} ", knob.flag)), "{row}");
            if knob.key != TTL.key {
                assert!(row.starts_with(&format!("| `{}` |", knob.key)), "{row}");
            }
        }
        assert!(docs.contains(&format!("| `{CONFIG_ENV}` | `--config PATH` |")));
    }

    #[test]
    fn help_mentions_every_env_var() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        for knob in ALL_KNOBS {
            assert!(help.contains(knob.env), "{}", knob.env);
            assert!(help.contains(knob.flag), "{}", knob.flag);
        }
        assert!(help.contains(CONFIG_ENV));
        Cli::command().debug_assert();
    }
}

//! The command line: `run`, `seed`, `sample`, `backend`, `static` and `summary`, with the
//! workload options they share ([`WorkloadArgs`]) and the value parsers (`NAME=URL`, durations,
//! the cruddur mix).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Load generator and side-by-side benchmark tool for ddbcache and other DynamoDB endpoints.
#[derive(Parser, Debug)]
#[command(name = "ddbcache-load", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a workload against one or more targets, one after another, and compare them.
    Run(RunArgs),
    /// Create the workload's table (idempotent) and load its data.
    Seed(SeedArgs),
    /// Send the workload's first read once and write the response body (for `static --body-file`).
    Sample(SampleArgs),
    /// Run a standalone dynoxide (in-memory DynamoDB) HTTP server.
    Backend(BackendArgs),
    /// Run a server that answers every request with the same bytes: the "static ceiling".
    Static(StaticArgs),
    /// Print one side-by-side table from the JSON files written by `run --json`.
    Summary(SummaryArgs),
}

/// A `NAME=URL` pair; a bare URL is named after its `host:port`.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedUrl {
    pub name: String,
    pub url: String,
}

/// The workloads: see `docs/load-tool.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WorkloadKind {
    /// GetItem on `--keys` items of `--item-bytes`.
    Get,
    /// Query pages of `--page-size` items from `--keys` partitions.
    Query,
    /// GetItem reads and PutItem/UpdateItem writes of the same keys, at `--read-ratio`.
    Mixed,
    /// The Cruddur app's single-table messaging design (table `cruddur-messages`).
    Cruddur,
}

impl WorkloadKind {
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Get => "get",
            WorkloadKind::Query => "query",
            WorkloadKind::Mixed => "mixed",
            WorkloadKind::Cruddur => "cruddur",
        }
    }
}

/// The cruddur operation mix, in percent: list messages, list groups, new message in an existing
/// group, new group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CruddurMix {
    pub list_messages: u32,
    pub list_groups: u32,
    pub create_message: u32,
    pub create_group: u32,
}

impl CruddurMix {
    pub fn total(&self) -> u32 {
        self.list_messages + self.list_groups + self.create_message + self.create_group
    }
}

#[derive(Args, Debug, Clone)]
pub struct WorkloadArgs {
    /// Which workload.
    #[arg(long, value_enum, default_value_t = WorkloadKind::Get)]
    pub workload: WorkloadKind,
    /// Items (get, mixed), partitions (query) or users (cruddur).
    /// [default: get/mixed 10000, query 1000, cruddur 2000]
    #[arg(long)]
    pub keys: Option<u64>,
    /// Zipf exponent of the key popularity; 0 is uniform.
    #[arg(long, default_value_t = 0.0)]
    pub zipf: f64,
    /// Item size in bytes (DynamoDB's measure: attribute names plus values), padded with a string.
    #[arg(long, default_value_t = 1024)]
    pub item_bytes: usize,
    /// Share of reads in `mixed` (0 = write only).
    #[arg(long, default_value_t = 0.9)]
    pub read_ratio: f64,
    /// Table name [default: ddbcache-load-get, ddbcache-load-query, cruddur-messages].
    #[arg(long)]
    pub table: Option<String>,
    /// Items per partition in `query` (at least --page-size).
    #[arg(long, default_value_t = 25)]
    pub items_per_partition: u32,
    /// `Limit` of each Query in `query` and `cruddur`.
    #[arg(long, default_value_t = 20)]
    pub page_size: u32,
    /// Message groups each cruddur user is in, on average.
    #[arg(long, default_value_t = 3)]
    pub groups_per_user: u32,
    /// Messages per cruddur group, on average.
    #[arg(long, default_value_t = 20)]
    pub messages_per_group: u32,
    /// Cruddur mix in percent: list messages, list groups, message in existing group, new group.
    #[arg(long, default_value = "60,25,12,3", value_parser = parse_mix)]
    pub cruddur_mix: CruddurMix,
    /// Seed of the pseudo-random seed data (the same seed writes the same items).
    #[arg(long, default_value_t = 42)]
    pub data_seed: u64,
}

impl WorkloadArgs {
    /// Keys, partitions or users, with the workload's default.
    pub fn keys(&self) -> u64 {
        self.keys.unwrap_or(match self.workload {
            WorkloadKind::Get | WorkloadKind::Mixed => 10_000,
            WorkloadKind::Query => 1_000,
            WorkloadKind::Cruddur => 2_000,
        })
    }

    /// The table, with the workload's default.
    pub fn table(&self) -> String {
        self.table.clone().unwrap_or_else(|| {
            match self.workload {
                WorkloadKind::Get | WorkloadKind::Mixed => "ddbcache-load-get",
                WorkloadKind::Query => "ddbcache-load-query",
                WorkloadKind::Cruddur => "cruddur-messages",
            }
            .to_string()
        })
    }

    /// Rejects values no workload can run with.
    pub fn validate(&self) -> Result<(), String> {
        if self.keys() == 0 {
            return Err("--keys must be at least 1".into());
        }
        if !(self.zipf >= 0.0 && self.zipf.is_finite()) {
            return Err("--zipf must be a finite number >= 0".into());
        }
        if !(0.0..=1.0).contains(&self.read_ratio) {
            return Err("--read-ratio must be between 0 and 1".into());
        }
        if self.item_bytes > 400 * 1024 {
            return Err("--item-bytes must be at most 409600 (DynamoDB's item limit)".into());
        }
        if self.page_size == 0 || self.items_per_partition < self.page_size {
            return Err("--page-size must be >= 1 and --items-per-partition >= --page-size".into());
        }
        if self.workload == WorkloadKind::Cruddur && self.keys() < 2 {
            return Err("cruddur needs at least 2 users (--keys)".into());
        }
        if self.cruddur_mix.total() == 0 {
            return Err("--cruddur-mix must not be all zero".into());
        }
        Ok(())
    }
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// A target `NAME=URL` (repeatable); the first is the baseline of the ratios.
    #[arg(long = "target", required = true, value_parser = parse_named_url)]
    pub targets: Vec<NamedUrl>,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// Name of this run in reports [default: the workload's name].
    #[arg(long)]
    pub label: Option<String>,
    /// Connections (virtual users), each one HTTP/1.1 keep-alive connection.
    #[arg(long, short = 'c', default_value_t = 16)]
    pub connections: usize,
    /// Measured time per target [default: 10s unless --requests].
    #[arg(long, short = 'd', value_parser = parse_duration, conflicts_with = "requests")]
    pub duration: Option<Duration>,
    /// Measured requests per target, instead of a duration.
    #[arg(long, short = 'n')]
    pub requests: Option<u64>,
    /// Open loop: requests per second in total, latency measured from the intended send time.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Warm-up per target, excluded from the results.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Pause between targets.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub pause: Duration,
    /// Worker threads of the load generator (1 = a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Per-request timeout (counted as a transport error).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Write the full results as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write an SVG plot (latency percentiles, throughput over time).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Prometheus endpoint `NAME=URL` of a target (its cache hit ratio is reported).
    #[arg(long = "metrics", value_parser = parse_named_url)]
    pub metrics: Vec<NamedUrl>,
    /// Seed every target before running it.
    #[arg(long)]
    pub seed: bool,
    /// Before the warm-up, send every distinct read once (all keys, partitions or cruddur
    /// lists), so that a cache starts warm.
    #[arg(long)]
    pub prime: bool,
    /// Concurrent BatchWriteItem calls while seeding.
    #[arg(long, default_value_t = 4)]
    pub seed_concurrency: usize,
    /// Allow targets that are not on a loopback address.
    #[arg(long)]
    pub allow_remote: bool,
    /// No progress output.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct SeedArgs {
    /// The endpoint (`URL` or `NAME=URL`).
    #[arg(long, value_parser = parse_named_url)]
    pub target: NamedUrl,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// Concurrent BatchWriteItem calls.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Allow a target that is not on a loopback address.
    #[arg(long)]
    pub allow_remote: bool,
}

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// The endpoint (`URL` or `NAME=URL`).
    #[arg(long, value_parser = parse_named_url)]
    pub target: NamedUrl,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// Write the body here instead of stdout.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Allow a target that is not on a loopback address.
    #[arg(long)]
    pub allow_remote: bool,
}

#[derive(Args, Debug)]
pub struct BackendArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8001")]
    pub listen: SocketAddr,
    /// Stop by itself after this long.
    #[arg(long, value_parser = parse_duration)]
    pub exit_after: Option<Duration>,
    /// Allow a non-loopback listen address.
    #[arg(long)]
    pub allow_remote: bool,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("body").required(true).args(["body_file", "item_bytes"])))]
pub struct StaticArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8002")]
    pub listen: SocketAddr,
    /// The response body, sent as is.
    #[arg(long)]
    pub body_file: Option<PathBuf>,
    /// Synthesise a GetItem response body with an item of this size.
    #[arg(long)]
    pub item_bytes: Option<usize>,
    /// Worker threads (1 = a single-threaded runtime, like one nginx worker).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Stop by itself after this long.
    #[arg(long, value_parser = parse_duration)]
    pub exit_after: Option<Duration>,
    /// Allow a non-loopback listen address.
    #[arg(long)]
    pub allow_remote: bool,
}

#[derive(Args, Debug)]
pub struct SummaryArgs {
    /// JSON files written by `run --json`.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Also write the table (markdown) here.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
}

/// `NAME=URL` or a bare `URL` (named `host:port`). URLs must be `http://`.
pub fn parse_named_url(s: &str) -> Result<NamedUrl, String> {
    let (name, url) = match s.split_once('=') {
        Some((name, url)) if !name.contains("://") => (Some(name.trim()), url.trim()),
        _ => (None, s.trim()),
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("{url:?}: only http:// URLs are supported"));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("{url:?} has no host"))?;
    let name = match name {
        Some("") => return Err(format!("{s:?}: empty name before '='")),
        Some(name) => name.to_string(),
        None => authority.to_string(),
    };
    Ok(NamedUrl {
        name,
        url: url.to_string(),
    })
}

/// A humantime duration: `10s`, `500ms`, `1m 30s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))
}

/// Four comma-separated percentages, e.g. `60,25,12,3`.
pub fn parse_mix(s: &str) -> Result<CruddurMix, String> {
    let parts: Vec<u32> = s
        .split(',')
        .map(|p| p.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{s:?}: {e}"))?;
    let [list_messages, list_groups, create_message, create_group] = parts[..] else {
        return Err(format!("{s:?}: expected four numbers, e.g. 60,25,12,3"));
    };
    Ok(CruddurMix {
        list_messages,
        list_groups,
        create_message,
        create_group,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_urls() {
        let t = parse_named_url("proxy=http://127.0.0.1:8000").unwrap();
        assert_eq!(
            (t.name.as_str(), t.url.as_str()),
            ("proxy", "http://127.0.0.1:8000")
        );
        let t = parse_named_url("http://localhost:8001/").unwrap();
        assert_eq!(t.name, "localhost:8001");
        assert!(parse_named_url("x=https://127.0.0.1").is_err());
        assert!(parse_named_url("=http://127.0.0.1").is_err());
        assert!(parse_named_url("x=not a url").is_err());
    }

    #[test]
    fn mixes_and_durations() {
        let m = parse_mix("60,25,12,3").unwrap();
        assert_eq!((m.list_messages, m.create_group, m.total()), (60, 3, 100));
        assert!(parse_mix("1,2,3").is_err());
        assert!(parse_mix("a,b,c,d").is_err());
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    }

    #[test]
    fn cli_parses_a_run() {
        let cli = Cli::try_parse_from([
            "ddbcache-load",
            "run",
            "--target",
            "a=http://127.0.0.1:1",
            "--target",
            "b=http://127.0.0.1:2",
            "--workload",
            "query",
            "--requests",
            "100",
            "--metrics",
            "b=http://127.0.0.1:9464/metrics",
        ])
        .unwrap();
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        assert_eq!(run.targets.len(), 2);
        assert_eq!(run.workload.keys(), 1000);
        assert_eq!(run.workload.table(), "ddbcache-load-query");
        run.workload.validate().unwrap();
        assert!(
            Cli::try_parse_from([
                "ddbcache-load",
                "run",
                "--target",
                "a=http://127.0.0.1:1",
                "--requests",
                "1",
                "--duration",
                "1s"
            ])
            .is_err()
        );
    }
}

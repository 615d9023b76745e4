//! Real, unmodified AWS clients talking to the proxy.
//!
//! Each test starts the proxy in-process (embedded upstream, ports picked by
//! the OS), runs one client's scenario from `tests/clients/` as a subprocess,
//! then checks the proxy's own metrics: the scenario's second GetItem must
//! have been a cache hit and its first Query a cache miss.
//!
//! The clients are installed on first use, once per test binary:
//! - Python (boto3, PynamoDB, AWS CLI v1): a venv at
//!   `$CARGO_TARGET_TMPDIR/client-venv`, re-created when
//!   `tests/clients/python/requirements.txt` changes.
//! - JavaScript (AWS SDK v3): `npm ci` in `tests/clients/js`, re-run when its
//!   `package.json` or `package-lock.json` changes.
//!
//! Needs `python3` (with venv and pip) and `node`/`npm` on PATH; override the
//! Python with `DDBCACHE_TEST_PYTHON`. A failed install fails the tests.

use ddbcache::auth::Secret;
use ddbcache::config::KeyConfig;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SCENARIO_TIMEOUT: Duration = Duration::from_secs(300);

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

// ---------------------------------------------------------------- set-up --

/// FNV-1a: a hash that stays the same across Rust releases, for stamp files.
fn fnv1a(parts: &[&[u8]]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff; // separates the parts
    }
    format!("{h:016x}")
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Runs an installer command, returning its output as the error when it fails.
fn run_installer(cmd: &mut Command) -> Result<(), String> {
    let what = format!("{cmd:?}");
    eprintln!("[real_clients] running {what}");
    let started = Instant::now();
    let out: Output = cmd
        .output()
        .map_err(|e| format!("could not run {what}: {e}"))?;
    eprintln!("[real_clients]   took {:.1?}", started.elapsed());
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The client venv's `bin` directory, created and filled on first use.
fn python_bin() -> &'static Path {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = VENV.get_or_init(|| {
        let requirements = clients_dir().join("python/requirements.txt");
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("client-venv");
        let bin = venv.join("bin");
        let stamp_file = venv.join(".ddbcache-stamp");
        let stamp = fnv1a(&[&read(&requirements)]);
        if bin.join("python").exists()
            && std::fs::read_to_string(&stamp_file).ok().as_deref() == Some(&stamp)
        {
            eprintln!(
                "[real_clients] python clients up to date in {}",
                venv.display()
            );
            return Ok(bin);
        }
        eprintln!(
            "[real_clients] installing python clients into {}",
            venv.display()
        );
        let _ = std::fs::remove_dir_all(&venv);
        let python = std::env::var("DDBCACHE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        run_installer(Command::new(python).arg("-m").arg("venv").arg(&venv))?;
        run_installer(
            Command::new(bin.join("python"))
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                    "--progress-bar",
                    "off",
                    "-r",
                ])
                .arg(&requirements),
        )?;
        std::fs::write(&stamp_file, stamp)
            .map_err(|e| format!("writing {}: {e}", stamp_file.display()))?;
        Ok(bin)
    });
    match result {
        Ok(bin) => bin,
        Err(e) => panic!("installing the python clients failed:\n{e}"),
    }
}

/// `tests/clients/js`, with its node_modules installed by `npm ci` on first use.
fn js_dir() -> &'static Path {
    static JS: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = JS.get_or_init(|| {
        let dir = clients_dir().join("js");
        let stamp_file = dir.join("node_modules/.ddbcache-stamp");
        let stamp = fnv1a(&[
            &read(&dir.join("package.json")),
            &read(&dir.join("package-lock.json")),
        ]);
        if std::fs::read_to_string(&stamp_file).ok().as_deref() == Some(&stamp) {
            eprintln!("[real_clients] js clients up to date in {}", dir.display());
            return Ok(dir);
        }
        eprintln!("[real_clients] installing js clients in {}", dir.display());
        run_installer(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir),
        )?;
        std::fs::write(&stamp_file, stamp)
            .map_err(|e| format!("writing {}: {e}", stamp_file.display()))?;
        Ok(dir)
    });
    match result {
        Ok(dir) => dir,
        Err(e) => panic!("installing the js clients failed:\n{e}"),
    }
}

// --------------------------------------------------------------- metrics --

/// A metric sample: name, labels, value.
type Sample<'a> = (&'a str, Vec<(String, String)>, f64);

/// Parses one Prometheus text-format sample line: `name{k="v",...} value [timestamp]`.
fn parse_sample(line: &str) -> Option<Sample<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let (name, mut rest) = line.split_at(name_end);
    let mut labels = Vec::new();
    if let Some(mut s) = rest.strip_prefix('{') {
        loop {
            s = s.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
            if let Some(after) = s.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = s.split_once('=')?;
            let quoted = after.trim_start().strip_prefix('"')?;
            let (mut value, mut escaped, mut end) = (String::new(), false, None);
            for (i, c) in quoted.char_indices() {
                match (escaped, c) {
                    (true, 'n') => value.push('\n'),
                    (true, c) => value.push(c),
                    (false, '\\') => {}
                    (false, '"') => {
                        end = Some(i);
                        break;
                    }
                    (false, c) => value.push(c),
                }
                escaped = !escaped && c == '\\';
            }
            labels.push((key.trim().to_string(), value));
            s = &quoted[end? + 1..];
        }
    }
    let value = match rest.split_whitespace().next()? {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some((name, labels, value))
}

/// Sums the samples named `name` that carry every label in `labels`.
fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter_map(parse_sample)
        .filter(|(n, ls, _)| {
            *n == name
                && labels
                    .iter()
                    .all(|(k, v)| ls.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

/// GET http://{addr}/metrics over a raw HTTP/1.1 connection.
async fn scrape_metrics(addr: std::net::SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the admin listener");
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("/metrics timed out")
        .expect("reading /metrics");
    let response = String::from_utf8(response).expect("/metrics is UTF-8");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "GET /metrics answered:\n{head}"
    );
    body.to_string()
}

// -------------------------------------------------------------- scenario --

/// Starts a proxy, runs the scenario `cmd` against it with table `table`, checks
/// the proxy's cache metrics for that table, and stops the proxy.
async fn run_scenario(client: &str, table: &str, cmd: tokio::process::Command) {
    run_scenario_with(client, table, cmd, |_| {}).await;
}

/// [`run_scenario`] on a proxy with client authentication on: key `test`/`test` may do
/// anything, key `reader`/`reader-secret` may only GetItem, Query and DescribeTable on `table`.
/// Also checks the proxy counted the refusals the auth scenarios provoke.
async fn run_auth_scenario(client: &str, table: &str, cmd: tokio::process::Command) {
    let key = |id: &str, secret: &str, tables: &[&str], ops: &[&str]| KeyConfig {
        access_key_id: id.into(),
        secret_access_key: Secret::new(secret),
        tables: tables.iter().map(|t| t.to_string()).collect(),
        operations: ops.iter().map(|o| o.to_string()).collect(),
    };
    let keys = vec![
        key("test", "test", &["*"], &["*"]),
        key(
            "reader",
            "reader-secret",
            &[table],
            &["GetItem", "Query", "DescribeTable"],
        ),
    ];
    let errors = run_scenario_with(client, table, cmd, move |c| {
        c.auth.enabled = true;
        c.auth.keys = keys;
    })
    .await;
    for (label, at_least) in [
        ("access_denied", 2.0),
        ("invalid_signature", 1.0),
        ("unrecognized_client", 1.0),
    ] {
        let n = metric_sum(&errors, "ddbcache_errors_total", &[("type", label)]);
        assert!(n >= at_least, "{client}: {label} refusals counted {n}");
    }
}

/// Returns the proxy's metrics text after the scenario.
async fn run_scenario_with(
    client: &str,
    table: &str,
    mut cmd: tokio::process::Command,
    configure: impl FnOnce(&mut ddbcache::Config),
) -> String {
    let mut config = ddbcache::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    configure(&mut config);
    let running = ddbcache::server::start(config)
        .await
        .expect("start the proxy");
    let (addr, admin_addr) = (running.addr, running.admin_addr);

    // Keep the clients away from any real AWS configuration on this machine.
    let nowhere = Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-such-aws-config");
    for var in [
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
    ] {
        cmd.env_remove(var);
    }
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("DDBCACHE_ENDPOINT", format!("http://{addr}"))
        .env("DDBCACHE_TABLE", table)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", &nowhere)
        .env("AWS_SHARED_CREDENTIALS_FILE", &nowhere)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("PYTHONUNBUFFERED", "1")
        .current_dir(clients_dir())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);

    eprintln!("[real_clients] {client}: running the scenario against http://{addr}");
    let started = Instant::now();
    let out = tokio::time::timeout(SCENARIO_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{client} scenario timed out after {SCENARIO_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("could not run the {client} scenario: {e}"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "{client} scenario failed ({}) after {:.1?}:\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        out.status,
        started.elapsed()
    );
    println!("--- {client} stdout ---\n{stdout}--- {client} stderr ---\n{stderr}");
    eprintln!(
        "[real_clients] {client}: passed in {:.1?}",
        started.elapsed()
    );

    let metrics = scrape_metrics(admin_addr).await;
    let table_label = [("table", table)];
    let item_hits = metric_sum(&metrics, "ddbcache_item_cache_hits_total", &table_label);
    let query_misses = metric_sum(&metrics, "ddbcache_query_cache_misses_total", &table_label);
    let ours: String = metrics
        .lines()
        .filter(|l| l.contains(table))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        item_hits >= 1.0,
        "{client}: expected an item cache hit on {table}, got {item_hits}; metrics:\n{ours}"
    );
    assert!(
        query_misses >= 1.0,
        "{client}: expected a query cache miss on {table}, got {query_misses}; metrics:\n{ours}"
    );

    eprintln!("[real_clients] {client}: proxy metrics for {table}:\n{ours}");
    let _ = running.shutdown().await;
    metrics
}

fn python_scenario(script: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(python_bin().join("python"));
    cmd.arg(clients_dir().join("python").join(script));
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn boto3() {
    let cmd = tokio::task::spawn_blocking(|| python_scenario("boto3_scenario.py"))
        .await
        .unwrap();
    run_scenario("boto3", "rc_boto3", cmd).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pynamodb() {
    let cmd = tokio::task::spawn_blocking(|| python_scenario("pynamodb_scenario.py"))
        .await
        .unwrap();
    run_scenario("pynamodb", "rc_pynamodb", cmd).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_cli_v1() {
    let cmd = tokio::task::spawn_blocking(|| python_scenario("awscli_scenario.py"))
        .await
        .unwrap();
    run_scenario("awscli", "rc_awscli", cmd).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn js_sdk_v3() {
    let dir = tokio::task::spawn_blocking(js_dir).await.unwrap();
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(dir.join("scenario.mjs"));
    run_scenario("js-sdk-v3", "rc_js", cmd).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn boto3_signing_against_client_auth() {
    let cmd = tokio::task::spawn_blocking(|| python_scenario("boto3_auth_scenario.py"))
        .await
        .unwrap();
    run_auth_scenario("boto3-auth", "rc_boto3_auth", cmd).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn js_sdk_v3_signing_against_client_auth() {
    let dir = tokio::task::spawn_blocking(js_dir).await.unwrap();
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(dir.join("auth_scenario.mjs"));
    run_auth_scenario("js-sdk-v3-auth", "rc_js_auth", cmd).await;
}

#[test]
fn metric_parsing() {
    let text = "# HELP ddbcache_item_cache_hits_total Item cache hits.\n\
                # TYPE ddbcache_item_cache_hits_total counter\n\
                ddbcache_item_cache_hits_total{table=\"a\"} 3\n\
                ddbcache_item_cache_hits_total{table=\"b\"} 4\n\
                ddbcache_requests_total{cache_status=\"hit\",operation=\"GetItem\"} 2\n\
                ddbcache_requests_total{operation=\"GetItem\", cache_status=\"miss\"} 5 1700000000\n\
                ddbcache_requests_total{cache_status=\"hit\",operation=\"Query\"} 1e1\n\
                weird{l=\"a \\\"q\\\" , } \\\\\"} 7\n\
                plain_total 9\n";
    assert_eq!(
        metric_sum(text, "ddbcache_item_cache_hits_total", &[("table", "a")]),
        3.0
    );
    assert_eq!(metric_sum(text, "ddbcache_item_cache_hits_total", &[]), 7.0);
    assert_eq!(
        metric_sum(text, "ddbcache_item_cache_hits_total", &[("table", "c")]),
        0.0
    );
    assert_eq!(
        metric_sum(text, "ddbcache_requests_total", &[("operation", "GetItem")]),
        7.0
    );
    assert_eq!(
        metric_sum(text, "ddbcache_requests_total", &[("cache_status", "hit")]),
        12.0
    );
    assert_eq!(
        metric_sum(
            text,
            "ddbcache_requests_total",
            &[("cache_status", "miss"), ("operation", "GetItem")]
        ),
        5.0
    );
    assert_eq!(metric_sum(text, "weird", &[("l", "a \"q\" , } \\")]), 7.0);
    assert_eq!(metric_sum(text, "plain_total", &[]), 9.0);
    assert_eq!(metric_sum(text, "ddbcache_item_cache_hits", &[]), 0.0);
}

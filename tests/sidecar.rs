//! The sidecar artefacts (`Dockerfile`, `deploy/docker-compose.yml`, `deploy/k8s/pod.yaml`,
//! `deploy/ddbcache.toml`), consistent by construction: no Docker engine runs here, so each test
//! parses what a container would be started with (the image's `ENV`/`ENTRYPOINT`/`CMD`, then the
//! compose service's or pod container's overrides) and runs the real `ddbcache` binary with
//! exactly those arguments and environment. Only what cannot exist here is substituted: ports
//! become free ones (hosts are kept), container paths become the files mounted there, and an
//! external upstream becomes a local dynoxide. Then `/healthz`, the probes and the image's
//! `HEALTHCHECK` command are run against it.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use common::{Dynoxide, RawConn, http_get};
use serde::Deserialize;
use serde_norway::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_ddbcache");

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Dockerfile
// ---------------------------------------------------------------------------------------------

/// The final stage of the Dockerfile, as far as running the image is concerned.
#[derive(Debug, Default)]
struct Image {
    from: String,
    env: Vec<(String, String)>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    healthcheck: Vec<String>,
    expose: Vec<u16>,
    user: String,
    /// `COPY` instructions: (`--from` stage or None for the build context, source, destination).
    copies: Vec<(Option<String>, String, String)>,
}

/// Logical instructions: comment lines dropped, `\` continuations joined.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let logical = std::mem::take(&mut current);
                let (instr, rest) = logical
                    .split_once(char::is_whitespace)
                    .unwrap_or((&logical, ""));
                out.push((instr.to_ascii_uppercase(), rest.trim().to_owned()));
            }
        }
    }
    assert!(current.is_empty(), "Dockerfile ends inside a continuation");
    out
}

/// An exec-form (JSON array) instruction argument; the runtime image has no shell.
fn exec_form(instr: &str, rest: &str) -> Vec<String> {
    serde_json::from_str(rest)
        .unwrap_or_else(|e| panic!("{instr} must use the exec (JSON array) form: {rest:?}: {e}"))
}

fn parse_dockerfile(text: &str) -> Image {
    let mut image = Image::default();
    for (instr, rest) in dockerfile_instructions(text) {
        match instr.as_str() {
            "FROM" => {
                image = Image {
                    from: rest.split_whitespace().next().unwrap().to_owned(),
                    ..Image::default()
                }
            }
            "ENV" => {
                for pair in rest.split_whitespace() {
                    let (k, v) = pair
                        .split_once('=')
                        .unwrap_or_else(|| panic!("ENV {pair:?} is not KEY=VALUE"));
                    assert!(!v.contains('"'), "quoted ENV values are not parsed: {pair}");
                    image.env.retain(|(key, _)| key != k);
                    image.env.push((k.to_owned(), v.to_owned()));
                }
            }
            "ENTRYPOINT" => image.entrypoint = exec_form("ENTRYPOINT", &rest),
            "CMD" => image.cmd = exec_form("CMD", &rest),
            "HEALTHCHECK" => {
                let (_, cmd) = rest
                    .split_once(" CMD ")
                    .or_else(|| rest.strip_prefix("CMD ").map(|c| ("", c)))
                    .unwrap_or_else(|| panic!("HEALTHCHECK without CMD: {rest}"));
                image.healthcheck = exec_form("HEALTHCHECK CMD", cmd);
            }
            "EXPOSE" => {
                image.expose = rest
                    .split_whitespace()
                    .map(|p| p.trim_end_matches("/tcp").parse().expect("EXPOSE port"))
                    .collect()
            }
            "USER" => image.user = rest,
            "COPY" => {
                let words: Vec<&str> = rest.split_whitespace().collect();
                let from = words
                    .iter()
                    .find_map(|w| w.strip_prefix("--from="))
                    .map(str::to_owned);
                let paths: Vec<&str> = words
                    .iter()
                    .copied()
                    .filter(|w| !w.starts_with("--"))
                    .collect();
                let (dst, srcs) = paths.split_last().expect("COPY SRC... DST");
                assert!(!srcs.is_empty(), "COPY without a source: {rest}");
                for src in srcs {
                    image
                        .copies
                        .push((from.clone(), (*src).to_owned(), (*dst).to_owned()));
                }
            }
            _ => {}
        }
    }
    image
}

fn image() -> Image {
    parse_dockerfile(&read("Dockerfile"))
}

// ---------------------------------------------------------------------------------------------
// A container: what it runs, and how to run that here
// ---------------------------------------------------------------------------------------------

/// The argv and environment a container starts with, and its mounts (container path -> file
/// here).
#[derive(Debug, Clone)]
struct Container {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    mounts: Vec<(String, PathBuf)>,
}

impl Container {
    /// The image's own: ENTRYPOINT + CMD, its ENV, its config file from the build context.
    fn from_image(image: &Image) -> Container {
        let mounts = image
            .copies
            .iter()
            .filter(|(from, _, _)| from.is_none())
            .map(|(_, src, dst)| (dst.clone(), repo_path(src)))
            .collect();
        Container {
            argv: image.entrypoint.iter().chain(&image.cmd).cloned().collect(),
            env: image.env.clone(),
            mounts,
        }
    }

    /// Applies an orchestrator's overrides, Docker's way: a new entrypoint drops the image's CMD.
    fn with_overrides(
        mut self,
        image: &Image,
        entrypoint: Option<Vec<String>>,
        args: Option<Vec<String>>,
        env: Vec<(String, String)>,
    ) -> Container {
        let entry = entrypoint
            .clone()
            .unwrap_or_else(|| image.entrypoint.clone());
        let args = args.unwrap_or_else(|| {
            if entrypoint.is_some() {
                Vec::new()
            } else {
                image.cmd.clone()
            }
        });
        self.argv = entry.into_iter().chain(args).collect();
        for (k, v) in env {
            self.env.retain(|(key, _)| *key != k);
            self.env.push((k, v));
        }
        self
    }

    fn env(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The file here behind a path in the container.
    fn host_path(&self, container_path: &str) -> PathBuf {
        self.mounts
            .iter()
            .filter_map(|(mount, host)| {
                let rest = container_path.strip_prefix(mount.as_str())?;
                if rest.is_empty() {
                    Some(host.clone())
                } else {
                    rest.starts_with('/')
                        .then(|| host.join(rest.trim_start_matches('/')))
                }
            })
            .next_back()
            .filter(|p| p.is_file())
            .unwrap_or_else(|| {
                panic!("{container_path} is neither copied into the image nor mounted")
            })
    }
}

/// A free loopback port (the listener is closed again, so the binary can bind it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What a test changes to run a container here.
struct Local {
    upstream_url: String,
    data_dir: tempfile::TempDir,
}

/// The admin address a container's configuration gives (before any substitution).
fn admin_listen_of(c: &Container) -> SocketAddr {
    config_of(c).admin_listen
}

/// The configuration a container's argv, env and files give (before any substitution).
fn config_of(c: &Container) -> ddbcache::Config {
    let cli_args = c.argv.iter().skip(1).cloned();
    let cli = <ddbcache::config::Cli as clap::Parser>::try_parse_from(
        std::iter::once("ddbcache".to_owned()).chain(cli_args),
    )
    .expect("the container's arguments parse");
    let mut cli = cli;
    cli.config = cli.config.map(|p| c.host_path(&p.to_string_lossy()));
    ddbcache::config::load_with_env(&cli, |name| {
        if name == ddbcache::config::CONFIG_ENV {
            c.env(name).map(|p| c.host_path(p).display().to_string())
        } else {
            c.env(name).map(str::to_owned)
        }
    })
    .unwrap_or_else(|e| panic!("the container's configuration loads: {e}"))
}

/// The container with its ports, paths and upstream substituted, as (argv, env) to run here.
/// `ports` maps each port the settings name to a free one here; distinct ports stay distinct, so
/// a setting that another one overrides still shows.
fn localise(
    c: &Container,
    local: &Local,
    ports: &mut BTreeMap<u16, u16>,
) -> (Vec<String>, Vec<(String, String)>) {
    let mut port = |v: &str| {
        let mut addr: SocketAddr = v.parse().unwrap_or_else(|e| panic!("{v:?}: {e}"));
        addr.set_port(*ports.entry(addr.port()).or_insert_with(free_port));
        addr.to_string()
    };
    let mut extra_env = Vec::new();
    let mut value = |key: &str, v: &str| -> String {
        match key {
            "listen" | "admin_listen" => port(v),
            "config" => c.host_path(v).display().to_string(),
            "data_dir" => local.data_dir.path().display().to_string(),
            "upstream" if v.eq_ignore_ascii_case("aws") => {
                // The standard chain's credentials stand in for IRSA / pod identity; the endpoint
                // override sends the re-signed requests to the local dynoxide.
                extra_env.extend([
                    ("DDBCACHE_AWS_ENDPOINT", local.upstream_url.clone()),
                    ("AWS_ACCESS_KEY_ID", "sidecar-test".to_owned()),
                    ("AWS_SECRET_ACCESS_KEY", "sidecar-test".to_owned()),
                ]);
                v.to_owned()
            }
            "upstream" if v.starts_with("http") => local.upstream_url.clone(),
            _ => v.to_owned(),
        }
    };
    let env_key = |k: &str| match k {
        "DDBCACHE_LISTEN" => "listen",
        "DDBCACHE_ADMIN_LISTEN" => "admin_listen",
        "DDBCACHE_CONFIG" => "config",
        "DDBCACHE_DATA_DIR" => "data_dir",
        "DDBCACHE_UPSTREAM" => "upstream",
        _ => "",
    };
    let flag_key = |f: &str| match f {
        "--listen" => "listen",
        "--admin-listen" => "admin_listen",
        "--config" => "config",
        "--data-dir" => "data_dir",
        "--upstream" => "upstream",
        _ => "",
    };

    let mut env: Vec<(String, String)> = c
        .env
        .iter()
        .map(|(k, v)| (k.clone(), value(env_key(k), v)))
        .collect();
    let mut argv = vec![BIN.to_owned()];
    let mut args = c.argv.iter().skip(1);
    while let Some(arg) = args.next() {
        if let Some((flag, v)) = arg.split_once('=') {
            argv.push(format!("{flag}={}", value(flag_key(flag), v)));
        } else if !flag_key(arg).is_empty() {
            let v = args.next().expect("a flag's value");
            argv.extend([arg.clone(), value(flag_key(arg), v)]);
        } else {
            argv.push(arg.clone());
        }
    }
    env.extend(extra_env.into_iter().map(|(k, v)| (k.to_owned(), v)));
    (argv, env)
}

/// `argv` with `env` only (plus what any process needs), like a container's clean environment.
fn command(argv: &[String], env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_CONFIG_FILE", "/nonexistent/config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null());
    cmd
}

/// The image's HEALTHCHECK command, run here with the container's environment.
async fn run_healthcheck(image: &Image, env: &[(String, String)]) -> Output {
    assert_eq!(
        image.healthcheck[0], image.entrypoint[0],
        "the HEALTHCHECK runs the image's binary"
    );
    let argv: Vec<String> = std::iter::once(BIN.to_owned())
        .chain(image.healthcheck[1..].iter().cloned())
        .collect();
    command(&argv, env)
        .output()
        .await
        .expect("the healthcheck runs")
}

/// A running container's binary.
struct Running {
    child: Child,
    admin: SocketAddr,
    listen: SocketAddr,
    env: Vec<(String, String)>,
    /// The upstream and the data directory live as long as the binary.
    _upstream: Dynoxide,
    _local: Local,
}

/// Starts `c` here, and waits until its admin listener accepts connections (or it exits).
async fn start(c: &Container) -> Running {
    let upstream = Dynoxide::start().await;
    let local = Local {
        upstream_url: upstream.url(),
        data_dir: tempfile::tempdir().unwrap(),
    };
    let mut ports = BTreeMap::new();
    let (argv, env) = localise(c, &local, &mut ports);
    // Where the container's configuration says it listens, moved to the substituted ports.
    let config = config_of(c);
    let here = |addr: SocketAddr| {
        let port = ports.get(&addr.port()).unwrap_or_else(|| {
            panic!("{addr} is set where the test does not substitute it (the config file?)")
        });
        SocketAddr::from(([127, 0, 0, 1], *port))
    };
    let (admin, listen) = (here(config.admin_listen), here(config.listen));
    let mut child = command(&argv, &env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the ddbcache binary starts");
    // Its logs, through the test harness's capture.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("ddbcache: {line}");
        }
    });
    // A deadline for a hung start, not a timing assertion.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("ddbcache exited before listening ({status}): argv {argv:?}, env {env:?}");
        }
        if tokio::net::TcpStream::connect(admin).await.is_ok() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ddbcache did not listen on {admin}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Running {
        child,
        admin,
        listen,
        env,
        _upstream: upstream,
        _local: local,
    }
}

impl Running {
    async fn stop(mut self) -> Vec<(String, String)> {
        self.child.kill().await.expect("stop ddbcache");
        self.env
    }
}

/// The checks every deployment shares: `/healthz` answers, the client listener reaches the
/// upstream, and the image's HEALTHCHECK passes while ddbcache runs and fails once it stopped.
async fn assert_serves_and_is_healthy(image: &Image, running: Running) {
    let health = http_get(running.admin, "/healthz").await;
    assert_eq!(health.status, 200, "/healthz: {}", health.text());

    let tables = RawConn::connect(running.listen)
        .await
        .ddb_json("ListTables", &serde_json::json!({}))
        .await;
    assert_eq!(tables.status, 200, "ListTables: {}", tables.text());
    assert!(
        tables.json().get("TableNames").is_some(),
        "{}",
        tables.text()
    );

    let ok = run_healthcheck(image, &running.env).await;
    assert!(
        ok.status.success(),
        "HEALTHCHECK fails against a running ddbcache: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        stdout.contains(&format!(":{}/healthz", running.admin.port())),
        "HEALTHCHECK probed another address: {stdout}"
    );

    let env = running.stop().await;
    let down = run_healthcheck(image, &env).await;
    assert_eq!(
        down.status.code(),
        Some(1),
        "HEALTHCHECK passes with ddbcache stopped"
    );
    assert!(
        String::from_utf8_lossy(&down.stderr).contains("unhealthy"),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// The image
// ---------------------------------------------------------------------------------------------

#[test]
fn dockerfile_runtime_stage_is_small_non_root_and_runs_the_binary() {
    let image = image();
    assert!(
        image.from.contains("distroless") || image.from.contains("slim"),
        "runtime base {:?} is not a small image",
        image.from
    );
    let uid = image.user.split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|uid| uid != 0),
        "USER {:?} must be a numeric non-root uid (Kubernetes runAsNonRoot checks it)",
        image.user
    );
    let binary = &image.entrypoint[0];
    assert!(
        image
            .copies
            .iter()
            .any(|(from, _, dst)| from.is_some() && dst == binary),
        "ENTRYPOINT {binary} is not copied from the build stage"
    );
    assert_eq!(image.healthcheck[1..], ["healthcheck"]);

    // EXPOSE names the ports the image's own settings listen on.
    let c = Container::from_image(&image);
    let listen: SocketAddr = c.env("DDBCACHE_LISTEN").unwrap().parse().unwrap();
    let admin = admin_listen_of(&c);
    let mut exposed = image.expose.clone();
    exposed.sort_unstable();
    let mut ports = vec![listen.port(), admin.port()];
    ports.sort_unstable();
    assert_eq!(exposed, ports);
    // The client listener stays on loopback (no client auth in the image's defaults).
    assert!(listen.ip().is_loopback(), "image listens on {listen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_defaults_run_and_pass_the_healthcheck() {
    let image = image();
    let c = Container::from_image(&image);
    assert_serves_and_is_healthy(&image, start(&c).await).await;
}

// ---------------------------------------------------------------------------------------------
// docker compose
// ---------------------------------------------------------------------------------------------

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Sequence(items) => items
            .iter()
            .map(|i| i.as_str().expect("a string").to_owned())
            .collect(),
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        other => panic!("expected a list of strings, got {other:?}"),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("expected a scalar, got {other:?}"),
    }
}

/// The compose file's `ddbcache` service as a container of the image.
fn compose_container(image: &Image) -> (Container, Value) {
    let compose: Value = serde_norway::from_str(&read("deploy/docker-compose.yml")).unwrap();
    let service = compose["services"]["ddbcache"].clone();
    assert!(service.is_mapping(), "no ddbcache service");
    assert_eq!(
        service["build"]["dockerfile"].as_str(),
        Some("Dockerfile"),
        "the service builds the repository's Dockerfile"
    );
    let env = match &service["environment"] {
        Value::Mapping(m) => m
            .iter()
            .map(|(k, v)| (scalar(k), scalar(v)))
            .collect::<Vec<_>>(),
        Value::Sequence(items) => items
            .iter()
            .map(|i| {
                let (k, v) = i.as_str().unwrap().split_once('=').unwrap();
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        Value::Null => Vec::new(),
        other => panic!("environment: {other:?}"),
    };
    let entrypoint = service.get("entrypoint").map(strings);
    let command = service.get("command").map(strings);
    let mut c = Container::from_image(image).with_overrides(image, entrypoint, command, env);
    let compose_dir = repo_path("deploy");
    if let Some(Value::Sequence(volumes)) = service.get("volumes") {
        for v in volumes {
            let spec = v.as_str().expect("short volume syntax");
            let mut parts = spec.split(':');
            let (src, dst) = (parts.next().unwrap(), parts.next().unwrap());
            assert!(
                src.starts_with('.'),
                "a bind mount of a file in deploy/: {spec}"
            );
            c.mounts.push((dst.to_owned(), compose_dir.join(src)));
        }
    }
    (c, compose)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_sidecar_runs_with_its_command_env_and_mounted_config() {
    let image = image();
    let (c, compose) = compose_container(&image);
    let service = &compose["services"]["ddbcache"];

    // It shares the app's network namespace, so its client listener is loopback, and the app
    // is pointed at that address.
    assert_eq!(service["network_mode"].as_str(), Some("service:app"));
    let listen: SocketAddr = c.env("DDBCACHE_LISTEN").unwrap().parse().unwrap();
    assert!(
        listen.ip().is_loopback(),
        "compose sidecar listens on {listen}"
    );
    let app = &compose["services"]["app"];
    assert_eq!(
        app["environment"]["AWS_ENDPOINT_URL_DYNAMODB"].as_str(),
        Some(format!("http://{listen}").as_str())
    );
    // The admin port is published on the namespace's owner, and is the configured one.
    let admin = admin_listen_of(&c);
    let published = strings(&app["ports"]);
    assert!(
        published
            .iter()
            .any(|p| p.ends_with(&format!(":{}", admin.port()))),
        "app does not publish the admin port {}: {published:?}",
        admin.port()
    );
    // The upstream is the compose file's local DynamoDB service.
    let upstream = c.env("DDBCACHE_UPSTREAM").unwrap();
    let host = upstream
        .strip_prefix("http://")
        .and_then(|h| h.split(':').next())
        .unwrap();
    assert!(compose["services"][host].is_mapping(), "no service {host}");

    assert_serves_and_is_healthy(&image, start(&c).await).await;
}

// ---------------------------------------------------------------------------------------------
// Kubernetes
// ---------------------------------------------------------------------------------------------

fn k8s_documents() -> Vec<Value> {
    serde_norway::Deserializer::from_str(&read("deploy/k8s/pod.yaml"))
        .map(|doc| Value::deserialize(doc).expect("a YAML document"))
        .collect()
}

fn k8s_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind} in deploy/k8s/pod.yaml"))
}

/// The pod's ddbcache container (a native sidecar in initContainers, or a plain container).
fn k8s_sidecar(docs: &[Value]) -> &Value {
    let spec = &k8s_kind(docs, "Pod")["spec"];
    ["initContainers", "containers"]
        .iter()
        .filter_map(|list| spec[*list].as_sequence())
        .flatten()
        .find(|c| c["name"].as_str() == Some("ddbcache"))
        .expect("a ddbcache container")
}

/// The pod's ddbcache container as a container of the image, its ConfigMap files written to
/// `dir`.
fn k8s_container(image: &Image, docs: &[Value], dir: &Path) -> Container {
    let sidecar = k8s_sidecar(docs);
    let env = sidecar["env"]
        .as_sequence()
        .map(|vars| {
            vars.iter()
                .map(|v| {
                    let value = v
                        .get("value")
                        .unwrap_or_else(|| panic!("env {:?} must be a literal value", v["name"]));
                    (scalar(&v["name"]), scalar(value))
                })
                .collect()
        })
        .unwrap_or_default();
    let entrypoint = sidecar.get("command").map(strings);
    let args = sidecar.get("args").map(strings);
    let mut c = Container::from_image(image).with_overrides(image, entrypoint, args, env);

    let volumes = k8s_kind(docs, "Pod")["spec"]["volumes"]
        .as_sequence()
        .cloned()
        .unwrap_or_default();
    for mount in sidecar["volumeMounts"].as_sequence().into_iter().flatten() {
        let volume = volumes
            .iter()
            .find(|v| v["name"] == mount["name"])
            .expect("a mounted volume exists");
        let cm_name = volume["configMap"]["name"]
            .as_str()
            .expect("a ConfigMap volume");
        let cm = docs
            .iter()
            .find(|d| {
                d["kind"].as_str() == Some("ConfigMap")
                    && d["metadata"]["name"].as_str() == Some(cm_name)
            })
            .unwrap_or_else(|| panic!("ConfigMap {cm_name} is in the manifest"));
        let host_dir = dir.join(cm_name);
        std::fs::create_dir_all(&host_dir).unwrap();
        for (file, content) in cm["data"].as_mapping().expect("ConfigMap data") {
            std::fs::write(host_dir.join(scalar(file)), scalar(content)).unwrap();
        }
        c.mounts
            .push((mount["mountPath"].as_str().unwrap().to_owned(), host_dir));
    }
    c
}

#[test]
fn k8s_sidecar_is_loopback_and_its_probes_and_ports_are_the_admin_listener() {
    let image = image();
    let docs = k8s_documents();
    let dir = tempfile::tempdir().unwrap();
    let c = k8s_container(&image, &docs, dir.path());
    let sidecar = k8s_sidecar(&docs);

    let listen: SocketAddr = c.env("DDBCACHE_LISTEN").unwrap().parse().unwrap();
    assert!(listen.ip().is_loopback(), "pod sidecar listens on {listen}");
    assert_eq!(c.env("DDBCACHE_UPSTREAM"), Some("aws"));

    let admin = admin_listen_of(&c);
    let ports = sidecar["ports"].as_sequence().expect("container ports");
    let port_of = |p: &Value| -> u16 {
        match p {
            Value::Number(n) => n.as_u64().unwrap() as u16,
            Value::String(name) => ports
                .iter()
                .find(|port| port["name"].as_str() == Some(name))
                .and_then(|port| port["containerPort"].as_u64())
                .unwrap_or_else(|| panic!("no container port named {name}"))
                as u16,
            other => panic!("probe port {other:?}"),
        }
    };
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let get = &sidecar[probe]["httpGet"];
        assert!(get.is_mapping(), "{probe} is an httpGet probe");
        assert_eq!(port_of(&get["port"]), admin.port(), "{probe} port");
    }
    // Every declared port is one ddbcache listens on from outside the pod: only the admin one.
    let declared: Vec<u16> = ports
        .iter()
        .map(|p| p["containerPort"].as_u64().unwrap() as u16)
        .collect();
    assert_eq!(declared, [admin.port()]);

    // The app is pointed at the sidecar's loopback listener.
    let pod = k8s_kind(&docs, "Pod");
    let app_env: Vec<&Value> = pod["spec"]["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|c| c["env"].as_sequence())
        .flatten()
        .filter(|v| v["name"].as_str() == Some("AWS_ENDPOINT_URL_DYNAMODB"))
        .collect();
    assert!(
        !app_env.is_empty(),
        "no application container is pointed at the sidecar"
    );
    for v in app_env {
        assert_eq!(
            v["value"].as_str(),
            Some(format!("http://{listen}").as_str())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k8s_sidecar_runs_with_its_env_and_configmap_and_its_probes_answer() {
    let image = image();
    let docs = k8s_documents();
    let dir = tempfile::tempdir().unwrap();
    let c = k8s_container(&image, &docs, dir.path());
    let sidecar = k8s_sidecar(&docs).clone();
    let running = start(&c).await;

    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let path = sidecar[probe]["httpGet"]["path"].as_str().unwrap();
        let resp = http_get(running.admin, path).await;
        assert_eq!(resp.status, 200, "{probe} GET {path}: {}", resp.text());
    }
    assert_serves_and_is_healthy(&image, running).await;
}

// ---------------------------------------------------------------------------------------------
// Config files the manifests mount
// ---------------------------------------------------------------------------------------------

#[test]
fn mounted_config_files_are_valid_and_the_configmap_matches_deploy_toml() {
    let deploy = read("deploy/ddbcache.toml");
    let config = ddbcache::Config::from_toml_file(&repo_path("deploy/ddbcache.toml"))
        .expect("deploy/ddbcache.toml loads");
    assert_eq!(config.cache.capacity_bytes, 128 * 1024 * 1024);
    assert_eq!(config.log.format, ddbcache::config::LogFormat::Json);
    // Addresses and upstream come from the manifests' env vars, not from the file.
    let defaults = ddbcache::Config::default();
    assert_eq!(config.listen, defaults.listen);
    assert_eq!(config.admin_listen, defaults.admin_listen);
    assert_eq!(config.upstream.target, defaults.upstream.target);

    let docs = k8s_documents();
    let cm = k8s_kind(&docs, "ConfigMap");
    assert_eq!(cm["data"]["ddbcache.toml"].as_str(), Some(deploy.as_str()));

    // The file the image bakes in loads too.
    ddbcache::Config::from_toml_file(&repo_path("config/ddbcache.toml"))
        .expect("config/ddbcache.toml loads");
}

// ---------------------------------------------------------------------------------------------
// The healthcheck subcommand on its own
// ---------------------------------------------------------------------------------------------

async fn healthcheck(args: &[&str], env: &[(String, String)]) -> Output {
    let argv: Vec<String> = std::iter::once(BIN.to_owned())
        .chain(args.iter().map(|a| a.to_string()))
        .collect();
    command(&argv, env).output().await.unwrap()
}

#[tokio::test]
async fn healthcheck_fails_cleanly_when_nothing_listens() {
    let url = format!("http://127.0.0.1:{}/healthz", free_port());
    let out = healthcheck(&["healthcheck", "--url", &url], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unhealthy") && stderr.contains(&url),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");

    // The default URL comes from the configuration: DDBCACHE_ADMIN_LISTEN, wildcard -> loopback.
    let port = free_port();
    let env = [(
        "DDBCACHE_ADMIN_LISTEN".to_owned(),
        format!("0.0.0.0:{port}"),
    )];
    let out = healthcheck(&["healthcheck"], &env).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("http://127.0.0.1:{port}/healthz")),
        "{stderr}"
    );
}

#[tokio::test]
async fn healthcheck_fails_on_a_non_200_answer_and_on_an_invalid_configuration() {
    let proxy = common::TestProxy::start(common::UpstreamKind::Embedded).await;
    let ok = format!("http://{}/healthz", proxy.admin_addr);
    let out = healthcheck(&["healthcheck", "--url", &ok], &[]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let missing = format!("http://{}/nope", proxy.admin_addr);
    let out = healthcheck(&["healthcheck", "--url", &missing], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("404"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let env = [(
        "DDBCACHE_ADMIN_LISTEN".to_owned(),
        "not an address".to_owned(),
    )];
    let out = healthcheck(&["healthcheck"], &env).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("DDBCACHE_ADMIN_LISTEN"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    proxy.shutdown().await;
}

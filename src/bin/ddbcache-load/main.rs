//! `ddbcache-load`: a load generator for DynamoDB endpoints (ddbcache, dynoxide, DynamoDB Local,
//! nginx caches...) speaking DynamoDB's JSON 1.0 protocol, with side-by-side comparison of
//! several targets in one run. Usage: `docs/load-tool.md`.
//!
//! Modules: [`cli`] (command line), [`endpoint`] (keep-alive connections), [`workload`] (what
//! to send), [`seed`] (tables and data), [`runner`] (virtual users, warm-up, measurement),
//! [`metrics`] (cache hit ratio from Prometheus), [`report`] (tables, JSON), [`plot`] (SVG),
//! [`servers`] (the `backend` and `static` helper servers).
//!
//! Exit codes: 0 when every target answered; 1 when a target had no successful request; 2 for
//! bad arguments or a failed setup (seeding, a server that cannot start).

mod cli;
mod endpoint;
mod metrics;
mod plot;
mod report;
mod runner;
mod seed;
mod servers;
mod workload;

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use serde_json::json;

use cli::{Cli, Command, RunArgs, SampleArgs, SeedArgs, StaticArgs, SummaryArgs, WorkloadKind};
use endpoint::{Endpoint, Session};
use report::{RunReport, TargetResult};
use runner::{Plan, Stop};
use workload::Workload;

/// Timeout of setup calls (seeding, scans, samples).
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(args) => block_on(args.threads, run(args)),
        Command::Seed(args) => block_on(1, seed_command(args)).map(|()| true),
        Command::Sample(args) => block_on(1, sample(args)).map(|()| true),
        Command::Backend(args) => servers::check_listen(args.listen, args.allow_remote)
            .and_then(|()| block_on(0, servers::backend(args.listen, args.exit_after)))
            .map(|()| true),
        Command::Static(args) => static_command(args).map(|()| true),
        Command::Summary(args) => summary(args).map(|()| true),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("ddbcache-load: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs `future` on a single-threaded runtime (`threads` 1), a runtime with `threads` workers,
/// or one worker per core (`threads` 0).
fn block_on<T>(
    threads: usize,
    future: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    let runtime = match threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        0 => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    }
    .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(future)
}

async fn run(args: RunArgs) -> Result<bool, String> {
    let workload = Workload::from_args(&args.workload)?;
    let mut names = HashSet::new();
    for target in &args.targets {
        if !names.insert(target.name.as_str()) {
            return Err(format!("two targets are named {:?}", target.name));
        }
    }
    for m in &args.metrics {
        if !names.contains(m.name.as_str()) {
            return Err(format!("--metrics {}: no target has that name", m.name));
        }
    }
    let mut endpoints = Vec::new();
    for target in &args.targets {
        endpoints.push(Endpoint::resolve(target, args.allow_remote).await?);
    }
    let stop = match (args.requests, args.duration) {
        (Some(n), _) => Stop::Requests(n),
        (None, d) => Stop::After(d.unwrap_or(Duration::from_secs(10))),
    };
    let plan = Plan {
        connections: args.connections.max(1),
        warmup: args.warmup,
        stop,
        rate: args.rate,
        timeout: args.timeout,
        quiet: args.quiet,
    };
    let label = args
        .label
        .clone()
        .unwrap_or_else(|| args.workload.workload.name().to_string());
    let description = format!("{}; {}", describe_workload(&args), describe_load(&plan));
    eprintln!("{label}: {description}");

    let mut results = Vec::new();
    for (i, endpoint) in endpoints.iter().enumerate() {
        if i > 0 && !args.pause.is_zero() {
            tokio::time::sleep(args.pause).await;
        }
        match run_one(&workload, endpoint, &args, &plan).await {
            Ok(result) => {
                eprintln!(
                    "{}: {:.0} req/s, p50 {} µs, p99 {} µs, {} errors",
                    result.name,
                    result.rps,
                    result.latency_us.p50,
                    result.latency_us.p99,
                    result.errors_total
                );
                results.push(result);
            }
            Err(e) => {
                eprintln!("{}: {e}", endpoint.name);
                results.push(TargetResult {
                    name: endpoint.name.clone(),
                    url: endpoint.url.clone(),
                    notes: vec![e],
                    ..TargetResult::default()
                });
            }
        }
    }
    let report = RunReport {
        tool: concat!("ddbcache-load ", env!("CARGO_PKG_VERSION")).to_string(),
        label,
        workload: args.workload.workload.name().to_string(),
        description,
        parameters: parameters(&args, &plan),
        targets: results,
    };
    println!("{}", report::render(&report));
    if let Some(path) = &args.json {
        write_file(
            path,
            &serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?,
        )?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        plot::write_svg(path, &report)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(report.targets.iter().all(|t| t.ok > 0))
}

/// Seeds (with `--seed`), prepares and runs one target.
async fn run_one(
    workload: &Workload,
    endpoint: &Arc<Endpoint>,
    args: &RunArgs,
    plan: &Plan,
) -> Result<TargetResult, String> {
    if args.seed {
        seed::seed(
            endpoint.clone(),
            workload,
            args.seed_concurrency,
            SETUP_TIMEOUT,
        )
        .await?;
    }
    let factory = workload
        .prepare(&mut Session::new(endpoint.clone(), SETUP_TIMEOUT))
        .await?;
    let mut notes = Vec::new();
    if args.prime {
        let started = std::time::Instant::now();
        match runner::prime(
            endpoint.clone(),
            factory.clone(),
            plan.connections,
            plan.timeout,
        )
        .await
        {
            Ok((sent, failed)) => eprintln!(
                "{}: primed {sent} distinct reads in {:.1}s, {failed} failed",
                endpoint.name,
                started.elapsed().as_secs_f64()
            ),
            Err(e) => {
                eprintln!("{}: {e}", endpoint.name);
                notes.push(e);
            }
        }
    }
    let metrics_url = args
        .metrics
        .iter()
        .find(|m| m.name == endpoint.name)
        .map(|m| m.url.clone());
    let mut result = runner::run_target(
        endpoint.clone(),
        factory,
        plan,
        metrics_url,
        args.allow_remote,
    )
    .await;
    result.notes.extend(notes);
    Ok(result)
}

fn describe_workload(args: &RunArgs) -> String {
    let w = &args.workload;
    let popularity = if w.zipf > 0.0 {
        format!("zipf {}", w.zipf)
    } else {
        "uniform".to_string()
    };
    match w.workload {
        WorkloadKind::Get => format!(
            "GetItem of {} keys ({popularity}), {}-byte items",
            w.keys(),
            w.item_bytes
        ),
        WorkloadKind::Query => format!(
            "Query Limit {} of {} partitions x {} items ({popularity}), {}-byte items",
            w.page_size,
            w.keys(),
            w.items_per_partition,
            w.item_bytes
        ),
        WorkloadKind::Mixed => format!(
            "{:.0}% GetItem, {:.0}% PutItem/UpdateItem of {} keys ({popularity}), {}-byte items",
            w.read_ratio * 100.0,
            (1.0 - w.read_ratio) * 100.0,
            w.keys(),
            w.item_bytes
        ),
        WorkloadKind::Cruddur => {
            let m = w.cruddur_mix;
            format!(
                "Cruddur messaging, {} users ({popularity}), list messages/list groups/new message/new group {}/{}/{}/{}",
                w.keys(),
                m.list_messages,
                m.list_groups,
                m.create_message,
                m.create_group
            )
        }
    }
}

fn describe_load(plan: &Plan) -> String {
    let lp = match plan.rate {
        Some(rate) => format!("open loop at {rate} req/s"),
        None => "closed loop".to_string(),
    };
    let span = match plan.stop {
        Stop::After(d) => format!("{} per target", humantime::format_duration(d)),
        Stop::Requests(n) => format!("{n} requests per target"),
    };
    format!(
        "{} connections, {lp}, {span} after a {} warm-up",
        plan.connections,
        humantime::format_duration(plan.warmup)
    )
}

fn parameters(args: &RunArgs, plan: &Plan) -> BTreeMap<String, serde_json::Value> {
    let w = &args.workload;
    let mut p = BTreeMap::new();
    p.insert("workload".into(), json!(w.workload.name()));
    p.insert("table".into(), json!(w.table()));
    p.insert("keys".into(), json!(w.keys()));
    p.insert("zipf".into(), json!(w.zipf));
    p.insert("item_bytes".into(), json!(w.item_bytes));
    match w.workload {
        WorkloadKind::Mixed => {
            p.insert("read_ratio".into(), json!(w.read_ratio));
        }
        WorkloadKind::Query => {
            p.insert("page_size".into(), json!(w.page_size));
            p.insert("items_per_partition".into(), json!(w.items_per_partition));
        }
        WorkloadKind::Cruddur => {
            let m = w.cruddur_mix;
            p.insert(
                "cruddur_mix".into(),
                json!([
                    m.list_messages,
                    m.list_groups,
                    m.create_message,
                    m.create_group
                ]),
            );
            p.insert("groups_per_user".into(), json!(w.groups_per_user));
            p.insert("messages_per_group".into(), json!(w.messages_per_group));
        }
        WorkloadKind::Get => {}
    }
    p.insert("connections".into(), json!(plan.connections));
    match plan.stop {
        Stop::After(d) => p.insert("duration_s".into(), json!(d.as_secs_f64())),
        Stop::Requests(n) => p.insert("requests".into(), json!(n)),
    };
    p.insert("rate".into(), json!(plan.rate));
    p.insert("warmup_s".into(), json!(plan.warmup.as_secs_f64()));
    p.insert("threads".into(), json!(args.threads));
    p.insert("timeout_s".into(), json!(plan.timeout.as_secs_f64()));
    p
}

async fn seed_command(args: SeedArgs) -> Result<(), String> {
    let workload = Workload::from_args(&args.workload)?;
    let endpoint = Endpoint::resolve(&args.target, args.allow_remote).await?;
    seed::seed(endpoint, &workload, args.concurrency, SETUP_TIMEOUT).await
}

async fn sample(args: SampleArgs) -> Result<(), String> {
    let workload = Workload::from_args(&args.workload)?;
    let endpoint = Endpoint::resolve(&args.target, args.allow_remote).await?;
    let mut session = Session::new(endpoint, SETUP_TIMEOUT);
    let factory = workload.prepare(&mut session).await?;
    let request = factory.sample();
    let reply = session
        .call(request.op, request.body)
        .await
        .map_err(|e| e.to_string())?;
    if !reply.status.is_success() {
        return Err(format!(
            "{} answered HTTP {}: {}",
            request.op.name(),
            reply.status,
            String::from_utf8_lossy(&reply.body)
        ));
    }
    match &args.out {
        Some(path) => write_file(path, &reply.body),
        None => {
            use std::io::Write;
            std::io::stdout()
                .write_all(&reply.body)
                .map_err(|e| e.to_string())
        }
    }
}

fn static_command(args: StaticArgs) -> Result<(), String> {
    servers::check_listen(args.listen, args.allow_remote)?;
    let body = match (&args.body_file, args.item_bytes) {
        (Some(path), _) => {
            bytes::Bytes::from(std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?)
        }
        (None, Some(n)) => servers::synthetic_get_item_body(n),
        (None, None) => return Err("give --body-file or --item-bytes".into()),
    };
    block_on(
        args.threads.max(1),
        servers::static_server(args.listen, body, args.exit_after),
    )
}

fn summary(args: SummaryArgs) -> Result<(), String> {
    let mut reports = Vec::new();
    for path in &args.files {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        reports.push(
            serde_json::from_str::<RunReport>(&text)
                .map_err(|e| format!("{}: {e}", path.display()))?,
        );
    }
    let table = report::summary(&reports);
    print!("{table}");
    if let Some(path) = &args.out {
        write_file(path, &table)?;
    }
    Ok(())
}

/// Writes `contents`, creating the parent directories.
fn write_file(path: &std::path::Path, contents: impl AsRef<[u8]>) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, contents).map_err(|e| format!("{}: {e}", path.display()))
}

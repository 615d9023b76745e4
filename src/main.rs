//! The `ddbcache` binary: parses the command line, builds the [`Config`] (see
//! [`ddbcache::config`]), sets up logging, starts the server and runs until SIGINT or SIGTERM.
//!
//! Exit codes: 0 after a clean shutdown; 1 if the server fails to start; 2 for an invalid
//! configuration or command line; 130 if a second signal cuts a graceful shutdown short.
//! `ddbcache healthcheck` (see [`ddbcache::healthcheck`]) exits 0 when `/healthz` answers
//! 200 OK and 1 otherwise, as container health checks expect.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use ddbcache::config::{self, Cli, Command, Config, LogFormat};
use ddbcache::healthcheck::{self, HealthcheckArgs};
use tracing_subscriber::EnvFilter;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Healthcheck(args)) = &cli.command {
        return run_healthcheck(&cli, args).await;
    }
    let config = match config::load(&cli) {
        Ok(config) => config,
        Err(e) => return invalid_configuration(e),
    };
    if let Err(e) = init_tracing(&config) {
        return invalid_configuration(e);
    }
    tracing::debug!(?config, "configuration");

    let running = match ddbcache::server::start(config).await {
        Ok(running) => running,
        Err(e) => {
            eprintln!("ddbcache: {e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(listen = %running.addr, admin = %running.admin_addr, "ddbcache ready");

    let signal = shutdown_signal().await;
    tracing::info!(signal, "shutting down");
    tokio::select! {
        () = running.shutdown() => {}
        signal = shutdown_signal() => {
            tracing::warn!(signal, "second signal, exiting without finishing the shutdown");
            // Not a return: dropping the runtime would wait for blocking tasks.
            std::process::exit(130);
        }
    }
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// Probes `--url`, or `/healthz` on the admin listener of the configuration the server would
/// load. One line of output either way; every failure exits 1 (Docker reserves 2).
async fn run_healthcheck(cli: &Cli, args: &HealthcheckArgs) -> ExitCode {
    let url = match &args.url {
        Some(url) => url.clone(),
        None => match config::load(cli) {
            Ok(config) => healthcheck::default_url(config.admin_listen),
            Err(e) => {
                eprintln!("ddbcache healthcheck: invalid configuration: {e}");
                return ExitCode::from(1);
            }
        },
    };
    match healthcheck::check(&url, args.timeout).await {
        Ok(()) => {
            println!("ddbcache healthcheck: {url}: 200 OK");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ddbcache healthcheck: unhealthy: {e}");
            ExitCode::from(1)
        }
    }
}

fn invalid_configuration(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("ddbcache: invalid configuration: {e}");
    ExitCode::from(2)
}

/// Logs to stderr (stdout stays free for subcommand output), as text or JSON lines, filtered by
/// `RUST_LOG` when it is set and non-empty, else by `log.level`.
fn init_tracing(config: &Config) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(rust_log) if !rust_log.trim().is_empty() => EnvFilter::try_new(&rust_log)
            .map_err(|e| format!("RUST_LOG: {rust_log:?} is not a valid filter directive: {e}"))?,
        _ => EnvFilter::try_new(&config.log.level).map_err(|e| format!("log.level: {e}"))?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match config.log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|e| format!("cannot install the log subscriber: {e}"))
}

/// Waits for SIGINT (Ctrl-C) or, on Unix, SIGTERM, and returns its name.
async fn shutdown_signal() -> &'static str {
    let ctrl_c = async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "SIGINT",
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGINT");
                std::future::pending().await
            }
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
                "SIGTERM"
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending().await
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<&'static str>();

    tokio::select! {
        name = ctrl_c => name,
        name = terminate => name,
    }
}

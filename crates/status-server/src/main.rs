//! The `status-server` binary: flags and config file, log subscriber, allocator, signals.

mod allocator;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use status_server::{Config, Settings, StatusServer};

/// The TiFlash status HTTP server: CPU and heap profiling, symbols, jemalloc control, store
/// and replica status, remote GC ownership.
#[derive(Debug, Parser)]
#[command(name = "status-server", version)]
struct Cli {
    /// A TOML file with the same keys as the flags (status-addr = "…"); flags win.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("status-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let file = match &cli.config {
        Some(path) => Settings::from_file(path)?,
        None => Settings::default(),
    };
    let config = Config::resolve(file, cli.settings)?;
    init_logging(&config.log_level)?;
    tracing::debug!(?config, "resolved configuration");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("status-worker")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let shutdown = shutdown_signal()?;
        let server = StatusServer::new(config);
        let bound = server.bind().await?;
        // Machine-readable: the test harness and scripts read the bound address from here.
        println!(
            "status-server listening on {}://{}",
            bound.scheme(),
            bound.local_addr()
        );
        bound.serve(shutdown).await;
        tracing::info!("status server terminated");
        Ok(())
    })
}

fn init_logging(filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .with_context(|| format!("invalid --log-level '{filter}'"))?;
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    Ok(())
}

/// Installs the SIGINT and SIGTERM handlers now (before the address is announced, so an
/// early signal is never fatal) and returns a future that completes on the first of them.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received; stopping"),
            _ = int.recv() => tracing::info!("SIGINT received; stopping"),
        }
    })
}

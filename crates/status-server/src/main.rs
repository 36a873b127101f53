//! The `status-server` binary: flags and config file, log subscriber, allocator, signals.

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

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("status-worker")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let server = StatusServer::new(config);
        let bound = server.bind().await?;
        // Machine-readable: the test harness and scripts read the bound address from here.
        println!("status-server listening on http://{}", bound.local_addr());
        bound.serve(shutdown_signal()).await;
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

/// Completes on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the server with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received; stopping"),
        _ = int.recv() => tracing::info!("SIGINT received; stopping"),
    }
}

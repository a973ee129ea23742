//! The `ephyra-server` binary: reads configuration, starts logging, binds the listeners and
//! calls [`ephyra_server::run`]. Exit codes: 0 after a clean shutdown, 1 when the server
//! fails, 2 when the configuration is invalid.
//!
//! `--sample-library DIR` (or `EPHYRA_SAMPLE_LIBRARY`) is the `make run` path: it generates a
//! small library with ffmpeg in DIR if it is missing, configures it when no library is
//! configured, and makes sure there is an administrator to log in with (a configured password
//! is never printed; a generated one is printed on the run that generated it, with the file
//! that keeps it).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use ephyra_config::{LogFormat, ProcessEnv, ServerConfig};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// jemalloc rather than glibc's malloc. A password check takes 19 MiB (argon2); glibc raises its
/// mmap threshold after the first such block is freed, then keeps later ones in per-thread
/// arenas that threads hop between under contention: a burst of 100 anonymous wrong logins left
/// 3 × 19 MiB in each of 7 arenas (RSS 23 → 415 MiB, measured). jemalloc ties a thread to one
/// arena and returns freed pages to the system after a short decay, so the bound on concurrent
/// checks in `auth::password` is also a bound on memory.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Ephyra media server: the Jellyfin client API, stateless across replicas.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// YAML configuration file; `EPHYRA_*` environment variables override it.
    #[arg(long, env = "EPHYRA_CONFIG")]
    config: Option<PathBuf>,
    /// Serve a generated sample library from this folder (created with ffmpeg if missing).
    #[arg(long, env = "EPHYRA_SAMPLE_LIBRARY", value_name = "DIR")]
    sample_library: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match ServerConfig::load(args.config.as_deref(), &ProcessEnv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ephyra-server: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ephyra-server: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config, args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("ephyra-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(config: &ServerConfig) {
    let filter = EnvFilter::try_new(&config.log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log.format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

async fn serve(mut config: ServerConfig, args: Args) -> anyhow::Result<()> {
    let sample_login = match &args.sample_library {
        Some(dir) => Some(prepare_sample(&mut config, dir).await?),
        None => None,
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let admin_listener = TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.admin_listen))?;
    if let Some(login) = &sample_login {
        let port = config.listen.port();
        println!();
        println!("  Ephyra is serving the sample library at http://localhost:{port}");
        println!("  {}", login.message());
        println!(
            "  (metrics: http://localhost:{}/metrics)",
            config.admin_listen.port()
        );
        println!();
    }
    ephyra_server::run(config, listener, admin_listener, shutdown_signal())
        .await
        .context("server stopped")
}

/// Generates the sample media, configures it as the libraries if none are, and returns the
/// administrator login to announce (a configured password is never printed; see
/// [`ephyra_server::sample::admin_login`]).
async fn prepare_sample(
    config: &mut ServerConfig,
    dir: &Path,
) -> anyhow::Result<ephyra_server::sample::SampleLogin> {
    tracing::info!(dir = %dir.display(), "preparing the sample library");
    let made = ephyra_server::sample::ensure(dir, &config.ffmpeg.ffmpeg)
        .await
        .context("cannot generate the sample library")?;
    if made > 0 {
        tracing::info!(files = made, "generated sample media");
    }
    if config.libraries.is_empty() {
        let root = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
        config.libraries = ephyra_server::sample::libraries(&root);
    }
    ephyra_server::sample::admin_login(config).with_context(|| {
        format!(
            "cannot keep the sample administrator's password under {}",
            config.data_dir.display()
        )
    })
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

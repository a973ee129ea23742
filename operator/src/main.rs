//! `ephyra-operator`: `run` the controller, or `render` the objects of a MediaServerCluster
//! file. Parses arguments, starts telemetry, calls the library, maps the outcome to an exit
//! code (0 success, 1 runtime failure, 2 bad input).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use ephyra_operator::controller::{self, RunConfig};
use ephyra_operator::metrics::{AdminState, Metrics, serve_admin};
use ephyra_operator::render;

/// Kubernetes operator for Ephyra media server clusters.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the controller (in a cluster, or against the current kubeconfig).
    Run(RunArgs),
    /// Print every object the operator would create for a MediaServerCluster file, as YAML.
    Render {
        /// The MediaServerCluster YAML file (`-` for standard input).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(
        long,
        env = "EPHYRA_OPERATOR_ADMIN_ADDR",
        default_value = "0.0.0.0:9090"
    )]
    admin_addr: std::net::SocketAddr,
    /// Namespace of the leader Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "ephyra-system")]
    lease_namespace: String,
    /// Name of the leader Lease.
    #[arg(long, default_value = "ephyra-operator")]
    lease_name: String,
    /// This replica's identity in the Lease.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Seconds a leader's Lease lasts without renewal.
    #[arg(long, default_value_t = 15)]
    lease_seconds: u64,
    /// Members whose heartbeat is older than this many seconds are pruned from the status.
    #[arg(long, default_value_t = 120)]
    member_ttl_seconds: u64,
    /// Log filter (tracing syntax).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log: String,
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Json)]
    log_format: LogFormat,
    /// NFS servers clusters may mount, comma-separated; empty: any.
    #[arg(long, env = "EPHYRA_OPERATOR_NFS_SERVERS", default_value = "")]
    nfs_allowed_servers: String,
    /// NFS export path prefixes clusters may mount (whole segments), comma-separated; empty: any.
    #[arg(long, env = "EPHYRA_OPERATOR_NFS_PATHS", default_value = "")]
    nfs_allowed_paths: String,
    /// Namespaces to watch, comma-separated; empty: every namespace. See deploy/namespaced/.
    #[arg(long, env = "EPHYRA_OPERATOR_WATCH_NAMESPACES", default_value = "")]
    watch_namespaces: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Render { file } => render_file(&file),
        Command::Run(args) => {
            init_tracing(&args.log, args.log_format);
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("ephyra-operator: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "operator stopped");
                    eprintln!("ephyra-operator: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn render_file(file: &std::path::Path) -> ExitCode {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(file)
    };
    let text = match text {
        Ok(text) => text,
        Err(e) => {
            eprintln!("ephyra-operator: cannot read {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    match render::render(&text, &file.display().to_string()) {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ephyra-operator: {}: {e}", file.display());
            ExitCode::from(2)
        }
    }
}

fn init_tracing(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().with_current_span(true).init(),
        LogFormat::Text => builder.init(),
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("cannot configure the Kubernetes client (in-cluster or kubeconfig)")?;
    let identity = args
        .identity
        .unwrap_or_else(|| format!("ephyra-operator-{}", std::process::id()));
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind(args.admin_addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.admin_addr))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let admin_stop = {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let admin = tokio::spawn(serve_admin(
        listener,
        AdminState {
            metrics: metrics.clone(),
            ready: ready.clone(),
        },
        admin_stop,
    ));
    let config = RunConfig {
        lease_namespace: args.lease_namespace,
        lease_name: args.lease_name,
        identity,
        lease_seconds: args.lease_seconds,
        member_ttl: Duration::from_secs(args.member_ttl_seconds),
        nfs_policy: ephyra_operator::validate::NfsPolicy::from_lists(
            &args.nfs_allowed_servers,
            &args.nfs_allowed_paths,
        ),
        namespaces: args
            .watch_namespaces
            .split(',')
            .map(str::trim)
            .filter(|ns| !ns.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    let result = controller::run(client, config, metrics, ready, shutdown_signal()).await;
    let _ = stop_tx.send(true);
    let _ = admin.await;
    result.map_err(Into::into)
}

/// Completes on SIGTERM (Kubernetes stopping the pod) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested");
}

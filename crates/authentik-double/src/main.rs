//! `authentik-double`: the authentik API double as a process, for the demo, chaos and
//! benchmark scripts. Control it through `/_double/` (see the library docs).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use authentik_double::{ApiVersion, AuthentikDouble, DEFAULT_TOKEN, DoubleConfig, LatencyModel};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "authentik-double", about = "Test double of the authentik API")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// The admin API token to accept.
    #[arg(long, env = "AUTHENTIK_DOUBLE_TOKEN", default_value = DEFAULT_TOKEN)]
    token: String,
    /// Latency model: off, realistic, or a fixed number of milliseconds.
    #[arg(long, default_value = "off")]
    latency: String,
    /// authentik release to imitate, by minor (2024.10 … 2026.8); default the newest.
    #[arg(long = "version", alias = "api-version", default_value_t = ApiVersion::newest())]
    version: ApiVersion,
    /// Seed for generated ids.
    #[arg(long)]
    seed: Option<u64>,
}

fn parse_latency(s: &str) -> anyhow::Result<LatencyModel> {
    Ok(match s {
        "off" => LatencyModel::Off,
        "realistic" => LatencyModel::realistic(),
        ms => LatencyModel::fixed(Duration::from_millis(ms.parse().with_context(|| {
            format!("--latency {ms:?}: expected off, realistic or milliseconds")
        })?)),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let mut config = DoubleConfig::default()
        .with_listen(args.listen)
        .with_token(args.token)
        .with_api_version(args.version)
        .with_latency(parse_latency(&args.latency)?);
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    let handle = AuthentikDouble::start(config)
        .await
        .context("starting the double")?;
    println!("authentik-double listening on {}", handle.base_url());
    shutdown_signal().await;
    tracing::info!("shutting down");
    handle.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

//! The Kubernetes connection from `--kubeconfig`/`--context` (or the usual defaults), proven
//! to work before any command starts, so "cannot connect" is one clear error (exit 2).

use std::time::Duration;

use kube::Client;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};

use crate::args::Global;
use crate::error::{CliError, describe_kube};

/// A connected cluster.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    /// The context's namespace (`default` when it names none).
    pub default_namespace: String,
}

pub async fn connect(global: &Global) -> Result<Cluster, CliError> {
    let options = KubeConfigOptions {
        context: global.context.clone(),
        ..KubeConfigOptions::default()
    };
    let loaded = match &global.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|error| CliError::Kubeconfig(format!("{}: {error}", path.display())))?;
            Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|error| error.to_string())
        }
        None if global.context.is_some() => Config::from_kubeconfig(&options)
            .await
            .map_err(|error| error.to_string()),
        None => Config::infer()
            .await
            .map_err(|error| format!("none usable (set --kubeconfig or KUBECONFIG): {error}")),
    };
    let mut config = loaded.map_err(CliError::Kubeconfig)?;
    // An operator waits for an answer: fail fast on a dead address instead of kube's 30 s.
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(Duration::from_secs(60));
    let server = config.cluster_url.to_string();
    let default_namespace = config.default_namespace.clone();
    let client =
        Client::try_from(config).map_err(|error| CliError::Kubeconfig(describe_kube(&error)))?;
    client
        .apiserver_version()
        .await
        .map_err(|error| CliError::Unreachable {
            server,
            reason: describe_kube(&error),
        })?;
    Ok(Cluster {
        client,
        default_namespace,
    })
}

//! Installing CRDs into the environment: ours (generated from the Rust types) and the
//! third-party ones the chart's objects are validated against.

use std::path::PathBuf;
use std::time::Duration;

use gitops_crd::ProxyConfig;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, CustomResourceExt};

use crate::error::{Error, IoContext, Result};
use crate::pins;
use crate::util::{FileLock, write_atomic};
use crate::wait::poll_until;

/// Field manager of everything this crate applies.
pub(crate) const FIELD_MANAGER: &str = "gitops-testenv";

/// How long a CRD may take to become Established.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// Installs the ProxyConfig CRD exactly as `gitops_crd` generates it (server-side apply) and
/// waits until the API server serves it.
pub async fn install_proxyconfig_crd(client: &Client) -> Result<()> {
    let crd = serde_json::to_value(ProxyConfig::crd())?;
    apply_crd(client, &crd).await.map(drop)
}

/// Installs every CRD of the product (ProxyConfig and the AuthentikObject ownership record)
/// as generated and waits until they are served.
pub async fn install_product_crds(client: &Client) -> Result<()> {
    install_proxyconfig_crd(client).await?;
    let crd = serde_json::to_value(gitops_crd::ownership::AuthentikObject::crd())?;
    apply_crd(client, &crd).await.map(drop)
}

/// Deletes the CRD `name` (e.g. `authentikobjects.gitops.io`) and waits until it is gone, for
/// tests of what a controller does without it; [`install_product_crds`] brings ours back.
pub async fn uninstall_crd(client: &Client, name: &str) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    match api.delete(name, &Default::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
        Err(error) => return Err(error.into()),
    }
    poll_until(
        &format!("CRD {name} to be deleted"),
        ESTABLISH_TIMEOUT,
        || async { Ok(api.get_opt(name).await?.is_none().then_some(())) },
    )
    .await
}

/// Installs the pinned third-party CRDs (PrometheusRule, ServiceMonitor, ExternalSecret,
/// HelmRelease, Traefik's) and waits until they are served. Returns their names.
pub async fn install_third_party_crds(client: &Client) -> Result<Vec<String>> {
    // File I/O and `go mod download` are blocking; keep them off the caller's runtime.
    let files = tokio::task::spawn_blocking(third_party_crd_files)
        .await
        .map_err(|error| Error::HelperPanicked(error.to_string()))??;
    let mut names = Vec::new();
    for path in files {
        let text =
            std::fs::read_to_string(&path).context(|| format!("reading {}", path.display()))?;
        let documents: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(&text).map_err(|error| Error::Yaml {
                path: path.clone(),
                message: error.to_string(),
            })?;
        for crd in documents.iter().filter(|document| !document.is_null()) {
            names.push(apply_crd(client, crd).await?);
        }
    }
    Ok(names)
}

/// The cached third-party CRD manifests, copied out of their Go modules on first use.
pub fn third_party_crd_files() -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for (name, source) in &pins::pins()?.crds {
        let cache = source.cache_dir(name);
        let wanted: Vec<(PathBuf, &String)> = source
            .files
            .iter()
            .map(|file| (cache.join(file_name(file)), file))
            .collect();
        if wanted.iter().any(|(cached, _)| !cached.is_file()) {
            let _lock = FileLock::acquire(
                &pins::tools_dir().join(".crds.lock"),
                "another download of third-party CRDs",
            )?;
            let module = crate::tools::go_mod_download(&source.module, &source.version)?;
            std::fs::create_dir_all(&cache).context(|| format!("creating {}", cache.display()))?;
            for (cached, file) in &wanted {
                let original = module.dir.join(file);
                let text = std::fs::read(&original)
                    .context(|| format!("reading {} from {}", file, source.module))?;
                write_atomic(cached, text)?;
            }
        }
        files.extend(wanted.into_iter().map(|(cached, _)| cached));
    }
    Ok(files)
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Server-side applies one CRD and waits for `Established`; returns its name.
async fn apply_crd(client: &Client, crd: &serde_json::Value) -> Result<String> {
    let name = crd
        .pointer("/metadata/name")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| Error::CommandOutput {
            command: "apply CRD".into(),
            detail: "manifest has no metadata.name".into(),
        })?
        .to_owned();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(crd),
    )
    .await?;
    poll_until(
        &format!("CRD {name} to become Established"),
        ESTABLISH_TIMEOUT,
        || async {
            let crd = api.get(&name).await?;
            let established = crd
                .status
                .and_then(|status| status.conditions)
                .unwrap_or_default()
                .iter()
                .any(|condition| condition.type_ == "Established" && condition.status == "True");
            Ok(established.then_some(()))
        },
    )
    .await?;
    Ok(name)
}

//! `kubectl gitops backup DIR`: what an operator needs to rebuild the product's state.
//!
//! Files (read back by `restore`): ProxyConfigs and ownership records without status and
//! server-set fields, both CRDs, the release's Helm values, the PrometheusRule, and a manifest.
//! ProxyConfigs created by automatic onboarding are not written: the controller derives them
//! again from their Services (a restored copy would lose its owner and count as hand-written).

use std::path::Path;

use gitops_crd::ProxyConfig;
use gitops_crd::names::DISCOVERED_FROM_LABEL;
use gitops_crd::ownership::AuthentikObject;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::args::Global;
use crate::consistency::list_proxyconfigs;
use crate::error::{CliError, describe_kube, is_status};
use crate::output::{Format, print_json};
use crate::release::{self, Lookup};
use crate::{Outcome, cluster};

pub const PROXYCONFIGS: &str = "proxyconfigs.yaml";
pub const PROXYCONFIG_CRD: &str = "proxyconfig-crd.yaml";
pub const RECORDS: &str = "authentikobjects.yaml";
pub const RECORD_CRD: &str = "authentikobject-crd.yaml";
pub const HELM_VALUES: &str = "helm-values.yaml";
pub const PROMETHEUS_RULES: &str = "prometheus-rules.yaml";
pub const MANIFEST: &str = "manifest.json";

pub const PROXYCONFIG_CRD_NAME: &str = "proxyconfigs.gitops.io";
pub const RECORD_CRD_NAME: &str = "authentikobjects.gitops.io";

/// `manifest.json`: what the backup holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub created_at: String,
    pub tool_version: String,
    pub release: String,
    pub release_namespace: String,
    /// The namespace backed up, or `None` for all.
    pub namespace: Option<String>,
    pub proxy_configs: usize,
    /// Discovered ProxyConfigs left out (re-created from their Services).
    pub discovered_skipped: Vec<String>,
    pub authentik_objects: usize,
    pub helm_values: bool,
    pub prometheus_rule: bool,
    pub notes: Vec<String>,
}

pub async fn run(global: &Global, dir: &Path) -> Result<Outcome, CliError> {
    let cluster = cluster::connect(global).await?;
    let client = &cluster.client;
    let scope = global.namespace.as_deref();
    let mut notes = Vec::new();

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let get_crd = |name: &'static str| {
        let crds = crds.clone();
        async move {
            crds.get_opt(name)
                .await
                .map_err(|error| CliError::kube(format!("reading CRD {name}"), &error))
        }
    };
    let proxyconfig_crd = get_crd(PROXYCONFIG_CRD_NAME).await?.ok_or_else(|| {
        CliError::Config(format!(
            "CRD {PROXYCONFIG_CRD_NAME} is not installed: nothing to back up"
        ))
    })?;
    let record_crd = get_crd(RECORD_CRD_NAME).await?;

    let (proxyconfigs, discovered): (Vec<ProxyConfig>, Vec<ProxyConfig>) =
        list_proxyconfigs(client, scope)
            .await?
            .into_iter()
            .partition(|pc| !pc.labels().contains_key(DISCOVERED_FROM_LABEL));
    let discovered: Vec<String> = discovered
        .iter()
        .map(|pc| format!("{}/{}", pc.namespace().unwrap_or_default(), pc.name_any()))
        .collect();
    let records: Vec<AuthentikObject> = if record_crd.is_some() {
        Api::<AuthentikObject>::all(client.clone())
            .list(&ListParams::default())
            .await
            .map_err(|error| CliError::kube("listing AuthentikObject records", &error))?
            .items
            .into_iter()
            .filter(|r| scope.is_none_or(|ns| r.spec.claimed_by.namespace == ns))
            .collect()
    } else {
        notes.push(format!(
            "CRD {RECORD_CRD_NAME} is not installed: no ownership records"
        ));
        Vec::new()
    };

    let helm_values =
        match release::latest(client, &global.release_namespace, &global.release).await {
            Lookup::Found(release) => Some(release.values),
            Lookup::NotFound => {
                notes.push(format!(
                    "Helm release {} not found in {}: {HELM_VALUES} is empty",
                    global.release, global.release_namespace
                ));
                None
            }
            Lookup::Unreadable(reason) => {
                notes.push(format!("Helm values not backed up: {reason}"));
                None
            }
        };
    let rule = prometheus_rule(client, global, &mut notes).await;

    std::fs::create_dir_all(dir).map_err(|error| CliError::file(dir, error))?;
    let header = |what: &str| format!("# {what} — written by kubectl gitops backup\n");
    let mut pc_header = header("ProxyConfigs without status and server-set fields");
    if !discovered.is_empty() {
        pc_header.push_str("# Left out, created by automatic onboarding from their Services:\n");
        for name in &discovered {
            pc_header.push_str(&format!("#   {name}\n"));
        }
    }
    write_documents(dir, PROXYCONFIGS, &pc_header, &stripped_all(&proxyconfigs)?)?;
    write_documents(
        dir,
        PROXYCONFIG_CRD,
        &header("ProxyConfig CRD"),
        &stripped_all(&[proxyconfig_crd])?,
    )?;
    if let Some(crd) = record_crd {
        write_documents(
            dir,
            RECORD_CRD,
            &header("AuthentikObject CRD"),
            &stripped_all(&[crd])?,
        )?;
        write_documents(
            dir,
            RECORDS,
            &header("AuthentikObject ownership records: which authentik objects are ours"),
            &stripped_all(&records)?,
        )?;
    }
    write_documents(
        dir,
        HELM_VALUES,
        &header(&format!("Helm values of release {}", global.release)),
        &[helm_values
            .clone()
            .unwrap_or_else(|| Value::Object(Default::default()))],
    )?;
    if let Some(rule) = &rule {
        write_documents(
            dir,
            PROMETHEUS_RULES,
            &header("PrometheusRule"),
            std::slice::from_ref(rule),
        )?;
    }

    let manifest = Manifest {
        created_at: Timestamp::now().to_string(),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        release: global.release.clone(),
        release_namespace: global.release_namespace.clone(),
        namespace: scope.map(str::to_owned),
        proxy_configs: proxyconfigs.len(),
        discovered_skipped: discovered,
        authentik_objects: records.len(),
        helm_values: helm_values.is_some(),
        prometheus_rule: rule.is_some(),
        notes,
    };
    let text = serde_json::to_string_pretty(&manifest)
        .map_err(|error| CliError::Config(format!("rendering {MANIFEST}: {error}")))?;
    let path = dir.join(MANIFEST);
    std::fs::write(&path, text + "\n").map_err(|error| CliError::file(&path, error))?;

    match global.output {
        Format::Json => print_json(&manifest)?,
        Format::Table => {
            println!(
                "backed up {} ProxyConfigs, {} ownership records, the CRDs{}{} to {}",
                manifest.proxy_configs,
                manifest.authentik_objects,
                if manifest.helm_values {
                    ", Helm values"
                } else {
                    ""
                },
                if manifest.prometheus_rule {
                    ", PrometheusRule"
                } else {
                    ""
                },
                dir.display()
            );
            for name in &manifest.discovered_skipped {
                println!("left out {name}: created by automatic onboarding from its Service");
            }
            for note in &manifest.notes {
                println!("note: {note}");
            }
        }
    }
    Ok(Outcome::Clean)
}

async fn prometheus_rule(
    client: &kube::Client,
    global: &Global,
    notes: &mut Vec<String>,
) -> Option<Value> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "monitoring.coreos.com",
        "v1",
        "PrometheusRule",
    ));
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &global.release_namespace, &resource);
    let name = format!("{}-alerts", global.release);
    match api.get_opt(&name).await {
        Ok(Some(rule)) => match serde_json::to_value(rule) {
            Ok(mut value) => {
                strip_server_fields(&mut value);
                Some(value)
            }
            Err(error) => {
                notes.push(format!("PrometheusRule {name}: {error}"));
                None
            }
        },
        Ok(None) => {
            notes.push(format!(
                "PrometheusRule {name} not found in {}",
                global.release_namespace
            ));
            None
        }
        Err(error) if is_status(&error, 404) => {
            notes.push("the PrometheusRule CRD is not installed".into());
            None
        }
        Err(error) => {
            notes.push(format!("PrometheusRule {name}: {}", describe_kube(&error)));
            None
        }
    }
}

fn stripped_all<T: Serialize>(objects: &[T]) -> Result<Vec<Value>, CliError> {
    objects
        .iter()
        .map(|object| {
            let mut value = serde_json::to_value(object)
                .map_err(|error| CliError::Config(format!("rendering an object: {error}")))?;
            strip_server_fields(&mut value);
            Ok(value)
        })
        .collect()
}

/// Removes what the API server sets or what would not hold in another cluster: status, uid,
/// versions, timestamps, managed fields, finalizers (so a restore never blocks) and owner
/// references (their uids do not exist after a restore elsewhere).
pub fn strip_server_fields(object: &mut Value) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    map.remove("status");
    let Some(metadata) = map.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    for key in [
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "finalizers",
        "ownerReferences",
        "selfLink",
    ] {
        metadata.remove(key);
    }
    let annotations_empty = metadata
        .get_mut("annotations")
        .and_then(Value::as_object_mut)
        .map(|annotations| {
            annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
            annotations.is_empty()
        });
    if annotations_empty == Some(true) {
        metadata.remove("annotations");
    }
}

fn write_documents(
    dir: &Path,
    file: &str,
    header: &str,
    documents: &[Value],
) -> Result<(), CliError> {
    let path = dir.join(file);
    let body = if documents.is_empty() {
        String::new()
    } else {
        serde_saphyr::to_string_multiple(documents)
            .map_err(|error| CliError::file(&path, format!("rendering YAML: {error}")))?
    };
    std::fs::write(&path, format!("{header}{body}")).map_err(|error| CliError::file(&path, error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_fields_go_user_fields_stay() {
        let mut pc = json!({
            "apiVersion": "gitops.io/v1", "kind": "ProxyConfig",
            "metadata": {
                "name": "grafana-proxy", "namespace": "monitoring", "uid": "u", "resourceVersion": "7",
                "generation": 2, "creationTimestamp": "2025-01-01T00:00:00Z", "managedFields": [{}],
                "finalizers": ["gitops.io/authentik-cleanup"], "labels": {"team": "obs"},
                "ownerReferences": [{"kind": "Service"}],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}
            },
            "spec": {"serviceName": "grafana"},
            "status": {"phase": "Ready"}
        });
        strip_server_fields(&mut pc);
        assert_eq!(
            pc,
            json!({
                "apiVersion": "gitops.io/v1", "kind": "ProxyConfig",
                "metadata": {"name": "grafana-proxy", "namespace": "monitoring", "labels": {"team": "obs"}},
                "spec": {"serviceName": "grafana"}
            })
        );
    }
}

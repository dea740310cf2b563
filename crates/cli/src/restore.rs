//! `kubectl gitops restore DIR [--dry-run]`: server-side apply of a backup.
//!
//! Every file is read and validated before anything is applied. Order: CRDs (then wait until
//! they are served), ownership records (created only when missing: a live record is the
//! controllers' state and is never overwritten), ProxyConfigs. Applying twice changes nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use gitops_crd::ProxyConfig;
use gitops_crd::ownership::AuthentikObject;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::args::Global;
use crate::backup::{
    HELM_VALUES, MANIFEST, Manifest, PROXYCONFIG_CRD, PROXYCONFIG_CRD_NAME, PROXYCONFIGS,
    RECORD_CRD, RECORD_CRD_NAME, RECORDS,
};
use crate::error::{CliError, describe_kube};
use crate::output::{Format, Table, print_json};
use crate::{Outcome, cluster};

/// Field manager of everything restore applies.
const MANAGER: &str = "kubectl-gitops";
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// A backup, read and validated.
#[derive(Debug)]
pub struct Backup {
    pub manifest: Manifest,
    pub crds: Vec<Value>,
    pub records: Vec<Value>,
    pub proxyconfigs: Vec<Value>,
}

/// What restoring one object did (or would do).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    pub kind: String,
    pub name: String,
    /// `created`, `configured`, `unchanged`, `kept` (a live record), or `failed: …`.
    pub action: String,
}

pub async fn run(global: &Global, dir: &Path, dry_run: bool) -> Result<Outcome, CliError> {
    let backup = read(dir, global.namespace.as_deref())?;
    let cluster = cluster::connect(global).await?;
    let client = &cluster.client;
    let mut applied = Vec::new();

    let crd_api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut crd_created = false;
    for crd in &backup.crds {
        let name = name_of(crd);
        let existing = crd_api
            .get_opt(&name)
            .await
            .map_err(|error| CliError::kube(format!("reading CRD {name}"), &error))?;
        crd_created |= existing.is_none();
        let result = crd_api
            .patch(&name, &params(dry_run), &Patch::Apply(crd))
            .await
            .map_err(|error| CliError::kube(format!("applying CRD {name}"), &error))?;
        applied.push(Applied {
            kind: "CustomResourceDefinition".into(),
            name: name.clone(),
            action: action(existing.map(|e| e.spec).as_ref(), Some(&result.spec)),
        });
        if !dry_run {
            wait_established(&crd_api, &name).await?;
        }
    }
    // A dry run cannot apply objects of a CRD it did not really create.
    let served = !(dry_run && crd_created);

    let records: Api<AuthentikObject> = Api::all(client.clone());
    for record in &backup.records {
        let name = name_of(record);
        let action = if !served {
            "created".to_owned()
        } else {
            match records.get_opt(&name).await {
                Ok(Some(_)) => "kept".to_owned(),
                Ok(None) => {
                    let post = PostParams {
                        dry_run,
                        field_manager: Some(MANAGER.into()),
                    };
                    match serde_json::from_value::<AuthentikObject>(record.clone()) {
                        Ok(typed) => match records.create(&post, &typed).await {
                            Ok(_) => "created".to_owned(),
                            Err(error) => format!("failed: {}", describe_kube(&error)),
                        },
                        Err(error) => format!("failed: {error}"),
                    }
                }
                Err(error) => format!("failed: {}", describe_kube(&error)),
            }
        };
        applied.push(Applied {
            kind: "AuthentikObject".into(),
            name,
            action,
        });
    }

    for pc in &backup.proxyconfigs {
        let name = name_of(pc);
        let namespace = pc["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let action = if served {
            apply_proxyconfig(client, &namespace, &name, pc, dry_run).await
        } else {
            "created".to_owned()
        };
        applied.push(Applied {
            kind: "ProxyConfig".into(),
            name: format!("{namespace}/{name}"),
            action,
        });
    }

    let failed = applied.iter().any(|a| a.action.starts_with("failed"));
    match global.output {
        Format::Json => print_json(&applied)?,
        Format::Table => {
            let mut table = Table::new(&["KIND", "NAME", "ACTION"]);
            for a in &applied {
                let action = if dry_run && !a.action.starts_with("failed") {
                    format!("{} (dry run)", a.action)
                } else {
                    a.action.clone()
                };
                table.row(vec![a.kind.clone(), a.name.clone(), action]);
            }
            print!("{}", table.render());
            if backup.manifest.helm_values {
                println!(
                    "note: Helm values are not applied by restore; use: helm upgrade {} <chart> -n {} -f {}",
                    backup.manifest.release,
                    backup.manifest.release_namespace,
                    dir.join(HELM_VALUES).display()
                );
            }
        }
    }
    Ok(Outcome::from_problems(failed))
}

fn params(dry_run: bool) -> PatchParams {
    let mut params = PatchParams::apply(MANAGER).force();
    params.dry_run = dry_run;
    params
}

async fn apply_proxyconfig(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    pc: &Value,
    dry_run: bool,
) -> String {
    let api: Api<ProxyConfig> = Api::namespaced(client.clone(), namespace);
    let existing = match api.get_opt(name).await {
        Ok(existing) => existing,
        Err(error) => return format!("failed: {}", describe_kube(&error)),
    };
    match api.patch(name, &params(dry_run), &Patch::Apply(pc)).await {
        Ok(result) => {
            let view = |p: &ProxyConfig| {
                (
                    p.spec.clone(),
                    p.metadata.labels.clone(),
                    p.metadata.annotations.clone(),
                )
            };
            action(existing.as_ref().map(view).as_ref(), Some(&view(&result)))
        }
        Err(error) => format!("failed: {}", describe_kube(&error)),
    }
}

/// `created` / `configured` / `unchanged` from what existed before and what the server
/// answered.
fn action<T: PartialEq>(before: Option<&T>, after: Option<&T>) -> String {
    match before {
        None => "created",
        Some(before) if Some(before) == after => "unchanged",
        Some(_) => "configured",
    }
    .to_owned()
}

async fn wait_established(api: &Api<CustomResourceDefinition>, name: &str) -> Result<(), CliError> {
    let started = Instant::now();
    loop {
        let crd = api
            .get(name)
            .await
            .map_err(|error| CliError::kube(format!("reading CRD {name}"), &error))?;
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if established {
            return Ok(());
        }
        if started.elapsed() > ESTABLISH_TIMEOUT {
            return Err(CliError::Config(format!(
                "CRD {name} was applied but is not Established after {}s",
                ESTABLISH_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn name_of(object: &Value) -> String {
    object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Reads and validates every file of a backup; `scope` keeps one namespace's objects.
pub fn read(dir: &Path, scope: Option<&str>) -> Result<Backup, CliError> {
    let manifest_path = dir.join(MANIFEST);
    let manifest_text = std::fs::read_to_string(&manifest_path).map_err(|error| {
        CliError::file(
            &manifest_path,
            format!("not a kubectl gitops backup ({error})"),
        )
    })?;
    let manifest: Manifest = serde_json::from_str(&manifest_text)
        .map_err(|error| CliError::file(&manifest_path, error))?;

    let mut crds = documents::<CustomResourceDefinition>(dir, PROXYCONFIG_CRD, true, false)?;
    crds.extend(documents::<CustomResourceDefinition>(
        dir, RECORD_CRD, false, false,
    )?);
    for crd in &crds {
        let name = name_of(crd);
        if name != PROXYCONFIG_CRD_NAME && name != RECORD_CRD_NAME {
            return Err(CliError::file(
                dir,
                format!("CRD {name:?} is not one of this product's"),
            ));
        }
    }
    let records = documents::<AuthentikObject>(dir, RECORDS, false, false)?
        .into_iter()
        .filter(|r| scope.is_none_or(|ns| r["spec"]["claimedBy"]["namespace"] == ns))
        .collect();
    let proxyconfigs = documents::<ProxyConfig>(dir, PROXYCONFIGS, true, true)?
        .into_iter()
        .filter(|pc| scope.is_none_or(|ns| pc["metadata"]["namespace"] == ns))
        .collect();
    Ok(Backup {
        manifest,
        crds,
        records,
        proxyconfigs,
    })
}

/// The documents of one file, each checked to be a valid `T` with a name (and, for namespaced
/// kinds, a namespace). A missing optional file is empty.
fn documents<T: DeserializeOwned + kube::Resource<DynamicType = ()>>(
    dir: &Path,
    file: &str,
    required: bool,
    namespaced: bool,
) -> Result<Vec<Value>, CliError> {
    let path = dir.join(file);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if !required && error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Vec::new());
        }
        Err(error) => return Err(CliError::file(&path, error)),
    };
    let values: Vec<Value> = serde_saphyr::from_multiple(&text)
        .map_err(|error| CliError::file(&path, format!("not valid YAML: {error}")))?;
    let values: Vec<Value> = values.into_iter().filter(|v| !v.is_null()).collect();
    let kind = T::kind(&());
    for (index, value) in values.iter().enumerate() {
        let document = index + 1;
        serde_json::from_value::<T>(value.clone())
            .map_err(|error| CliError::file(&path, format!("document {document}: {error}")))?;
        if value["kind"] != kind.as_ref() {
            return Err(CliError::file(
                &path,
                format!("document {document} is not a {kind}"),
            ));
        }
        if name_of(value).is_empty()
            || (namespaced
                && value["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .is_empty())
        {
            return Err(CliError::file(
                &path,
                format!("document {document} has no metadata.name or metadata.namespace"),
            ));
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_compare_before_and_after() {
        assert_eq!(action(None, Some(&1)), "created");
        assert_eq!(action(Some(&1), Some(&1)), "unchanged");
        assert_eq!(action(Some(&1), Some(&2)), "configured");
    }
}

//! `kubectl gitops onboard SERVICE -n NS --host HOST [--apply]`: the ProxyConfig a Service
//! needs, derived exactly as automatic onboarding derives it (`gitops_crd::onboarding`), with
//! `--host` as the external host. Printed for review or a Git repository, or applied.

use std::collections::BTreeMap;

use gitops_crd::ProxyConfig;
use gitops_crd::names::{labels, service_annotations};
use gitops_crd::onboarding::{proxyconfig_name, spec_for};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use serde_json::Value;

use crate::args::{Global, OnboardArgs};
use crate::error::{CliError, is_status};
use crate::output::{Format, print_json};
use crate::{Outcome, cluster};

/// Field manager of applied ProxyConfigs.
const MANAGER: &str = "kubectl-gitops";

pub async fn run(global: &Global, args: &OnboardArgs) -> Result<Outcome, CliError> {
    let cluster = cluster::connect(global).await?;
    let namespace = global
        .namespace
        .clone()
        .unwrap_or_else(|| cluster.default_namespace.clone());
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), &namespace);
    let service = services
        .get_opt(&args.service)
        .await
        .map_err(|error| {
            CliError::kube(
                format!("reading Service {namespace}/{}", args.service),
                &error,
            )
        })?
        .ok_or_else(|| {
            CliError::Config(format!("Service {namespace}/{} not found", args.service))
        })?;
    let pc = proxyconfig_for(service, &args.host)?;
    let name = proxyconfig_name(&args.service);

    if args.apply {
        let api: Api<ProxyConfig> = Api::namespaced(cluster.client.clone(), &namespace);
        // No force: fields someone else manages with other values are a conflict to resolve,
        // not something to take over.
        api.patch(&name, &PatchParams::apply(MANAGER), &Patch::Apply(&pc))
            .await
            .map_err(|error| {
                if is_status(&error, 409) {
                    CliError::Config(format!(
                        "ProxyConfig {namespace}/{name} exists with other values managed by someone else; edit it instead"
                    ))
                } else {
                    CliError::kube(format!("applying ProxyConfig {namespace}/{name}"), &error)
                }
            })?;
        println!(
            "proxyconfig {namespace}/{name} applied; follow it with: kubectl get proxyconfig {name} -n {namespace} -w"
        );
        return Ok(Outcome::Clean);
    }
    let value = serde_json::to_value(&pc)
        .map_err(|error| CliError::Config(format!("rendering the ProxyConfig: {error}")))?;
    match global.output {
        Format::Json => print_json(&value)?,
        Format::Table => print!("{}", yaml(&value)?),
    }
    Ok(Outcome::Clean)
}

/// The ProxyConfig for `service` published at `host` (pure).
pub fn proxyconfig_for(mut service: Service, host: &str) -> Result<ProxyConfig, CliError> {
    let namespace = service.metadata.namespace.clone().unwrap_or_default();
    let service_name = service.metadata.name.clone().unwrap_or_default();
    service
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(
            service_annotations::EXTERNAL_HOST.to_owned(),
            host.to_owned(),
        );
    let spec = spec_for(&service).map_err(|error| {
        CliError::Config(format!("Service {namespace}/{service_name}: {error}"))
    })?;
    let name = proxyconfig_name(&service_name);
    let mut pc = ProxyConfig::new(&name, spec);
    pc.metadata = ObjectMeta {
        name: Some(name),
        namespace: Some(namespace),
        // The runbook's onboarding template labels.
        labels: Some(BTreeMap::from([
            (labels::NAME.to_owned(), service_name),
            (labels::COMPONENT.to_owned(), "authentication".to_owned()),
        ])),
        ..ObjectMeta::default()
    };
    Ok(pc)
}

fn yaml(value: &Value) -> Result<String, CliError> {
    serde_saphyr::to_string(value)
        .map_err(|error| CliError::Config(format!("rendering YAML: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(annotations: Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "grafana", "namespace": "monitoring", "annotations": annotations},
            "spec": {"ports": [{"name": "http", "port": 3000}]}
        }))
        .expect("service")
    }

    #[test]
    fn host_flag_wins_and_annotations_still_apply() {
        let pc = proxyconfig_for(
            service(json!({"authentik.io/external-host": "old.example.com", "authentik.io/provider-name": "grafana"})),
            "grafana.example.com",
        )
        .expect("derived");
        assert_eq!(pc.metadata.name.as_deref(), Some("grafana-proxy"));
        assert_eq!(pc.spec.external_host, "grafana.example.com");
        assert_eq!(pc.spec.authentik_config.provider_name, "grafana");
        assert_eq!(
            pc.spec.internal_host,
            "http://grafana.monitoring.svc.cluster.local:3000"
        );
    }

    #[test]
    fn a_bad_host_is_one_clear_error() {
        let error = proxyconfig_for(service(json!({})), "http://plain.example.com")
            .expect_err("rejected")
            .to_string();
        assert!(error.contains("monitoring/grafana"), "{error}");
        assert!(error.contains("external-host"), "{error}");
    }
}

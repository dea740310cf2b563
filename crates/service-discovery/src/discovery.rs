//! Automatic onboarding: a Service labelled `authentik.io/proxy: "enabled"` gets a ProxyConfig
//! built from its `authentik.io/*` annotations, owned by the Service (so deleting the Service
//! deletes it). Removing the label removes it. A ProxyConfig of the same name that discovery did
//! not create is never touched. The Service → spec derivation itself is
//! `gitops_crd::onboarding` (shared with `kubectl gitops onboard`).

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use gitops_crd::ProxyConfig;
use gitops_crd::names::{DISCOVERED_FROM_LABEL, DISCOVERY_LABEL, DISCOVERY_LABEL_ENABLED, labels};
use gitops_crd::onboarding::{is_opted_in, proxyconfig_name, spec_for};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::metrics::names;
use gitops_runtime::Events;

/// Field manager of the ProxyConfigs discovery writes.
const MANAGER: &str = "gitops-service-discovery-onboarding";

/// Whether `pc` was written by discovery for `service` (controller reference to its uid).
fn is_ours(pc: &ProxyConfig, service: &Service) -> bool {
    let uid = service.uid();
    pc.owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.kind == "Service" && Some(&o.uid) == uid.as_ref())
}

struct Context {
    client: kube::Client,
    proxyconfigs: Store<ProxyConfig>,
    events: Events,
}

#[derive(Debug, thiserror::Error)]
#[error("onboarding Service {service}: {source}")]
pub struct DiscoveryError {
    service: String,
    #[source]
    source: kube::Error,
}

async fn reconcile(service: Arc<Service>, ctx: Arc<Context>) -> Result<Action, DiscoveryError> {
    let namespace = service.namespace().unwrap_or_default();
    let name = proxyconfig_name(&service.name_any());
    let api: Api<ProxyConfig> = Api::namespaced(ctx.client.clone(), &namespace);
    let existing = ctx
        .proxyconfigs
        .get(&ObjectRef::new(&name).within(&namespace));
    let wrap = |source| DiscoveryError {
        service: format!("{namespace}/{}", service.name_any()),
        source,
    };

    if !is_opted_in(&service) || service.meta().deletion_timestamp.is_some() {
        // Opted out: remove what discovery made, guarded by uid so a hand-written
        // replacement created meanwhile is never deleted.
        match existing {
            Some(pc) if is_ours(&pc, &service) => {
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: pc.uid(),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                let note = format!(
                    "removed ProxyConfig {name}: the Service no longer has {DISCOVERY_LABEL}={DISCOVERY_LABEL_ENABLED}"
                );
                match api.delete(&name, &params).await {
                    Ok(_) => publish(&ctx, &service, false, "ProxyConfigRemoved", note).await,
                    Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
                    Err(error) => return Err(wrap(error)),
                }
            }
            // Hand-written, not discovery's: left alone.
            Some(_) => {
                metrics::counter!(names::DISCOVERY_SKIPPED, "reason" => "name_taken").increment(1);
            }
            None => {}
        }
        return Ok(Action::await_change());
    }

    // The cache may lag (e.g. right after start-up): before writing, read the ProxyConfig
    // afresh, so a hand-written one is never overwritten.
    let current = api.get_opt(&name).await.map_err(wrap)?;
    if let Some(pc) = &current
        && !is_ours(pc, &service)
    {
        metrics::counter!(names::DISCOVERY_SKIPPED, "reason" => "name_taken").increment(1);
        publish(&ctx, &service, true, "ProxyConfigExists", format!("ProxyConfig {name} already exists and was not created from this Service; leaving it alone (delete it or the label to resolve)")).await;
        return Ok(Action::await_change());
    }

    let spec = match spec_for(&service) {
        Ok(spec) => spec,
        Err(error) => {
            metrics::counter!(names::DISCOVERY_SKIPPED, "reason" => error.metric_reason())
                .increment(1);
            publish(
                &ctx,
                &service,
                true,
                "InvalidAnnotations",
                format!("no ProxyConfig: {error}"),
            )
            .await;
            return Ok(Action::await_change());
        }
    };
    if current.as_ref().is_some_and(|pc| pc.spec == spec) {
        return Ok(Action::await_change());
    }
    let mut pc = ProxyConfig::new(&name, spec);
    pc.metadata = ObjectMeta {
        name: Some(name.clone()),
        namespace: Some(namespace.clone()),
        labels: Some(BTreeMap::from([
            (labels::MANAGED_BY.to_owned(), MANAGER.to_owned()),
            (DISCOVERED_FROM_LABEL.to_owned(), service.name_any()),
        ])),
        owner_references: Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Service".into(),
            name: service.name_any(),
            uid: service.uid().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]),
        ..ObjectMeta::default()
    };
    let written = match &current {
        // Create, not apply: if someone creates the name meanwhile, this fails instead of
        // taking their object over.
        None => api.create(&PostParams::default(), &pc).await.map(drop),
        Some(ours) => {
            // Guarded by the version just read, for the same reason.
            pc.metadata.resource_version = ours.resource_version();
            api.patch(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&pc),
            )
            .await
            .map(drop)
        }
    };
    match written {
        Ok(()) => {}
        // Lost a race with another writer: look again.
        Err(kube::Error::Api(status)) if status.code == 409 => {
            return Ok(Action::requeue(std::time::Duration::from_secs(1)));
        }
        Err(error) => return Err(wrap(error)),
    }
    metrics::counter!(names::DISCOVERED).increment(1);
    let verb = if existing.is_some() {
        "updated"
    } else {
        "created"
    };
    publish(
        &ctx,
        &service,
        false,
        "ProxyConfigApplied",
        format!("{verb} ProxyConfig {name} from the Service's annotations"),
    )
    .await;
    Ok(Action::await_change())
}

async fn publish(ctx: &Context, service: &Service, warning: bool, reason: &str, note: String) {
    ctx.events
        .publish(&service.object_ref(&()), reason, note, warning)
        .await;
}

fn error_policy(_service: Arc<Service>, error: &DiscoveryError, _ctx: Arc<Context>) -> Action {
    tracing::warn!(%error, "onboarding error");
    Action::requeue(std::time::Duration::from_secs(10))
}

/// Runs onboarding until `token` is cancelled. ProxyConfig changes of discovered objects (e.g.
/// a hand edit) bring their Service back to reconcile.
pub async fn run(
    client: kube::Client,
    services: Api<Service>,
    proxyconfigs: Api<ProxyConfig>,
    proxyconfig_store: Store<ProxyConfig>,
    events: Events,
    token: CancellationToken,
) {
    let ctx = Arc::new(Context {
        client,
        proxyconfigs: proxyconfig_store,
        events: events.with_action("Onboard"),
    });
    Controller::new(services, watcher::Config::default())
        .owns(
            proxyconfigs,
            watcher::Config::default().labels(DISCOVERED_FROM_LABEL),
        )
        .graceful_shutdown_on(token.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ownership_is_by_controller_reference_to_this_service() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "home-assistant", "namespace": "home", "uid": "svc-uid"},
            "spec": {"ports": [{"port": 80}]}
        }))
        .expect("service");
        let mut pc: ProxyConfig = serde_json::from_value(json!({
            "apiVersion": "gitops.io/v1", "kind": "ProxyConfig",
            "metadata": {"name": "home-assistant-proxy", "namespace": "home"},
            "spec": {"serviceName": "x", "serviceNamespace": "home", "externalHost": "x.example.com",
                     "internalHost": "http://x", "authentikConfig": {"providerName": "x"}}
        }))
        .expect("pc");
        assert!(!is_ours(&pc, &svc), "hand-written");
        pc.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Service".into(),
            name: "home-assistant".into(),
            uid: "svc-uid".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]);
        assert!(is_ours(&pc, &svc));
    }
}

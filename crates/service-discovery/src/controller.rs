//! Start-up and wiring: observability first, then (as leader) the watches, the resync loop, the
//! outpost writer and the ProxyConfig controller.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use gitops_authentik::AuthentikClient;
use gitops_crd::ProxyConfig;
use gitops_crd::names::SERVICE_DISCOVERY_MANAGER;
use gitops_crd::ownership::AuthentikObject;
use gitops_runtime::watches::{Caches, cached_watch, clear_managed_fields, resource_name, scoped};
use gitops_runtime::{Events, Process, Work};
use kube::api::Api;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;

use crate::authentik::Authentik;
use crate::backoff::Backoff;
use crate::config::{Args, Settings};
use crate::conflicts::Claims;
use crate::context::Context;
use crate::forward_auth::ServedKinds;
use crate::outpost::OutpostAssigner;
use crate::ownership::Records;
use crate::reconciler::{error_policy, reconcile};
use crate::service_ports::ServicePorts;
use crate::status::StatusWriter;

pub async fn run(args: Args) -> anyhow::Result<()> {
    let process = Process::start(&args.process, SERVICE_DISCOVERY_MANAGER).await?;
    gitops_authentik::describe_metrics();
    let settings = Arc::new(args.into_settings()?);
    let authentik = AuthentikClient::new(settings.authentik.clone()).context("AUTHENTIK_HOST")?;

    process
        .run(move |work: Work| run_controller(work, authentik.clone(), settings.clone()))
        .await?;
    Ok(())
}

/// Objects per page of a watch's initial list (kube-runtime's default is 500). A page is read
/// and parsed whole before its objects reach the cache, so smaller pages lower the peak of a
/// start or re-list over many objects; at 10,000 objects that is 100 requests instead of 20.
const LIST_PAGE_SIZE: u32 = 100;

/// A watch configuration listing [`LIST_PAGE_SIZE`] objects per page.
pub(crate) fn paged() -> watcher::Config {
    watcher::Config::default().page_size(LIST_PAGE_SIZE)
}

/// Shrinks a ProxyConfig before it is cached: managedFields go, and of the annotations only the
/// product's own (`gitops.io/…`, read by the reconciler) stay — `kubectl apply` and GitOps
/// tools keep a whole copy of the manifest or tracking data in others.
fn trim_proxyconfig_for_cache(pc: &mut ProxyConfig) {
    clear_managed_fields(pc);
    if let Some(annotations) = pc.metadata.annotations.as_mut() {
        annotations.retain(|key, _| key.starts_with(PRODUCT_ANNOTATION_PREFIX));
    }
}

/// Prefix of the annotations the controller reads on ProxyConfigs (`gitops.io/adopt`,
/// `gitops.io/skip-authentik-cleanup`).
const PRODUCT_ANNOTATION_PREFIX: &str = "gitops.io/";

/// Runs the controller until `token` is cancelled (shutdown, or leadership lost).
fn run_controller(
    Work {
        client,
        readiness,
        identity,
        token,
    }: Work,
    authentik_client: AuthentikClient,
    settings: Arc<Settings>,
) -> impl Future<Output = ()> + Send + use<> {
    // Registered before the work starts, so that /readyz never answers 200 in between.
    let caches_synced = readiness.gate("caches synced");
    let authentik_reached = readiness.gate("authentik reached");
    async move {
        let authentik = Arc::new(Authentik::new(
            authentik_client,
            settings.authentik_concurrency,
            settings.resync_interval,
        ));

        let namespace = settings.watch_namespace.as_deref();
        let records = cached_watch::<AuthentikObject>(
            Api::all(client.clone()),
            paged(),
            clear_managed_fields,
            |_| {},
            readiness.resource(resource_name::<AuthentikObject>()),
        );
        let services = cached_watch::<ServicePorts>(
            scoped(&client, namespace),
            paged(),
            ServicePorts::trim_for_cache,
            |_| {},
            readiness.resource(resource_name::<ServicePorts>()),
        );
        let claims = Claims::default();
        let proxyconfigs = cached_watch::<ProxyConfig>(
            scoped(&client, namespace),
            paged(),
            trim_proxyconfig_for_cache,
            {
                let claims = claims.clone();
                move |event| claims.observe(event)
            },
            readiness.resource(resource_name::<ProxyConfig>()),
        );
        let (records_store, records_stream) = (records.store, records.stream);
        let (services_store, services_stream) = (services.store, services.stream);
        let (proxyconfig_store, proxyconfig_stream) = (proxyconfigs.store, proxyconfigs.stream);
        let served_kinds = ServedKinds::default();
        let route_watches = crate::exposure::watch(
            &client,
            namespace,
            &readiness,
            &served_kinds,
            proxyconfig_store.clone(),
            &settings.forward_auth_outpost_url,
        )
        .await;
        let mut synced = vec![records.synced, services.synced, proxyconfigs.synced];
        synced.extend(route_watches.synced);
        let caches = Caches::new(synced, token.clone());
        let controller = Controller::for_stream(proxyconfig_stream, proxyconfig_store.clone())
            .with_config(controller::Config::default().concurrency(settings.concurrency));

        // The records watch feeds only its store. It ends with the token, so that no watch
        // outlives this work should it be abandoned (see gitops_runtime's work-stop timeout).
        let records_task = tokio::spawn(
            records_stream
                .take_until(token.clone().cancelled_owned())
                .for_each(|_| async {}),
        );

        let (resync_tx, resync_rx) = futures::channel::mpsc::unbounded::<()>();
        let resync = tokio::spawn(resync_loop(
            authentik.clone(),
            settings.resync_interval,
            resync_tx,
            authentik_reached,
            token.clone(),
        ));

        let events = Events::new(
            client.clone(),
            SERVICE_DISCOVERY_MANAGER,
            identity,
            "Reconcile",
        );
        let ctx = Arc::new(Context {
            client: client.clone(),
            authentik: authentik.clone(),
            outposts: OutpostAssigner::spawn(
                authentik.clone(),
                settings.outpost_batch_window,
                token.clone(),
            ),
            records: Records::new(Api::all(client.clone()), records_store.clone()),
            proxyconfigs: proxyconfig_store.clone(),
            claims: claims.clone(),
            services: services_store.clone(),
            status: StatusWriter::new(client.clone(), events.clone()),
            defaults: gitops_plan::Defaults {
                cookie_domain: settings.cookie_domain.clone(),
            },
            settings: settings.clone(),
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(300)),
            caches: caches.clone(),
            served_kinds,
            outpost_probe: Default::default(),
            routes: route_watches.routes,
        });

        let synced = {
            let caches = caches.clone();
            tokio::spawn(async move {
                if caches.wait().await.is_ok() {
                    caches_synced.set(true);
                }
                caches_synced
            })
        };

        let onboarding = settings.discovery.then(|| {
            tokio::spawn(crate::discovery::run(
                client.clone(),
                scoped(&client, namespace),
                scoped(&client, namespace),
                proxyconfig_store.clone(),
                events.clone(),
                token.clone(),
            ))
        });
        let pcs_for_services = proxyconfig_store.clone();
        controller
            .watches_stream(services_stream, move |service: ServicePorts| {
                let (name, namespace) = (
                    service.metadata.name.unwrap_or_default(),
                    service.metadata.namespace.unwrap_or_default(),
                );
                pcs_for_services
                    .state()
                    .into_iter()
                    .filter(|pc| {
                        pc.spec.service_name == name && pc.spec.service_namespace == namespace
                    })
                    .map(|pc| ObjectRef::from_obj(&*pc))
                    .collect::<Vec<_>>()
            })
            .reconcile_on(route_watches.triggers)
            .reconcile_all_on(resync_rx)
            .graceful_shutdown_on(token.clone().cancelled_owned())
            .run(reconcile, error_policy, ctx)
            .for_each(|_| async {})
            .await;

        token.cancel();
        records_task.abort();
        if let Some(onboarding) = onboarding {
            let _ = onboarding.await;
        }
        let _ = resync.await;
        if let Ok(gate) = synced.await {
            drop(gate);
        }
        tracing::info!("controller stopped");
    }
}

/// Takes a full snapshot of authentik now and every `interval`, and after each one asks for
/// every ProxyConfig to be compared with it (drift correction). A failed snapshot is retried
/// sooner; reconciles meanwhile read authentik directly.
async fn resync_loop(
    authentik: Arc<Authentik>,
    interval: Duration,
    trigger: futures::channel::mpsc::UnboundedSender<()>,
    reached: gitops_runtime::ReadinessGate,
    token: CancellationToken,
) {
    loop {
        let wait = match authentik.refresh().await {
            Ok(()) => {
                reached.set(true);
                if trigger.unbounded_send(()).is_err() {
                    return;
                }
                interval
            }
            Err(error) => {
                tracing::error!(%error, "error taking a snapshot of authentik; retrying");
                interval.min(Duration::from_secs(10))
            }
        };
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitops_crd::names::{ADOPT_ANNOTATION, SKIP_AUTHENTIK_CLEANUP_ANNOTATION};
    use kube::ResourceExt;

    #[test]
    fn the_cached_proxyconfig_keeps_the_annotations_the_reconciler_reads() {
        let mut pc: ProxyConfig = serde_json::from_value(serde_json::json!({
            "apiVersion": "gitops.io/v1",
            "kind": "ProxyConfig",
            "metadata": {
                "name": "web", "namespace": "apps", "uid": "u1",
                "labels": {"gitops.io/discovered-from": "web"},
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"a whole\":\"manifest\"}",
                    "argocd.argoproj.io/tracking-id": "apps:gitops.io/ProxyConfig:apps/web",
                    ADOPT_ANNOTATION: "true",
                    SKIP_AUTHENTIK_CLEANUP_ANNOTATION: "true"
                },
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]
            },
            "spec": {
                "serviceName": "web", "serviceNamespace": "apps",
                "externalHost": "web.example.com", "internalHost": "http://web",
                "authentikConfig": {"providerName": "web"}
            }
        }))
        .expect("valid ProxyConfig");
        trim_proxyconfig_for_cache(&mut pc);
        let kept: Vec<&str> = pc.annotations().keys().map(String::as_str).collect();
        assert_eq!(kept, [ADOPT_ANNOTATION, SKIP_AUTHENTIK_CLEANUP_ANNOTATION]);
        assert!(gitops_plan::ownership::adopt_requested(&pc));
        assert!(pc.managed_fields().is_empty());
        assert_eq!(pc.labels().len(), 1, "labels are read by onboarding");
    }
}

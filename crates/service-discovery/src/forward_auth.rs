//! After step 5, only for ProxyConfigs with `spec.forwardAuth`: the reverse proxy's half, a Traefik
//! `Middleware` sending each request to the outpost first. What it should look like is decided
//! in `gitops_plan::forward_auth`; this module reads and writes the API server.
//!
//! Traffic: one GET of the Middleware per reconcile of such a ProxyConfig, a write only when it
//! differs; the owned Middlewares are listed (to remove renamed ones) only when the spec
//! changed. ProxyConfigs without `forwardAuth` that never had it cost nothing.

use std::sync::atomic::{AtomicBool, Ordering};

use gitops_crd::conditions::{ConditionUpdate, find_condition};
use gitops_crd::names::{PROXYCONFIG_LABEL, SERVICE_DISCOVERY_MANAGER, condition_types};
use gitops_crd::{ProxyConfig, TraefikForwardAuth};
use gitops_plan::forward_auth::{
    MiddlewareAction, desired_middleware, middleware_action, stale_middlewares,
};
use gitops_proxy_crds::traefik_middleware::Middleware;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Resource, ResourceExt};

use crate::context::Context;
use crate::error::Failure;
use crate::status::Report;

const STEP: &str = condition_types::FORWARD_AUTH_READY;

/// Whether the API server serves Traefik's Middleware kind. A positive answer is kept (a CRD is
/// not uninstalled under a running proxy); a negative one is asked again, so installing
/// Traefik's CRDs later needs no restart.
#[derive(Debug, Default)]
pub struct ServedKinds {
    middleware: AtomicBool,
}

impl ServedKinds {
    async fn middleware(&self, client: &kube::Client) -> Result<bool, kube::Error> {
        if self.middleware.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let group_version = format!("{}/{}", Middleware::group(&()), Middleware::version(&()));
        let served = match client.list_api_group_resources(&group_version).await {
            Ok(resources) => resources
                .resources
                .iter()
                .any(|r| r.name == Middleware::plural(&())),
            Err(kube::Error::Api(status)) if status.code == 404 => false,
            Err(error) => return Err(error),
        };
        self.middleware.store(served, Ordering::Relaxed);
        Ok(served)
    }
}

/// Creates, corrects or removes the Middleware `pc` asks for.
pub async fn converge(pc: &ProxyConfig, ctx: &Context, report: &mut Report) -> Result<(), Failure> {
    let wanted = pc
        .spec
        .forward_auth
        .as_ref()
        .and_then(|f| f.traefik.as_ref());
    let Some(traefik) = wanted else {
        return unwire(pc, ctx, report).await;
    };
    wire(pc, traefik, ctx, report).await
}

async fn wire(
    pc: &ProxyConfig,
    traefik: &TraefikForwardAuth,
    ctx: &Context,
    report: &mut Report,
) -> Result<(), Failure> {
    let desired = desired_middleware(pc, traefik, &ctx.settings.forward_auth_outpost_url)
        .map_err(|problem| Failure::forward_auth(problem.reason(), problem.to_string()))?;
    if !ctx
        .served_kinds
        .middleware(&ctx.client)
        .await
        .map_err(api_failure)?
    {
        return Err(Failure::proxy_kind_not_installed(
            "Middleware (traefik.io/v1alpha1)",
            "Traefik's CRDs",
        ));
    }
    let namespace = pc.namespace().unwrap_or_default();
    let name = desired.name_any();
    let api: Api<Middleware> = Api::namespaced(ctx.client.clone(), &namespace);
    let existing = api.get_opt(&name).await.map_err(api_failure)?;
    let action = middleware_action(&desired, existing.as_ref())
        .map_err(|problem| Failure::forward_auth(problem.reason(), problem.to_string()))?;
    let params = PostParams {
        field_manager: Some(SERVICE_DISCOVERY_MANAGER.to_owned()),
        ..PostParams::default()
    };
    match action {
        MiddlewareAction::Keep => {}
        MiddlewareAction::Create => {
            api.create(&params, &desired).await.map_err(api_failure)?;
            report.event(
                "MiddlewareCreated",
                format!("created Traefik Middleware {namespace}/{name}"),
            );
        }
        // Replaced with the stored resourceVersion: a concurrent change makes it fail and the
        // next attempt decides afresh.
        MiddlewareAction::Update(updated) => {
            api.replace(&name, &params, &updated)
                .await
                .map_err(api_failure)?;
            report.event(
                "MiddlewareUpdated",
                format!("reverted Traefik Middleware {namespace}/{name} to the spec"),
            );
        }
    }
    if spec_changed(pc) {
        remove_stale(pc, ctx, Some(&name), report).await?;
    }
    let address = desired
        .spec
        .forward_auth
        .as_ref()
        .and_then(|f| f.address.clone())
        .unwrap_or_default();
    report.step(ConditionUpdate::new(
        STEP,
        true,
        "MiddlewareReady",
        format!(
            "Traefik Middleware {namespace}/{name} sends requests to {address}; routes name it as {name} (IngressRoute) or {namespace}-{name}@kubernetescrd (Ingress annotation)"
        ),
    ));
    Ok(())
}

/// `forwardAuth` is gone from a spec that had it: remove what was created for it.
async fn unwire(pc: &ProxyConfig, ctx: &Context, report: &mut Report) -> Result<(), Failure> {
    let had_wiring = pc
        .status
        .as_ref()
        .is_some_and(|s| find_condition(&s.conditions, STEP).is_some());
    if !had_wiring {
        return Ok(());
    }
    if ctx
        .served_kinds
        .middleware(&ctx.client)
        .await
        .map_err(api_failure)?
    {
        remove_stale(pc, ctx, None, report).await?;
    }
    report.forget(STEP);
    Ok(())
}

/// Deletes the Middlewares created for `pc` other than `keep`.
async fn remove_stale(
    pc: &ProxyConfig,
    ctx: &Context,
    keep: Option<&str>,
    report: &mut Report,
) -> Result<(), Failure> {
    let namespace = pc.namespace().unwrap_or_default();
    let api: Api<Middleware> = Api::namespaced(ctx.client.clone(), &namespace);
    let listed = api
        .list(&ListParams::default().labels(&format!("{PROXYCONFIG_LABEL}={}", pc.name_any())))
        .await
        .map_err(api_failure)?;
    let uid = pc.uid().unwrap_or_default();
    for name in stale_middlewares(&listed.items, &uid, keep) {
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => report.event(
                "MiddlewareDeleted",
                format!("deleted Traefik Middleware {namespace}/{name}, no longer in the spec"),
            ),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(api_failure(error)),
        }
    }
    Ok(())
}

fn spec_changed(pc: &ProxyConfig) -> bool {
    pc.status.as_ref().and_then(|s| s.observed_generation) != pc.metadata.generation
}

fn api_failure(error: kube::Error) -> Failure {
    Failure::proxy_api(STEP, error.to_string())
}

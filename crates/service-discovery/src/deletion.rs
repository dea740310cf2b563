//! The deletion path: what a ProxyConfig owns in authentik is removed when it is deleted
//! (through the finalizer) or disabled, touching only objects whose record it claims.

use gitops_crd::ProxyConfig;
use gitops_crd::names::{SKIP_AUTHENTIK_CLEANUP_ANNOTATION, condition_types};
use gitops_crd::ownership::{AuthentikKind, ProxyConfigRef};
use gitops_plan::application_slug;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use crate::context::Context;
use crate::error::{Error, Failure};
use crate::metrics;
use crate::outpost::AssignError;
use crate::status::Report;

/// Removes everything this ProxyConfig owns from authentik: the outpost assignment, the
/// application, the provider, then their records. Only objects its records prove its own are
/// touched: the provider a record claims (by its id, or by name while the create is not yet
/// recorded), the application that record names, and the application bound to that provider.
pub async fn remove_from_authentik(
    pc: &ProxyConfig,
    ctx: &Context,
    report: &mut Report,
) -> Result<(), Failure> {
    let claimant = ProxyConfigRef::of(pc);
    let slug = application_slug(&pc.spec, &claimant.namespace, &claimant.name);
    let owned = ctx
        .records
        .claimed_by(
            &claimant,
            &[
                (
                    AuthentikKind::Provider,
                    &pc.spec.authentik_config.provider_name,
                ),
                // Written by earlier builds, which kept a record per application.
                (AuthentikKind::Application, &slug),
            ],
        )
        .await
        .map_err(|e| Failure::record(condition_types::READY, e))?;
    let fail = |e| Failure::authentik(condition_types::READY, "removing objects from authentik", e);

    let mut providers = Vec::new();
    for record in owned
        .iter()
        .filter(|r| r.spec.kind == AuthentikKind::Provider)
    {
        let name = &record.spec.authentik_name;
        let pk = match &record.spec.authentik_id {
            Some(id) => Some(id.parse::<i64>().map_err(|_| {
                Failure::invalid(format!(
                    "record {name} has a non-numeric provider id {id:?}"
                ))
            })?),
            // Our intent, written before a create whose result was never recorded.
            None => ctx
                .authentik
                .provider(name)
                .await
                .map_err(fail)?
                .map(|p| p.pk),
        };
        providers.extend(pk.map(|pk| (pk, name.as_str())));
    }
    if let Some(outpost) = pc.status.as_ref().and_then(|s| s.outpost_id.as_deref()) {
        for (pk, _) in &providers {
            match ctx.outposts.ensure(outpost, *pk, false).await {
                Ok(()) => {}
                // The outpost is gone; so is the assignment.
                Err(AssignError::Authentik(e)) if e.is_not_found() => {}
                Err(e) => return Err(Failure::outpost(condition_types::OUTPOST_ASSIGNED, e)),
            }
        }
    }
    let mut applications: Vec<&str> = owned
        .iter()
        .filter_map(|r| match r.spec.kind {
            AuthentikKind::Provider => r.spec.application.as_ref().map(|a| a.slug.as_str()),
            AuthentikKind::Application => r
                .spec
                .authentik_id
                .is_some()
                .then_some(r.spec.authentik_name.as_str()),
        })
        .collect();
    let bound = ctx.authentik.application(&slug).await.map_err(fail)?;
    if bound.is_some_and(|app| providers.iter().any(|(pk, _)| app.provider == Some(*pk))) {
        applications.push(&slug);
    }
    applications.sort_unstable_by_key(|slug| slug.to_lowercase());
    applications.dedup_by_key(|slug| slug.to_lowercase());
    for slug in applications {
        if ctx
            .authentik
            .delete_application(slug)
            .await
            .map_err(fail)?
            .is_some()
        {
            report.event("Deleted", format!("deleted authentik application {slug:?}"));
        }
    }
    for (pk, name) in providers {
        if ctx
            .authentik
            .delete_provider(pk, name)
            .await
            .map_err(fail)?
            .is_some()
        {
            report.event("Deleted", format!("deleted authentik provider {name:?}"));
        }
    }
    for record in &owned {
        ctx.records
            .delete(record)
            .await
            .map_err(|e| Failure::record(condition_types::READY, e))?;
    }
    Ok(())
}

pub async fn cleanup(pc: &ProxyConfig, ctx: &Context) -> Result<Action, Error> {
    // An error, not Ok: Ok would let the finalizer go with authentik not cleaned up.
    ctx.caches.wait().await?;
    let (namespace, name) = (pc.namespace().unwrap_or_default(), pc.name_any());
    if pc
        .annotations()
        .get(SKIP_AUTHENTIK_CLEANUP_ANNOTATION)
        .is_some_and(|v| v == "true")
    {
        ctx.status
            .event(pc, "CleanupSkipped", format!("{SKIP_AUTHENTIK_CLEANUP_ANNOTATION} is set: released without touching authentik; the cleanup controller removes the objects after its grace period unless their AuthentikObject records are deleted"), false)
            .await;
        metrics::set_phase(&namespace, &name, None);
        return Ok(Action::await_change());
    }
    let mut report = Report::new(pc);
    let removed = async {
        crate::forward_auth::release(pc, ctx, &mut report).await?;
        remove_from_authentik(pc, ctx, &mut report).await
    }
    .await;
    match removed {
        Ok(()) => {
            ctx.status.flush_events(pc, &report).await;
            metrics::set_phase(&namespace, &name, None);
            ctx.backoff.reset(&ObjectRef::from_obj(pc));
            Ok(Action::await_change())
        }
        Err(failure) => {
            let failure = failure.blocking_deletion();
            ctx.status.write(pc, report, Some(&failure)).await?;
            Err(Error::Retry(failure))
        }
    }
}

//! One ProxyConfig → authentik, in the steps of SPEC §3: validate and resolve the Service,
//! resolve flows, converge the provider, converge the application, assign the outpost, report.

use std::sync::Arc;

use gitops_authentik::{
    FlowDesignation, Outpost, OutpostSelector, PolicyBindingRequest, not_found_as_none,
};
use gitops_crd::ProxyConfig;
use gitops_crd::conditions::ConditionUpdate;
use gitops_crd::names::{FINALIZER, condition_types};
use gitops_crd::ownership::{AuthentikObject, BoundApplication, ProxyConfigRef};
use gitops_crd::validate::{CheckedSpec, check_spec};
use gitops_plan::ownership::adopt_requested;
use gitops_plan::{
    Flows, application_changes, application_slug, binding_changes, desired_application,
    desired_provider, provider_changes,
};
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::config::Settings;
use crate::context::Context;
use crate::deletion::{cleanup, remove_from_authentik};
use crate::error::{Error, Failure};
use crate::metrics::{self, ReconcileTimer};
use crate::ownership::{
    ApplicationClaim, ApplicationClaimed, ClaimError, Claimed, FoundApplication, ObjectAction,
    ProviderClaim,
};
use crate::service_ports::ServicePorts;
use crate::status::Report;

pub async fn reconcile(pc: Arc<ProxyConfig>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ReconcileTimer::start();
    let namespace = pc.namespace().unwrap_or_default();
    let api: Api<ProxyConfig> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER, pc, |event| async {
        match event {
            FinalizerEvent::Apply(pc) => apply(&pc, &ctx).await,
            FinalizerEvent::Cleanup(pc) => cleanup(&pc, &ctx).await,
        }
    })
    .await
    .map_err(Error::from)
}

/// Requeue after an error: per-object exponential backoff with jitter.
pub fn error_policy(pc: Arc<ProxyConfig>, error: &Error, ctx: Arc<Context>) -> Action {
    let object = ObjectRef::from_obj(&*pc);
    let delay = ctx.backoff.next_delay(&object, error.retry_after());
    if matches!(error, Error::StaleCopy) {
        // Routine right after onboarding; the backoff still spaces out retries should the
        // newer copy never arrive.
        tracing::debug!(proxyconfig = %object, %error, retry_in = ?delay, "reconcile superseded");
    } else {
        metrics::reconcile_failed(error.metric_label());
        tracing::warn!(proxyconfig = %object, %error, retry_in = ?delay, "reconcile error");
    }
    Action::requeue(delay)
}

async fn apply(pc: &ProxyConfig, ctx: &Context) -> Result<Action, Error> {
    // Conflicts and claims are judged from the caches: until they hold the whole cluster, an
    // older ProxyConfig or a live claimant could be missed.
    ctx.caches.wait().await?;
    let mut report = Report::new(pc);
    let outcome = converge(pc, ctx, &mut report).await;
    // Step 7: for a Ready ProxyConfig, whether every route serving its host asks the outpost.
    if outcome.is_ok() {
        let (protected, exposed) = ctx.routes.protected(pc);
        report.step(protected);
        report.exposed_routes = exposed;
    } else {
        metrics::set_exposed(&pc.namespace().unwrap_or_default(), &pc.name_any(), false);
        report.forget(condition_types::PROTECTED);
    }
    // Read after converging: the version is read before each snapshot, which converging waits for.
    report.authentik_version = ctx.authentik.server_version();
    let action = match &outcome {
        Ok(()) => Action::requeue(ctx.settings.resync_interval),
        Err(failure) => failure.requeue(ctx.settings.resync_interval),
    };
    ctx.status.write(pc, report, outcome.as_ref().err()).await?;
    match outcome {
        Err(failure) if failure.wants_backoff() => Err(Error::Retry(failure)),
        _ => {
            ctx.backoff.reset(&ObjectRef::from_obj(pc));
            metrics::reconcile_succeeded(&pc.namespace().unwrap_or_default(), &pc.name_any());
            Ok(action)
        }
    }
}

async fn converge(pc: &ProxyConfig, ctx: &Context, report: &mut Report) -> Result<(), Failure> {
    // Step 1: everything that needs no authentik call comes first, so bad input never
    // reaches authentik.
    let checked = check_spec(&pc.spec).map_err(|errors| Failure::invalid(errors.to_string()))?;
    let requester = ProxyConfigRef::of(pc);
    if !ctx
        .settings
        .cross_namespace
        .allows(&requester.namespace, &pc.spec.service_namespace)
    {
        return Err(Failure::cross_namespace(
            &requester.namespace,
            &pc.spec.service_namespace,
        ));
    }
    report.step(resolve_service(pc, &checked, &ctx.services));
    if !pc.spec.authentik_config.enabled {
        remove_from_authentik(pc, ctx, report).await?;
        return Err(Failure::disabled());
    }
    if let Some(conflict) = ctx.claims.conflict_for(pc) {
        return Err(Failure::conflict(conflict.to_string()));
    }

    // Step 2: every reference resolves before anything is created, so a ProxyConfig naming
    // a missing flow, outpost or group leaves nothing half-made in authentik.
    let flows = resolve_flows(pc, ctx).await?;
    let outpost = resolve_outpost(pc, ctx).await?;
    let groups = resolve_groups(pc, ctx).await?;
    // Step 3.
    let provider = converge_provider(pc, ctx, &checked, &flows, &requester, report).await?;
    // Step 4.
    let application = converge_application(pc, ctx, &provider, &requester, report).await;
    // One record write covers both creates: the provider's id and the application. It is made
    // whether or not the application converged, so a confirmed provider is always recorded.
    record_ownership(ctx, &provider, application.as_ref().ok()).await?;
    let application = application?;
    finish_application(ctx, &application, groups.as_deref(), report).await?;
    // Step 5.
    assign_outpost(ctx, &outpost, provider.pk, report).await?;
    // Step 5b: the reverse proxy's half, once authentik can answer its requests.
    crate::forward_auth::converge(pc, ctx, report).await
}

/// Whether the Service exists and agrees with `internalHost` and `port`. A mismatch is reported
/// but does not stop authentik from being configured: the Service may simply be applied later.
fn resolve_service(
    pc: &ProxyConfig,
    checked: &CheckedSpec,
    services: &Store<ServicePorts>,
) -> ConditionUpdate {
    let spec = &pc.spec;
    let key = ObjectRef::new(&spec.service_name).within(&spec.service_namespace);
    let Some(service) = services.get(&key) else {
        return ConditionUpdate::new(
            condition_types::SERVICE_RESOLVED,
            false,
            "ServiceNotFound",
            format!(
                "Service {}/{} does not exist",
                spec.service_namespace, spec.service_name
            ),
        );
    };
    let ports = service.port_numbers();
    if !ports.contains(&spec.port) {
        return ConditionUpdate::new(
            condition_types::SERVICE_RESOLVED,
            false,
            "PortMismatch",
            format!(
                "port {} is not a port of Service {}/{} (it has {ports:?})",
                spec.port, spec.service_namespace, spec.service_name
            ),
        );
    }
    if i32::from(checked.internal.port) != spec.port {
        return ConditionUpdate::new(
            condition_types::SERVICE_RESOLVED,
            false,
            "PortMismatch",
            format!(
                "internalHost uses port {} but port is {}",
                checked.internal.port, spec.port
            ),
        );
    }
    ConditionUpdate::new(
        condition_types::SERVICE_RESOLVED,
        true,
        "ServiceFound",
        format!(
            "Service {}/{} port {}",
            spec.service_namespace, spec.service_name, spec.port
        ),
    )
}

async fn resolve_flows(pc: &ProxyConfig, ctx: &Context) -> Result<Flows, Failure> {
    let config = &pc.spec.authentik_config;
    let settings = &ctx.settings;
    let resolve = async |given: &Option<String>, default: &str, designation| {
        let key = given.as_deref().unwrap_or(default);
        ctx.authentik
            .flow(key, designation, given.is_none())
            .await
            .map_err(|e| {
                Failure::authentik(condition_types::PROVIDER_SYNCED, "resolving flows", e)
            })?
            .ok_or_else(|| Failure::flow_not_found(designation.as_str(), key))
    };
    Ok(Flows {
        authorization: resolve(
            &config.authorization_flow,
            &settings.default_authorization_flow,
            FlowDesignation::Authorization,
        )
        .await?,
        invalidation: resolve(
            &config.invalidation_flow,
            &settings.default_invalidation_flow,
            FlowDesignation::Invalidation,
        )
        .await?,
    })
}

/// Whether the ProxyConfig a record names still exists (the same incarnation).
fn claimant_alive(ctx: &Context) -> impl Fn(&ProxyConfigRef) -> bool {
    |claimant: &ProxyConfigRef| {
        ctx.proxyconfigs
            .get(&ObjectRef::new(&claimant.name).within(&claimant.namespace))
            .is_some_and(|pc| pc.uid().as_deref() == Some(&claimant.uid))
    }
}

fn claim_failure(condition: &'static str) -> impl Fn(ClaimError) -> Failure {
    move |error| match error {
        ClaimError::Conflict(message) => Failure::ownership_conflict(condition, message),
        ClaimError::Record(error) => Failure::record(condition, error),
    }
}

/// The provider this ProxyConfig owns, and its record as stored so far.
struct OwnedProvider {
    pk: i64,
    record: Option<AuthentikObject>,
}

/// The application this ProxyConfig owns, before its group bindings are synced.
struct OwnedApplication {
    bound: BoundApplication,
    created_now: bool,
    legacy_record: Option<AuthentikObject>,
}

/// Stores the provider's id and the application in the provider's record (one write, none when
/// it already says so), then deletes the record of the application an earlier build kept.
async fn record_ownership(
    ctx: &Context,
    provider: &OwnedProvider,
    application: Option<&OwnedApplication>,
) -> Result<(), Failure> {
    const STEP: &str = condition_types::PROVIDER_SYNCED;
    let Some(record) = &provider.record else {
        return Ok(());
    };
    let mut wanted = record.spec.clone();
    wanted.authentik_id = Some(provider.pk.to_string());
    if let Some(application) = application {
        wanted.application = Some(application.bound.clone());
    }
    if wanted != record.spec {
        ctx.records
            .put(Some(record), wanted)
            .await
            .map_err(|e| Failure::record(STEP, e))?;
    }
    if let Some(legacy) = application.and_then(|a| a.legacy_record.as_ref()) {
        ctx.records
            .delete(legacy)
            .await
            .map_err(|e| Failure::record(condition_types::APPLICATION_SYNCED, e))?;
    }
    Ok(())
}

async fn converge_provider(
    pc: &ProxyConfig,
    ctx: &Context,
    checked: &CheckedSpec,
    flows: &Flows,
    requester: &ProxyConfigRef,
    report: &mut Report,
) -> Result<OwnedProvider, Failure> {
    const STEP: &str = condition_types::PROVIDER_SYNCED;
    let desired = desired_provider(&pc.spec, checked, flows, &ctx.defaults);
    let fail = |e| Failure::authentik(STEP, "syncing the proxy provider", e);
    let found = ctx.authentik.provider(&desired.name).await.map_err(fail)?;
    let claim = ProviderClaim {
        authentik_name: &desired.name,
        found: found.as_ref().map(|p| p.pk.to_string()),
        requester,
        adopt: adopt_requested(pc),
    };
    // The record the decision needs is stored before anything is written to authentik.
    let Claimed { action, record } = ctx
        .records
        .claim_provider(&claim, claimant_alive(ctx))
        .await
        .map_err(claim_failure(STEP))?;
    let provider = match (action, found) {
        (ObjectAction::Use { .. }, Some(observed)) => match provider_changes(&desired, &observed) {
            None => observed,
            Some((patch, diffs)) => {
                let updated = ctx
                    .authentik
                    .patch_provider(observed.pk, &patch)
                    .await
                    .map_err(fail)?;
                report.event_changes("ProviderUpdated", "proxy provider", &diffs);
                updated
            }
        },
        _ => {
            let created = ctx.authentik.create_provider(&desired).await;
            match created {
                Ok(created) => {
                    report.event(
                        "ProviderCreated",
                        format!(
                            "created proxy provider {:?} (pk {})",
                            created.name, created.pk
                        ),
                    );
                    created
                }
                Err(error) => {
                    if error.is_field_conflict("name") {
                        return Err(taken_provider_name(ctx, &desired.name).await);
                    }
                    return Err(fail(error));
                }
            }
        }
    };
    let pk = provider.pk;
    report.provider_id = Some(pk);
    report.step(ConditionUpdate::new(
        STEP,
        true,
        "ProviderSynced",
        format!(
            "proxy provider {:?} (pk {pk}) matches the spec",
            desired.name
        ),
    ));
    Ok(OwnedProvider { pk, record })
}

/// A create rejected because the name is taken: by a proxy provider the snapshot missed (the
/// next attempt sees it and decides ownership), or by a provider of another type.
async fn taken_provider_name(ctx: &Context, name: &str) -> Failure {
    const STEP: &str = condition_types::PROVIDER_SYNCED;
    match ctx
        .authentik
        .call(|client| client.find_provider_by_name(name))
        .await
    {
        Ok(Some(holder)) if !holder.is_proxy() => Failure::ownership_conflict(
            STEP,
            format!(
                "provider name {name:?} is taken by a {} in authentik (pk {}); provider names are unique across all provider types, so choose another providerName",
                holder
                    .verbose_name
                    .as_deref()
                    .unwrap_or("provider of another type"),
                holder.pk
            ),
        ),
        Ok(_) => Failure::retry_soon(
            STEP,
            format!("provider name {name:?} turned out to be taken; checking who holds it"),
        ),
        Err(error) => Failure::authentik(STEP, "finding who holds the provider name", error),
    }
}

async fn converge_application(
    pc: &ProxyConfig,
    ctx: &Context,
    provider: &OwnedProvider,
    requester: &ProxyConfigRef,
    report: &mut Report,
) -> Result<OwnedApplication, Failure> {
    const STEP: &str = condition_types::APPLICATION_SYNCED;
    let fail = |e| Failure::authentik(STEP, "syncing the application", e);
    let provider_pk = provider.pk;
    let slug = application_slug(&pc.spec, &requester.namespace, &requester.name);
    let desired = desired_application(&pc.spec, slug.clone(), provider_pk);
    let found = ctx.authentik.application(&slug).await.map_err(fail)?;
    let claim = ApplicationClaim {
        slug: &slug,
        found: found.as_ref().map(|a| FoundApplication {
            id: &a.pk,
            provider: a.provider,
        }),
        provider_pk,
        provider_record: provider.record.as_ref(),
        requester,
        adopt: adopt_requested(pc),
    };
    let ApplicationClaimed {
        decision,
        legacy_record,
    } = ctx
        .records
        .claim_application(&claim, claimant_alive(ctx))
        .await
        .map_err(claim_failure(STEP))?;
    let mut created_now = false;
    let application = match (decision.action, found) {
        (ObjectAction::Use { .. }, Some(observed)) => {
            match application_changes(&desired, &observed) {
                None => observed,
                Some((patch, diffs)) => {
                    let updated = ctx
                        .authentik
                        .patch_application(&slug, &patch)
                        .await
                        .map_err(fail)?;
                    report.event_changes("ApplicationUpdated", "application", &diffs);
                    updated
                }
            }
        }
        _ => match ctx.authentik.create_application(&desired).await {
            Ok(created) => {
                report.event(
                    "ApplicationCreated",
                    format!("created application {:?}", created.slug),
                );
                created_now = true;
                created
            }
            Err(error) => {
                if error.is_field_conflict("slug") {
                    return Err(Failure::retry_soon(
                        STEP,
                        format!(
                            "application slug {slug:?} turned out to be taken; checking who holds it"
                        ),
                    ));
                }
                if error.is_field_conflict("provider") {
                    return Err(Failure::ownership_conflict(
                        STEP,
                        format!(
                            "the proxy provider (pk {provider_pk}) is already bound to another application in authentik; unbind it there"
                        ),
                    ));
                }
                return Err(fail(error));
            }
        },
    };
    Ok(OwnedApplication {
        bound: BoundApplication {
            slug,
            id: application.pk,
            origin: decision.origin,
        },
        created_now,
        legacy_record,
    })
}

/// The application's group bindings and its condition, once it is recorded.
async fn finish_application(
    ctx: &Context,
    application: &OwnedApplication,
    groups: Option<&[String]>,
    report: &mut Report,
) -> Result<(), Failure> {
    let slug = &application.bound.slug;
    if let Some(groups) = groups {
        sync_allowed_groups(ctx, &application.bound.id, groups, application.created_now).await?;
    }
    report.application_slug = Some(slug.clone());
    report.step(ConditionUpdate::new(
        condition_types::APPLICATION_SYNCED,
        true,
        "ApplicationSynced",
        format!("application {slug:?} is bound to the provider"),
    ));
    Ok(())
}

/// The UUIDs of `allowedGroups`, or `None` when bindings need no look: listing them only when
/// the spec names groups or just changed keeps a converged ProxyConfig without `allowedGroups`
/// free of calls per resync.
async fn resolve_groups(pc: &ProxyConfig, ctx: &Context) -> Result<Option<Vec<String>>, Failure> {
    let names = pc
        .spec
        .authentik_config
        .allowed_groups
        .clone()
        .unwrap_or_default();
    let spec_changed =
        pc.status.as_ref().and_then(|s| s.observed_generation) != pc.metadata.generation;
    if names.is_empty() && !spec_changed {
        return Ok(None);
    }
    let mut pks = Vec::with_capacity(names.len());
    for name in &names {
        match ctx.authentik.group(name).await.map_err(|e| {
            Failure::authentik(
                condition_types::APPLICATION_SYNCED,
                "resolving allowedGroups",
                e,
            )
        })? {
            Some(pk) => pks.push(pk),
            None => return Err(Failure::group_not_found(name)),
        }
    }
    Ok(Some(pks))
}

/// Makes exactly `groups` the application's group bindings. An application this reconcile
/// just created has none, so they are not listed.
async fn sync_allowed_groups(
    ctx: &Context,
    application_pk: &str,
    groups: &[String],
    just_created: bool,
) -> Result<(), Failure> {
    let fail = |e| {
        Failure::authentik(
            condition_types::APPLICATION_SYNCED,
            "syncing allowedGroups bindings",
            e,
        )
    };
    let existing = if just_created {
        Vec::new()
    } else {
        ctx.authentik
            .call(|client| client.list_policy_bindings(application_pk))
            .await
            .map_err(fail)?
    };
    let changes = binding_changes(groups, &existing);
    for (group, order) in changes.create {
        let request = PolicyBindingRequest::group(application_pk, group, order);
        ctx.authentik
            .call(|client| client.create_policy_binding(&request))
            .await
            .map_err(fail)?;
    }
    for binding in changes.delete {
        not_found_as_none(
            ctx.authentik
                .call(|client| client.delete_policy_binding(&binding))
                .await,
        )
        .map_err(fail)?;
    }
    Ok(())
}

fn outpost_selector(pc: &ProxyConfig, settings: &Settings) -> OutpostSelector {
    pc.spec
        .authentik_config
        .outpost
        .as_deref()
        .map(OutpostSelector::parse)
        .unwrap_or_else(|| settings.default_outpost.clone())
}

async fn resolve_outpost(pc: &ProxyConfig, ctx: &Context) -> Result<Outpost, Failure> {
    let selector = outpost_selector(pc, &ctx.settings);
    ctx.authentik
        .outpost(&selector)
        .await
        .map_err(|e| {
            Failure::authentik(condition_types::OUTPOST_ASSIGNED, "finding the outpost", e)
        })?
        .ok_or_else(|| Failure::outpost_not_found(&selector))
}

async fn assign_outpost(
    ctx: &Context,
    outpost: &Outpost,
    provider_pk: i64,
    report: &mut Report,
) -> Result<(), Failure> {
    const STEP: &str = condition_types::OUTPOST_ASSIGNED;
    if !outpost.providers.contains(&provider_pk) {
        ctx.outposts
            .ensure(&outpost.pk, provider_pk, true)
            .await
            .map_err(|e| Failure::outpost(STEP, e))?;
        report.event(
            "OutpostAssigned",
            format!("added the provider to outpost {:?}", outpost.name),
        );
    }
    report.outpost_id = Some(outpost.pk.clone());
    report.step(ConditionUpdate::new(
        STEP,
        true,
        "OutpostAssigned",
        format!("served by outpost {:?}", outpost.name),
    ));
    Ok(())
}

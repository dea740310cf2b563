//! The orphan sweep: authentik objects this product created (proven by an `AuthentikObject`
//! record, never by name) that no ProxyConfig claims any more. See `docs/design/ownership.md`
//! and `docs/design/cleanup.md`.
//!
//! Safety rules, in the order they apply:
//! - If listing ProxyConfigs (or records) fails, nothing is judged and nothing is touched.
//! - Only records are candidates; an authentik object without a record is never looked at.
//! - A record is orphaned when no ProxyConfig with its `claimedBy.uid` exists. The first sweep
//!   that sees this writes `status.orphanedSince` (Kubernetes is the only state the
//!   controllers share); a sweep that sees it claimed again clears it.
//! - Past the grace period the record is read again (a re-claim in between changes it), the
//!   authentik object is read by its recorded id and deleted only if its name (provider) or
//!   uuid (application) still matches the record; then the record is deleted under uid and
//!   resourceVersion preconditions. A record without an id loses only the record.
//! - A provider record also owns an application: the one it names (deleted only if the slug
//!   still has the recorded uuid) and the one bound to the provider (authentik binds a provider
//!   to at most one application). Both go before the provider.
//! - authentik must answer before anything is deleted; an authentik failure stops the rest of
//!   the sweep, and the next one starts over (each step is safe to repeat).

use std::collections::HashSet;
use std::sync::Arc;

use gitops_authentik::AuthentikClient;
use gitops_crd::ProxyConfig;
use gitops_crd::names::CLEANUP_MANAGER;
use gitops_crd::ownership::{AuthentikKind, AuthentikObject, AuthentikObjectSpec};
use gitops_runtime::{Events, ReadinessGate};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::error::{Error, Operation, is_conflict, is_not_found};
use crate::events::{ORPHAN_DELETED, ORPHAN_LEFT, ReportOnce, WOULD_DELETE};
use crate::metrics;
use crate::policy::{OrphanPolicy, OrphanVerdict, orphan_verdict};
use crate::throttle::Throttle;

pub struct OrphanSweeper {
    pub records: Api<AuthentikObject>,
    /// All namespaces, or the watched one.
    pub proxyconfigs: Api<ProxyConfig>,
    /// With WATCH_NAMESPACE: only records claimed from that namespace are judged.
    pub watch_namespace: Option<String>,
    pub authentik: AuthentikClient,
    pub policy: OrphanPolicy,
    pub dry_run: bool,
    pub throttle: Arc<Throttle>,
    pub events: Events,
    pub reported: ReportOnce,
    /// Opened once authentik has answered.
    pub authentik_reached: ReadinessGate,
}

/// What became of the authentik object a record names.
enum Fate {
    Deleted,
    AlreadyGone,
    /// The id now names something else: not provably ours any more, so it stays.
    NotOurs(String),
}

/// What deleting a record's object did: its fate, and the applications a provider record owned
/// that were deleted before it (whatever became of the provider).
struct Swept {
    object: Fate,
    applications: Vec<String>,
}

/// Whether the sweep goes on after one record.
enum Flow {
    Continue,
    Stop,
}

impl OrphanSweeper {
    pub async fn sweep(&self) -> Result<(), Error> {
        let authentik_up = match self.authentik.current_user().await {
            Ok(_) => {
                self.authentik_reached.set(true);
                true
            }
            Err(error) => {
                let error = Error::authentik(Operation::ReachAuthentik, "authentik", error);
                metrics::error(&error);
                tracing::error!(%error, "authentik unreachable: no orphan is deleted this sweep");
                false
            }
        };
        // A failed list ends the sweep here: nothing is judged on partial information.
        let claimants: HashSet<String> = self
            .proxyconfigs
            .list_metadata(&ListParams::default())
            .await
            .map_err(|e| Error::kube(Operation::ListProxyConfigs, "ProxyConfigs", e))?
            .items
            .into_iter()
            .filter_map(|pc| pc.metadata.uid)
            .collect();
        let records = self
            .records
            .list(&ListParams::default())
            .await
            .map_err(|e| Error::kube(Operation::ListRecords, "AuthentikObjects", e))?
            .items;

        let now = Timestamp::now();
        let mut orphaned = 0;
        let mut due = Vec::new();
        let in_scope = records.into_iter().filter(|r| {
            self.watch_namespace
                .as_ref()
                .is_none_or(|ns| *ns == r.spec.claimed_by.namespace)
        });
        for record in in_scope {
            let claimed = claimants.contains(&record.spec.claimed_by.uid);
            let verdict = orphan_verdict(&record, Some(claimed), now, &self.policy);
            orphaned += usize::from(!claimed);
            let written = match verdict {
                OrphanVerdict::Unknown
                | OrphanVerdict::Claimed { clear_mark: false }
                | OrphanVerdict::Wait(_) => Ok(()),
                OrphanVerdict::Claimed { clear_mark: true } => self.clear_mark(&record).await,
                OrphanVerdict::Mark => self.mark(&record, now).await,
                OrphanVerdict::DeleteObject | OrphanVerdict::DeleteRecordOnly => {
                    due.push((record, verdict));
                    Ok(())
                }
            };
            if let Err(error) = written {
                metrics::error(&error);
                tracing::warn!(%error, "will retry next sweep");
            }
        }
        metrics::orphaned_objects(orphaned);

        if !authentik_up {
            return Ok(());
        }
        for (record, verdict) in due {
            if let Flow::Stop = self.remove(&record, &verdict).await? {
                break;
            }
        }
        Ok(())
    }

    async fn mark(&self, record: &AuthentikObject, now: Timestamp) -> Result<(), Error> {
        let name = record.name_any();
        let patch = json!({
            "apiVersion": "gitops.io/v1",
            "kind": "AuthentikObject",
            "status": {"orphanedSince": Time(now)},
        });
        self.records
            .patch_status(
                &name,
                &PatchParams::apply(CLEANUP_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map_err(|e| {
                Error::kube(
                    Operation::MarkOrphaned,
                    format!("AuthentikObject {name}"),
                    e,
                )
            })?;
        tracing::info!(record = %name, authentik_name = %record.spec.authentik_name, claimed_by = %claimant(&record.spec),
            "no ProxyConfig claims this authentik object any more; grace period starts");
        Ok(())
    }

    async fn clear_mark(&self, record: &AuthentikObject) -> Result<(), Error> {
        let name = record.name_any();
        let params = PatchParams {
            field_manager: Some(CLEANUP_MANAGER.into()),
            ..PatchParams::default()
        };
        let patch = json!({"status": {"orphanedSince": null}});
        self.records
            .patch_status(&name, &params, &Patch::Merge(&patch))
            .await
            .map_err(|e| {
                Error::kube(
                    Operation::ClearOrphaned,
                    format!("AuthentikObject {name}"),
                    e,
                )
            })?;
        tracing::info!(record = %name, claimed_by = %claimant(&record.spec), "claimed again; no longer orphaned");
        Ok(())
    }

    /// Deletes the authentik object a record proves ours (if it still is), then the record.
    async fn remove(
        &self,
        listed: &AuthentikObject,
        verdict: &OrphanVerdict,
    ) -> Result<Flow, Error> {
        let name = listed.name_any();
        let target = format!("AuthentikObject {name}");
        // Act only on the version that was judged: a re-claim in between changes it.
        let record = match self.records.get_opt(&name).await {
            Ok(Some(record)) if record.resource_version() == listed.resource_version() => record,
            Ok(_) => return Ok(Flow::Continue),
            Err(error) => return Err(Error::kube(Operation::ReadRecord, &target, error)),
        };
        let spec = &record.spec;
        let noun = kind_label(spec.kind);
        if self.dry_run {
            self.report_dry_run(&record, verdict).await;
            return Ok(Flow::Continue);
        }
        if self.throttle.acquire().await.is_err() {
            metrics::deferred();
            tracing::info!(%target, "deletion cap of this cycle reached; the rest waits for the next sweep");
            return Ok(Flow::Stop);
        }
        if *verdict == OrphanVerdict::DeleteObject {
            let Swept {
                object,
                applications,
            } = self.delete_if_ours(spec).await?;
            match object {
                Fate::Deleted => {
                    metrics::authentik_object_deleted(noun);
                    tracing::info!(%target, kind = noun, authentik_name = %spec.authentik_name, id = spec.authentik_id.as_deref().unwrap_or_default(),
                        claimed_by = %claimant(spec), ?applications, "deleted orphaned authentik object");
                    let along = applications
                        .iter()
                        .map(|slug| format!(" and its application {slug:?}"))
                        .collect::<String>();
                    let note = format!(
                        "deleted authentik {noun} {:?} (id {}){along}: unclaimed since ProxyConfig {} went away, longer than {}",
                        spec.authentik_name,
                        spec.authentik_id.as_deref().unwrap_or_default(),
                        claimant(spec),
                        humantime::format_duration(self.policy.max_age)
                    );
                    self.events
                        .publish(&record.object_ref(&()), ORPHAN_DELETED, note, false)
                        .await;
                }
                Fate::AlreadyGone => {
                    tracing::info!(%target, ?applications, "authentik object already gone; removing its record")
                }
                Fate::NotOurs(why) => {
                    tracing::warn!(%target, %why, ?applications, "authentik object no longer matches its record; left in place, record removed");
                    let note = format!(
                        "left authentik {noun} {:?} in place: {why}",
                        spec.authentik_name
                    );
                    self.events
                        .publish(&record.object_ref(&()), ORPHAN_LEFT, note, true)
                        .await;
                }
            }
        } else {
            tracing::info!(%target, "orphaned record of a create never confirmed: removing the record only");
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: record.uid(),
                resource_version: record.resource_version(),
            }),
            ..DeleteParams::default()
        };
        match self.records.delete(&name, &params).await {
            Ok(_) => Ok(Flow::Continue),
            Err(error) if is_not_found(&error) => Ok(Flow::Continue),
            Err(error) if is_conflict(&error) => {
                // Re-claimed after it was read: the record stays, and service-discovery
                // re-creates the object it names.
                tracing::warn!(%target, "record changed while its object was deleted; kept");
                Ok(Flow::Continue)
            }
            Err(error) => Err(Error::kube(Operation::DeleteRecord, &target, error)),
        }
    }

    async fn delete_if_ours(&self, spec: &AuthentikObjectSpec) -> Result<Swept, Error> {
        let id = spec.authentik_id.as_deref().unwrap_or_default();
        let target = format!(
            "authentik {} {:?} (id {id})",
            kind_label(spec.kind),
            spec.authentik_name
        );
        let read_error = |e| Error::authentik(Operation::ReadAuthentikObject, &target, e);
        let delete_error = |e| Error::authentik(Operation::DeleteAuthentikObject, &target, e);
        let mut applications = Vec::new();
        let swept = |object, applications| {
            Ok(Swept {
                object,
                applications,
            })
        };
        let deleted = match spec.kind {
            AuthentikKind::Provider => {
                if let Some(recorded) = &spec.application {
                    self.delete_along(&recorded.slug, Some(&recorded.id), &mut applications)
                        .await?;
                }
                let Ok(pk) = id.parse::<i64>() else {
                    let why = format!("{id:?} is not a provider pk");
                    return swept(Fate::NotOurs(why), applications);
                };
                match self.authentik.get_proxy_provider(pk).await {
                    Ok(provider) if provider.name == spec.authentik_name => {
                        if let Some(slug) = provider.assigned_application_slug {
                            self.delete_along(&slug, None, &mut applications).await?;
                        }
                        self.authentik.delete_proxy_provider(pk).await
                    }
                    Ok(provider) => {
                        let why = format!("provider {pk} is now named {:?}", provider.name);
                        return swept(Fate::NotOurs(why), applications);
                    }
                    Err(error) if error.is_not_found() => {
                        return swept(Fate::AlreadyGone, applications);
                    }
                    Err(error) => return Err(read_error(error)),
                }
            }
            AuthentikKind::Application => {
                let object = self
                    .delete_application_if(&spec.authentik_name, Some(id))
                    .await?;
                return swept(object, applications);
            }
        };
        match deleted {
            Ok(()) => swept(Fate::Deleted, applications),
            Err(error) if error.is_not_found() => swept(Fate::AlreadyGone, applications),
            Err(error) => Err(delete_error(error)),
        }
    }

    /// Deletes an application a provider record owns, before the provider, noting its slug.
    async fn delete_along(
        &self,
        slug: &str,
        id: Option<&str>,
        deleted: &mut Vec<String>,
    ) -> Result<(), Error> {
        match self.delete_application_if(slug, id).await? {
            Fate::Deleted => {
                metrics::authentik_object_deleted("application");
                deleted.push(slug.to_owned());
            }
            Fate::AlreadyGone => {}
            Fate::NotOurs(why) => {
                tracing::warn!(application = %slug, %why, "application left in place");
            }
        }
        Ok(())
    }

    /// Deletes the application of `slug` if it is the one with UUID `id` (`None`: whichever it
    /// is, because it is bound to our provider).
    async fn delete_application_if(&self, slug: &str, id: Option<&str>) -> Result<Fate, Error> {
        let target = format!("authentik application {slug:?}");
        let application = match self.authentik.get_application(slug).await {
            Ok(application) => application,
            Err(error) if error.is_not_found() => return Ok(Fate::AlreadyGone),
            Err(error) => {
                return Err(Error::authentik(
                    Operation::ReadAuthentikObject,
                    &target,
                    error,
                ));
            }
        };
        if let Some(id) = id
            && id != application.pk
        {
            return Ok(Fate::NotOurs(format!(
                "slug {slug:?} now belongs to application {}",
                application.pk
            )));
        }
        match self.authentik.delete_application(slug).await {
            Ok(()) => Ok(Fate::Deleted),
            Err(error) if error.is_not_found() => Ok(Fate::AlreadyGone),
            Err(error) => Err(Error::authentik(
                Operation::DeleteAuthentikObject,
                &target,
                error,
            )),
        }
    }

    async fn report_dry_run(&self, record: &AuthentikObject, verdict: &OrphanVerdict) {
        let Some(uid) = record.uid() else { return };
        if !self.reported.first(&uid) {
            return;
        }
        let spec = &record.spec;
        let (resource, note) = match verdict {
            OrphanVerdict::DeleteObject => (
                kind_label(spec.kind),
                format!(
                    "dry run: would delete authentik {} {:?} (id {}) and this record",
                    kind_label(spec.kind),
                    spec.authentik_name,
                    spec.authentik_id.as_deref().unwrap_or_default()
                ),
            ),
            _ => (
                "record",
                "dry run: would delete this record (its create was never confirmed)".to_owned(),
            ),
        };
        tracing::info!(record = %record.name_any(), resource, authentik_name = %spec.authentik_name, "dry run: would delete orphan");
        metrics::would_delete(resource);
        self.events
            .publish(&record.object_ref(&()), WOULD_DELETE, note, false)
            .await;
    }
}

fn kind_label(kind: AuthentikKind) -> &'static str {
    match kind {
        AuthentikKind::Provider => "provider",
        AuthentikKind::Application => "application",
    }
}

fn claimant(spec: &AuthentikObjectSpec) -> String {
    format!("{}/{}", spec.claimed_by.namespace, spec.claimed_by.name)
}

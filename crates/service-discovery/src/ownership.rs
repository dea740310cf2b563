//! Which authentik objects are ours: the `AuthentikObject` record reads and writes that the
//! decision tables ([`gitops_plan::ownership::decide_provider`] for the provider,
//! [`decide_application`] for the application bound to it) need.

use std::sync::Arc;

use gitops_crd::ownership::{
    AuthentikKind, AuthentikObject, AuthentikObjectSpec, ProxyConfigRef, record_name,
};
use gitops_plan::ownership::{
    ApplicationDecision, ApplicationFacts, Decision, ProviderFacts, decide_application,
    decide_provider,
};
pub use gitops_plan::ownership::{FoundApplication, ObjectAction};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};

/// Reads records from the watch cache and writes them through the API server.
#[derive(Clone)]
pub struct Records {
    api: Api<AuthentikObject>,
    store: Store<AuthentikObject>,
}

/// Another writer changed the record since the cache saw it; reconcile again.
#[derive(Debug, thiserror::Error)]
#[error("ownership record {name}: {source}")]
pub struct RecordError {
    pub name: String,
    #[source]
    pub source: kube::Error,
}

impl RecordError {
    /// The API server refused the write because the record is not what the writer last saw
    /// (`AlreadyExists`, or a resourceVersion or uid precondition that failed).
    fn is_stale_write(&self) -> bool {
        matches!(&self.source, kube::Error::Api(status) if status.code == 409)
    }
}

/// Why a claim did not go through.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// The object is not this ProxyConfig's; the message says why and what to do.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Record(#[from] RecordError),
}

impl ClaimError {
    /// Whether the refusal may come from a cache that has not yet seen a recent write.
    fn may_be_stale(&self) -> bool {
        match self {
            Self::Conflict(_) => true,
            Self::Record(error) => error.is_stale_write(),
        }
    }
}

/// The provider a ProxyConfig wants to claim.
pub struct ProviderClaim<'a> {
    pub authentik_name: &'a str,
    /// The pk of the proxy provider of that name, if one exists.
    pub found: Option<String>,
    /// The ProxyConfig that wants to use the object.
    pub requester: &'a ProxyConfigRef,
    pub adopt: bool,
}

/// A claim that went through: what to do, and the record as stored.
#[derive(Debug)]
pub struct Claimed {
    pub action: ObjectAction,
    pub record: Option<AuthentikObject>,
}

/// What a ProxyConfig whose provider is decided wants to know about the application of its
/// slug.
pub struct ApplicationClaim<'a> {
    pub slug: &'a str,
    pub found: Option<FoundApplication<'a>>,
    /// Our provider's pk.
    pub provider_pk: i64,
    /// Our provider's record, as the provider's claim stored it.
    pub provider_record: Option<&'a AuthentikObject>,
    pub requester: &'a ProxyConfigRef,
    pub adopt: bool,
}

/// An application claim that went through.
#[derive(Debug)]
pub struct ApplicationClaimed {
    pub decision: ApplicationDecision,
    /// A record of the slug an earlier build wrote for this ProxyConfig (or for one that no
    /// longer exists): to be deleted once the provider's record names the application.
    pub legacy_record: Option<AuthentikObject>,
}

impl Records {
    pub fn new(api: Api<AuthentikObject>, store: Store<AuthentikObject>) -> Self {
        Self { api, store }
    }

    fn cached(&self, kind: AuthentikKind, authentik_name: &str) -> Option<AuthentikObject> {
        self.store
            .get(&ObjectRef::new(&record_name(kind, authentik_name)))
            .map(Arc::unwrap_or_clone)
    }

    /// The record as the API server has it now.
    async fn fetch(&self, name: &str) -> Result<Option<AuthentikObject>, RecordError> {
        self.api.get_opt(name).await.map_err(|source| RecordError {
            name: name.to_owned(),
            source,
        })
    }

    /// Decides ownership of one authentik object and stores the record the decision needs,
    /// before anything is written to authentik. `claimant_alive` says whether another
    /// ProxyConfig named in a record still exists.
    ///
    /// The records watch and the ProxyConfig watch are not ordered with each other, so the cache
    /// can miss a record this controller wrote a moment ago. A refusal or a write rejected as
    /// stale is therefore decided once more on the record read from the API server; only that
    /// answer is final.
    pub async fn claim_provider(
        &self,
        claim: &ProviderClaim<'_>,
        claimant_alive: impl Fn(&ProxyConfigRef) -> bool,
    ) -> Result<Claimed, ClaimError> {
        let cached = self.cached(AuthentikKind::Provider, claim.authentik_name);
        match self.settle(claim, cached, &claimant_alive).await {
            Err(error) if error.may_be_stale() => {
                let fresh = self
                    .fetch(&record_name(AuthentikKind::Provider, claim.authentik_name))
                    .await?;
                self.settle(claim, fresh, &claimant_alive).await
            }
            settled => settled,
        }
    }

    async fn settle(
        &self,
        claim: &ProviderClaim<'_>,
        record: Option<AuthentikObject>,
        claimant_alive: &impl Fn(&ProxyConfigRef) -> bool,
    ) -> Result<Claimed, ClaimError> {
        let Decision {
            action,
            record: wanted,
        } = decide_provider(ProviderFacts {
            authentik_name: claim.authentik_name,
            found: claim.found.clone(),
            record: record.as_ref().map(|r| &r.spec),
            requester: claim.requester,
            claimant_alive: record.as_ref().is_some_and(|r| {
                r.spec.claimed_by.uid != claim.requester.uid && claimant_alive(&r.spec.claimed_by)
            }),
            adopt: claim.adopt,
        });
        if let ObjectAction::Conflict(message) = action {
            return Err(ClaimError::Conflict(message));
        }
        let record = match wanted {
            Some(spec) => Some(self.put(record.as_ref(), spec).await?),
            None => record,
        };
        Ok(Claimed { action, record })
    }

    /// Decides ownership of the application of the requester's slug. Nothing is written: the
    /// application needs no intent record (see [`decide_application`]). As with [`Self::claim_provider`],
    /// a refusal is decided once more on records read from the API server.
    pub async fn claim_application(
        &self,
        claim: &ApplicationClaim<'_>,
        claimant_alive: impl Fn(&ProxyConfigRef) -> bool,
    ) -> Result<ApplicationClaimed, ClaimError> {
        let decide_on = |provider_record: Option<&AuthentikObject>,
                         legacy_record: Option<AuthentikObject>| {
            let decision = decide_application(ApplicationFacts {
                slug: claim.slug,
                found: claim.found,
                provider_pk: Some(claim.provider_pk),
                recorded: provider_record.and_then(|r| r.spec.application.as_ref()),
                legacy_record: legacy_record.as_ref().map(|r| &r.spec),
                requester: claim.requester,
                legacy_claimant_alive: legacy_record.as_ref().is_some_and(|r| {
                    r.spec.claimed_by.uid != claim.requester.uid
                        && claimant_alive(&r.spec.claimed_by)
                }),
                adopt: claim.adopt,
            });
            ApplicationClaimed {
                decision,
                legacy_record,
            }
        };
        let legacy_name = record_name(AuthentikKind::Application, claim.slug);
        let cached = decide_on(
            claim.provider_record,
            self.cached(AuthentikKind::Application, claim.slug),
        );
        if !matches!(cached.decision.action, ObjectAction::Conflict(_)) {
            return Ok(cached);
        }
        let provider_record = match claim.provider_record {
            Some(record) => self.fetch(&record.name_any()).await?,
            None => None,
        };
        let fresh = decide_on(provider_record.as_ref(), self.fetch(&legacy_name).await?);
        match fresh.decision.action {
            ObjectAction::Conflict(message) => Err(ClaimError::Conflict(message)),
            _ => Ok(fresh),
        }
    }

    /// The records claimed by the ProxyConfig `claimant`, read from the API server: those the
    /// cache knows and those of the names it uses now (the cache may not have seen them yet).
    pub async fn claimed_by(
        &self,
        claimant: &ProxyConfigRef,
        names_in_use: &[(AuthentikKind, &str)],
    ) -> Result<Vec<AuthentikObject>, RecordError> {
        let mut names: Vec<String> = self
            .store
            .state()
            .iter()
            .filter(|r| r.spec.claimed_by.uid == claimant.uid)
            .map(|r| r.name_any())
            .chain(
                names_in_use
                    .iter()
                    .map(|(kind, name)| record_name(*kind, name)),
            )
            .collect();
        names.sort();
        names.dedup();
        let mut claimed = Vec::new();
        for name in names {
            if let Some(record) = self.fetch(&name).await?
                && record.spec.claimed_by.uid == claimant.uid
            {
                claimed.push(record);
            }
        }
        Ok(claimed)
    }

    /// Stores `spec`: creates the record, or replaces it guarded by the resourceVersion last
    /// seen, so that two writers can never both believe they won.
    pub async fn put(
        &self,
        current: Option<&AuthentikObject>,
        spec: AuthentikObjectSpec,
    ) -> Result<AuthentikObject, RecordError> {
        let name = record_name(spec.kind, &spec.authentik_name);
        let wrap = |source| RecordError {
            name: name.clone(),
            source,
        };
        match current {
            None => {
                let record = AuthentikObject::new(&name, spec);
                self.api
                    .create(&PostParams::default(), &record)
                    .await
                    .map_err(wrap)
            }
            Some(current) => {
                let mut record = current.clone();
                record.spec = spec;
                self.api
                    .replace(&name, &PostParams::default(), &record)
                    .await
                    .map_err(wrap)
            }
        }
    }

    /// Deletes exactly the version of the record that was read, so a record another writer
    /// changed since is left alone.
    pub async fn delete(&self, record: &AuthentikObject) -> Result<(), RecordError> {
        let name = record.name_any();
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: record.metadata.uid.clone(),
                resource_version: record.metadata.resource_version.clone(),
            }),
            ..DeleteParams::default()
        };
        match self.api.delete(&name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(source) => Err(RecordError { name, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Records` against the real API server, with a cache that has seen nothing: the state of
    /// a cache that lags behind writes made a moment ago.
    mod with_a_lagging_cache {
        use super::*;
        use gitops_crd::ownership::Origin;
        use gitops_testenv::TestEnv;
        use kube::runtime::reflector;

        struct Setup {
            records: Records,
            api: Api<AuthentikObject>,
            requester: ProxyConfigRef,
            authentik_name: String,
            _namespace: gitops_testenv::TestNamespace,
        }

        async fn setup(purpose: &str) -> Setup {
            let env = TestEnv::shared().expect("test environment");
            // Records are cluster-scoped: the unique namespace name keeps tests apart.
            let (client, namespace) = env
                .prepare(purpose)
                .await
                .expect("client, CRDs and namespace");
            let api = Api::all(client);
            let (empty_store, _writer) = reflector::store();
            Setup {
                records: Records::new(api.clone(), empty_store),
                requester: ProxyConfigRef {
                    namespace: namespace.name().to_owned(),
                    name: "web".into(),
                    uid: format!("uid-{}", namespace.name()),
                },
                authentik_name: format!("web-{}", namespace.name()),
                api,
                _namespace: namespace,
            }
        }

        impl Setup {
            fn spec(&self, id: Option<&str>) -> AuthentikObjectSpec {
                AuthentikObjectSpec {
                    kind: AuthentikKind::Provider,
                    authentik_name: self.authentik_name.clone(),
                    authentik_id: id.map(str::to_owned),
                    claimed_by: self.requester.clone(),
                    origin: Origin::Created,
                    application: None,
                }
            }

            async fn store(&self, id: Option<&str>) -> AuthentikObject {
                let name = record_name(AuthentikKind::Provider, &self.authentik_name);
                self.api
                    .create(
                        &PostParams::default(),
                        &AuthentikObject::new(&name, self.spec(id)),
                    )
                    .await
                    .expect("record created")
            }

            /// Records outlive namespaces: each test removes its own.
            async fn remove(&self) {
                let name = record_name(AuthentikKind::Provider, &self.authentik_name);
                let _ = self.api.delete(&name, &DeleteParams::default()).await;
            }

            fn claim(&self, found: &str) -> ProviderClaim<'_> {
                ProviderClaim {
                    authentik_name: &self.authentik_name,
                    found: Some(found.to_owned()),
                    requester: &self.requester,
                    adopt: false,
                }
            }
        }

        #[tokio::test]
        async fn our_own_record_the_cache_has_not_seen_is_not_a_conflict() {
            let s = setup("claim-unseen").await;
            s.store(None).await;
            let claimed = s
                .records
                .claim_provider(&s.claim("7"), |_| false)
                .await
                .expect("ours: the record says so");
            assert_eq!(claimed.action, ObjectAction::Use { id: "7".into() });
            let stored = claimed.record.expect("record");
            assert_eq!(stored.spec.authentik_id.as_deref(), Some("7"));
            s.remove().await;
        }

        #[tokio::test]
        async fn a_write_refused_as_stale_is_decided_again_on_the_current_record() {
            let mut s = setup("claim-stale").await;
            let intent = s.store(None).await;
            s.records
                .put(Some(&intent), s.spec(Some("7")))
                .await
                .expect("the id is recorded");
            let (store, mut writer) = reflector::store();
            writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(intent));
            s.records = Records::new(s.api.clone(), store);

            let claimed = s
                .records
                .claim_provider(&s.claim("7"), |_| false)
                .await
                .expect("ours: the current record says so");
            assert_eq!(claimed.action, ObjectAction::Use { id: "7".into() });
            s.remove().await;
        }

        #[tokio::test]
        async fn a_foreign_object_is_still_a_conflict_after_reading_afresh() {
            let s = setup("claim-foreign").await;
            let refused = s.records.claim_provider(&s.claim("7"), |_| false).await;
            assert!(
                matches!(&refused, Err(ClaimError::Conflict(m)) if m.contains("gitops.io/adopt")),
                "{refused:?}"
            );
        }

        #[tokio::test]
        async fn deletion_finds_records_the_cache_has_not_seen() {
            let s = setup("claimed-unseen").await;
            s.store(Some("7")).await;
            let claimed = s
                .records
                .claimed_by(
                    &s.requester,
                    &[(AuthentikKind::Provider, &s.authentik_name)],
                )
                .await
                .expect("read");
            assert_eq!(claimed.len(), 1);
            assert_eq!(claimed[0].spec.authentik_id.as_deref(), Some("7"));
            s.remove().await;
        }

        #[tokio::test]
        async fn a_record_changed_since_it_was_read_is_not_deleted() {
            let s = setup("delete-changed").await;
            let read = s.store(None).await;
            s.records
                .put(Some(&read), s.spec(Some("7")))
                .await
                .expect("someone records the id");
            let refused = s.records.delete(&read).await;
            assert!(
                refused.as_ref().is_err_and(RecordError::is_stale_write),
                "{refused:?}"
            );
            let name = record_name(AuthentikKind::Provider, &s.authentik_name);
            assert!(s.api.get_opt(&name).await.expect("read").is_some());
            s.remove().await;
        }
    }
}

//! Which authentik objects are ours: the decision table of `docs/design/ownership.md` as a pure
//! function, and the `AuthentikObject` record reads and writes it needs.

use std::sync::Arc;

use gitops_crd::ownership::{
    AuthentikKind, AuthentikObject, AuthentikObjectSpec, Origin, ProxyConfigRef, record_name,
};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};

/// What to do with the authentik object of one kind and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectAction {
    /// It does not exist: create it (after writing the record's intent).
    Create,
    /// It is ours: converge it.
    Use { id: String },
    /// It is not ours to touch; the message says why and what to do.
    Conflict(String),
}

/// The decision, with the record content that must be stored before acting (`None`: the stored
/// record is already right).
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub action: ObjectAction,
    pub record: Option<AuthentikObjectSpec>,
}

/// Everything the decision depends on.
pub struct Facts<'a> {
    pub kind: AuthentikKind,
    pub authentik_name: &'a str,
    /// The id of the authentik object of that name, if one exists.
    pub found: Option<String>,
    pub record: Option<&'a AuthentikObjectSpec>,
    pub me: &'a ProxyConfigRef,
    /// Whether the record's claimant (when not `me`) still exists.
    pub claimant_alive: bool,
    /// The ProxyConfig carries `gitops.io/adopt: "true"`.
    pub adopt: bool,
}

fn noun(kind: AuthentikKind) -> &'static str {
    match kind {
        AuthentikKind::Provider => "provider",
        AuthentikKind::Application => "application",
    }
}

pub fn decide(facts: Facts<'_>) -> Decision {
    let Facts {
        kind,
        authentik_name,
        found,
        record,
        me,
        claimant_alive,
        adopt,
    } = facts;
    let noun = noun(kind);
    if let Some(record) = record
        && record.claimed_by.uid != me.uid
        && claimant_alive
    {
        return Decision {
            action: ObjectAction::Conflict(format!(
                "authentik {noun} {authentik_name:?} is managed for ProxyConfig {}/{}",
                record.claimed_by.namespace, record.claimed_by.name
            )),
            record: None,
        };
    }
    let wanted = |id: Option<String>, origin: Origin| AuthentikObjectSpec {
        kind,
        authentik_name: authentik_name.to_owned(),
        authentik_id: id,
        claimed_by: me.clone(),
        origin,
    };
    let unless_stored = |spec: AuthentikObjectSpec| (record != Some(&spec)).then_some(spec);
    match (found, record) {
        (None, _) => Decision {
            action: ObjectAction::Create,
            record: unless_stored(wanted(None, Origin::Created)),
        },
        (Some(id), Some(stored))
            if stored.authentik_id.is_none() || stored.authentik_id.as_deref() == Some(&id) =>
        {
            // Same id: ours. No id yet: our own create whose response was lost.
            Decision {
                record: unless_stored(wanted(Some(id.clone()), stored.origin)),
                action: ObjectAction::Use { id },
            }
        }
        (Some(id), _) if adopt => Decision {
            record: unless_stored(wanted(Some(id.clone()), Origin::Adopted)),
            action: ObjectAction::Use { id },
        },
        (Some(id), Some(stored)) => Decision {
            action: ObjectAction::Conflict(format!(
                "authentik {noun} {authentik_name:?} (id {id}) is not the one this product created (id {}); it was replaced outside gitops-lifecycle-management. Delete it, or set gitops.io/adopt: \"true\" to take it over",
                stored.authentik_id.as_deref().unwrap_or("?")
            )),
            record: None,
        },
        (Some(id), None) => Decision {
            action: ObjectAction::Conflict(format!(
                "authentik {noun} {authentik_name:?} (id {id}) already exists and was not created by gitops-lifecycle-management; rename this one, or set gitops.io/adopt: \"true\" to take it over"
            )),
            record: None,
        },
    }
}

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

/// What a ProxyConfig wants to claim.
pub struct Claim<'a> {
    pub kind: AuthentikKind,
    pub authentik_name: &'a str,
    /// The id of the authentik object of that name, if one exists.
    pub found: Option<String>,
    pub me: &'a ProxyConfigRef,
    pub adopt: bool,
}

/// A claim that went through: what to do, and the record as stored.
#[derive(Debug)]
pub struct Claimed {
    pub action: ObjectAction,
    pub record: Option<AuthentikObject>,
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
    pub async fn claim(
        &self,
        claim: &Claim<'_>,
        claimant_alive: impl Fn(&ProxyConfigRef) -> bool,
    ) -> Result<Claimed, ClaimError> {
        let cached = self.cached(claim.kind, claim.authentik_name);
        match self.settle(claim, cached, &claimant_alive).await {
            Err(error) if error.may_be_stale() => {
                let fresh = self
                    .fetch(&record_name(claim.kind, claim.authentik_name))
                    .await?;
                self.settle(claim, fresh, &claimant_alive).await
            }
            settled => settled,
        }
    }

    async fn settle(
        &self,
        claim: &Claim<'_>,
        record: Option<AuthentikObject>,
        claimant_alive: &impl Fn(&ProxyConfigRef) -> bool,
    ) -> Result<Claimed, ClaimError> {
        let Decision {
            action,
            record: wanted,
        } = decide(Facts {
            kind: claim.kind,
            authentik_name: claim.authentik_name,
            found: claim.found.clone(),
            record: record.as_ref().map(|r| &r.spec),
            me: claim.me,
            claimant_alive: record.as_ref().is_some_and(|r| {
                r.spec.claimed_by.uid != claim.me.uid && claimant_alive(&r.spec.claimed_by)
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

    /// The records claimed by the ProxyConfig `me`, read from the API server: those the cache
    /// knows and those of the names it uses now (the cache may not have seen them yet).
    pub async fn claimed_by(
        &self,
        me: &ProxyConfigRef,
        names_in_use: &[(AuthentikKind, &str)],
    ) -> Result<Vec<AuthentikObject>, RecordError> {
        let mut names: Vec<String> = self
            .store
            .state()
            .iter()
            .filter(|r| r.spec.claimed_by.uid == me.uid)
            .map(|r| kube::ResourceExt::name_any(r.as_ref()))
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
                && record.spec.claimed_by.uid == me.uid
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
        let name = kube::ResourceExt::name_any(record);
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

    fn me() -> ProxyConfigRef {
        ProxyConfigRef {
            namespace: "apps".into(),
            name: "web".into(),
            uid: "uid-me".into(),
        }
    }

    fn record(id: Option<&str>, uid: &str, origin: Origin) -> AuthentikObjectSpec {
        AuthentikObjectSpec {
            kind: AuthentikKind::Provider,
            authentik_name: "web".into(),
            authentik_id: id.map(str::to_owned),
            claimed_by: ProxyConfigRef {
                namespace: "apps".into(),
                name: if uid == "uid-me" { "web" } else { "other" }.into(),
                uid: uid.into(),
            },
            origin,
        }
    }

    fn run(
        found: Option<&str>,
        stored: Option<&AuthentikObjectSpec>,
        claimant_alive: bool,
        adopt: bool,
    ) -> Decision {
        let me = me();
        decide(Facts {
            kind: AuthentikKind::Provider,
            authentik_name: "web",
            found: found.map(str::to_owned),
            record: stored,
            me: &me,
            claimant_alive,
            adopt,
        })
    }

    #[test]
    fn nothing_anywhere_creates_with_intent_first() {
        let d = run(None, None, false, false);
        assert_eq!(d.action, ObjectAction::Create);
        let intent = d.record.expect("intent is recorded before the create");
        assert_eq!(intent.authentik_id, None);
        assert_eq!(intent.claimed_by, me());
        assert_eq!(intent.origin, Origin::Created);
    }

    #[test]
    fn ours_deleted_by_hand_is_recreated() {
        let stored = record(Some("7"), "uid-me", Origin::Created);
        let d = run(None, Some(&stored), false, false);
        assert_eq!(d.action, ObjectAction::Create);
        assert_eq!(d.record.expect("id cleared").authentik_id, None);
    }

    #[test]
    fn ours_with_matching_id_needs_no_record_write() {
        let stored = record(Some("7"), "uid-me", Origin::Created);
        let d = run(Some("7"), Some(&stored), false, false);
        assert_eq!(d.action, ObjectAction::Use { id: "7".into() });
        assert_eq!(d.record, None);
    }

    #[test]
    fn lost_create_response_is_recognised_by_the_pending_intent() {
        let stored = record(None, "uid-me", Origin::Created);
        let d = run(Some("9"), Some(&stored), false, false);
        assert_eq!(d.action, ObjectAction::Use { id: "9".into() });
        assert_eq!(
            d.record.expect("id filled").authentik_id.as_deref(),
            Some("9")
        );
    }

    #[test]
    fn foreign_object_is_a_conflict_unless_adopted() {
        let d = run(Some("3"), None, false, false);
        match d.action {
            ObjectAction::Conflict(message) => {
                assert!(message.contains("gitops.io/adopt"), "{message}")
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(d.record, None, "a conflict writes nothing");

        let d = run(Some("3"), None, false, true);
        assert_eq!(d.action, ObjectAction::Use { id: "3".into() });
        assert_eq!(d.record.expect("adoption recorded").origin, Origin::Adopted);
    }

    #[test]
    fn replaced_object_is_a_conflict_name_match_is_not_enough() {
        let stored = record(Some("7"), "uid-me", Origin::Created);
        let d = run(Some("8"), Some(&stored), false, false);
        assert!(matches!(d.action, ObjectAction::Conflict(_)), "{d:?}");
        assert_eq!(d.record, None);
    }

    #[test]
    fn live_other_claimant_wins_dead_one_is_reclaimed() {
        let stored = record(Some("7"), "uid-other", Origin::Created);
        let live = run(Some("7"), Some(&stored), true, true);
        assert!(matches!(live.action, ObjectAction::Conflict(_)), "{live:?}");

        let dead = run(Some("7"), Some(&stored), false, false);
        assert_eq!(dead.action, ObjectAction::Use { id: "7".into() });
        assert_eq!(dead.record.expect("re-claimed").claimed_by, me());
    }

    /// `Records` against the real API server, with a cache that has seen nothing: the state of
    /// a cache that lags behind writes made a moment ago.
    mod with_a_lagging_cache {
        use super::*;
        use gitops_testenv::TestEnv;
        use kube::runtime::reflector;

        struct Setup {
            records: Records,
            api: Api<AuthentikObject>,
            me: ProxyConfigRef,
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
                me: ProxyConfigRef {
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
                    claimed_by: self.me.clone(),
                    origin: Origin::Created,
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

            fn claim(&self, found: &str) -> Claim<'_> {
                Claim {
                    kind: AuthentikKind::Provider,
                    authentik_name: &self.authentik_name,
                    found: Some(found.to_owned()),
                    me: &self.me,
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
                .claim(&s.claim("7"), |_| false)
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
                .claim(&s.claim("7"), |_| false)
                .await
                .expect("ours: the current record says so");
            assert_eq!(claimed.action, ObjectAction::Use { id: "7".into() });
            s.remove().await;
        }

        #[tokio::test]
        async fn a_foreign_object_is_still_a_conflict_after_reading_afresh() {
            let s = setup("claim-foreign").await;
            let refused = s.records.claim(&s.claim("7"), |_| false).await;
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
                .claimed_by(&s.me, &[(AuthentikKind::Provider, &s.authentik_name)])
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

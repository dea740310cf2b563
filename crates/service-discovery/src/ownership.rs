//! Which authentik objects are ours: the decision table of `docs/design/ownership.md` as a pure
//! function, and the `AuthentikObject` record reads and writes it needs.

use std::sync::Arc;

use gitops_crd::ownership::{
    AuthentikKind, AuthentikObject, AuthentikObjectSpec, Origin, ProxyConfigRef, record_name,
};
use kube::api::{Api, PostParams};
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

impl Records {
    pub fn new(api: Api<AuthentikObject>, store: Store<AuthentikObject>) -> Self {
        Self { api, store }
    }

    pub fn get(&self, kind: AuthentikKind, authentik_name: &str) -> Option<Arc<AuthentikObject>> {
        self.store
            .get(&ObjectRef::new(&record_name(kind, authentik_name)))
    }

    /// All records claimed by the ProxyConfig with `uid`.
    pub fn claimed_by(&self, uid: &str) -> Vec<Arc<AuthentikObject>> {
        self.store
            .state()
            .into_iter()
            .filter(|r| r.spec.claimed_by.uid == uid)
            .collect()
    }

    /// Stores `spec`: creates the record, or replaces it guarded by the resourceVersion the
    /// cache saw, so that two writers can never both believe they won.
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

    pub async fn delete(&self, record: &AuthentikObject) -> Result<(), RecordError> {
        let name = kube::ResourceExt::name_any(record);
        match self.api.delete(&name, &Default::default()).await {
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
}

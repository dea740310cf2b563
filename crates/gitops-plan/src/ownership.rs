//! Which authentik objects are ours: the decision table of `docs/design/ownership.md`, shared by
//! the service-discovery controller (which acts on it) and `kubectl gitops verify` (which
//! reports what the controller would do), so both judge ownership the same way.

use gitops_crd::ProxyConfig;
use gitops_crd::names::ADOPT_ANNOTATION;
use gitops_crd::ownership::{AuthentikKind, AuthentikObjectSpec, Origin, ProxyConfigRef};

/// The ProxyConfig carries `gitops.io/adopt: "true"`: it may take over an existing object.
pub fn adopt_requested(proxyconfig: &ProxyConfig) -> bool {
    proxyconfig
        .metadata
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(ADOPT_ANNOTATION))
        .is_some_and(|v| v == "true")
}

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
#[derive(Debug)]
pub struct Facts<'a> {
    pub kind: AuthentikKind,
    pub authentik_name: &'a str,
    /// The id of the authentik object of that name, if one exists.
    pub found: Option<String>,
    pub record: Option<&'a AuthentikObjectSpec>,
    /// The ProxyConfig that wants to use the object.
    pub requester: &'a ProxyConfigRef,
    /// Whether the record's claimant (when not the requester) still exists.
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

/// Decides whether the requester may use, must create, or must leave alone the object.
pub fn decide(facts: Facts<'_>) -> Decision {
    let Facts {
        kind,
        authentik_name,
        found,
        record,
        requester,
        claimant_alive,
        adopt,
    } = facts;
    let noun = noun(kind);
    if let Some(record) = record
        && record.claimed_by.uid != requester.uid
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
        claimed_by: requester.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn requester() -> ProxyConfigRef {
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
        let requester = requester();
        decide(Facts {
            kind: AuthentikKind::Provider,
            authentik_name: "web",
            found: found.map(str::to_owned),
            record: stored,
            requester: &requester,
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
        assert_eq!(intent.claimed_by, requester());
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
        assert_eq!(dead.record.expect("re-claimed").claimed_by, requester());
    }
}

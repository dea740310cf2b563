//! Which authentik objects are ours: the decision table of `docs/design/ownership.md`, shared by
//! the service-discovery controller (which acts on it) and `kubectl gitops verify` (which
//! reports what the controller would do), so both judge ownership the same way.

use gitops_crd::ProxyConfig;
use gitops_crd::names::ADOPT_ANNOTATION;
use gitops_crd::ownership::{
    AuthentikKind, AuthentikObjectSpec, BoundApplication, Origin, ProxyConfigRef,
};

/// The ProxyConfig carries `gitops.io/adopt: "true"`: it may take over an existing object.
pub fn adopt_requested(proxyconfig: &ProxyConfig) -> bool {
    proxyconfig
        .metadata
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(ADOPT_ANNOTATION))
        .is_some_and(|v| v == "true")
}

/// What to do with an authentik object of ours by name (a provider, or an application).
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

/// Everything the decision on the provider depends on.
#[derive(Debug)]
pub struct ProviderFacts<'a> {
    pub authentik_name: &'a str,
    /// The pk of the proxy provider of that name, if one exists.
    pub found: Option<String>,
    pub record: Option<&'a AuthentikObjectSpec>,
    /// The ProxyConfig that wants to use the object.
    pub requester: &'a ProxyConfigRef,
    /// Whether the record's claimant (when not the requester) still exists.
    pub claimant_alive: bool,
    /// The ProxyConfig carries `gitops.io/adopt: "true"`.
    pub adopt: bool,
}

/// Decides whether the requester may use, must create, or must leave alone the provider of its
/// name. Its record is the one intent that must be stored before a create.
pub fn decide_provider(facts: ProviderFacts<'_>) -> Decision {
    let ProviderFacts {
        authentik_name,
        found,
        record,
        requester,
        claimant_alive,
        adopt,
    } = facts;
    if let Some(record) = record
        && record.claimed_by.uid != requester.uid
        && claimant_alive
    {
        return Decision {
            action: ObjectAction::Conflict(format!(
                "authentik provider {authentik_name:?} is managed for ProxyConfig {}/{}",
                record.claimed_by.namespace, record.claimed_by.name
            )),
            record: None,
        };
    }
    let wanted = |id: Option<String>, origin: Origin| AuthentikObjectSpec {
        kind: AuthentikKind::Provider,
        authentik_name: authentik_name.to_owned(),
        authentik_id: id,
        claimed_by: requester.clone(),
        origin,
        // The application stays recorded whatever happens to the provider: it is how the
        // application is recognised once the provider it was bound to is gone.
        application: record.and_then(|r| r.application.clone()),
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
                "authentik provider {authentik_name:?} (id {id}) is not the one this product created (id {}); it was replaced outside gitops-lifecycle-management. Delete it, or set gitops.io/adopt: \"true\" to take it over",
                stored.authentik_id.as_deref().unwrap_or("?")
            )),
            record: None,
        },
        (Some(id), None) => Decision {
            action: ObjectAction::Conflict(format!(
                "authentik provider {authentik_name:?} (id {id}) already exists and was not created by gitops-lifecycle-management; rename this one, or set gitops.io/adopt: \"true\" to take it over"
            )),
            record: None,
        },
    }
}

/// The application of the requester's slug, as authentik has it.
#[derive(Clone, Copy, Debug)]
pub struct FoundApplication<'a> {
    pub id: &'a str,
    /// The provider it is bound to, if any.
    pub provider: Option<i64>,
}

/// Everything the decision on the application depends on. The provider is decided first and
/// is ours: its record is the one that also names the application.
#[derive(Debug)]
pub struct ApplicationFacts<'a> {
    pub slug: &'a str,
    pub found: Option<FoundApplication<'a>>,
    /// Our provider's pk (`None`: there is none to bind to yet).
    pub provider_pk: Option<i64>,
    /// The application our provider's record names.
    pub recorded: Option<&'a BoundApplication>,
    /// A record of the slug written by an earlier build, which kept one record per object.
    pub legacy_record: Option<&'a AuthentikObjectSpec>,
    pub requester: &'a ProxyConfigRef,
    /// Whether the legacy record's claimant (when not the requester) still exists.
    pub legacy_claimant_alive: bool,
    pub adopt: bool,
}

/// What to do with the application, and how it came to be ours (for the record).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplicationDecision {
    pub action: ObjectAction,
    pub origin: Origin,
}

/// Decides whether the requester may use, must create, or must leave alone the application of
/// its slug. authentik binds a provider to at most one application, so an application bound to
/// our provider is ours: that covers a create whose response was lost before the record named
/// it, without an intent of its own. The recorded UUID covers an application whose provider was
/// deleted (authentik unbinds it then).
pub fn decide_application(facts: ApplicationFacts<'_>) -> ApplicationDecision {
    let ApplicationFacts {
        slug,
        found,
        provider_pk,
        recorded,
        legacy_record,
        requester,
        legacy_claimant_alive,
        adopt,
    } = facts;
    let decision = |action, origin| ApplicationDecision { action, origin };
    let recorded = recorded.filter(|app| app.slug.eq_ignore_ascii_case(slug));
    if let Some(legacy) = legacy_record
        && legacy.claimed_by.uid != requester.uid
        && legacy_claimant_alive
    {
        return decision(
            ObjectAction::Conflict(format!(
                "authentik application {slug:?} is managed for ProxyConfig {}/{}",
                legacy.claimed_by.namespace, legacy.claimed_by.name
            )),
            legacy.origin,
        );
    }
    let Some(found) = found else {
        return decision(ObjectAction::Create, Origin::Created);
    };
    let use_it = |origin| {
        decision(
            ObjectAction::Use {
                id: found.id.to_owned(),
            },
            origin,
        )
    };
    let known_origin = recorded
        .map(|app| app.origin)
        .or(legacy_record.map(|legacy| legacy.origin));
    if found.provider.is_some() && found.provider == provider_pk {
        return use_it(known_origin.unwrap_or(Origin::Created));
    }
    let recorded_id = recorded
        .map(|app| Some(app.id.as_str()))
        .or(legacy_record.map(|legacy| legacy.authentik_id.as_deref()));
    match recorded_id {
        // Ours by UUID; a legacy record without one is our create whose response was lost.
        Some(None) => return use_it(known_origin.unwrap_or(Origin::Created)),
        Some(Some(id)) if id == found.id => {
            return use_it(known_origin.unwrap_or(Origin::Created));
        }
        _ if adopt => return use_it(Origin::Adopted),
        Some(Some(id)) => {
            return decision(
                ObjectAction::Conflict(format!(
                    "authentik application {slug:?} (id {}) is not the one this product created (id {id}); it was replaced outside gitops-lifecycle-management. Delete it, or set gitops.io/adopt: \"true\" to take it over",
                    found.id
                )),
                Origin::Created,
            );
        }
        None => {}
    }
    decision(
        ObjectAction::Conflict(format!(
            "authentik application {slug:?} (id {}) already exists and was not created by gitops-lifecycle-management; rename this one, or set gitops.io/adopt: \"true\" to take it over",
            found.id
        )),
        Origin::Created,
    )
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
            application: None,
        }
    }

    fn run(
        found: Option<&str>,
        stored: Option<&AuthentikObjectSpec>,
        claimant_alive: bool,
        adopt: bool,
    ) -> Decision {
        let requester = requester();
        decide_provider(ProviderFacts {
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

    mod application {
        use super::*;

        const OUR_PROVIDER: i64 = 7;

        fn bound(id: &str) -> BoundApplication {
            BoundApplication {
                slug: "web".into(),
                id: id.into(),
                origin: Origin::Created,
            }
        }

        fn legacy(id: Option<&str>, uid: &str) -> AuthentikObjectSpec {
            AuthentikObjectSpec {
                kind: AuthentikKind::Application,
                ..record(id, uid, Origin::Created)
            }
        }

        fn run(
            found: Option<(&str, Option<i64>)>,
            recorded: Option<&BoundApplication>,
            legacy_record: Option<&AuthentikObjectSpec>,
            adopt: bool,
        ) -> ApplicationDecision {
            let requester = requester();
            decide_application(ApplicationFacts {
                slug: "web",
                found: found.map(|(id, provider)| FoundApplication { id, provider }),
                provider_pk: Some(OUR_PROVIDER),
                recorded,
                legacy_record,
                requester: &requester,
                legacy_claimant_alive: true,
                adopt,
            })
        }

        fn is_conflict(decision: &ApplicationDecision, containing: &str) -> bool {
            matches!(&decision.action, ObjectAction::Conflict(m) if m.contains(containing))
        }

        #[test]
        fn nothing_there_is_created_without_an_intent_record() {
            let d = run(None, None, None, false);
            assert_eq!(d.action, ObjectAction::Create);
            assert_eq!(d.origin, Origin::Created);
        }

        #[test]
        fn bound_to_our_provider_is_ours_even_before_the_record_names_it() {
            // The create's response was lost, or the process died before recording it.
            let d = run(Some(("uuid-1", Some(OUR_PROVIDER))), None, None, false);
            assert_eq!(
                d.action,
                ObjectAction::Use {
                    id: "uuid-1".into()
                }
            );
        }

        #[test]
        fn the_recorded_uuid_proves_an_application_whose_provider_was_deleted() {
            let d = run(Some(("uuid-1", None)), Some(&bound("uuid-1")), None, false);
            assert_eq!(
                d.action,
                ObjectAction::Use {
                    id: "uuid-1".into()
                }
            );
        }

        #[test]
        fn a_foreign_application_is_a_conflict_unless_adopted() {
            let foreign = Some(("uuid-2", Some(99)));
            let d = run(foreign, None, None, false);
            assert!(is_conflict(&d, "was not created by"), "{d:?}");
            let d = run(foreign, None, None, true);
            assert_eq!(
                d.action,
                ObjectAction::Use {
                    id: "uuid-2".into()
                }
            );
            assert_eq!(d.origin, Origin::Adopted);
        }

        #[test]
        fn a_replaced_application_is_a_conflict_a_slug_match_is_not_enough() {
            let d = run(Some(("uuid-2", None)), Some(&bound("uuid-1")), None, false);
            assert!(is_conflict(&d, "replaced outside"), "{d:?}");
        }

        #[test]
        fn a_record_of_another_slug_proves_nothing() {
            let mut other = bound("uuid-1");
            other.slug = "old-web".into();
            let d = run(Some(("uuid-1", None)), Some(&other), None, false);
            assert!(is_conflict(&d, "was not created by"), "{d:?}");
        }

        #[test]
        fn a_legacy_record_is_honoured() {
            let ours = legacy(Some("uuid-1"), "uid-me");
            let d = run(Some(("uuid-1", None)), None, Some(&ours), false);
            assert_eq!(
                d.action,
                ObjectAction::Use {
                    id: "uuid-1".into()
                }
            );
            let pending = legacy(None, "uid-me");
            let d = run(Some(("uuid-1", None)), None, Some(&pending), false);
            assert_eq!(
                d.action,
                ObjectAction::Use {
                    id: "uuid-1".into()
                }
            );
            let replaced = legacy(Some("uuid-0"), "uid-me");
            let d = run(Some(("uuid-1", None)), None, Some(&replaced), false);
            assert!(is_conflict(&d, "replaced outside"), "{d:?}");
            let theirs = legacy(Some("uuid-1"), "uid-other");
            let d = run(
                Some(("uuid-1", Some(OUR_PROVIDER))),
                None,
                Some(&theirs),
                true,
            );
            assert!(
                is_conflict(&d, "managed for ProxyConfig apps/other"),
                "{d:?}"
            );
        }
    }
}

//! The comparison itself (pure): each enabled ProxyConfig against what authentik holds, with
//! ownership judged by the controller's own table.

use std::collections::{BTreeMap, BTreeSet};

use gitops_authentik::Outpost;
use gitops_crd::ProxyConfig;
use gitops_crd::ownership::{AuthentikKind, AuthentikObjectSpec, ProxyConfigRef, record_name};
use gitops_crd::validate::check_spec;
use gitops_plan::ownership::{
    ApplicationFacts, FoundApplication, ObjectAction, ProviderFacts, adopt_requested,
    decide_application, decide_provider,
};
use gitops_plan::{
    Defaults, Flows, application_changes, application_slug, desired_application, desired_provider,
    provider_changes,
};
use kube::ResourceExt;

use super::findings::{Difference, Finding, Skipped, Verification};
use super::gather::{Observed, outpost_selector};

/// The comparison itself (pure).
pub fn evaluate(observed: &Observed) -> Verification {
    let mut verification = Verification::default();
    let mut used_outposts: BTreeMap<&str, &Outpost> = BTreeMap::new();
    for proxyconfig in &observed.proxyconfigs {
        let id = format!(
            "{}/{}",
            proxyconfig.namespace().unwrap_or_default(),
            proxyconfig.name_any()
        );
        if !proxyconfig.spec.authentik_config.enabled {
            verification.skipped.push(Skipped {
                proxy_config: id,
                reason: "authentikConfig.enabled is false".into(),
            });
            continue;
        }
        let before = verification.findings.len();
        match compare_one(observed, proxyconfig, &id, &mut verification.findings) {
            Ok(Some(outpost)) => {
                used_outposts.insert(&outpost.pk, outpost);
            }
            Ok(None) => {}
            Err(reason) => {
                verification.skipped.push(Skipped {
                    proxy_config: id,
                    reason,
                });
                continue;
            }
        }
        if verification.findings.len() == before {
            verification.summary.in_sync += 1;
        }
    }
    verification.findings.extend(orphans(observed));
    verification
        .findings
        .extend(foreign_providers(observed, used_outposts.values().copied()));

    let summary = &mut verification.summary;
    summary.proxy_configs = observed.proxyconfigs.len();
    summary.skipped = verification.skipped.len();
    for finding in &verification.findings {
        let counter = match finding {
            Finding::MissingProvider { .. } | Finding::MissingApplication { .. } => {
                &mut summary.missing
            }
            Finding::DriftedProvider { .. } | Finding::DriftedApplication { .. } => {
                &mut summary.drifted
            }
            Finding::NotInOutpost { .. } => &mut summary.not_in_outpost,
            Finding::Conflict { .. } => &mut summary.conflicts,
            Finding::Unresolved { .. } => &mut summary.unresolved,
            Finding::Orphaned { .. } => &mut summary.orphaned,
            Finding::ForeignProvider { .. } => &mut summary.foreign,
        };
        *counter += 1;
    }
    verification
}

/// The record of the authentik object of `kind` named `name`, if one exists.
fn record<'a>(
    observed: &'a Observed,
    kind: AuthentikKind,
    name: &str,
) -> Option<&'a AuthentikObjectSpec> {
    let wanted = record_name(kind, name);
    observed
        .records
        .iter()
        .find(|r| r.spec.kind == kind && r.name_any() == wanted)
        .map(|r| &r.spec)
}

/// Whether a record is held for another ProxyConfig that still exists. A claimant outside the
/// checked namespace cannot be seen, so it counts as alive: the object is then reported as
/// someone else's, as the controller would if it were.
fn claimed_by_another(
    observed: &Observed,
    requester: &ProxyConfigRef,
    record: Option<&AuthentikObjectSpec>,
) -> bool {
    record.is_some_and(|r| {
        let claimant = &r.claimed_by;
        claimant.uid != requester.uid
            && (observed
                .scope
                .as_deref()
                .is_some_and(|ns| ns != claimant.namespace)
                || observed
                    .proxyconfigs
                    .iter()
                    .any(|pc| pc.uid().as_deref() == Some(&claimant.uid)))
    })
}

/// What the controller would do with the provider named `name` (`found`: its pk, if one
/// exists), judged by the controller's ownership table on the same records.
fn provider_ownership(
    observed: &Observed,
    proxyconfig: &ProxyConfig,
    name: &str,
    found: Option<String>,
) -> ObjectAction {
    let requester = ProxyConfigRef::of(proxyconfig);
    let record = record(observed, AuthentikKind::Provider, name);
    decide_provider(ProviderFacts {
        authentik_name: name,
        found,
        record,
        requester: &requester,
        claimant_alive: claimed_by_another(observed, &requester, record),
        adopt: adopt_requested(proxyconfig),
    })
    .action
}

/// What the controller would do with the application of `slug`, given our provider (when
/// it is ours) and its record.
fn application_ownership(
    observed: &Observed,
    proxyconfig: &ProxyConfig,
    slug: &str,
    found: Option<FoundApplication<'_>>,
    provider: Option<(i64, Option<&AuthentikObjectSpec>)>,
) -> ObjectAction {
    let requester = ProxyConfigRef::of(proxyconfig);
    let legacy_record = record(observed, AuthentikKind::Application, slug);
    decide_application(ApplicationFacts {
        slug,
        found,
        provider_pk: provider.map(|(pk, _)| pk),
        recorded: provider
            .and_then(|(_, record)| record)
            .and_then(|r| r.application.as_ref()),
        legacy_record,
        requester: &requester,
        legacy_claimant_alive: claimed_by_another(observed, &requester, legacy_record),
        adopt: adopt_requested(proxyconfig),
    })
    .action
}

/// Compares one enabled ProxyConfig; returns the outpost it uses (if found), or why it was not
/// compared.
fn compare_one<'w>(
    observed: &'w Observed,
    proxyconfig: &ProxyConfig,
    id: &str,
    findings: &mut Vec<Finding>,
) -> Result<Option<&'w Outpost>, String> {
    let spec = &proxyconfig.spec;
    let config = &spec.authentik_config;
    let checked = check_spec(spec).map_err(|errors| format!("invalid spec: {errors}"))?;
    let unresolved = |reason: String| Finding::Unresolved {
        proxy_config: id.to_owned(),
        reason,
    };
    let flow = |key: &Option<String>, default: &str| {
        let key = key.as_deref().unwrap_or(default);
        observed
            .flows
            .get(key)
            .cloned()
            .flatten()
            .ok_or_else(|| format!("flow {key:?} does not exist in authentik"))
    };
    let flows = match (
        flow(
            &config.authorization_flow,
            &observed.defaults.authorization_flow,
        ),
        flow(
            &config.invalidation_flow,
            &observed.defaults.invalidation_flow,
        ),
    ) {
        (Ok(authorization), Ok(invalidation)) => Flows {
            authorization,
            invalidation,
        },
        (Err(reason), _) | (_, Err(reason)) => {
            findings.push(unresolved(reason));
            return Ok(None);
        }
    };
    let selector = outpost_selector(proxyconfig, &observed.defaults);
    let outpost = observed.outposts.get(selector).and_then(Option::as_ref);
    if outpost.is_none() {
        findings.push(unresolved(format!(
            "outpost {selector:?} does not exist in authentik"
        )));
    }

    let defaults = Defaults {
        cookie_domain: observed.defaults.cookie_domain.clone(),
    };
    let desired = desired_provider(spec, &checked, &flows, &defaults);
    let found = observed.providers.iter().find(|p| p.name == desired.name);
    let provider = match provider_ownership(
        observed,
        proxyconfig,
        &desired.name,
        found.map(|p| p.pk.to_string()),
    ) {
        ObjectAction::Conflict(reason) => {
            findings.push(Finding::Conflict {
                proxy_config: id.to_owned(),
                reason,
            });
            None
        }
        ObjectAction::Create => {
            findings.push(Finding::MissingProvider {
                proxy_config: id.to_owned(),
                provider: desired.name.clone(),
            });
            None
        }
        ObjectAction::Use { .. } => found,
    };
    if let Some(provider) = provider {
        if let Some((_, diffs)) = provider_changes(&desired, provider) {
            findings.push(Finding::DriftedProvider {
                proxy_config: id.to_owned(),
                provider: desired.name.clone(),
                differences: diffs.into_iter().map(Difference::from).collect(),
            });
        }
        if let Some(outpost) = outpost
            && !outpost.providers.contains(&provider.pk)
        {
            findings.push(Finding::NotInOutpost {
                proxy_config: id.to_owned(),
                provider: desired.name.clone(),
                outpost: outpost.name.clone(),
            });
        }
    }

    let slug = application_slug(
        spec,
        &proxyconfig.namespace().unwrap_or_default(),
        &proxyconfig.name_any(),
    );
    let found = observed.applications.iter().find(|a| a.slug == slug);
    match application_ownership(
        observed,
        proxyconfig,
        &slug,
        found.map(|a| FoundApplication {
            id: &a.pk,
            provider: a.provider,
        }),
        provider.map(|p| {
            (
                p.pk,
                record(observed, AuthentikKind::Provider, &desired.name),
            )
        }),
    ) {
        ObjectAction::Conflict(reason) => findings.push(Finding::Conflict {
            proxy_config: id.to_owned(),
            reason,
        }),
        ObjectAction::Create => findings.push(Finding::MissingApplication {
            proxy_config: id.to_owned(),
            slug,
        }),
        ObjectAction::Use { .. } => {
            // Without our provider there is nothing to bind to; its finding says enough.
            if let (Some(application), Some(provider)) = (found, provider) {
                let desired = desired_application(spec, slug.clone(), provider.pk);
                if let Some((_, diffs)) = application_changes(&desired, application) {
                    findings.push(Finding::DriftedApplication {
                        proxy_config: id.to_owned(),
                        slug,
                        differences: diffs.into_iter().map(Difference::from).collect(),
                    });
                }
            }
        }
    }
    Ok(outpost)
}

/// Records whose claiming ProxyConfig (by uid) no longer exists, within the scope.
fn orphans(observed: &Observed) -> Vec<Finding> {
    let alive: BTreeSet<String> = observed
        .proxyconfigs
        .iter()
        .filter_map(|pc| pc.uid())
        .collect();
    observed
        .records
        .iter()
        .filter(|r| {
            observed
                .scope
                .as_deref()
                .is_none_or(|ns| r.spec.claimed_by.namespace == ns)
        })
        .filter(|r| !alive.contains(&r.spec.claimed_by.uid))
        .map(|r| Finding::Orphaned {
            record: r.name_any(),
            object: format!(
                "{} {:?}{}",
                match r.spec.kind {
                    AuthentikKind::Provider => "provider",
                    AuthentikKind::Application => "application",
                },
                r.spec.authentik_name,
                r.spec
                    .application
                    .as_ref()
                    .map(|a| format!(" and application {:?}", a.slug))
                    .unwrap_or_default()
            ),
            authentik_id: r.spec.authentik_id.clone(),
            claimed_by: format!("{}/{}", r.spec.claimed_by.namespace, r.spec.claimed_by.name),
        })
        .collect()
}

/// Providers in the given outposts without an ownership record (matched by name and pk).
fn foreign_providers<'a>(
    observed: &Observed,
    outposts: impl Iterator<Item = &'a Outpost>,
) -> Vec<Finding> {
    let mut found = Vec::new();
    for outpost in outposts {
        for &pk in &outpost.providers {
            let name = observed
                .providers
                .iter()
                .find(|p| p.pk == pk)
                .map(|p| p.name.clone());
            let ours = name.as_deref().is_some_and(|name| {
                record(observed, AuthentikKind::Provider, name)
                    .and_then(|r| r.authentik_id.as_deref())
                    == Some(pk.to_string().as_str())
            });
            if !ours {
                found.push(Finding::ForeignProvider {
                    outpost: outpost.name.clone(),
                    provider: name.unwrap_or_else(|| "(not a proxy provider)".into()),
                    pk,
                });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::ControllerDefaults;
    use gitops_authentik::{Application, ProxyProvider};
    use gitops_crd::names::{
        ADOPT_ANNOTATION, DEFAULT_AUTHORIZATION_FLOW, DEFAULT_INVALIDATION_FLOW, DEFAULT_OUTPOST,
    };
    use gitops_crd::ownership::{AuthentikObject, BoundApplication};
    use serde_json::json;

    const AUTHZ: &str = "11111111-1111-4111-8111-111111111111";
    const INVAL: &str = "22222222-2222-4222-8222-222222222222";
    const OUTPOST: &str = "33333333-3333-4333-8333-333333333333";

    fn proxyconfig(name: &str, uid: &str) -> ProxyConfig {
        serde_json::from_value(json!({
            "apiVersion": "gitops.io/v1", "kind": "ProxyConfig",
            "metadata": {"name": name, "namespace": "apps", "uid": uid},
            "spec": {
                "serviceName": name, "serviceNamespace": "apps",
                "externalHost": format!("{name}.example.com"),
                "internalHost": format!("http://{name}.apps.svc.cluster.local:80"),
                "authentikConfig": {"providerName": name}
            }
        }))
        .expect("ProxyConfig")
    }

    fn provider(pk: i64, name: &str) -> ProxyProvider {
        serde_json::from_value(json!({
            "pk": pk, "name": name, "authorization_flow": AUTHZ, "invalidation_flow": INVAL,
            "external_host": format!("https://{name}.example.com"),
            "internal_host": format!("http://{name}.apps.svc.cluster.local:80"),
            "internal_host_ssl_validation": false, "skip_path_regex": "^/api/.*$",
            "mode": "forward_single", "intercept_header_auth": true, "cookie_domain": ""
        }))
        .expect("provider")
    }

    fn application(slug: &str, name: &str, provider: i64) -> Application {
        serde_json::from_value(json!({
            "pk": format!("app-{slug}"), "name": name, "slug": slug, "provider": provider,
            "meta_launch_url": "", "meta_description": "", "meta_publisher": "", "group": "",
            "policy_engine_mode": "any"
        }))
        .expect("application")
    }

    fn record(
        kind: AuthentikKind,
        name: &str,
        id: &str,
        claimant: &str,
        uid: &str,
    ) -> AuthentikObject {
        let mut record = AuthentikObject::new(
            &record_name(kind, name),
            gitops_crd::ownership::AuthentikObjectSpec {
                kind,
                authentik_name: name.to_owned(),
                authentik_id: Some(id.to_owned()),
                claimed_by: gitops_crd::ownership::ProxyConfigRef {
                    namespace: "apps".into(),
                    name: claimant.into(),
                    uid: uid.into(),
                },
                origin: gitops_crd::ownership::Origin::Created,
                application: None,
            },
        );
        record.metadata.name = Some(record_name(kind, name));
        record
    }

    /// One converged ProxyConfig `web` (provider pk 1, application `apps-web`).
    fn converged() -> Observed {
        let slug = application_slug(&proxyconfig("web", "u1").spec, "apps", "web");
        Observed {
            proxyconfigs: vec![proxyconfig("web", "u1")],
            records: vec![{
                let mut provider = record(AuthentikKind::Provider, "web", "1", "web", "u1");
                provider.spec.application = Some(BoundApplication {
                    id: format!("app-{slug}"),
                    slug: slug.clone(),
                    origin: gitops_crd::ownership::Origin::Created,
                });
                provider
            }],
            providers: vec![provider(1, "web")],
            applications: vec![application(&slug, "web", 1)],
            flows: BTreeMap::from([
                (
                    DEFAULT_AUTHORIZATION_FLOW.to_owned(),
                    Some(AUTHZ.to_owned()),
                ),
                (DEFAULT_INVALIDATION_FLOW.to_owned(), Some(INVAL.to_owned())),
            ]),
            outposts: BTreeMap::from([(
                DEFAULT_OUTPOST.to_owned(),
                Some(
                    serde_json::from_value(json!({
                        "pk": OUTPOST, "name": "authentik Embedded Outpost", "type": "proxy",
                        "providers": [1]
                    }))
                    .expect("outpost"),
                ),
            )]),
            scope: Some("apps".into()),
            defaults: ControllerDefaults::built_in("test".into()),
        }
    }

    #[test]
    fn a_converged_world_has_no_findings() {
        let verification = evaluate(&converged());
        assert_eq!(verification.findings, vec![]);
        assert_eq!(verification.summary.in_sync, 1);
    }

    #[test]
    fn records_of_earlier_builds_are_judged_as_the_controller_does() {
        // A record per object, as earlier builds kept them.
        let mut observed = converged();
        let application = observed.records[0].spec.application.take().expect("app");
        observed.records.push(record(
            AuthentikKind::Application,
            &application.slug,
            &application.id,
            "web",
            "u1",
        ));
        assert_eq!(evaluate(&observed).findings, vec![]);

        // The application unbound (its provider re-created by hand): the legacy UUID still
        // proves it ours, so it is drifted, not someone else's.
        observed.applications[0].provider = None;
        let findings = evaluate(&observed).findings;
        assert!(
            matches!(findings.as_slice(), [Finding::DriftedApplication { .. }]),
            "{findings:#?}"
        );
    }

    #[test]
    fn an_orphaned_record_names_its_application_too() {
        let mut observed = converged();
        observed.proxyconfigs.clear();
        let findings = evaluate(&observed).findings;
        let orphan = findings
            .iter()
            .find_map(|f| match f {
                Finding::Orphaned { object, .. } => Some(object.clone()),
                _ => None,
            })
            .expect("orphan");
        assert_eq!(orphan, r#"provider "web" and application "apps-web""#);
    }

    #[test]
    fn the_controllers_configured_defaults_are_what_a_spec_without_them_gets() {
        // The controller runs with another default outpost and a cookie domain.
        let mut observed = converged();
        let outpost = observed.outposts.remove(DEFAULT_OUTPOST).expect("outpost");
        observed.outposts.insert("lan".into(), outpost);
        observed.defaults.outpost = "lan".into();
        observed.defaults.cookie_domain = Some("example.com".into());
        observed.providers[0].cookie_domain = Some("example.com".into());
        let verification = evaluate(&observed);
        assert_eq!(
            verification.findings,
            vec![],
            "in sync with the controller's defaults"
        );

        // Compared with the built-in defaults instead, the same objects look wrong.
        observed.defaults = ControllerDefaults::built_in("test".into());
        let findings = evaluate(&observed).findings;
        assert!(
            findings
                .iter()
                .any(|f| matches!(f, Finding::Unresolved { .. })),
            "{findings:?}"
        );
    }

    #[test]
    fn drift_names_the_field_with_both_values() {
        let mut observed = converged();
        observed.providers[0].skip_path_regex = Some("^/health$".into());
        let findings = evaluate(&observed).findings;
        let [Finding::DriftedProvider { differences, .. }] = findings.as_slice() else {
            panic!("one drift expected: {findings:?}");
        };
        assert_eq!(differences[0].field, "skip_path_regex");
        assert!(differences[0].have.contains("^/health$"));
        assert!(differences[0].want.contains("^/api/.*$"));
    }

    #[test]
    fn missing_outpost_orphan_and_foreign_are_each_found() {
        let mut observed = converged();
        observed.providers.clear();
        let findings = evaluate(&observed).findings;
        assert!(
            findings
                .iter()
                .any(|f| matches!(f, Finding::MissingProvider { .. })),
            "{findings:?}"
        );

        let mut observed = converged();
        observed
            .outposts
            .values_mut()
            .flatten()
            .for_each(|o| o.providers = vec![1, 9]);
        observed.providers.push(provider(9, "someone-elses"));
        observed.records.push(record(
            AuthentikKind::Provider,
            "gone",
            "5",
            "gone",
            "u-dead",
        ));
        observed
            .records
            .push(record(AuthentikKind::Provider, "other-ns", "6", "x", "u-x"));
        observed
            .records
            .last_mut()
            .expect("record")
            .spec
            .claimed_by
            .namespace = "other".into();
        let verification = evaluate(&observed);
        assert_eq!(
            verification.summary.orphaned, 1,
            "{:?}",
            verification.findings
        );
        assert_eq!(
            verification.summary.foreign, 1,
            "{:?}",
            verification.findings
        );
        assert!(
            verification
                .findings
                .iter()
                .any(|f| matches!(f, Finding::ForeignProvider { pk: 9, .. }))
        );

        let mut observed = converged();
        observed
            .outposts
            .values_mut()
            .flatten()
            .for_each(|o| o.providers.clear());
        assert_eq!(evaluate(&observed).summary.not_in_outpost, 1);
    }

    #[test]
    fn someone_elses_provider_of_our_name_is_a_conflict_not_drift() {
        // verify once called a foreign provider and its application "drifted", inviting an
        // operator to "fix" someone else's objects; the controller reports a Conflict.
        let mut observed = converged();
        observed.records.clear();
        observed.providers[0].skip_path_regex = Some("^/theirs$".into());
        let findings = evaluate(&observed).findings;
        let conflicts: Vec<_> = findings
            .iter()
            .filter_map(|f| match f {
                Finding::Conflict { reason, .. } => Some(reason.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(conflicts.len(), 2, "provider and application: {findings:?}");
        assert!(
            conflicts.iter().all(
                |r| r.contains("was not created by gitops-lifecycle-management")
                    && r.contains("gitops.io/adopt")
            ),
            "{conflicts:?}"
        );
        assert!(
            !findings.iter().any(|f| matches!(
                f,
                Finding::DriftedProvider { .. } | Finding::DriftedApplication { .. }
            )),
            "{findings:?}"
        );
        assert_eq!(evaluate(&observed).summary.conflicts, 2);

        // With gitops.io/adopt the controller takes them over: then their fields are drift
        // (and, until it has written its records, the provider counts as foreign).
        observed.proxyconfigs[0]
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(ADOPT_ANNOTATION.into(), "true".into());
        let summary = evaluate(&observed).summary;
        assert_eq!(
            (summary.conflicts, summary.drifted, summary.missing),
            (0, 1, 0),
            "{summary:?}"
        );
    }

    #[test]
    fn an_object_claimed_by_another_live_proxyconfig_is_a_conflict() {
        let mut observed = converged();
        observed.proxyconfigs.push(proxyconfig("other", "u2"));
        observed.records[0].spec.claimed_by.uid = "u2".into();
        observed.records[0].spec.claimed_by.name = "other".into();
        let findings = evaluate(&observed).findings;
        assert!(
            findings.iter().any(
                |f| matches!(f, Finding::Conflict { reason, .. } if reason.contains("apps/other"))
            ),
            "{findings:?}"
        );

        // A claimant that is gone does not keep the object from us.
        observed.proxyconfigs.pop();
        let findings = evaluate(&observed).findings;
        assert!(
            !findings
                .iter()
                .any(|f| matches!(f, Finding::Conflict { .. })),
            "{findings:?}"
        );
    }

    #[test]
    fn disabled_and_invalid_specs_are_skipped_with_a_reason() {
        let mut observed = converged();
        observed.proxyconfigs[0].spec.authentik_config.enabled = false;
        let verification = evaluate(&observed);
        assert_eq!(verification.skipped.len(), 1);
        assert!(verification.skipped[0].reason.contains("enabled is false"));
    }
}

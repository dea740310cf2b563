//! The orphan sweep against adversarial fixtures: it deletes exactly the authentik objects an
//! ownership record proves ours and no ProxyConfig claims, after their grace period, and
//! nothing when it cannot know who claims what.

mod common;

use common::{Harness, LAST_SWEEP, ago, unix_now};
use gitops_crd::ownership::AuthentikKind::{Application, Provider};
use gitops_harness::skip_in_contract_mode;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

#[tokio::test]
async fn with_zero_proxyconfigs_only_recorded_orphans_are_deleted_after_their_grace_period() {
    let mut h = Harness::new("orphans").await;
    // Ours, unclaimed: to be deleted.
    let orphan = h.unique("orphan-proxy");
    let orphan_pk = h.create_provider(&orphan).await;
    let orphan_record = h
        .create_record(
            Provider,
            &orphan,
            Some(&orphan_pk.to_string()),
            "gone-uid-1",
        )
        .await;
    let app_slug = h.unique("orphan-app");
    let app_uuid = h.create_application(&app_slug, None).await;
    let app_record = h
        .create_record(Application, &app_slug, Some(&app_uuid), "gone-uid-1")
        .await;
    // Someone else's, named like a ProxyConfig's provider, no record: never touched.
    let foreign = h.unique("grafana-proxy");
    let foreign_pk = h.create_provider(&foreign).await;
    // A record whose create was never confirmed (no id) next to an object of that name.
    let unconfirmed = h.unique("unconfirmed");
    let unconfirmed_pk = h.create_provider(&unconfirmed).await;
    let unconfirmed_record = h
        .create_record(Provider, &unconfirmed, None, "gone-uid-2")
        .await;
    // A record whose id now names a provider someone renamed: not provably ours any more.
    let renamed = h.unique("renamed");
    let renamed_pk = h.create_provider(&format!("{renamed}-by-hand")).await;
    let renamed_record = h
        .create_record(
            Provider,
            &renamed,
            Some(&renamed_pk.to_string()),
            "gone-uid-3",
        )
        .await;

    let c = h.start_with_authentik(&[
        ("ORPHANED_PROVIDERS_MAX_AGE", "4s"),
        ("CLEANUP_INTERVAL", "1s"),
    ]);
    let marked = h
        .wait_until("the first sweep to mark the orphan", || async {
            h.orphaned_since(&orphan_record).await
        })
        .await;
    assert!(
        h.authentik.provider(orphan_pk).await.is_some(),
        "not deleted during its grace period"
    );

    h.wait_until("the orphaned provider to be deleted", || async {
        h.authentik
            .provider(orphan_pk)
            .await
            .is_none()
            .then_some(())
    })
    .await;
    let deleted_after = k8s_openapi::jiff::Timestamp::now().duration_since(marked);
    assert!(
        deleted_after.as_secs() >= 3,
        "deleted {deleted_after} after marking, before the 4s grace period"
    );
    h.wait_until("the orphan records to be removed", || async {
        for record in [
            &orphan_record,
            &app_record,
            &unconfirmed_record,
            &renamed_record,
        ] {
            if h.record(record).await.is_some() {
                return None;
            }
        }
        Some(())
    })
    .await;

    assert!(
        h.authentik.application(&app_slug).await.is_none(),
        "orphaned application deleted"
    );
    assert!(
        h.authentik.provider(foreign_pk).await.is_some(),
        "an unowned provider is never touched"
    );
    assert!(
        h.authentik.provider(unconfirmed_pk).await.is_some(),
        "no id, no proof: object left"
    );
    assert!(
        h.authentik.provider(renamed_pk).await.is_some(),
        "renamed by hand: left"
    );
    if let Some(double) = h.authentik.as_double() {
        assert_eq!(
            double.count("DELETE", "/api/v3/"),
            2,
            "exactly the two proven orphans"
        );
    }
    assert_eq!(
        h.metric(
            c,
            r#"gitops_cleanup_providers_cleaned_total{kind="provider"}"#
        )
        .await,
        Some(1.0)
    );
    assert_eq!(
        h.metric(
            c,
            r#"gitops_cleanup_providers_cleaned_total{kind="application"}"#
        )
        .await,
        Some(1.0)
    );
    assert_eq!(
        h.events_about("default", &orphan_record, "OrphanDeleted")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn a_record_claimed_again_during_its_grace_period_is_kept() {
    let mut h = Harness::new("reclaimed").await;
    let live_uid = h.create_proxyconfig("alive").await;
    let claimed = h.unique("claimed");
    let claimed_pk = h.create_provider(&claimed).await;
    let claimed_record = h
        .create_record(Provider, &claimed, Some(&claimed_pk.to_string()), &live_uid)
        .await;
    let reclaimed = h.unique("reclaimed");
    let reclaimed_pk = h.create_provider(&reclaimed).await;
    let reclaimed_record = h
        .create_record(
            Provider,
            &reclaimed,
            Some(&reclaimed_pk.to_string()),
            "dead-uid",
        )
        .await;

    let c = h.start_with_authentik(&[
        ("ORPHANED_PROVIDERS_MAX_AGE", "6s"),
        ("CLEANUP_INTERVAL", "1s"),
    ]);
    h.wait_until("the unclaimed record to be marked", || async {
        h.orphaned_since(&reclaimed_record).await
    })
    .await;
    // What service-discovery does for a record of a ProxyConfig that no longer exists.
    let new_uid = h.create_proxyconfig("successor").await;
    h.records()
        .patch(
            &reclaimed_record,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"claimedBy": {"namespace": h.namespace(), "name": "successor", "uid": new_uid}}})),
        )
        .await
        .expect("re-claimed");
    h.wait_until("the mark to be cleared", || async {
        h.orphaned_since(&reclaimed_record)
            .await
            .is_none()
            .then_some(())
    })
    .await;

    // Past the grace period (6s from the mark), with sweeps that judged the record after it.
    h.wait_metric(c, LAST_SWEEP, unix_now() + 7.0).await;
    assert!(
        h.authentik.provider(reclaimed_pk).await.is_some(),
        "re-claimed: kept"
    );
    assert!(
        h.authentik.provider(claimed_pk).await.is_some(),
        "claimed all along: kept"
    );
    assert!(h.record(&reclaimed_record).await.is_some());
    assert_eq!(
        h.orphaned_since(&claimed_record).await,
        None,
        "a claimed record is never marked"
    );
    if let Some(double) = h.authentik.as_double() {
        assert_eq!(double.count("DELETE", "/api/v3/"), 0);
    }
    assert_eq!(
        h.metric(c, "gitops_cleanup_orphaned_objects").await,
        Some(0.0)
    );
}

/// An orphaned provider record with its provider and an application (bound to the provider
/// when `bind`): the provider's pk, the application's slug and uuid, the record's name.
async fn orphan(h: &mut Harness, base: &str, bind: bool) -> (i64, String, String, String) {
    let name = h.unique(base);
    let pk = h.create_provider(&name).await;
    let slug = format!("{name}-app");
    let uuid = h.create_application(&slug, bind.then_some(pk)).await;
    let record = h
        .create_record(Provider, &name, Some(&pk.to_string()), "gone-uid")
        .await;
    (pk, slug, uuid, record)
}

/// A provider record also owns an application: the one it names (if the slug still has the
/// recorded uuid) and the one bound to the provider (a create the record did not name yet).
#[tokio::test]
async fn a_provider_record_takes_its_application_along() {
    let mut h = Harness::new("orphan-apps").await;
    // Named by the record and bound to the provider: deleted.
    let (named_pk, named_slug, named_uuid, named_record) = orphan(&mut h, "named", true).await;
    h.record_application(&named_record, &named_slug, &named_uuid)
        .await;
    // Bound, not yet named (the process stopped between the create and the record write).
    let (bound_pk, bound_slug, _, _) = orphan(&mut h, "bound", true).await;
    // Named, but the slug now belongs to another application: left in place.
    let (replaced_pk, replaced_slug, _, replaced_record) = orphan(&mut h, "replaced", false).await;
    h.record_application(&replaced_record, &replaced_slug, "uuid-of-the-one-we-made")
        .await;

    let c = h.start_with_authentik(&[
        ("ORPHANED_PROVIDERS_MAX_AGE", "1s"),
        ("CLEANUP_INTERVAL", "1s"),
    ]);
    h.wait_until("the orphaned providers to be deleted", || async {
        for pk in [named_pk, bound_pk, replaced_pk] {
            if h.authentik.provider(pk).await.is_some() {
                return None;
            }
        }
        Some(())
    })
    .await;
    assert!(h.authentik.application(&named_slug).await.is_none());
    assert!(h.authentik.application(&bound_slug).await.is_none());
    assert!(
        h.authentik.application(&replaced_slug).await.is_some(),
        "not the application the record names"
    );
    assert_eq!(
        h.metric(
            c,
            r#"gitops_cleanup_providers_cleaned_total{kind="application"}"#
        )
        .await,
        Some(2.0)
    );
    let deleted = h
        .events_about("default", &named_record, "OrphanDeleted")
        .await;
    let note = deleted[0].note.as_deref().unwrap_or_default();
    assert!(
        note.contains(&format!("and its application {named_slug:?}")),
        "{note}"
    );
}

/// The controller runs as a ServiceAccount that may do everything it needs except list
/// ProxyConfigs (impersonation, so nothing else in the shared API server changes). Then the
/// right is granted, proving the same fixture is deleted once the list works.
#[tokio::test]
async fn nothing_is_deleted_while_proxyconfigs_cannot_be_listed() {
    let mut h = Harness::new("list-fails").await;
    let ns = h.namespace().to_owned();
    let name = h.unique("long-orphaned");
    let pk = h.create_provider(&name).await;
    let record = h
        .create_record(Provider, &name, Some(&pk.to_string()), "dead-uid")
        .await;
    h.mark_orphaned(&record, ago(30 * 86400)).await;

    let role_name = format!("gitops-cleanup-test-{ns}");
    let rules = |with_proxyconfigs: bool| {
        let mut rules = vec![
            json!({"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch", "delete"]}),
            json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "delete"]}),
            json!({"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]}),
            json!({"apiGroups": ["gitops.io"], "resources": ["authentikobjects"], "verbs": ["get", "list", "delete"]}),
            json!({"apiGroups": ["gitops.io"], "resources": ["authentikobjects/status"], "verbs": ["patch"]}),
        ];
        if with_proxyconfigs {
            rules.push(json!({"apiGroups": ["gitops.io"], "resources": ["proxyconfigs"], "verbs": ["list"]}));
        }
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": role_name}, "rules": rules})
    };
    let roles: Api<ClusterRole> = Api::all(h.client.clone());
    let bindings: Api<ClusterRoleBinding> = Api::all(h.client.clone());
    let apply = PatchParams::apply("gitops-cleanup-test").force();
    roles
        .patch(&role_name, &apply, &Patch::Apply(rules(false)))
        .await
        .expect("ClusterRole");
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": role_name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
        "subjects": [{"kind": "ServiceAccount", "name": "cleanup", "namespace": ns}]
    }))
    .expect("binding");
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .expect("ClusterRoleBinding");

    let kubeconfig = h.kubeconfig_as_service_account("cleanup");
    let base_url = h.authentik.base_url();
    let token = h.authentik.token().to_owned();
    let c = h.start_with_kubeconfig(
        &kubeconfig,
        &[
            ("AUTHENTIK_HOST", &base_url),
            ("AUTHENTIK_TOKEN", &token),
            ("ORPHANED_PROVIDERS_MAX_AGE", "1s"),
            ("CLEANUP_INTERVAL", "1s"),
        ],
    );
    h.wait_metric(
        c,
        r#"gitops_cleanup_errors_total{operation="list_proxyconfigs"}"#,
        3.0,
    )
    .await;
    let untouched = h.authentik.provider(pk).await.is_some() && h.record(&record).await.is_some();
    let deletes = h
        .authentik
        .as_double()
        .map_or(0, |double| double.count("DELETE", "/api/v3/"));

    roles
        .patch(&role_name, &apply, &Patch::Apply(rules(true)))
        .await
        .expect("grant list");
    let deleted =
        gitops_testenv::eventually("the orphan to be deleted once the list works", || async {
            h.authentik.provider(pk).await.is_none().then_some(())
        })
        .await;
    let _ = bindings.delete(&role_name, &DeleteParams::default()).await;
    let _ = roles.delete(&role_name, &DeleteParams::default()).await;

    assert!(
        untouched,
        "nothing deleted while the ProxyConfig list failed"
    );
    assert_eq!(
        deletes, 0,
        "no authentik delete while the ProxyConfig list failed"
    );
    deleted.expect("with the right to list, the same orphan goes: the failure was what stopped it");
}

#[tokio::test]
async fn authentik_being_down_deletes_nothing_and_the_sweep_recovers() {
    if skip_in_contract_mode("takes authentik down") {
        return;
    }
    let mut h = Harness::new("authentik-down").await;
    let name = h.unique("waiting");
    let pk = h.create_provider(&name).await;
    let record = h
        .create_record(Provider, &name, Some(&pk.to_string()), "dead-uid")
        .await;
    h.mark_orphaned(&record, ago(30 * 86400)).await;
    h.double().set_down(true);

    let c = h.start_with_authentik(&[
        ("ORPHANED_PROVIDERS_MAX_AGE", "1s"),
        ("CLEANUP_INTERVAL", "1s"),
    ]);
    h.wait_metric(
        c,
        r#"gitops_cleanup_errors_total{operation="reach_authentik"}"#,
        2.0,
    )
    .await;
    assert!(
        h.record(&record).await.is_some(),
        "record kept while authentik is down"
    );
    assert!(
        !h.ready(c).await,
        "not ready before authentik answered once"
    );

    h.double().set_down(false);
    h.wait_until("the orphan to be deleted after recovery", || async {
        (h.double().provider(pk).is_none() && h.record(&record).await.is_none()).then_some(())
    })
    .await;
    assert!(h.ready(c).await);
}

//! Crash safety and ownership: lost responses never duplicate, foreign objects are never taken
//! over by name, conflicts between ProxyConfigs resolve by age, and only the leader writes.

mod common;

use authentik_double::Fault;
use common::{condition, skip_in_contract_mode};
use gitops_crd::Phase;
use gitops_crd::ownership::{
    AuthentikKind, AuthentikObject, AuthentikObjectSpec, Origin, ProxyConfigRef, record_name,
};
use kube::api::{Api, PostParams};
use serde_json::json;

#[tokio::test]
async fn lost_create_responses_leave_exactly_one_provider_and_application() {
    if skip_in_contract_mode("loses the responses of creates") {
        return;
    }
    let mut h = common::harness("lost-response").await;
    h.double()
        .inject(Fault::drop_response_after_write(1).only("POST", "/api/v3/providers/proxy/"));
    h.double()
        .inject(Fault::drop_response_after_write(1).only("POST", "/api/v3/core/applications/"));
    h.start_single();
    h.apply(h.proxyconfig("once")).await;
    let pc = h.wait_phase("once", Phase::Ready).await;

    let name = h.provider_name("once");
    let ours = h.authentik.providers_named(&name).await;
    assert_eq!(ours.len(), 1, "no duplicate provider");
    assert_eq!(
        h.double().count("POST", "/api/v3/providers/proxy/"),
        1,
        "created once"
    );
    assert_eq!(
        pc.status.and_then(|s| s.authentik_provider_id),
        Some(ours[0].pk)
    );
    let slug = format!("{}-once", h.namespace());
    assert_eq!(
        h.double()
            .application_slugs()
            .iter()
            .filter(|s| **s == slug)
            .count(),
        1,
        "no duplicate application"
    );
}

#[tokio::test]
async fn foreign_provider_of_the_same_name_is_a_conflict_and_untouched_until_adopted() {
    let mut h = common::harness("foreign").await;
    let name = h.provider_name("taken");
    let foreign = h
        .authentik
        .create_proxy_provider(&name, "https://someone.example.com")
        .await;
    let index = h.start_single();
    h.apply(h.proxyconfig("taken")).await;

    let failed = h.wait_phase("taken", Phase::Failed).await;
    let ready = condition(&failed, "Ready");
    assert_eq!(ready.reason, "Conflict");
    assert!(
        ready.message.contains("gitops.io/adopt"),
        "{}",
        ready.message
    );
    // The controller looks again (at its next resync) and still leaves it alone.
    let seen = common::reconciles(&h, index).await;
    h.wait_until("another reconcile of the ProxyConfig", || async {
        (common::reconciles(&h, index).await > seen).then_some(())
    })
    .await;
    let after = h.authentik.provider(foreign.pk).await.expect("still there");
    assert_eq!(after, foreign, "untouched");
    if let Some(double) = h.authentik.as_double() {
        assert_eq!(double.count("PATCH", "/api/v3/providers/proxy/"), 0);
        assert_eq!(double.count("DELETE", "/api/v3/providers/proxy/"), 0);
    }

    let mut adopt = h.proxyconfig("taken");
    adopt["metadata"]["annotations"] = json!({"gitops.io/adopt": "true"});
    h.apply(adopt).await;
    let ready = h
        .wait_until("the adopted provider to converge", || async {
            let pc = h.get("taken").await?;
            (pc.status.as_ref()?.phase == Some(Phase::Ready)).then_some(pc)
        })
        .await;
    assert_eq!(
        ready.status.and_then(|s| s.authentik_provider_id),
        Some(foreign.pk)
    );
    let adopted = h.authentik.provider(foreign.pk).await.expect("same object");
    assert_eq!(
        adopted.external_host,
        format!("https://taken.{}.example.com", h.namespace()),
        "converged to the spec"
    );
    assert_eq!(h.authentik.providers_named(&name).await.len(), 1);
}

#[tokio::test]
async fn name_taken_by_another_provider_type_is_reported() {
    let mut h = common::harness("other-type").await;
    let name = h.provider_name("oauth");
    h.authentik.create_oauth2_provider(&name).await;
    h.start_single();
    h.apply(h.proxyconfig("oauth")).await;
    let pc = h
        .wait_until("the name clash to be reported", || async {
            let pc = h.get("oauth").await?;
            let ready = pc
                .status
                .as_ref()?
                .conditions
                .iter()
                .find(|c| c.type_ == "Ready")?
                .clone();
            (ready.status == "False" && ready.message.contains("taken")).then_some(pc)
        })
        .await;
    assert_ne!(pc.status.and_then(|s| s.phase), Some(Phase::Ready));
    let all = h.authentik.client().list_proxy_providers().await;
    assert!(
        all.expect("providers").iter().all(|p| p.name != name),
        "no proxy provider of the taken name"
    );
}

#[tokio::test]
async fn oldest_proxyconfig_wins_a_shared_host_and_the_loser_recovers() {
    let mut h = common::harness("conflict").await;
    h.start_single();
    let first = h.proxyconfig("first");
    h.apply(first.clone()).await;
    h.wait_phase("first", Phase::Ready).await;

    let mut second = h.proxyconfig("second");
    second["spec"]["externalHost"] = first["spec"]["externalHost"].clone();
    h.apply(second).await;
    let lost = h.wait_phase("second", Phase::Failed).await;
    let ready = condition(&lost, "Ready");
    assert_eq!(ready.reason, "Conflict");
    assert!(ready.message.contains("first"), "{}", ready.message);
    assert!(
        h.authentik
            .provider_named(&h.provider_name("second"))
            .await
            .is_none(),
        "the loser touched nothing"
    );

    h.delete("first").await;
    h.wait_gone("first").await;
    h.wait_phase("second", Phase::Ready).await;
    assert!(
        h.authentik
            .provider_named(&h.provider_name("second"))
            .await
            .is_some()
    );
}

#[tokio::test]
async fn only_the_leader_writes_and_a_standby_takes_over() {
    let mut h = common::harness("leader").await;
    let lease = format!("sd-{}", h.namespace());
    let args = ["--leader-election", "true", "--lease-name", lease.as_str()];
    let a = h.start_controller(&args);
    h.apply(h.proxyconfig("led")).await;
    h.wait_phase("led", Phase::Ready).await;
    let b = h.start_controller(&args);

    // The standby is ready too (it has no leader-only readiness gates) but does nothing.
    let standby_metrics = h
        .wait_until("the standby to report its leadership", || async {
            let port = h.controller(b).metrics_port;
            let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            text.lines()
                .any(|l| l.starts_with("gitops_leader "))
                .then_some(text)
        })
        .await;
    assert!(
        standby_metrics
            .lines()
            .any(|l| l.starts_with("gitops_leader ") && l.ends_with(" 0")),
        "standby reports it is not leading:\n{standby_metrics}"
    );
    assert!(
        !standby_metrics
            .lines()
            .any(|l| l.starts_with("gitops_authentik_requests_total")),
        "the standby made no authentik call"
    );

    h.kill_controller(a).await;
    h.apply({
        let mut changed = h.proxyconfig("led");
        changed["spec"]["authentikConfig"]["skipPathRegex"] = json!("^/public/.*$");
        changed
    })
    .await;
    h.wait_phase("led", Phase::Ready).await;
    let provider = h
        .authentik
        .provider_named(&h.provider_name("led"))
        .await
        .expect("provider");
    assert_eq!(
        provider.skip_path_regex.as_deref(),
        Some("^/public/.*$"),
        "the new leader converged it"
    );
    let text = h.scrape_metrics(b).await;
    assert!(
        text.lines()
            .any(|l| l.starts_with("gitops_leader ") && l.ends_with(" 1")),
        "{text}"
    );
}

/// Earlier builds kept a record per authentik object. Their application record is honoured and
/// folded into the provider's record: one write and one delete, once.
#[tokio::test]
async fn a_legacy_application_record_is_folded_into_the_provider_record() {
    let mut h = common::harness("legacy-record").await;
    let first = h.start_single();
    h.apply(h.proxyconfig("legacy")).await;
    let pc = h.wait_phase("legacy", Phase::Ready).await;
    h.kill_controller(first).await;

    // Rewrite the records as an earlier build left them.
    let records: Api<AuthentikObject> = Api::all(h.client.clone());
    let provider_record = record_name(AuthentikKind::Provider, &h.provider_name("legacy"));
    let mut provider = records
        .get(&provider_record)
        .await
        .expect("provider record");
    let application = provider
        .spec
        .application
        .take()
        .expect("application recorded");
    records
        .replace(&provider_record, &PostParams::default(), &provider)
        .await
        .expect("provider record without its application");
    let legacy_name = record_name(AuthentikKind::Application, &application.slug);
    let legacy = AuthentikObject::new(
        &legacy_name,
        AuthentikObjectSpec {
            kind: AuthentikKind::Application,
            authentik_name: application.slug.clone(),
            authentik_id: Some(application.id.clone()),
            claimed_by: ProxyConfigRef::of(&pc),
            origin: Origin::Created,
            application: None,
        },
    );
    records
        .create(&PostParams::default(), &legacy)
        .await
        .expect("legacy application record");

    h.start_single();
    let folded = h
        .wait_until(
            "the application to be folded into the provider record",
            || async {
                let provider = records.get(&provider_record).await.ok()?;
                let legacy_left = records.get_opt(&legacy_name).await.ok()?;
                (legacy_left.is_none() && provider.spec.application.is_some()).then_some(provider)
            },
        )
        .await;
    assert_eq!(folded.spec.application, Some(application));
    let pc = h.wait_phase("legacy", Phase::Ready).await;
    assert_eq!(condition(&pc, "ApplicationSynced").status, "True");
}

/// The process stopped after both creates and before the record named them, and the
/// ProxyConfig was deleted meanwhile: the finalizer still finds the provider through the
/// record's intent (by name) and the application through its binding, and removes both.
#[tokio::test]
async fn deletion_removes_creates_the_record_never_confirmed() {
    if skip_in_contract_mode("edits ownership records behind the controller's back") {
        return;
    }
    let mut h = common::harness("unconfirmed-delete").await;
    let first = h.start_single();
    h.apply(h.proxyconfig("unconfirmed")).await;
    let pc = h.wait_phase("unconfirmed", Phase::Ready).await;
    let pk = pc
        .status
        .as_ref()
        .and_then(|s| s.authentik_provider_id)
        .expect("pk");
    let slug = format!("{}-unconfirmed", h.namespace());
    h.kill_controller(first).await;

    // The record as it was between the creates and its confirmation: intent only.
    let records: Api<AuthentikObject> = Api::all(h.client.clone());
    let name = record_name(AuthentikKind::Provider, &h.provider_name("unconfirmed"));
    let mut record = records.get(&name).await.expect("record");
    record.spec.authentik_id = None;
    record.spec.application = None;
    records
        .replace(&name, &PostParams::default(), &record)
        .await
        .expect("record back to its intent");
    h.delete("unconfirmed").await;

    h.start_single();
    h.wait_gone("unconfirmed").await;
    assert!(
        h.authentik.provider(pk).await.is_none(),
        "provider left behind"
    );
    assert!(
        h.authentik.application(&slug).await.is_none(),
        "application left behind"
    );
    assert!(records.get_opt(&name).await.expect("read").is_none());
}

//! ProxyConfig → authentik through its whole life, against a real API server and the authentik
//! double (or, in contract mode, an external authentik): create, change, drift, outages, delete.

mod common;

use std::time::Duration;

use common::{
    FAILED_RECONCILES, Harness, RESYNCS, SUCCESSFUL_RECONCILES, condition, skip_in_contract_mode,
};
use gitops_authentik::{ProxyMode, ProxyProviderPatch};
use gitops_crd::Phase;
use gitops_crd::names::FINALIZER;
use gitops_crd::ownership::{AuthentikKind, AuthentikObject, Origin};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde_json::json;

async fn applications_for(h: &Harness, provider_pk: i64) -> Vec<String> {
    let applications = h.authentik.applications_of(provider_pk).await;
    applications.into_iter().map(|a| a.slug).collect()
}

async fn records_for(h: &Harness, uid: &str) -> Vec<AuthentikObject> {
    Api::<AuthentikObject>::all(h.client.clone())
        .list(&ListParams::default())
        .await
        .expect("records list")
        .items
        .into_iter()
        .filter(|r| r.spec.claimed_by.uid == uid)
        .collect()
}

#[tokio::test]
async fn create_reaches_ready_with_exactly_the_expected_objects() {
    let mut h = common::harness("create-ready").await;
    h.create_service("web", 80).await;
    h.start_single();
    h.apply(h.proxyconfig("web")).await;
    let pc = h.wait_phase("web", Phase::Ready).await;

    let name = h.provider_name("web");
    let providers = h.authentik.providers_named(&name).await;
    assert_eq!(providers.len(), 1, "exactly one provider");
    let proxy = &providers[0];
    assert_eq!(
        proxy.external_host,
        format!("https://web.{}.example.com", h.namespace())
    );
    assert_eq!(
        proxy.internal_host,
        Some(format!("http://web.{}.svc.cluster.local:80", h.namespace()))
    );
    assert_eq!(proxy.mode, Some(ProxyMode::ForwardSingle));
    assert_eq!(proxy.skip_path_regex.as_deref(), Some("^/api/.*$"));

    let status = pc.status.clone().expect("status");
    assert_eq!(status.authentik_provider_id, Some(proxy.pk));
    let slug = format!("{}-web", h.namespace());
    assert_eq!(status.application_slug.as_deref(), Some(slug.as_str()));
    assert_eq!(applications_for(&h, proxy.pk).await, vec![slug.clone()]);
    let outpost = h.authentik.embedded_outpost().await;
    let in_outpost = outpost.providers.iter().filter(|p| **p == proxy.pk).count();
    assert_eq!(in_outpost, 1, "in the embedded outpost exactly once");
    assert_eq!(status.outpost_id, Some(outpost.pk));

    let version = h.authentik.client().version().await.expect("version");
    assert_eq!(
        status.authentik_version.as_deref(),
        Some(version.version_current.as_str()),
        "status names the authentik version it talked to"
    );
    for type_ in [
        "Ready",
        "ServiceResolved",
        "ProviderSynced",
        "ApplicationSynced",
        "OutpostAssigned",
        "AuthentikVersionSupported",
    ] {
        assert_eq!(condition(&pc, type_).status, "True", "{type_}");
    }
    assert!(pc.finalizers().iter().any(|f| f == FINALIZER));
    let records = records_for(&h, &pc.uid().expect("uid")).await;
    let [record] = records.as_slice() else {
        panic!("one ownership record, for the provider and its application: {records:#?}");
    };
    assert_eq!(record.spec.kind, AuthentikKind::Provider);
    assert_eq!(record.spec.authentik_id, Some(proxy.pk.to_string()));
    let application = record.spec.application.as_ref().expect("application");
    assert_eq!(
        (application.slug.as_str(), application.origin),
        (slug.as_str(), Origin::Created)
    );
    assert_eq!(
        Some(&application.id),
        h.authentik.application(&slug).await.map(|a| a.pk).as_ref()
    );
    if let Some(double) = h.authentik.as_double() {
        assert_eq!(
            double.count("GET", "/api/v3/policies/bindings/"),
            0,
            "an application created without allowedGroups has no bindings to read"
        );
    }
}

#[tokio::test]
async fn every_spec_change_reaches_authentik() {
    let mut h = common::harness("spec-change").await;
    h.start_single();
    h.apply(h.proxyconfig("app")).await;
    let created = h.wait_phase("app", Phase::Ready).await;
    let created_pk = created.status.and_then(|s| s.authentik_provider_id);

    let mut changed = h.proxyconfig("app");
    changed["spec"]["externalHost"] = json!("https://changed.example.com");
    changed["spec"]["internalHost"] = json!("https://app-internal.example.svc:8443");
    changed["spec"]["port"] = json!(8443);
    changed["spec"]["protocol"] = json!("https");
    changed["spec"]["annotations"] =
        json!({"description": "new description", "publisher": "platform"});
    changed["spec"]["authentikConfig"] = json!({
        "providerName": h.provider_name("app"),
        "mode": "proxy",
        "skipPathRegex": "^/health$\n^/metrics$",
        "basicAuthEnabled": true,
        "basicAuthUserAttribute": "username",
        "basicAuthPasswordAttribute": "password",
        "internalHostSslValidation": true,
        "cookieDomain": "example.com",
        "accessTokenValidity": "hours=2",
        "interceptHeaderAuth": false,
        "applicationName": "The App",
        "launchUrl": "https://changed.example.com/start",
        "group": "tools"
    });
    h.apply(changed).await;
    let pc = h.wait_phase("app", Phase::Ready).await;
    assert_eq!(
        pc.status.as_ref().and_then(|s| s.observed_generation),
        Some(2)
    );

    let providers = h.authentik.providers_named(&h.provider_name("app")).await;
    assert_eq!(providers.len(), 1, "one provider");
    let proxy = &providers[0];
    assert_eq!(
        Some(proxy.pk),
        created_pk,
        "updated in place, not re-created"
    );
    assert_eq!(proxy.external_host, "https://changed.example.com");
    assert_eq!(
        proxy.internal_host.as_deref(),
        Some("https://app-internal.example.svc:8443")
    );
    assert_eq!(proxy.mode, Some(ProxyMode::Proxy));
    assert_eq!(
        proxy.skip_path_regex.as_deref(),
        Some("^/health$\n^/metrics$")
    );
    assert_eq!(proxy.basic_auth_enabled, Some(true));
    assert_eq!(proxy.basic_auth_user_attribute.as_deref(), Some("username"));
    assert_eq!(
        proxy.basic_auth_password_attribute.as_deref(),
        Some("password")
    );
    assert_eq!(proxy.internal_host_ssl_validation, Some(true));
    assert_eq!(proxy.cookie_domain.as_deref(), Some("example.com"));
    assert_eq!(proxy.access_token_validity.as_deref(), Some("hours=2"));
    assert_eq!(proxy.intercept_header_auth, Some(false));

    let applications = h.authentik.applications_of(proxy.pk).await;
    let app = applications.first().expect("application");
    assert_eq!(app.name, "The App");
    assert_eq!(
        app.meta_launch_url.as_deref(),
        Some("https://changed.example.com/start")
    );
    assert_eq!(app.meta_description.as_deref(), Some("new description"));
    assert_eq!(app.meta_publisher.as_deref(), Some("platform"));
    assert_eq!(app.group.as_deref(), Some("tools"));
}

#[tokio::test]
async fn hand_edits_are_reverted_and_outpost_removal_is_undone() {
    let mut h = common::harness("drift").await;
    h.start_single();
    h.apply(h.proxyconfig("drift")).await;
    let pc = h.wait_phase("drift", Phase::Ready).await;
    let pk = pc.status.and_then(|s| s.authentik_provider_id).expect("pk");

    let mut edit = ProxyProviderPatch::new(ProxyMode::ForwardSingle);
    edit.external_host = Some("https://evil.example.com".into());
    edit.skip_path_regex = Some(".*".into());
    h.authentik
        .client()
        .patch_proxy_provider(pk, &edit)
        .await
        .expect("a person edits the provider");
    h.authentik
        .change_embedded_outpost(|providers| providers.retain(|p| *p != pk))
        .await;

    let expected_host = format!("https://drift.{}.example.com", h.namespace());
    h.wait_until("the hand edit to be reverted", || async {
        let proxy = h.authentik.provider(pk).await?;
        (proxy.external_host == expected_host
            && proxy.skip_path_regex.as_deref() == Some("^/api/.*$"))
        .then_some(())
    })
    .await;
    h.wait_until("the provider to be back in its outpost", || async {
        h.authentik
            .embedded_outpost_providers()
            .await
            .contains(&pk)
            .then_some(())
    })
    .await;
    let name = h.provider_name("drift");
    assert_eq!(h.authentik.providers_named(&name).await.len(), 1);
}

/// authentik unbinds an application whose provider is deleted; the record's application UUID is
/// what still proves the application ours, so it is re-bound rather than called foreign.
#[tokio::test]
async fn a_provider_deleted_by_hand_is_recreated_and_its_application_rebound() {
    let mut h = common::harness("provider-deleted").await;
    h.start_single();
    h.apply(h.proxyconfig("rebound")).await;
    let pc = h.wait_phase("rebound", Phase::Ready).await;
    let pk = pc.status.and_then(|s| s.authentik_provider_id).expect("pk");
    let slug = format!("{}-rebound", h.namespace());
    let application = h.authentik.application(&slug).await.expect("application");

    h.authentik
        .client()
        .delete_proxy_provider(pk)
        .await
        .expect("a person deletes the provider");
    let new_pk = h
        .wait_until("the provider to be re-created", || async {
            let name = h.provider_name("rebound");
            h.authentik.provider_named(&name).await.map(|p| p.pk)
        })
        .await;
    assert_ne!(new_pk, pk);
    let rebound = h
        .wait_until("the application to be bound to it", || async {
            h.authentik
                .application(&slug)
                .await
                .filter(|a| a.provider == Some(new_pk))
        })
        .await;
    assert_eq!(
        rebound.pk, application.pk,
        "the same application, not a new one"
    );
    let pc = h
        .wait_until("the status to name the new provider", || async {
            h.get("rebound").await.filter(|pc| {
                pc.status.as_ref().is_some_and(|s| {
                    s.phase == Some(Phase::Ready) && s.authentik_provider_id == Some(new_pk)
                })
            })
        })
        .await;
    let records = records_for(&h, &pc.uid().expect("uid")).await;
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0].spec.authentik_id, Some(new_pk.to_string()));
}

#[tokio::test]
async fn delete_removes_everything_it_created() {
    let mut h = common::harness("delete").await;
    h.start_single();
    h.apply(h.proxyconfig("gone")).await;
    let pc = h.wait_phase("gone", Phase::Ready).await;
    let pk = pc.status.and_then(|s| s.authentik_provider_id).expect("pk");
    let uid = pc.metadata.uid.clone().expect("uid");

    // A provider someone else put in the outpost must survive our removal.
    let theirs_pk = h
        .authentik
        .create_proxy_provider(
            &format!("theirs-{}", h.namespace()),
            "https://theirs.example.com",
        )
        .await
        .pk;
    h.authentik
        .change_embedded_outpost(|providers| providers.push(theirs_pk))
        .await;

    h.delete("gone").await;
    h.wait_gone("gone").await;
    assert!(h.authentik.provider(pk).await.is_none(), "provider deleted");
    assert!(applications_for(&h, pk).await.is_empty());
    let outpost = h.authentik.embedded_outpost_providers().await;
    assert!(
        !outpost.contains(&pk) && outpost.contains(&theirs_pk),
        "only ours was removed: {outpost:?}"
    );
    assert!(
        h.authentik.provider(theirs_pk).await.is_some(),
        "foreign provider untouched"
    );
    assert!(records_for(&h, &uid).await.is_empty(), "records removed");
}

#[tokio::test]
async fn delete_while_authentik_is_down_waits_then_completes() {
    if skip_in_contract_mode("takes authentik down") {
        return;
    }
    let mut h = common::harness("delete-down").await;
    let index = h.start_single();
    h.apply(h.proxyconfig("wait")).await;
    let pc = h.wait_phase("wait", Phase::Ready).await;
    let pk = pc.status.and_then(|s| s.authentik_provider_id).expect("pk");

    h.double().set_down(true);
    h.delete("wait").await;
    let blocked = h
        .wait_until("status to say the deletion is blocked", || async {
            let pc = h.get("wait").await?;
            let ready = pc
                .status
                .as_ref()?
                .conditions
                .iter()
                .find(|c| c.type_ == "Ready")?
                .clone();
            (ready.reason == "CleanupBlocked").then_some(ready)
        })
        .await;
    assert!(
        blocked.message.contains("gitops.io/skip-authentik-cleanup"),
        "{}",
        blocked.message
    );
    // The controller tries the deletion again (and fails) while the finalizer holds.
    let failed = h.metric(index, FAILED_RECONCILES).await.unwrap_or_default();
    h.wait_metric(index, FAILED_RECONCILES, failed + 1.0).await;
    assert!(
        h.get("wait").await.is_some(),
        "the finalizer holds while authentik is down"
    );

    h.double().set_down(false);
    h.wait_gone("wait").await;
    assert!(h.double().provider(pk).is_none());
}

#[tokio::test]
async fn authentik_outage_is_pending_then_recovers_by_itself() {
    if skip_in_contract_mode("takes authentik down") {
        return;
    }
    let mut h = common::harness("outage").await;
    h.double().set_down(true);
    h.start_single();
    h.apply(h.proxyconfig("later")).await;
    let pending = h.wait_phase("later", Phase::Pending).await;
    assert_eq!(condition(&pending, "Ready").reason, "AuthentikUnreachable");

    h.double().set_down(false);
    h.wait_phase("later", Phase::Ready).await;
    assert!(
        h.double()
            .provider_by_name(&h.provider_name("later"))
            .is_some()
    );
}

#[tokio::test]
async fn invalid_spec_fails_without_any_authentik_call() {
    let mut h = common::harness("invalid").await;
    h.start_single();
    let mut bad = h.proxyconfig("bad");
    bad["spec"]["authentikConfig"]["skipPathRegex"] = json!("^/ok$\n^/broken(");
    h.apply(bad).await;
    let failed = h.wait_phase("bad", Phase::Failed).await;
    let ready = condition(&failed, "Ready");
    assert_eq!(ready.reason, "InvalidSpec");
    assert!(
        ready.message.contains("skipPathRegex line 2"),
        "{}",
        ready.message
    );

    let name = h.provider_name("bad");
    if let Some(double) = h.authentik.as_double() {
        let touching: Vec<_> = double
            .requests()
            .into_iter()
            .filter(|r| {
                r.method != "GET"
                    || r.query.as_deref().is_some_and(|q| q.contains(&name))
                    || r.path.contains(&name)
            })
            .collect();
        assert!(
            touching.is_empty(),
            "no authentik call for an invalid object: {touching:?}"
        );
    }
    assert!(h.authentik.provider_named(&name).await.is_none());

    // Another, valid ProxyConfig is not held up.
    h.apply(h.proxyconfig("good")).await;
    h.wait_phase("good", Phase::Ready).await;
}

#[tokio::test]
async fn cross_namespace_service_is_refused_unless_allowlisted() {
    let mut h = common::harness("cross-ns").await;
    h.start_single();
    let mut cross = h.proxyconfig("cross");
    cross["spec"]["serviceNamespace"] = json!("kube-system");
    h.apply(cross).await;
    let failed = h.wait_phase("cross", Phase::Failed).await;
    let ready = condition(&failed, "Ready");
    assert_eq!(ready.reason, "CrossNamespaceNotAllowed");
    assert!(
        ready.message.contains("CROSS_NAMESPACE_ALLOWLIST"),
        "{}",
        ready.message
    );
    assert!(
        h.authentik
            .provider_named(&h.provider_name("cross"))
            .await
            .is_none()
    );

    h.kill_controller(0).await;
    let allow = format!("{}:kube-system", h.namespace());
    h.start_controller(&[
        "--leader-election",
        "false",
        "--allow-cross-namespace",
        &allow,
    ]);
    h.wait_phase("cross", Phase::Ready).await;
}

#[tokio::test]
async fn disabling_authentication_removes_the_objects_and_stays_ready() {
    let mut h = common::harness("disable").await;
    h.start_single();
    h.apply(h.proxyconfig("off")).await;
    let pc = h.wait_phase("off", Phase::Ready).await;
    let pk = pc.status.and_then(|s| s.authentik_provider_id).expect("pk");

    let mut disabled = h.proxyconfig("off");
    disabled["spec"]["authentikConfig"]["enabled"] = json!(false);
    h.apply(disabled).await;
    let pc = h
        .wait_until("authentication to be disabled", || async {
            let pc = h.get("off").await?;
            let status = pc.status.as_ref()?;
            (status.observed_generation == Some(2) && status.phase == Some(Phase::Ready))
                .then_some(pc)
        })
        .await;
    assert_eq!(condition(&pc, "Ready").reason, "AuthenticationDisabled");
    assert!(h.authentik.provider(pk).await.is_none());
    assert!(applications_for(&h, pk).await.is_empty());
    assert!(!h.authentik.embedded_outpost_providers().await.contains(&pk));
}

#[tokio::test]
async fn restart_of_a_converged_system_writes_nothing() {
    if skip_in_contract_mode("counts the requests the double received") {
        return;
    }
    let mut h = common::harness("restart").await;
    let first = h.start_single();
    for name in ["one", "two", "three"] {
        h.apply(h.proxyconfig(name)).await;
    }
    let mut versions = Vec::new();
    for name in ["one", "two", "three"] {
        versions.push(h.wait_phase(name, Phase::Ready).await.resource_version());
    }
    // Let a resync that began after all were Ready pass, so that nothing is still settling.
    let resyncs = h.metric(first, RESYNCS).await.unwrap_or_default();
    h.wait_metric(first, RESYNCS, resyncs + 2.0).await;
    h.kill_controller(first).await;
    h.double().clear_requests();

    let second = h.start_single();
    // Two resyncs (2s each) re-verify every object, and every ProxyConfig is reconciled twice
    // (at start and when its requeue after a resync interval comes due).
    h.wait_until("two full resyncs", || async {
        (h.double().count("GET", "/api/v3/providers/proxy/") >= 2).then_some(())
    })
    .await;
    h.wait_metric(second, SUCCESSFUL_RECONCILES, 6.0).await;
    assert_eq!(
        h.double().write_count(),
        0,
        "no authentik writes: {:?}",
        h.double().requests()
    );
    for (name, version) in ["one", "two", "three"].into_iter().zip(versions) {
        let now = h.get(name).await.expect("exists").resource_version();
        assert_eq!(now, version, "{name} was not rewritten");
    }
}

#[tokio::test]
async fn metrics_carry_the_documented_series() {
    let mut h = common::harness("metrics").await;
    let index = h.start_single();
    h.apply(h.proxyconfig("scraped")).await;
    h.wait_phase("scraped", Phase::Ready).await;
    let health = h.controller(index).health_port;
    h.wait_until("the leader to report ready", || async {
        let response = reqwest::get(format!("http://127.0.0.1:{health}/readyz"))
            .await
            .ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
    let text = h.scrape_metrics(index).await;
    for series in [
        "gitops_proxyconfig_reconcile_duration_seconds_bucket",
        "gitops_proxyconfig_reconciles_total",
        "gitops_proxyconfig_last_reconciled",
        "gitops_authentik_requests_total",
        "gitops_authentik_request_duration_seconds_bucket",
        "gitops_outpost_writes_total",
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
    let namespace = format!("namespace=\"{}\"", h.namespace());
    let ready = text.lines().find(|line| {
        line.starts_with("gitops_proxyconfig_phase{")
            && line.contains("name=\"scraped\"")
            && line.contains(&namespace)
            && line.contains("phase=\"Ready\"")
    });
    assert!(
        ready.is_some_and(|line| line.ends_with(" 1")),
        "Ready phase series missing:\n{text}"
    );
}

#[tokio::test]
async fn not_ready_until_caches_synced_and_authentik_reached() {
    if skip_in_contract_mode("makes authentik refuse every request") {
        return;
    }
    let mut h = common::harness("readiness").await;
    // authentik refuses everything at first: the controller must not report ready, not even
    // in the first milliseconds before it has registered what it waits for.
    h.double()
        .inject(authentik_double::Fault::fail_next(u32::MAX, 503));
    let index = h.start_single();
    let health = h.controller(index).health_port;
    let http = reqwest::Client::new();
    let (mut answered, started) = (Vec::new(), std::time::Instant::now());
    while started.elapsed() < Duration::from_secs(3) {
        if let Ok(response) = http
            .get(format!("http://127.0.0.1:{health}/readyz"))
            .send()
            .await
        {
            answered.push(response.status().as_u16());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let first_ready = answered.iter().position(|status| *status == 200);
    assert!(
        answered.contains(&503),
        "the controller served /readyz: {answered:?}"
    );
    assert_eq!(
        first_ready,
        None,
        "ready while authentik refused every request (answer {first_ready:?} of {})",
        answered.len()
    );

    h.double().clear_faults();
    h.wait_until("ready once authentik answers", || async {
        let response = http
            .get(format!("http://127.0.0.1:{health}/readyz"))
            .send()
            .await
            .ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
}

/// A server outside 2024.10–2026.x, or one whose version is not a release number, is served
/// anyway: Ready, the version named in status with the reason, and one log line however many
/// resyncs read it.
#[tokio::test]
async fn an_unsupported_or_unparseable_authentik_version_is_reported_once_and_served() {
    if skip_in_contract_mode("makes the double report other versions") {
        return;
    }
    for (reported, reason, logged) in [
        (
            "2023.10.7",
            "UnsupportedAuthentikVersion",
            "is outside the supported range 2024.10–2026.x",
        ),
        (
            "nightly-build",
            "UnknownAuthentikVersion",
            "which is not a release number",
        ),
    ] {
        let mut h = common::harness("unsupported-version").await;
        h.double()
            .with_state(|m| m.reported_version = Some(reported.to_owned()));
        let index = h.start_single();
        h.apply(h.proxyconfig("web")).await;
        let pc = h.wait_phase("web", Phase::Ready).await;
        let pc = if pc
            .status
            .as_ref()
            .and_then(|s| s.authentik_version.as_deref())
            == Some(reported)
        {
            pc
        } else {
            h.wait_until("the version in status", || async {
                let pc = h.get("web").await?;
                (pc.status.as_ref()?.authentik_version.as_deref() == Some(reported)).then_some(pc)
            })
            .await
        };
        let version = condition(&pc, "AuthentikVersionSupported");
        assert_eq!(version.status, "False", "{reported}");
        assert_eq!(version.reason, reason);
        assert!(version.message.contains(reported), "{}", version.message);
        assert_eq!(
            condition(&pc, "Ready").status,
            "True",
            "{reported}: still served"
        );
        // Several resyncs (every 2 s here) read the version again; it is logged once.
        h.wait_until("three version reads", || async {
            (h.double().count("GET", "/api/v3/admin/version/") >= 3).then_some(())
        })
        .await;
        assert_eq!(
            h.logs().matches(logged).count(),
            1,
            "{reported}: logged once"
        );
        assert!(
            h.controller_running(index),
            "{reported}: the controller keeps running"
        );
    }
}

/// `allowedGroups` become the application's group bindings, and go when the list is emptied.
#[tokio::test]
async fn allowed_groups_become_bindings_and_are_removed_with_the_list() {
    let mut h = common::harness("allowed-groups").await;
    h.start_single();
    let mut manifest = h.proxyconfig("app");
    manifest["spec"]["authentikConfig"]["allowedGroups"] = json!(["authentik Admins"]);
    h.apply(manifest.clone()).await;
    h.wait_phase("app", Phase::Ready).await;
    let slug = format!("{}-app", h.namespace());
    let admins = h
        .authentik
        .client()
        .find_group_by_name("authentik Admins")
        .await
        .expect("groups")
        .expect("authentik's admin group");
    let bound_groups = || async {
        let application = h.authentik.application(&slug).await.expect("application");
        let bindings = h
            .authentik
            .client()
            .list_policy_bindings(&application.pk)
            .await;
        let bindings = bindings.expect("bindings");
        bindings.into_iter().map(|b| b.group).collect::<Vec<_>>()
    };
    assert_eq!(bound_groups().await, vec![Some(admins.pk)]);

    manifest["spec"]["authentikConfig"]["allowedGroups"] = json!([]);
    h.apply(manifest).await;
    h.wait_phase("app", Phase::Ready).await;
    assert_eq!(bound_groups().await, Vec::<Option<String>>::new());
}

//! Automatic onboarding of labelled Services, against a real API server whose
//! kube-controller-manager garbage-collects what a deleted Service owned.

mod common;

use common::Harness;
use gitops_crd::Phase;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

/// Services whose same-named ProxyConfig onboarding left alone.
const NAME_TAKEN: &str = r#"gitops_discovery_services_skipped_total{reason="name_taken"}"#;

/// The original system's labelled Home Assistant Service.
fn home_assistant(h: &Harness) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "home-assistant",
            "namespace": h.namespace(),
            "labels": {"authentik.io/proxy": "enabled"},
            "annotations": {
                "authentik.io/external-host": format!("home-assistant.{}.example.com", h.namespace()),
                "authentik.io/provider-name": h.provider_name("home-assistant"),
                "authentik.io/description": "Home automation"
            }
        },
        "spec": {"ports": [{"name": "http", "port": 8123}]}
    })
}

async fn apply_service(h: &Harness, manifest: &Value) {
    let name = manifest["metadata"]["name"].as_str().expect("name");
    Api::<Service>::namespaced(h.client.clone(), h.namespace())
        .patch(
            name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(manifest),
        )
        .await
        .expect("Service applies");
}

async fn warnings_about(h: &Harness, service: &str) -> Vec<String> {
    Api::<Event>::namespaced(h.client.clone(), h.namespace())
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| {
            e.type_.as_deref() == Some("Warning")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(service)
        })
        .filter_map(|e| e.note)
        .collect()
}

#[tokio::test]
async fn labelled_home_assistant_service_goes_ready_end_to_end() {
    let mut h = common::harness("onboard-ha").await;
    h.start_single();
    apply_service(&h, &home_assistant(&h)).await;
    let pc = h.wait_phase("home-assistant-proxy", Phase::Ready).await;

    assert_eq!(
        pc.spec.internal_host,
        format!(
            "http://home-assistant.{}.svc.cluster.local:8123",
            h.namespace()
        )
    );
    assert_eq!(pc.spec.port, 8123);
    let owner = &pc.metadata.owner_references.as_ref().expect("owned")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("Service", "home-assistant", Some(true))
    );
    let provider = h
        .authentik
        .provider_named(&h.provider_name("home-assistant"))
        .await
        .expect("provider");
    assert!(
        h.authentik
            .embedded_outpost_providers()
            .await
            .contains(&provider.pk)
    );
    let applications = h.authentik.applications_of(provider.pk).await;
    let description = applications
        .first()
        .and_then(|a| a.meta_description.clone());
    assert_eq!(description.as_deref(), Some("Home automation"));

    // Changing an annotation updates the ProxyConfig, and authentik follows.
    let mut changed = home_assistant(&h);
    changed["metadata"]["annotations"]["authentik.io/skip-path-regex"] = json!("^/api/websocket$");
    apply_service(&h, &changed).await;
    h.wait_until("the new skip path to reach authentik", || async {
        let proxy = h.authentik.provider(provider.pk).await?;
        (proxy.skip_path_regex.as_deref() == Some("^/api/websocket$")).then_some(())
    })
    .await;

    // Deleting the Service deletes its ProxyConfig (garbage collection), and with it the
    // authentik objects (finalizer).
    Api::<Service>::namespaced(h.client.clone(), h.namespace())
        .delete("home-assistant", &DeleteParams::background())
        .await
        .expect("delete");
    h.wait_gone("home-assistant-proxy").await;
    assert!(h.authentik.provider(provider.pk).await.is_none());
}

#[tokio::test]
async fn removing_the_label_removes_the_proxyconfig() {
    let mut h = common::harness("onboard-unlabel").await;
    h.start_single();
    apply_service(&h, &home_assistant(&h)).await;
    let pc = h.wait_phase("home-assistant-proxy", Phase::Ready).await;
    let pk = pc.status.and_then(|s| s.authentik_provider_id).expect("pk");

    let mut unlabelled = home_assistant(&h);
    unlabelled["metadata"]["labels"] = json!({});
    apply_service(&h, &unlabelled).await;
    h.wait_gone("home-assistant-proxy").await;
    assert!(h.authentik.provider(pk).await.is_none());
}

#[tokio::test]
async fn hand_written_proxyconfig_of_the_same_name_is_left_alone() {
    let mut h = common::harness("onboard-handwritten").await;
    let mut hand = h.proxyconfig("home-assistant-proxy");
    hand["spec"]["serviceName"] = json!("home-assistant");
    let written = h.apply(hand).await;
    let index = h.start_single();
    apply_service(&h, &home_assistant(&h)).await;

    let warnings = h
        .wait_until("a Warning on the Service", || async {
            let w = warnings_about(&h, "home-assistant").await;
            (!w.is_empty()).then_some(w)
        })
        .await;
    assert!(
        warnings[0].contains("was not created from this Service"),
        "{warnings:?}"
    );
    let now = h.get("home-assistant-proxy").await.expect("still there");
    assert_eq!(now.spec, written.spec, "not modified");
    assert!(now.metadata.owner_references.is_none());

    // Removing the label must not delete it either: onboarding looks at the Service again and
    // skips the ProxyConfig as not its own.
    let skipped = h.metric(index, NAME_TAKEN).await.unwrap_or_default();
    let mut unlabelled = home_assistant(&h);
    unlabelled["metadata"]["labels"] = json!({});
    apply_service(&h, &unlabelled).await;
    h.wait_metric(index, NAME_TAKEN, skipped + 1.0).await;
    assert!(h.get("home-assistant-proxy").await.is_some());
}

#[tokio::test]
async fn invalid_annotations_are_a_warning_and_nothing_else() {
    let mut h = common::harness("onboard-invalid").await;
    h.start_single();
    let mut bad = home_assistant(&h);
    bad["metadata"]["annotations"]["authentik.io/internal-port"] = json!("9999");
    apply_service(&h, &bad).await;
    let mut good = home_assistant(&h);
    good["metadata"]["name"] = json!("grafana");
    good["metadata"]["annotations"]["authentik.io/provider-name"] =
        json!(h.provider_name("grafana"));
    good["metadata"]["annotations"]["authentik.io/external-host"] =
        json!(format!("grafana.{}.example.com", h.namespace()));
    apply_service(&h, &good).await;

    let warnings = h
        .wait_until("a Warning on the bad Service", || async {
            let w = warnings_about(&h, "home-assistant").await;
            (!w.is_empty()).then_some(w)
        })
        .await;
    assert!(
        warnings[0].contains("\"9999\", which matches no port"),
        "{warnings:?}"
    );
    h.wait_phase("grafana-proxy", Phase::Ready).await;
    assert!(
        h.get("home-assistant-proxy").await.is_none(),
        "no ProxyConfig for the bad Service"
    );
}

#[tokio::test]
async fn onboarding_can_be_switched_off() {
    let mut h = common::harness("onboard-off").await;
    h.start_controller(&["--leader-election", "false", "--discovery", "false"]);
    apply_service(&h, &home_assistant(&h)).await;
    h.apply(h.proxyconfig("control")).await;
    h.wait_phase("control", Phase::Ready).await;
    assert!(h.get("home-assistant-proxy").await.is_none());
}

//! Contract check with the project's Rust client (`gitops-authentik`): the same scenario as
//! `contract/official_client_scenario.py` against the double in every supported release's mode,
//! plus the error categories a controller relies on.
#![allow(clippy::unwrap_used)]

mod common;

use authentik_double::{ApiVersion, DoubleConfig, DoubleHandle};
use common::{start, start_with};
use gitops_authentik::{
    ApiToken, ApplicationRequest, AuthentikClient, ClientConfig, ErrorCategory, FlowDesignation,
    ProxyMode, ProxyProviderPatch, ProxyProviderRequest,
};

fn client(d: &DoubleHandle, token: &str) -> AuthentikClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    AuthentikClient::new(ClientConfig::new(d.base_url(), ApiToken::new(token))).unwrap()
}

#[tokio::test]
async fn rust_client_runs_the_scenario_against_every_release() {
    for version in ApiVersion::all() {
        scenario(version).await;
    }
}

async fn scenario(version: ApiVersion) {
    let d = start_with(DoubleConfig::default().with_api_version(version)).await;
    let c = client(&d, d.token());

    // Health, version, flows by slug.
    assert!(c.current_user().await.is_ok());
    assert_eq!(
        c.version().await.unwrap().version_current,
        version.version_string()
    );
    let authz = c
        .get_flow("default-provider-authorization-implicit-consent")
        .await
        .unwrap();
    let inval = c
        .get_flow("default-provider-invalidation-flow")
        .await
        .unwrap();
    assert_eq!(
        c.list_flows_by_designation(FlowDesignation::Authorization)
            .await
            .unwrap()
            .len(),
        2
    );

    // Create, list, get, update.
    let mut request = ProxyProviderRequest::new(
        "grafana",
        &authz.pk,
        &inval.pk,
        "https://grafana.example.com",
    );
    request.mode = ProxyMode::ForwardSingle;
    request.internal_host = "http://grafana.monitoring.svc:3000".to_owned();
    let created = c.create_proxy_provider(&request).await.unwrap();
    assert_eq!(
        created.property_mappings.len(),
        5,
        "server-added scope mappings"
    );
    assert_eq!(created.assigned_application_slug, None);
    let found = c
        .find_proxy_provider_by_name("grafana")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.pk, created.pk);
    assert_eq!(c.list_proxy_providers().await.unwrap().len(), 1);
    assert_eq!(
        c.get_proxy_provider(created.pk).await.unwrap().name,
        "grafana"
    );
    let mut patch = ProxyProviderPatch::new(ProxyMode::ForwardSingle);
    patch.skip_path_regex = Some("^/api/.*$".to_owned());
    let patched = c.patch_proxy_provider(created.pk, &patch).await.unwrap();
    assert_eq!(patched.skip_path_regex.as_deref(), Some("^/api/.*$"));
    request.external_host = "https://grafana2.example.com".to_owned();
    let put = c.update_proxy_provider(created.pk, &request).await.unwrap();
    assert_eq!(put.external_host, "https://grafana2.example.com");

    // Duplicate name (same type and another type) and missing flows.
    let dup = c.create_proxy_provider(&request).await.unwrap_err();
    assert_eq!(dup.category(), ErrorCategory::Invalid);
    assert!(dup.is_field_conflict("name"), "{dup:?}");
    let foreign = d.create_foreign_provider("held-by-oauth2");
    let mut clash = request.clone();
    clash.name = "held-by-oauth2".to_owned();
    assert!(
        c.create_proxy_provider(&clash)
            .await
            .unwrap_err()
            .is_field_conflict("name")
    );
    let holder = c
        .find_provider_by_name("held-by-oauth2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((holder.pk, holder.is_proxy()), (foreign, false));
    let missing = ProxyProviderRequest {
        authorization_flow: String::new(),
        invalidation_flow: String::new(),
        name: "missing".to_owned(),
        ..request.clone()
    };
    let err = c.create_proxy_provider(&missing).await.unwrap_err();
    assert!(err.field_errors("authorization_flow").is_some(), "{err:?}");
    assert!(err.field_errors("invalidation_flow").is_some(), "{err:?}");

    // Application create, slug conflict, provider already bound.
    let app = ApplicationRequest {
        name: "Grafana".to_owned(),
        slug: "grafana".to_owned(),
        provider: Some(created.pk),
        ..ApplicationRequest::default()
    };
    let bound = c.create_application(&app).await.unwrap();
    assert_eq!(bound.provider, Some(created.pk));
    let dup_slug = ApplicationRequest {
        provider: None,
        ..app.clone()
    };
    assert!(
        c.create_application(&dup_slug)
            .await
            .unwrap_err()
            .is_field_conflict("slug")
    );
    let second = ApplicationRequest {
        slug: "grafana-2".to_owned(),
        ..app.clone()
    };
    assert!(
        c.create_application(&second)
            .await
            .unwrap_err()
            .is_field_conflict("provider")
    );

    // Embedded outpost lookup and providers PATCH (replaced wholesale).
    let outpost = c.find_embedded_outpost().await.unwrap().unwrap();
    let after = c
        .set_outpost_providers(&outpost.pk, &[created.pk])
        .await
        .unwrap();
    assert_eq!(after.providers, vec![created.pk]);
    assert_eq!(
        c.get_proxy_provider(created.pk).await.unwrap().outpost_set,
        vec!["Outpost authentik Embedded Outpost".to_owned()]
    );
    let err = c
        .set_outpost_providers(&outpost.pk, &[created.pk, 99_999])
        .await
        .unwrap_err();
    assert!(err.field_errors("providers").is_some());
    assert!(
        c.set_outpost_providers(&outpost.pk, &[])
            .await
            .unwrap()
            .providers
            .is_empty()
    );

    // Delete: the application stays, unbound.
    c.delete_proxy_provider(created.pk).await.unwrap();
    assert!(
        c.get_proxy_provider(created.pk)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(c.get_application("grafana").await.unwrap().provider, None);
    c.delete_application("grafana").await.unwrap();
    assert!(
        c.get_application("grafana")
            .await
            .unwrap_err()
            .is_not_found()
    );

    // Issue 16 (5c): every lookup and list the client has uses only parameters authentik
    // declares; an undeclared one would be ignored and the whole list returned.
    assert!(c.find_flow_by_uuid(&authz.pk).await.unwrap().is_some());
    assert!(c.list_applications().await.unwrap().is_empty());
    assert!(c.find_group_by_name("authentik Admins").await.is_ok());
    assert!(c.list_policy_bindings(&authz.pk).await.unwrap().is_empty());
    assert!(c.find_outpost_by_name("nothing").await.unwrap().is_none());
    let ignored: Vec<_> = d
        .requests()
        .into_iter()
        .filter(|r| !r.ignored_query.is_empty())
        .map(|r| {
            format!(
                "{} {}?{}: {:?}",
                r.method,
                r.path,
                r.query.unwrap_or_default(),
                r.ignored_query
            )
        })
        .collect();
    assert!(ignored.is_empty(), "filters authentik ignores: {ignored:?}");
}

#[tokio::test]
async fn rust_client_sees_403_as_unauthorized() {
    let d = start().await;
    let err = client(&d, "wrong").current_user().await.unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Unauthorized);
}

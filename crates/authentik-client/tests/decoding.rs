//! Response types decode real authentik 2025.12.4 responses and tolerate version drift.

use gitops_authentik::{
    Application, Flow, Group, Outpost, Paginated, PolicyBinding, ProviderSummary, ProxyMode,
    ProxyProvider, SessionUser, Version,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const TRANSCRIPTS: &str = include_str!("fixtures/authentik-transcripts-2025.12.4.json");

fn decode<T: DeserializeOwned>(title: &str, body: &Value) {
    if let Err(e) = serde_json::from_value::<T>(body.clone()) {
        panic!("{title}: {e}\n{body}");
    }
}

#[test]
fn every_successful_transcript_response_decodes() {
    let transcripts: Vec<Value> = serde_json::from_str(TRANSCRIPTS).expect("fixture is JSON");
    let mut decoded = 0;
    for entry in &transcripts {
        let title = entry["title"].as_str().expect("title");
        let method = entry["request"]["method"].as_str().expect("method");
        let path = entry["request"]["path"].as_str().expect("path");
        let status = entry["response"]["status"].as_u64().expect("status");
        let body = &entry["response"]["body"];
        if !(200..300).contains(&status) || status == 204 {
            continue;
        }
        let segments: Vec<&str> = path
            .trim_start_matches("/api/v3/")
            .trim_end_matches('/')
            .split('/')
            .collect();
        let is_list = method == "GET" && body.get("pagination").is_some();
        match (segments.as_slice(), is_list) {
            (["flows", "instances"], true) => decode::<Paginated<Flow>>(title, body),
            (["flows", "instances", _], false) => decode::<Flow>(title, body),
            (["providers", "proxy"], true) => decode::<Paginated<ProxyProvider>>(title, body),
            (["providers", "proxy", ..], false) => decode::<ProxyProvider>(title, body),
            (["providers", "all"], true) => decode::<Paginated<ProviderSummary>>(title, body),
            (["providers", _], false) => decode::<ProviderSummary>(title, body),
            (["core", "applications"], true) => decode::<Paginated<Application>>(title, body),
            (["core", "applications", ..], false) => decode::<Application>(title, body),
            (["core", "groups"], true) => decode::<Paginated<Group>>(title, body),
            (["core", "groups"], false) => decode::<Group>(title, body),
            (["policies", "bindings"], true) => decode::<Paginated<PolicyBinding>>(title, body),
            (["policies", "bindings"], false) => decode::<PolicyBinding>(title, body),
            (["outposts", "instances"], true) => decode::<Paginated<Outpost>>(title, body),
            (["outposts", "instances", _], false) => decode::<Outpost>(title, body),
            (["admin", "version"], false) => decode::<Version>(title, body),
            other => panic!("{title}: no response type for {method} {path} ({other:?})"),
        }
        decoded += 1;
    }
    // The fixture holds 30 successful exchanges with a body; a silent skip would show here.
    assert_eq!(decoded, 30);
}

#[test]
fn transcript_values_land_in_the_right_fields() {
    let transcripts: Vec<Value> = serde_json::from_str(TRANSCRIPTS).expect("fixture is JSON");
    let body = |title: &str| -> Value {
        transcripts
            .iter()
            .find(|e| e["title"] == title)
            .map(|e| e["response"]["body"].clone())
            .unwrap_or_else(|| panic!("no transcript {title:?}"))
    };
    let provider: ProxyProvider =
        serde_json::from_value(body("provider after binding")).expect("decodes");
    assert_eq!(provider.pk, 12);
    assert_eq!(provider.mode, Some(ProxyMode::ForwardSingle));
    assert_eq!(
        provider.invalidation_flow.as_deref(),
        Some("657c3931-0523-44ac-967c-c76ad62ed070")
    );
    assert_eq!(provider.property_mappings.len(), 5);

    let outposts: Paginated<Outpost> =
        serde_json::from_value(body("embedded outpost lookup")).expect("decodes");
    assert_eq!(outposts.pagination.next_page(), None);
    let embedded = &outposts.results[0];
    assert_eq!(embedded.outpost_type, "proxy");
    assert_eq!(embedded.managed.as_deref(), Some(Outpost::EMBEDDED_MANAGED));
    assert_eq!(embedded.config["log_level"], "info");

    let all: Paginated<ProviderSummary> =
        serde_json::from_value(body("all providers search by name")).expect("decodes");
    assert!(!all.results[0].is_proxy());
    assert_eq!(
        all.results[0].component.as_deref(),
        Some("ak-provider-oauth2-form")
    );

    let binding: PolicyBinding =
        serde_json::from_value(body("create policy binding group->application")).expect("decodes");
    assert_eq!(
        binding.group.as_deref(),
        Some("942ea480-1e42-435b-91e8-ee3c325796f5")
    );
    assert_eq!(binding.timeout, Some(30));

    let unbound: Application =
        serde_json::from_value(body("application after provider delete")).expect("decodes");
    assert_eq!(unbound.provider, None);
}

#[test]
fn provider_without_newer_or_optional_fields_decodes() {
    // A 2024.10-era response: no outpost_set, no assigned_application_*, no jwt_* fields.
    let minimal = json!({
        "pk": 3, "name": "old", "authorization_flow": "a", "external_host": "https://old.example.com"
    });
    let provider: ProxyProvider = serde_json::from_value(minimal).expect("decodes");
    assert_eq!(provider.assigned_application_slug, None);
    assert!(provider.outpost_set.is_empty());
    assert_eq!(provider.invalidation_flow, None);
    assert_eq!(provider.mode, None);
}

#[test]
fn unknown_fields_and_newer_shapes_are_ignored() {
    let future = json!({
        "pk": 3, "name": "new", "authorization_flow": "a", "invalidation_flow": "i",
        "external_host": "https://new.example.com", "mode": "some_future_mode",
        "redirect_uris": [{"matching_mode": "strict", "url": "x"}],
        "brand_new_field": {"nested": [1, 2, 3]}, "assigned_application_slug": null
    });
    let provider: ProxyProvider = serde_json::from_value(future).expect("decodes");
    assert_eq!(provider.mode, Some(ProxyMode::Unknown));

    // 2026.8: SessionUser gained a required `users` list and `is_current`.
    let me = json!({
        "user": {"pk": 7, "username": "akadmin", "is_superuser": true, "is_current": true,
                 "groups": [], "settings": {}},
        "users": [{"pk": 7, "username": "akadmin"}]
    });
    let me: SessionUser = serde_json::from_value(me).expect("decodes");
    assert!(me.user.is_superuser);
    assert_eq!(me.user.username, "akadmin");

    let version: Version =
        serde_json::from_value(json!({"version_current": "2024.10.0"})).expect("decodes");
    assert_eq!(version.outpost_outdated, None);
}

#[test]
fn pagination_without_autocomplete_and_with_float_numbers_decodes() {
    // Before 2025.8 there is no `autocomplete`; numbers may arrive as floats.
    let page = json!({
        "pagination": {"next": 2.0, "previous": 0, "count": 230, "current": 1,
                       "total_pages": 3, "start_index": 1, "end_index": 100},
        "results": [{"pk": "g", "name": "admins"}]
    });
    let page: Paginated<Group> = serde_json::from_value(page).expect("decodes");
    assert_eq!(page.pagination.next_page(), Some(2));
    assert_eq!(page.results[0].num_pk, None);
}

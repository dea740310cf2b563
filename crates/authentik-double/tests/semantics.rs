//! The double's own semantics: one test per rule of the issue and the API doc.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use authentik_double::{ApiVersion, DoubleConfig, DownMode, Fault, LatencyModel, Outcome};
use common::{Api, create_proxy, proxy_body, start, start_with};
use reqwest::Method;
use serde_json::{Value, json};

fn field_errors(body: &Value) -> Vec<&str> {
    body.as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

#[tokio::test]
async fn missing_or_bad_token_is_403_not_401() {
    let d = start().await;
    let api = Api::new(&d);
    let (s, b) = api.clone().with_token(None).get("/core/users/me/").await;
    assert_eq!(
        (s, b),
        (
            403,
            json!({"detail": "Authentication credentials were not provided."})
        )
    );
    let (s, b) = api
        .clone()
        .with_token(Some("wrong"))
        .get("/core/users/me/")
        .await;
    assert_eq!((s, b), (403, json!({"detail": "Token invalid/expired"})));
    let (s, b) = api.get("/core/users/me/").await;
    assert_eq!(s, 200);
    assert_eq!(b["user"]["username"], "akadmin");
    // /root/config/ answers anonymously, but not with a wrong token.
    assert_eq!(
        api.clone().with_token(None).get("/root/config/").await.0,
        200
    );
    assert_eq!(
        api.clone()
            .with_token(Some("wrong"))
            .get("/root/config/")
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn crud_status_codes_and_server_added_fields() {
    let d = start().await;
    let api = Api::new(&d);
    let (s, created) = api
        .post("/providers/proxy/", proxy_body(&d, "grafana"))
        .await;
    assert_eq!(s, 201);
    let pk = created["pk"].as_i64().unwrap();
    // Server-added: five managed scope mappings, two strict redirect URIs, a client id.
    assert_eq!(created["property_mappings"].as_array().unwrap().len(), 5);
    assert_eq!(
        created["redirect_uris"],
        json!([
            {"matching_mode": "strict", "url": "https://grafana.example.com/outpost.goauthentik.io/callback?X-authentik-auth-callback=true"},
            {"matching_mode": "strict", "url": "https://grafana.example.com?X-authentik-auth-callback=true"}
        ])
    );
    assert_eq!(created["client_id"].as_str().unwrap().len(), 40);
    assert_eq!(created["assigned_application_slug"], Value::Null);
    // Sending an empty mapping list still comes back with the managed ones.
    let (s, b) = api
        .patch(
            &format!("/providers/proxy/{pk}/"),
            json!({"mode": "forward_single", "property_mappings": []}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["property_mappings"].as_array().unwrap().len(), 5);
    let (s, b) = api.get(&format!("/providers/proxy/{pk}/")).await;
    assert_eq!((s, b["name"].clone()), (200, json!("grafana")));
    let mut full = proxy_body(&d, "grafana");
    full["external_host"] = json!("https://grafana2.example.com");
    let (s, b) = api.put(&format!("/providers/proxy/{pk}/"), full).await;
    assert_eq!(s, 200);
    assert_eq!(
        b["redirect_uris"][1]["url"],
        "https://grafana2.example.com?X-authentik-auth-callback=true"
    );
    assert_eq!(api.delete(&format!("/providers/proxy/{pk}/")).await.0, 204);
    let (s, b) = api.get(&format!("/providers/proxy/{pk}/")).await;
    assert_eq!(
        (s, b),
        (
            404,
            json!({"detail": "No ProxyProvider matches the given query."})
        )
    );
    assert_eq!(
        api.send(Method::POST, &format!("/providers/proxy/{pk}/"), None)
            .await
            .0,
        405
    );
}

#[tokio::test]
async fn missing_required_fields_are_field_keyed() {
    let d = start().await;
    let api = Api::new(&d);
    let (s, b) = api.post("/providers/proxy/", json!({})).await;
    assert_eq!(s, 400);
    assert_eq!(
        field_errors(&b),
        [
            "authorization_flow",
            "external_host",
            "invalidation_flow",
            "name"
        ]
    );
    assert_eq!(b["name"], json!(["This field is required."]));
    let (s, b) = api.post("/core/applications/", json!({"name": "x"})).await;
    assert_eq!((s, b), (400, json!({"slug": ["This field is required."]})));
    let mut body = proxy_body(&d, "nulls");
    body["invalidation_flow"] = Value::Null;
    let (s, b) = api.post("/providers/proxy/", body).await;
    assert_eq!(
        (s, b),
        (
            400,
            json!({"invalidation_flow": ["This field may not be null."]})
        )
    );
}

#[tokio::test]
async fn provider_name_is_unique_across_provider_types() {
    let d = start().await;
    let api = Api::new(&d);
    create_proxy(&api, &d, "taken").await;
    let (s, b) = api.post("/providers/proxy/", proxy_body(&d, "taken")).await;
    assert_eq!(
        (s, b),
        (
            400,
            json!({"name": ["provider with this name already exists."]})
        )
    );
    let foreign = d.create_foreign_provider("oauth-held");
    let (s, b) = api
        .post("/providers/proxy/", proxy_body(&d, "oauth-held"))
        .await;
    assert_eq!(
        (s, b["name"].clone()),
        (400, json!(["provider with this name already exists."]))
    );
    // Invisible in the proxy list, found through /providers/all/.
    let (_, list) = api.get("/providers/proxy/?name__iexact=oauth-held").await;
    assert_eq!(list["pagination"]["count"], 0);
    let (_, all) = api.get("/providers/all/?search=oauth-held").await;
    assert_eq!(all["results"][0]["pk"], foreign);
    assert_eq!(all["results"][0]["component"], "ak-provider-oauth2-form");
    // Renaming onto a taken name fails the same way.
    let pk = create_proxy(&api, &d, "other").await;
    let (s, _) = api
        .patch(
            &format!("/providers/proxy/{pk}/"),
            json!({"mode": "forward_single", "name": "taken"}),
        )
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn proxy_mode_needs_internal_host_and_patch_without_mode_counts_as_proxy() {
    let d = start().await;
    let api = Api::new(&d);
    let mut body = proxy_body(&d, "p");
    body["mode"] = json!("proxy");
    let expected =
        json!({"internal_host": ["Internal host cannot be empty when forward auth is disabled."]});
    let (s, b) = api.post("/providers/proxy/", body.clone()).await;
    assert_eq!((s, b), (400, expected.clone()));
    body.as_object_mut().unwrap().remove("mode");
    assert_eq!(
        api.post("/providers/proxy/", body.clone()).await.0,
        400,
        "no mode means proxy"
    );
    body["internal_host"] = json!("http://svc.ns.svc.cluster.local:8080");
    let (s, created) = api.post("/providers/proxy/", body).await;
    assert_eq!(s, 201);
    // The trap: the stored internal_host does not help a PATCH that omits mode.
    let pk = created["pk"].as_i64().unwrap();
    let (s, b) = api
        .patch(
            &format!("/providers/proxy/{pk}/"),
            json!({"name": "renamed"}),
        )
        .await;
    assert_eq!((s, b), (400, expected));
    let (s, _) = api
        .patch(
            &format!("/providers/proxy/{pk}/"),
            json!({"name": "renamed", "mode": "forward_single"}),
        )
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn basic_auth_validity_and_url_rules() {
    let d = start().await;
    let api = Api::new(&d);
    let mut body = proxy_body(&d, "b");
    body["basic_auth_enabled"] = json!(true);
    body["basic_auth_user_attribute"] = json!("user");
    let (s, b) = api.post("/providers/proxy/", body.clone()).await;
    assert_eq!(
        (s, b),
        (
            400,
            json!({"basic_auth_enabled": ["User and password attributes must be set when basic auth is enabled."]})
        )
    );
    body["basic_auth_password_attribute"] = json!("pw");
    assert_eq!(api.post("/providers/proxy/", body).await.0, 201);

    let mut body = proxy_body(&d, "v");
    body["access_token_validity"] = json!("forever");
    body["external_host"] = json!("not a url");
    let (s, b) = api.post("/providers/proxy/", body).await;
    assert_eq!(s, 400);
    assert_eq!(
        b["access_token_validity"],
        json!(["forever is not in the correct format of 'hours=3;minutes=1'."])
    );
    assert_eq!(b["external_host"], json!(["Enter a valid URL."]));
}

#[tokio::test]
async fn applications_slug_unique_and_provider_one_to_one() {
    let d = start().await;
    let api = Api::new(&d);
    let pk = create_proxy(&api, &d, "app-prov").await;
    let (s, app) = api
        .post(
            "/core/applications/",
            json!({"name": "A", "slug": "a", "provider": pk}),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(app["launch_url"], "https://app-prov.example.com");
    assert_eq!(app["provider_obj"]["assigned_application_slug"], "a");
    let (s, b) = api
        .post(
            "/core/applications/",
            json!({"name": "B", "slug": "b", "provider": pk}),
        )
        .await;
    assert_eq!(
        (s, b),
        (
            400,
            json!({"provider": ["Application with this provider already exists."]})
        )
    );
    let (s, b) = api
        .post("/core/applications/", json!({"name": "A2", "slug": "a"}))
        .await;
    assert_eq!(
        (s, b),
        (
            400,
            json!({"slug": ["Application with this slug already exists."]})
        )
    );
    let (s, b) = api
        .post(
            "/core/applications/",
            json!({"name": "C", "slug": "no spaces"}),
        )
        .await;
    assert_eq!((s, field_errors(&b)), (400, vec!["slug"]));
    let (s, b) = api
        .post(
            "/core/applications/",
            json!({"name": "C", "slug": "c", "provider": 424242}),
        )
        .await;
    assert_eq!(
        (s, b),
        (
            400,
            json!({"provider": ["Invalid pk \"424242\" - object does not exist."]})
        )
    );
    // Re-saving the same application with its own provider is fine.
    assert_eq!(
        api.patch(
            "/core/applications/a/",
            json!({"provider": pk, "name": "A!"})
        )
        .await
        .0,
        200
    );
    let (_, p) = api.get(&format!("/providers/proxy/{pk}/")).await;
    assert_eq!(p["assigned_application_name"], "A!");
}

#[tokio::test]
async fn deleting_provider_unbinds_application_and_outpost() {
    let d = start().await;
    let api = Api::new(&d);
    let pk = create_proxy(&api, &d, "gone").await;
    api.post(
        "/core/applications/",
        json!({"name": "G", "slug": "g", "provider": pk}),
    )
    .await;
    let outpost = d.embedded_outpost_uuid();
    assert_eq!(
        api.patch(
            &format!("/outposts/instances/{outpost}/"),
            json!({"providers": [pk]})
        )
        .await
        .0,
        200
    );
    let (_, used) = api.get(&format!("/providers/proxy/{pk}/used_by/")).await;
    assert_eq!(used.as_array().unwrap().len(), 2);
    assert_eq!(api.delete(&format!("/providers/proxy/{pk}/")).await.0, 204);
    let (s, app) = api.get("/core/applications/g/").await;
    assert_eq!(s, 200);
    assert_eq!(
        (
            app["provider"].clone(),
            app["provider_obj"].clone(),
            app["launch_url"].clone()
        ),
        (Value::Null, Value::Null, Value::Null)
    );
    assert!(d.embedded_outpost_providers().is_empty());
    // Deleting the application keeps a provider alive.
    let pk2 = create_proxy(&api, &d, "stays").await;
    api.patch("/core/applications/g/", json!({"provider": pk2}))
        .await;
    assert_eq!(api.delete("/core/applications/g/").await.0, 204);
    let (_, p) = api.get(&format!("/providers/proxy/{pk2}/")).await;
    assert_eq!(p["assigned_application_slug"], Value::Null);
    assert_eq!(
        api.get("/core/applications/g/").await,
        (
            404,
            json!({"detail": "No Application matches the given query."})
        )
    );
}

#[tokio::test]
async fn outpost_providers_replaced_wholesale_and_validated() {
    let d = start().await;
    let api = Api::new(&d);
    let uuid = d.embedded_outpost_uuid();
    let path = format!("/outposts/instances/{uuid}/");
    let a = create_proxy(&api, &d, "a").await;
    let b = create_proxy(&api, &d, "b").await;
    assert_eq!(api.patch(&path, json!({"providers": [a, b]})).await.0, 200);
    let (s, o) = api.patch(&path, json!({"providers": [b]})).await;
    assert_eq!((s, o["providers"].clone()), (200, json!([b])));
    assert_eq!(
        o["providers_obj"][0]["meta_model_name"],
        "authentik_core.provider"
    );
    let (_, pb) = api.get(&format!("/providers/proxy/{b}/")).await;
    assert_eq!(
        pb["outpost_set"],
        json!(["Outpost authentik Embedded Outpost"])
    );
    let (s, e) = api.patch(&path, json!({"providers": [b, 99999]})).await;
    assert_eq!(
        (s, e),
        (
            400,
            json!({"providers": ["Invalid pk \"99999\" - object does not exist."]})
        )
    );
    // Wrong provider type, checked only when `type` is submitted.
    let oauth = d.create_foreign_provider("oauth");
    let (s, e) = api
        .patch(&path, json!({"type": "proxy", "providers": [b, oauth]}))
        .await;
    assert_eq!(
        (s, e),
        (
            400,
            json!({"providers": ["Outpost type proxy can't be used with OAuth2Provider providers."]})
        )
    );
    assert_eq!(
        api.patch(&path, json!({"providers": [b, oauth]})).await.0,
        200,
        "no type: no type check"
    );
    // The embedded outpost may be emptied, another outpost may not.
    assert_eq!(api.patch(&path, json!({"providers": []})).await.0, 200);
    let (s, other) = api
        .post(
            "/outposts/instances/",
            json!({"name": "ext", "type": "proxy", "providers": [a], "config": {}}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, e) = api
        .patch(
            &format!("/outposts/instances/{}/", other["pk"].as_str().unwrap()),
            json!({"providers": []}),
        )
        .await;
    assert_eq!(
        (s, e),
        (400, json!({"providers": ["This list may not be empty."]}))
    );
    let (s, e) = api.patch(&path, json!({"name": "renamed"})).await;
    assert_eq!(
        (s, e),
        (
            400,
            json!({"name": ["Embedded outpost's name cannot be changed"]})
        )
    );
    let (s, _) = api
        .get("/outposts/instances/00000000-0000-0000-0000-000000000000/")
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn pagination_envelope_filters_and_unknown_params() {
    let d = start().await;
    let api = Api::new(&d);
    for i in 0..5 {
        create_proxy(&api, &d, &format!("p{i}")).await;
    }
    let (s, page) = api.get("/providers/proxy/?page_size=2&page=2").await;
    assert_eq!(s, 200);
    assert_eq!(
        page["pagination"],
        json!({"next": 3, "previous": 1, "count": 5, "current": 2, "total_pages": 3, "start_index": 3, "end_index": 4})
    );
    assert_eq!(page["autocomplete"], json!({}));
    assert_eq!(
        api.get("/providers/proxy/?page=4&page_size=2").await,
        (404, json!({"detail": "Invalid page."}))
    );
    // No plain `name` filter: ignored, everything comes back, as authentik does (also for
    // lookups it does not declare, like `name__startswith`); the log names what was ignored.
    assert_eq!(
        api.get("/providers/proxy/?name=p1").await.1["pagination"]["count"],
        5
    );
    assert_eq!(
        api.get("/providers/proxy/?name__startswith=zzz").await.1["pagination"]["count"],
        5
    );
    let ignored: Vec<Vec<String>> = d
        .requests()
        .iter()
        .rev()
        .take(2)
        .map(|r| r.ignored_query.clone())
        .collect();
    assert_eq!(ignored, [vec!["name__startswith"], vec!["name"]]);
    assert_eq!(
        api.get("/providers/proxy/?name__iexact=P1").await.1["pagination"]["count"],
        1
    );
    assert_eq!(
        api.get("/providers/proxy/?search=p").await.1["pagination"]["count"],
        5
    );
    let (_, desc) = api.get("/providers/proxy/?ordering=-name").await;
    assert_eq!(desc["results"][0]["name"], "p4");
    assert_eq!(
        api.get("/outposts/instances/?managed=nope").await.1["pagination"]["count"],
        1
    );
    let (_, emb) = api
        .get("/outposts/instances/?managed__iexact=goauthentik.io/outposts/embedded")
        .await;
    assert_eq!(emb["results"][0]["name"], "authentik Embedded Outpost");
    assert_eq!(
        api.get("/outposts/instances/?managed__iexact=nope").await.1["pagination"]["count"],
        0
    );
    // Page size is capped (default 100).
    assert_eq!(
        api.get("/flows/instances/?page_size=1000").await.1["pagination"]["total_pages"],
        1
    );
}

#[tokio::test]
async fn seeded_like_a_fresh_authentik() {
    let d = start().await;
    let api = Api::new(&d);
    for slug in [
        "default-provider-authorization-implicit-consent",
        "default-provider-authorization-explicit-consent",
        "default-provider-invalidation-flow",
        "default-invalidation-flow",
        "default-authentication-flow",
    ] {
        let (s, f) = api.get(&format!("/flows/instances/{slug}/")).await;
        assert_eq!((s, f["slug"].as_str()), (200, Some(slug)));
    }
    let (_, auth) = api
        .get("/flows/instances/?designation=authorization&ordering=slug")
        .await;
    assert_eq!(auth["pagination"]["count"], 2);
    let (_, groups) = api.get("/core/groups/?name=authentik%20Admins").await;
    assert_eq!(groups["results"][0]["is_superuser"], true);
    assert_eq!(
        groups["autocomplete"]["current_model"],
        "authentik_core.group"
    );
    assert_eq!(
        api.get("/admin/version/").await.1["version_current"],
        ApiVersion::newest().version_string()
    );
}

#[tokio::test]
async fn api_version_2024_10_has_no_autocomplete() {
    let d = start_with(DoubleConfig::default().with_api_version(ApiVersion::oldest())).await;
    let api = Api::new(&d);
    let (_, list) = api.get("/providers/proxy/").await;
    assert!(list.get("autocomplete").is_none());
    assert!(list.get("pagination").is_some());
    assert_eq!(
        api.get("/admin/version/").await.1["version_current"],
        "2024.10.0"
    );
}

#[tokio::test]
async fn policy_bindings_accept_duplicates_and_reject_unknown_group() {
    let d = start().await;
    let api = Api::new(&d);
    let (_, app) = api
        .post("/core/applications/", json!({"name": "W", "slug": "w"}))
        .await;
    let (s, group) = api.post("/core/groups/", json!({"name": "editors"})).await;
    assert_eq!(s, 201);
    let binding = json!({"target": app["pk"], "group": group["pk"], "order": 0});
    let (s, first) = api.post("/policies/bindings/", binding.clone()).await;
    assert_eq!(s, 201);
    assert_eq!(
        api.post("/policies/bindings/", binding).await.0,
        201,
        "duplicates are accepted"
    );
    let (_, list) = api
        .get(&format!(
            "/policies/bindings/?target={}",
            app["pk"].as_str().unwrap()
        ))
        .await;
    assert_eq!(list["pagination"]["count"], 2);
    let zero = "00000000-0000-0000-0000-000000000000";
    let (s, e) = api
        .post(
            "/policies/bindings/",
            json!({"target": app["pk"], "group": zero, "order": 1}),
        )
        .await;
    assert_eq!(
        (s, e),
        (
            400,
            json!({"group": [format!("Invalid pk \"{zero}\" - object does not exist.")]})
        )
    );
    // The admin is not in `editors`: the plain list hides the app, superuser_full_list shows it.
    assert_eq!(
        api.get("/core/applications/?slug=w").await.1["pagination"]["count"],
        0
    );
    assert_eq!(
        api.get("/core/applications/?slug=w&superuser_full_list=true")
            .await
            .1["pagination"]["count"],
        1
    );
    assert_eq!(
        api.delete(&format!(
            "/policies/bindings/{}/",
            first["pk"].as_str().unwrap()
        ))
        .await
        .0,
        204
    );
    let (s, g) = api.get("/core/groups/?name=editors").await;
    assert_eq!((s, g["pagination"]["count"].clone()), (200, json!(1)));
}

// ---------------------------------------------------------------- faults, log, latency

#[tokio::test]
async fn request_log_counts_calls() {
    let d = start().await;
    let api = Api::new(&d);
    create_proxy(&api, &d, "logged").await;
    api.get("/providers/proxy/?name__iexact=logged").await;
    assert_eq!(d.count("POST", "/api/v3/providers/proxy/"), 1);
    assert_eq!(d.count("GET", "/api/v3/providers/"), 1);
    let reqs = d.requests();
    assert_eq!(reqs[0].template, "/api/v3/providers/proxy/");
    assert_eq!(reqs[1].query.as_deref(), Some("name__iexact=logged"));
    assert_eq!(reqs[0].status, Some(201));
    assert_eq!(d.stats().counts["GET /api/v3/providers/proxy/"], 1);
    d.clear_requests();
    assert!(d.requests().is_empty());
}

#[tokio::test]
async fn fail_next_and_rate_limit_do_not_touch_state() {
    let d = start().await;
    let api = Api::new(&d);
    d.inject(Fault::fail_next(2, 503).only("POST", "/api/v3/providers/"));
    assert_eq!(
        api.get("/providers/proxy/").await.0,
        200,
        "other requests unaffected"
    );
    assert_eq!(
        api.post("/providers/proxy/", proxy_body(&d, "f")).await.0,
        503
    );
    assert_eq!(
        api.post("/providers/proxy/", proxy_body(&d, "f")).await.0,
        503
    );
    assert!(d.providers().is_empty());
    assert_eq!(
        api.post("/providers/proxy/", proxy_body(&d, "f")).await.0,
        201
    );

    d.inject(Fault::rate_limit_next(1, 7));
    let resp = api
        .http
        .get(format!("{}/providers/proxy/", d.api_url()))
        .bearer_auth(d.token())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert!(resp.text().await.unwrap().contains("Request was throttled"));
    assert_eq!(api.get("/providers/proxy/").await.0, 200);
}

#[tokio::test]
async fn reset_next_drops_the_connection_without_a_response() {
    let d = start().await;
    let api = Api::new(&d);
    d.inject(Fault::reset_next(1));
    let err = api
        .try_send(Method::POST, "/providers/proxy/", Some(proxy_body(&d, "r")))
        .await;
    assert!(err.is_err(), "expected a transport error, got {err:?}");
    assert!(d.providers().is_empty(), "reset happens before handling");
    assert_eq!(d.requests()[0].outcome, Outcome::Reset);
    assert_eq!(api.get("/providers/proxy/").await.0, 200);
}

#[tokio::test]
async fn lost_response_applies_the_write() {
    let d = start().await;
    let api = Api::new(&d);
    d.inject(Fault::drop_response_after_write(1));
    assert_eq!(
        api.get("/providers/proxy/").await.0,
        200,
        "reads do not consume it"
    );
    let err = api
        .try_send(
            Method::POST,
            "/providers/proxy/",
            Some(proxy_body(&d, "lost")),
        )
        .await;
    assert!(err.is_err());
    assert!(d.provider_by_name("lost").is_some(), "the write happened");
    let last = d.requests().pop().unwrap();
    assert_eq!(
        (last.outcome, last.status),
        (Outcome::DroppedAfterWrite, Some(201))
    );
    // The retry now sees the duplicate, as on a real server.
    assert_eq!(
        api.post("/providers/proxy/", proxy_body(&d, "lost"))
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn down_modes() {
    let d = start().await;
    let api = Api::new(&d);
    d.set_down(true);
    assert!(
        api.try_send(Method::GET, "/core/users/me/", None)
            .await
            .is_err()
    );
    d.set_down_mode(DownMode::Status { status: 502 });
    assert_eq!(api.get("/core/users/me/").await.0, 502);
    d.set_down(false);
    assert_eq!(api.get("/core/users/me/").await.0, 200);
}

#[tokio::test]
async fn latency_fault_and_fixed_model_delay_requests() {
    let d = start_with(
        DoubleConfig::default().with_latency(LatencyModel::fixed(Duration::from_millis(60))),
    )
    .await;
    let api = Api::new(&d);
    let t = Instant::now();
    api.get("/core/users/me/").await;
    assert!(t.elapsed() >= Duration::from_millis(60));
    d.set_latency(LatencyModel::Off);
    d.inject(Fault::latency(Duration::from_millis(80)));
    let t = Instant::now();
    api.get("/core/users/me/").await;
    assert!(t.elapsed() >= Duration::from_millis(80));
    d.clear_faults();
    let t = Instant::now();
    api.get("/core/users/me/").await;
    assert!(t.elapsed() < Duration::from_millis(80));
}

#[tokio::test]
async fn realistic_outpost_patch_grows_with_the_providers_it_adds() {
    let d = start().await;
    let api = Api::new(&d);
    let pks: Vec<i64> = {
        let mut v = Vec::new();
        for i in 0..10 {
            v.push(create_proxy(&api, &d, &format!("l{i}")).await);
        }
        v
    };
    d.set_latency(LatencyModel::realistic());
    let path = format!("/outposts/instances/{}/", d.embedded_outpost_uuid());
    let t = Instant::now();
    api.patch(&path, json!({"providers": []})).await;
    let empty = t.elapsed();
    let t = Instant::now();
    api.patch(&path, json!({"providers": pks})).await;
    let ten = t.elapsed();
    // 0.5 s + 6 ms per provider, + 60 ms per provider added (the fit is unit-tested in
    // latency.rs).
    assert!(empty >= Duration::from_millis(500), "{empty:?}");
    assert!(ten >= Duration::from_millis(1_160), "{ten:?}");
}

#[tokio::test]
async fn peak_concurrency_is_tracked() {
    let d = start_with(
        DoubleConfig::default().with_latency(LatencyModel::fixed(Duration::from_millis(150))),
    )
    .await;
    let api = Api::new(&d);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let api = api.clone();
        set.spawn(async move { api.get("/core/users/me/").await });
    }
    while let Some(r) = set.join_next().await {
        assert_eq!(r.unwrap().0, 200);
    }
    assert!(d.peak_concurrency() >= 3, "peak {}", d.peak_concurrency());
    assert_eq!(d.stats().in_flight, 0);
}

#[tokio::test]
async fn admin_http_api_controls_the_double() {
    let d = start().await;
    let api = Api::new(&d);
    let admin = |p: &str| format!("{}/_double/{p}", d.base_url());
    let http = &api.http;
    let r = http
        .post(admin("faults"))
        .json(&json!({"kind": "fail_next", "count": 1, "status": 500}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(api.get("/core/users/me/").await.0, 500);
    http.post(admin("down"))
        .json(&json!({"down": true}))
        .send()
        .await
        .unwrap();
    assert!(
        api.try_send(Method::GET, "/core/users/me/", None)
            .await
            .is_err()
    );
    http.post(admin("down"))
        .json(&json!({"down": false}))
        .send()
        .await
        .unwrap();
    create_proxy(&api, &d, "seen").await;
    let stats: Value = http
        .get(admin("stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["counts"]["POST /api/v3/providers/proxy/"], 1);
    let state: Value = http
        .get(admin("state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["providers"][0]["name"], "seen");
    let reqs: Value = http
        .get(admin("requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(reqs.as_array().unwrap().len() >= 3);
    assert_eq!(
        http.post(admin("reset"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        204
    );
    assert!(d.providers().is_empty());
    assert!(d.requests().is_empty());
}

#[tokio::test]
async fn direct_state_access_simulates_drift_and_other_admins() {
    let d = start().await;
    let api = Api::new(&d);
    let pk = create_proxy(&api, &d, "drift").await;
    assert!(
        d.edit_provider(pk, |p| p.proxy_mut().unwrap().skip_path_regex =
            "^/hand$".into())
    );
    assert_eq!(
        api.get(&format!("/providers/proxy/{pk}/")).await.1["skip_path_regex"],
        "^/hand$"
    );
    let uuid = d.embedded_outpost_uuid();
    assert!(d.set_outpost_providers(uuid, vec![pk]));
    assert_eq!(
        api.get(&format!("/outposts/instances/{uuid}/")).await.1["providers"],
        json!([pk])
    );
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let d = start().await;
    let url = d.api_url();
    d.shutdown().await;
    let r = common::http()
        .get(format!("{url}/root/config/"))
        .send()
        .await;
    assert!(r.is_err());
}

use super::*;
use gitops_crd::validate::check_spec;
use proptest::prelude::*;
use serde_json::{Value, json};

fn spec() -> ProxyConfigSpec {
    serde_json::from_value(json!({
        "serviceName": "grafana",
        "serviceNamespace": "monitoring",
        "externalHost": "grafana.example.com",
        "internalHost": "http://grafana.monitoring.svc.cluster.local:3000",
        "port": 3000,
        "authentikConfig": {"providerName": "grafana-proxy"},
        "annotations": {"description": "Dashboards"}
    }))
    .expect("valid spec")
}

fn flows() -> Flows {
    Flows {
        authorization: "authz-uuid".into(),
        invalidation: "inval-uuid".into(),
    }
}

fn desired(spec: &ProxyConfigSpec) -> ProxyProviderRequest {
    let checked = check_spec(spec).expect("valid");
    desired_provider(spec, &checked, &flows(), &Defaults::default())
}

/// What authentik answers after storing `request`: the same fields plus server-managed ones.
fn as_stored(request: &ProxyProviderRequest) -> ProxyProvider {
    let mut body = serde_json::to_value(request).expect("serializes");
    let object = body.as_object_mut().expect("object");
    object.insert("pk".into(), json!(7));
    object.insert(
        "property_mappings".into(),
        json!(["server-added-1", "server-added-2"]),
    );
    object.insert(
        "redirect_uris".into(),
        json!([{"matching_mode": "strict", "url": "https://x/outpost.goauthentik.io/callback"}]),
    );
    object.insert("assigned_application_slug".into(), Value::Null);
    object.insert("outpost_set".into(), json!(["authentik Embedded Outpost"]));
    serde_json::from_value(body).expect("decodes as a provider")
}

#[test]
fn spec_maps_to_the_provider_fields() {
    let request = desired(&spec());
    assert_eq!(request.name, "grafana-proxy");
    assert_eq!(request.external_host, "https://grafana.example.com");
    assert_eq!(
        request.internal_host,
        "http://grafana.monitoring.svc.cluster.local:3000"
    );
    assert_eq!(request.mode, WireMode::ForwardSingle);
    assert_eq!(request.skip_path_regex, "^/api/.*$");
    assert!(!request.internal_host_ssl_validation);
    assert!(request.intercept_header_auth);
    assert_eq!(request.authorization_flow, "authz-uuid");
    assert_eq!(request.invalidation_flow, "inval-uuid");
    assert!(request.property_mappings.is_none());
}

#[test]
fn converged_provider_needs_no_change_despite_server_managed_fields() {
    let request = desired(&spec());
    assert_eq!(provider_changes(&request, &as_stored(&request)), None);
}

#[test]
fn older_server_omitting_optional_fields_does_not_churn() {
    let mut s = spec();
    s.authentik_config.internal_host_ssl_validation = true;
    let request = desired(&s);
    let mut observed = as_stored(&request);
    observed.internal_host_ssl_validation = None;
    observed.intercept_header_auth = None;
    observed.cookie_domain = None;
    observed.basic_auth_user_attribute = None;
    assert_eq!(provider_changes(&request, &observed), None);
}

#[test]
fn each_hand_edit_is_detected_and_patched_alone() {
    let request = desired(&spec());
    type Edit = fn(&mut ProxyProvider);
    let table: [(&str, Edit); 9] = [
        ("external_host", |p| {
            p.external_host = "https://evil.example.com".into()
        }),
        ("internal_host", |p| {
            p.internal_host = Some("http://other:1".into())
        }),
        ("skip_path_regex", |p| {
            p.skip_path_regex = Some(String::new())
        }),
        ("mode", |p| p.mode = Some(WireMode::Proxy)),
        ("authorization_flow", |p| {
            p.authorization_flow = "other".into()
        }),
        ("invalidation_flow", |p| p.invalidation_flow = None),
        ("intercept_header_auth", |p| {
            p.intercept_header_auth = Some(false)
        }),
        ("cookie_domain", |p| {
            p.cookie_domain = Some("example.com".into())
        }),
        ("internal_host_ssl_validation", |p| {
            p.internal_host_ssl_validation = Some(true)
        }),
    ];
    for (field, edit) in table {
        let mut observed = as_stored(&request);
        edit(&mut observed);
        let (patch, diffs) = provider_changes(&request, &observed)
            .unwrap_or_else(|| panic!("{field} edit not detected"));
        let fields: Vec<_> = diffs.iter().map(|d| d.field).collect();
        assert_eq!(fields, [field], "exactly {field} differs");
        let body = serde_json::to_value(&patch).expect("serializes");
        assert_eq!(body["mode"], "forward_single", "mode is always sent");
        if field != "mode" {
            assert!(body.get(field).is_some(), "{field} is in the patch: {body}");
        }
    }
}

#[test]
fn proxy_mode_patch_carries_internal_host() {
    let mut s = spec();
    s.authentik_config.mode = ProxyMode::Proxy;
    let request = desired(&s);
    let mut observed = as_stored(&request);
    observed.external_host = "https://old.example.com".into();
    let (patch, _) = provider_changes(&request, &observed).expect("differs");
    assert_eq!(
        patch.internal_host.as_deref(),
        Some(request.internal_host.as_str())
    );
}

#[test]
fn cosmetic_differences_are_not_changes() {
    let request = desired(&spec());
    let mut observed = as_stored(&request);
    observed.external_host = "https://grafana.example.com/".into();
    observed.skip_path_regex = Some("^/api/.*$\r\n".into());
    assert_eq!(provider_changes(&request, &observed), None);
}

#[test]
fn cookie_domain_falls_back_to_the_configured_default() {
    let s = spec();
    let checked = check_spec(&s).expect("valid");
    let defaults = Defaults {
        cookie_domain: Some("example.com".into()),
    };
    assert_eq!(
        desired_provider(&s, &checked, &flows(), &defaults).cookie_domain,
        "example.com"
    );
    let mut own = s.clone();
    own.authentik_config.cookie_domain = Some("own.example".into());
    let checked = check_spec(&own).expect("valid");
    assert_eq!(
        desired_provider(&own, &checked, &flows(), &defaults).cookie_domain,
        "own.example"
    );
}

fn as_stored_application(request: &ApplicationRequest) -> Application {
    let mut body = serde_json::to_value(request).expect("serializes");
    let object = body.as_object_mut().expect("object");
    object.insert("pk".into(), json!("app-uuid"));
    object.insert("launch_url".into(), json!("https://grafana.example.com"));
    serde_json::from_value(body).expect("decodes as an application")
}

#[test]
fn application_defaults_and_changes() {
    let s = spec();
    let slug = application_slug(&s, "monitoring", "grafana-proxy");
    assert_eq!(slug, "monitoring-grafana-proxy");
    let request = desired_application(&s, slug, 7);
    assert_eq!(request.name, "grafana-proxy");
    assert_eq!(request.provider, Some(7));
    assert_eq!(request.meta_description, "Dashboards");
    assert_eq!(
        application_changes(&request, &as_stored_application(&request)),
        None
    );

    let mut observed = as_stored_application(&request);
    observed.provider = None;
    observed.meta_description = Some("hand edit".into());
    let (patch, diffs) = application_changes(&request, &observed).expect("differs");
    let fields: Vec<_> = diffs.iter().map(|d| d.field).collect();
    assert_eq!(fields, ["provider", "meta_description"]);
    assert_eq!(patch.provider, Some(Some(7)));
    assert!(patch.name.is_none());
}

fn binding(pk: &str, group: Option<&str>, order: i64) -> PolicyBinding {
    serde_json::from_value(json!({
        "pk": pk, "target": "app", "group": group, "order": order,
        "policy": if group.is_none() { Some("policy") } else { None }
    }))
    .expect("binding")
}

#[test]
fn bindings_table() {
    let wanted = vec!["g1".to_string(), "g2".to_string()];
    let existing = vec![
        binding("b1", Some("g1"), 0),
        binding("b1-dup", Some("g1"), 1),
        binding("b3", Some("gone"), 2),
        binding("policy", None, 3),
    ];
    let changes = binding_changes(&wanted, &existing);
    assert_eq!(changes.create, vec![("g2".to_string(), 4)]);
    assert_eq!(changes.delete, vec!["b1-dup".to_string(), "b3".to_string()]);

    assert!(
        binding_changes(
            &wanted,
            &[binding("a", Some("g1"), 0), binding("b", Some("g2"), 1)]
        )
        .is_empty()
    );
    let repeated = vec!["g1".to_string(), "g1".to_string()];
    assert_eq!(binding_changes(&repeated, &[]).create.len(), 1);
    assert_eq!(binding_changes(&[], &existing).delete.len(), 3);
}

/// Applies a PATCH body to a stored provider the way authentik does (field by field).
fn apply_patch(observed: &ProxyProvider, patch: &ProxyProviderPatch) -> ProxyProvider {
    let mut body = serde_json::to_value(observed_as_json(observed)).expect("json");
    let changes = serde_json::to_value(patch).expect("json");
    for (key, value) in changes.as_object().expect("object") {
        body[key] = value.clone();
    }
    serde_json::from_value(body).expect("provider")
}

fn observed_as_json(observed: &ProxyProvider) -> Value {
    json!({
        "pk": observed.pk, "name": observed.name,
        "authorization_flow": observed.authorization_flow,
        "invalidation_flow": observed.invalidation_flow,
        "external_host": observed.external_host,
        "internal_host": observed.internal_host,
        "internal_host_ssl_validation": observed.internal_host_ssl_validation,
        "skip_path_regex": observed.skip_path_regex,
        "basic_auth_enabled": observed.basic_auth_enabled,
        "basic_auth_user_attribute": observed.basic_auth_user_attribute,
        "basic_auth_password_attribute": observed.basic_auth_password_attribute,
        "mode": observed.mode,
        "intercept_header_auth": observed.intercept_header_auth,
        "cookie_domain": observed.cookie_domain,
        "access_token_validity": observed.access_token_validity,
    })
}

fn arb_spec() -> impl Strategy<Value = ProxyConfigSpec> {
    (
        "[a-z]{1,10}(\\.[a-z]{2,5}){1,2}",
        "[a-z][a-z0-9-]{0,20}",
        prop_oneof![
            Just("forward_single"),
            Just("forward_domain"),
            Just("proxy")
        ],
        "(\\^/[a-z]{0,6}/\\.\\*\\$\n?){0,3}",
        any::<(bool, bool, Option<bool>)>(),
        proptest::option::of("[a-z.]{1,12}"),
        1u16..65535,
    )
        .prop_map(
            |(host, provider, mode, skip, (ssl, basic, intercept), cookie, port)| {
                serde_json::from_value(json!({
                    "serviceName": "svc", "serviceNamespace": "ns",
                    "externalHost": host,
                    "internalHost": format!("http://svc.ns.svc.cluster.local:{port}"),
                    "port": port,
                    "authentikConfig": {
                        "providerName": provider, "mode": mode, "skipPathRegex": skip,
                        "internalHostSslValidation": ssl, "basicAuthEnabled": basic,
                        "basicAuthUserAttribute": "user", "basicAuthPasswordAttribute": "pass",
                        "interceptHeaderAuth": intercept, "cookieDomain": cookie
                    }
                }))
                .expect("generated spec is valid")
            },
        )
}

proptest! {
    /// Whatever the spec, what authentik stores from our create needs no further change.
    #[test]
    fn created_provider_is_converged(s in arb_spec()) {
        let request = desired(&s);
        prop_assert_eq!(provider_changes(&request, &as_stored(&request)), None);
    }

    /// From any starting provider, one patch converges it, and the diff names only fields
    /// that really differed.
    #[test]
    fn one_patch_converges_any_provider(from in arb_spec(), to in arb_spec()) {
        let observed = as_stored(&desired(&from));
        let request = desired(&to);
        match provider_changes(&request, &observed) {
            None => prop_assert_eq!(desired(&from), request),
            Some((patch, diffs)) => {
                prop_assert!(!diffs.is_empty());
                let patched = apply_patch(&observed, &patch);
                prop_assert_eq!(provider_changes(&request, &patched), None);
            }
        }
    }
}

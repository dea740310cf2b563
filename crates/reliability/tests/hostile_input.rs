//! Scenario 6: a corpus of hostile ProxyConfigs and Service annotations. Schema-invalid ones
//! are rejected by the API server naming the field; schema-valid but semantically bad ones are
//! reported in status (or in a Warning Event on the Service) without a single authentik call;
//! the controller never crashes and good objects are not held up.

use std::collections::BTreeMap;

use gitops_crd::Phase;
use gitops_harness::{Harness, eventually, workspace_binary};
use gitops_reliability::{Expected, assert_converged};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};

/// Sets `value` at a `/`-separated path below `spec` (`null` removes the field).
fn mutate(mut manifest: Value, path: &str, value: Value) -> Value {
    let mut node = &mut manifest["spec"];
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts[..parts.len() - 1] {
        node = &mut node[*part];
    }
    let last = parts[parts.len() - 1];
    if value.is_null() {
        node.as_object_mut().expect("object").remove(last);
    } else {
        node[last] = value;
    }
    manifest
}

/// (what, path, value, a word the API server's message must contain)
fn schema_invalid() -> Vec<(&'static str, &'static str, Value, &'static str)> {
    let long = "a".repeat(300);
    vec![
        (
            "missing serviceName",
            "serviceName",
            Value::Null,
            "serviceName",
        ),
        (
            "missing serviceNamespace",
            "serviceNamespace",
            Value::Null,
            "serviceNamespace",
        ),
        (
            "missing externalHost",
            "externalHost",
            Value::Null,
            "externalHost",
        ),
        (
            "missing internalHost",
            "internalHost",
            Value::Null,
            "internalHost",
        ),
        (
            "missing authentikConfig",
            "authentikConfig",
            Value::Null,
            "authentikConfig",
        ),
        (
            "missing providerName",
            "authentikConfig/providerName",
            Value::Null,
            "providerName",
        ),
        (
            "empty providerName",
            "authentikConfig/providerName",
            json!(""),
            "providerName",
        ),
        (
            "whitespace providerName",
            "authentikConfig/providerName",
            json!(" padded "),
            "providerName",
        ),
        (
            "over-long providerName",
            "authentikConfig/providerName",
            json!(long.clone()),
            "providerName",
        ),
        ("port 0", "port", json!(0), "port"),
        ("port 70000", "port", json!(70000), "port"),
        ("port as text", "port", json!("eighty"), "port"),
        ("protocol ftp", "protocol", json!("ftp"), "protocol"),
        (
            "mode forward_all",
            "authentikConfig/mode",
            json!("forward_all"),
            "mode",
        ),
        (
            "enabled as text",
            "authentikConfig/enabled",
            json!("yes"),
            "enabled",
        ),
        (
            "http externalHost",
            "externalHost",
            json!("http://plain.example.com"),
            "externalHost",
        ),
        (
            "unicode externalHost",
            "externalHost",
            json!("bücher.example.com"),
            "externalHost",
        ),
        (
            "externalHost with spaces",
            "externalHost",
            json!("a b.example.com"),
            "externalHost",
        ),
        (
            "over-long externalHost",
            "externalHost",
            json!(format!("{long}.example.com")),
            "externalHost",
        ),
        (
            "internalHost without scheme",
            "internalHost",
            json!("svc:80"),
            "internalHost",
        ),
        (
            "internalHost ftp",
            "internalHost",
            json!("ftp://svc"),
            "internalHost",
        ),
        (
            "serviceName uppercase",
            "serviceName",
            json!("Grafana"),
            "serviceName",
        ),
        (
            "serviceName too long",
            "serviceName",
            json!("s".repeat(64)),
            "serviceName",
        ),
        (
            "serviceNamespace with dots",
            "serviceNamespace",
            json!("a.b"),
            "serviceNamespace",
        ),
        (
            "applicationSlug with spaces",
            "authentikConfig/applicationSlug",
            json!("my app"),
            "applicationSlug",
        ),
        (
            "applicationSlug too long",
            "authentikConfig/applicationSlug",
            json!("s".repeat(51)),
            "applicationSlug",
        ),
        (
            "launchUrl not a URL",
            "authentikConfig/launchUrl",
            json!("grafana"),
            "launchUrl",
        ),
        (
            "accessTokenValidity forever",
            "authentikConfig/accessTokenValidity",
            json!("forever"),
            "accessTokenValidity",
        ),
        (
            "skipPathRegex too long",
            "authentikConfig/skipPathRegex",
            json!("x".repeat(5000)),
            "skipPathRegex",
        ),
        (
            "allowedGroups with empty name",
            "authentikConfig/allowedGroups",
            json!([""]),
            "allowedGroups",
        ),
        (
            "allowedGroups not a list",
            "authentikConfig/allowedGroups",
            json!("admins"),
            "allowedGroups",
        ),
        ("labels not a map", "labels", json!(["a"]), "labels"),
        (
            "huge label map",
            "labels",
            Value::Object((0..65).map(|i| (format!("k{i}"), json!("v"))).collect()),
            "labels",
        ),
        (
            "basicAuthEnabled as number",
            "authentikConfig/basicAuthEnabled",
            json!(1),
            "basicAuthEnabled",
        ),
    ]
}

/// (name, mutation, expected reason) — accepted by the API server, refused by the controller.
fn semantically_bad(h: &Harness) -> Vec<(String, Value, &'static str)> {
    let base = |name: &str| h.proxyconfig(name);
    vec![
        (
            "bad-regex".into(),
            mutate(
                base("bad-regex"),
                "authentikConfig/skipPathRegex",
                json!("^/ok$\n^/(broken"),
            ),
            "InvalidSpec",
        ),
        (
            "bad-backref".into(),
            mutate(
                base("bad-backref"),
                "authentikConfig/skipPathRegex",
                json!("(a)\\2"),
            ),
            "InvalidSpec",
        ),
        (
            "basic-auth-no-attrs".into(),
            mutate(
                base("basic-auth-no-attrs"),
                "authentikConfig/basicAuthEnabled",
                json!(true),
            ),
            "InvalidSpec",
        ),
        (
            "bad-port-host".into(),
            mutate(
                base("bad-port-host"),
                "internalHost",
                json!("http://svc:99999"),
            ),
            "InvalidSpec",
        ),
        (
            "bad-ext-port".into(),
            mutate(
                base("bad-ext-port"),
                "externalHost",
                json!("x.example.com:70000"),
            ),
            "InvalidSpec",
        ),
        (
            "empty-launch-host".into(),
            mutate(
                base("empty-launch-host"),
                "authentikConfig/launchUrl",
                json!("http://:80"),
            ),
            "InvalidSpec",
        ),
        (
            "duplicate-groups".into(),
            mutate(
                base("duplicate-groups"),
                "authentikConfig/allowedGroups",
                json!(["admins", "admins"]),
            ),
            "InvalidSpec",
        ),
        (
            "unknown-authz-flow".into(),
            mutate(
                base("unknown-authz-flow"),
                "authentikConfig/authorizationFlow",
                json!("no-such-flow"),
            ),
            "FlowNotFound",
        ),
        (
            "unknown-inval-flow".into(),
            mutate(
                base("unknown-inval-flow"),
                "authentikConfig/invalidationFlow",
                json!("00000000-0000-4000-8000-000000000000"),
            ),
            "FlowNotFound",
        ),
        (
            "unknown-outpost".into(),
            mutate(
                base("unknown-outpost"),
                "authentikConfig/outpost",
                json!("no-such-outpost"),
            ),
            "OutpostNotFound",
        ),
        (
            "unknown-outpost-uuid".into(),
            mutate(
                base("unknown-outpost-uuid"),
                "authentikConfig/outpost",
                json!("00000000-0000-4000-8000-000000000001"),
            ),
            "OutpostNotFound",
        ),
        (
            "unknown-group".into(),
            mutate(
                base("unknown-group"),
                "authentikConfig/allowedGroups",
                json!(["no-such-group"]),
            ),
            "GroupNotFound",
        ),
        (
            "cross-namespace".into(),
            mutate(
                base("cross-namespace"),
                "serviceNamespace",
                json!("kube-system"),
            ),
            "CrossNamespaceNotAllowed",
        ),
        (
            "same-host".into(),
            mutate(
                base("same-host"),
                "externalHost",
                h.proxyconfig("good-1")["spec"]["externalHost"].clone(),
            ),
            "Conflict",
        ),
        (
            "same-provider".into(),
            mutate(
                base("same-provider"),
                "authentikConfig/providerName",
                json!(h.provider_name("good-1")),
            ),
            "Conflict",
        ),
        (
            "same-slug".into(),
            mutate(
                base("same-slug"),
                "authentikConfig/applicationSlug",
                json!(format!("{}-good-2", h.namespace())),
            ),
            "Conflict",
        ),
    ]
}

/// (Service name, annotations, ports, a phrase the Warning must contain)
fn bad_services(h: &Harness) -> Vec<(&'static str, Value, Value, &'static str)> {
    let host = format!("svc.{}.example.com", h.namespace());
    let one_port = json!([{"name": "http", "port": 80}]);
    let two_ports = json!([{"name": "a", "port": 1}, {"name": "b", "port": 2}]);
    vec![
        (
            "no-host",
            json!({}),
            one_port.clone(),
            "external-host is missing",
        ),
        (
            "http-host",
            json!({"authentik.io/external-host": "http://x.example.com"}),
            one_port.clone(),
            "external-host",
        ),
        (
            "unicode-host",
            json!({"authentik.io/external-host": "bücher.example.com"}),
            one_port.clone(),
            "non-ASCII",
        ),
        (
            "query-host",
            json!({"authentik.io/external-host": "https://x.example.com/?a=b"}),
            one_port.clone(),
            "query",
        ),
        (
            "unknown-port-name",
            json!({"authentik.io/external-host": host, "authentik.io/internal-port": "web"}),
            one_port.clone(),
            "matches no port",
        ),
        (
            "unknown-port-number",
            json!({"authentik.io/external-host": host, "authentik.io/internal-port": "8080"}),
            one_port.clone(),
            "matches no port",
        ),
        (
            "ambiguous-ports",
            json!({"authentik.io/external-host": host}),
            two_ports,
            "several ports",
        ),
        (
            "bad-mode",
            json!({"authentik.io/external-host": host, "authentik.io/mode": "forward"}),
            one_port.clone(),
            "forward_single",
        ),
        (
            "bad-regex",
            json!({"authentik.io/external-host": host, "authentik.io/skip-path-regex": "(("}),
            one_port.clone(),
            "skip-path-regex",
        ),
        (
            "bad-slug",
            json!({"authentik.io/external-host": host, "authentik.io/slug": "no spaces"}),
            one_port.clone(),
            "slug",
        ),
        (
            "empty-provider",
            json!({"authentik.io/external-host": host, "authentik.io/provider-name": " "}),
            one_port.clone(),
            "provider-name is empty",
        ),
        (
            "spaced-host",
            json!({"authentik.io/external-host": "a b.example.com"}),
            one_port,
            "external-host",
        ),
    ]
}

#[tokio::test]
async fn hostile_input_is_rejected_or_reported_and_never_reaches_authentik() {
    if gitops_harness::skip_in_contract_mode("reads the double's request log") {
        return;
    }
    let mut h = Harness::new(
        "chaos-hostile",
        workspace_binary("gitops-service-discovery"),
    )
    .await;
    let controller = h.start_single();
    for good in ["good-1", "good-2", "good-3"] {
        h.apply(h.proxyconfig(good)).await;
        h.wait_phase(good, Phase::Ready).await;
    }
    let pcs = h.proxyconfigs();
    let base = h.proxyconfig("schema");
    let mut corpus = 0;

    for (what, path, value, field) in schema_invalid() {
        let manifest = mutate(base.clone(), path, value);
        let object = serde_json::from_value(manifest.clone());
        let error = match object {
            // Most bad shapes do not even fit the Rust type; send them raw.
            Err(_) => raw_create(&h, &manifest).await,
            Ok(pc) => pcs
                .create(&PostParams::default(), &pc)
                .await
                .err()
                .map(|e| e.to_string()),
        };
        let message = error.unwrap_or_else(|| panic!("{what} was accepted"));
        assert!(message.contains(field), "{what}: {message}");
        corpus += 1;
    }

    let mut expected = Expected::default();
    let bad = semantically_bad(&h);
    for (name, manifest, reason) in &bad {
        h.apply(manifest.clone()).await;
        expected.failed.insert(name.clone(), reason);
        corpus += 1;
    }
    let services: Api<Service> = Api::namespaced(h.client.clone(), h.namespace());
    let bad_services = bad_services(&h);
    for (name, annotations, ports, _) in &bad_services {
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"authentik.io/proxy": "enabled"}, "annotations": annotations},
            "spec": {"ports": ports}
        }))
        .expect("service");
        services
            .create(&PostParams::default(), &service)
            .await
            .expect("Service accepted");
        corpus += 1;
    }
    assert!(corpus >= 60, "the corpus has {corpus} cases");

    assert_converged(&h, &expected).await;
    let warnings = eventually("a Warning for every bad Service", || async {
        let events = Api::<Event>::namespaced(h.client.clone(), h.namespace())
            .list(&ListParams::default())
            .await
            .ok()?;
        let mut by_service: BTreeMap<String, String> = BTreeMap::new();
        for event in events
            .items
            .into_iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
        {
            if let (Some(name), Some(note)) = (event.regarding.and_then(|r| r.name), event.note) {
                by_service.insert(name, note);
            }
        }
        bad_services
            .iter()
            .all(|(name, ..)| by_service.contains_key(*name))
            .then_some(by_service)
    })
    .await
    .expect("warnings");
    for (name, _, _, phrase) in &bad_services {
        assert!(
            warnings[*name].contains(phrase),
            "{name}: {}",
            warnings[*name]
        );
        assert!(
            h.get(&format!("{name}-proxy")).await.is_none(),
            "{name} got a ProxyConfig"
        );
    }

    // Not one authentik request mentions a bad object; none of them exists there.
    let bad_names: Vec<String> = bad.iter().map(|(name, ..)| h.provider_name(name)).collect();
    for request in h.double().requests() {
        let text = format!("{} {}", request.path, request.query.unwrap_or_default());
        assert!(
            !bad_names.iter().any(|n| text.contains(n.as_str())),
            "authentik was asked about a bad object: {text}"
        );
    }
    for name in &bad_names {
        assert!(
            h.double().provider_by_name(name).is_none(),
            "{name} reached authentik"
        );
    }
    assert!(
        h.controller_running(controller),
        "the controller survived the corpus"
    );
    eprintln!("hostile input: {corpus} cases");
}

/// Creates an arbitrary JSON object as a ProxyConfig; returns the API server's refusal.
async fn raw_create(h: &Harness, manifest: &Value) -> Option<String> {
    use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gitops.io", "v1", "ProxyConfig"),
        "proxyconfigs",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(h.client.clone(), h.namespace(), &resource);
    let object: DynamicObject =
        serde_json::from_value(manifest.clone()).expect("a Kubernetes object");
    api.create(&PostParams::default(), &object)
        .await
        .err()
        .map(|e| e.to_string())
}

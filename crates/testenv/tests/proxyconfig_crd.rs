//! The generated ProxyConfig CRD against a real API server: it installs, accepts the original
//! system's manifests, applies defaults server-side, rejects bad specs naming the field, and keeps
//! spec and status apart.

use gitops_crd::{Phase, ProxyConfig, ProxyConfigStatus};
use gitops_testenv::{TestEnv, TestNamespace, install_proxyconfig_crd};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, CustomResourceExt};
use serde_json::{Value, json};

/// "Step 1" of the original runbook, placeholders filled (the same file gitops-crd's tests
/// read); each test sets its own namespace.
const ORIGINAL_EXAMPLE: &str =
    include_str!("../../gitops-crd/tests/fixtures/original-runbook-example.yaml");

async fn setup(purpose: &str) -> (Client, TestNamespace) {
    let env = TestEnv::shared().expect("test environment");
    let client = env.client().await.expect("client");
    install_proxyconfig_crd(&client)
        .await
        .expect("CRD installs");
    let namespace = env.namespace(purpose).await.expect("namespace");
    (client, namespace)
}

/// A dynamic API, so that requests carry exactly the JSON under test: a typed ProxyConfig would
/// fill in defaults client-side and could not express wrong types.
fn raw_api(client: &Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::erase::<ProxyConfig>(&()),
    )
}

fn raw_object(name: &str, body: Value) -> DynamicObject {
    DynamicObject::new(name, &ApiResource::erase::<ProxyConfig>(&())).data(body)
}

fn valid_spec() -> Value {
    json!({
        "serviceName": "whoami",
        "serviceNamespace": "apps",
        "externalHost": "whoami.example.com",
        "internalHost": "http://whoami.apps.svc.cluster.local",
        "authentikConfig": {"providerName": "whoami-proxy"},
    })
}

#[tokio::test]
async fn generated_crd_installs_and_is_served() {
    let env = TestEnv::shared().expect("test environment");
    let client = env.client().await.expect("client");
    install_proxyconfig_crd(&client)
        .await
        .expect("the generated CRD is accepted as is");

    let crds: Api<CustomResourceDefinition> = Api::all(client);
    let installed = crds.get("proxyconfigs.gitops.io").await.expect("CRD");
    let version = &installed.spec.versions[0];
    assert_eq!(version.name, "v1");
    assert!(version.served && version.storage);
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some(),
        "status subresource enabled"
    );
    assert_eq!(
        installed.spec.names.short_names,
        Some(vec!["pcfg".to_owned()])
    );
    let generated = ProxyConfig::crd();
    assert_eq!(
        installed.spec.versions[0].schema, generated.spec.versions[0].schema,
        "the API server stores the schema unchanged"
    );
}

#[tokio::test]
async fn original_example_is_accepted_unchanged() {
    let (client, namespace) = setup("original-example").await;
    let mut example: ProxyConfig = serde_saphyr::from_str(ORIGINAL_EXAMPLE).expect("YAML");
    example.metadata.namespace = Some(namespace.name().to_owned());
    let api: Api<ProxyConfig> = Api::namespaced(client, namespace.name());
    api.create(&PostParams::default(), &example)
        .await
        .expect("the original manifest is accepted");

    let stored = api.get("grafana-proxy").await.expect("stored");
    assert_eq!(stored.spec, example.spec);
    assert_eq!(stored.status, None, "nothing writes status on create");
}

#[tokio::test]
async fn defaults_are_applied_by_the_api_server() {
    let (client, namespace) = setup("defaults").await;
    let api = raw_api(&client, namespace.name());
    api.create(
        &PostParams::default(),
        &raw_object("minimal", json!({"spec": valid_spec()})),
    )
    .await
    .expect("minimal ProxyConfig accepted");

    let stored = api.get("minimal").await.expect("stored");
    let spec = &stored.data["spec"];
    assert_eq!(spec["port"], json!(80));
    assert_eq!(spec["protocol"], json!("http"));
    let authentik = &spec["authentikConfig"];
    assert_eq!(authentik["enabled"], json!(true));
    assert_eq!(authentik["mode"], json!("forward_single"));
    assert_eq!(authentik["skipPathRegex"], json!("^/api/.*$"));
    assert_eq!(authentik["basicAuthEnabled"], json!(false));
    assert_eq!(authentik["internalHostSslValidation"], json!(false));
    assert_eq!(
        authentik.get("applicationSlug"),
        None,
        "optional fields stay unset"
    );
}

/// One bad ProxyConfig: `pointer` (in the valid object) is set to `value`, or removed when
/// `value` is `None`; the rejection must name `field`.
struct BadCase {
    what: &'static str,
    pointer: &'static str,
    value: Option<Value>,
    field: &'static str,
}

fn bad(
    what: &'static str,
    pointer: &'static str,
    value: Option<Value>,
    field: &'static str,
) -> BadCase {
    BadCase {
        what,
        pointer,
        value,
        field,
    }
}

#[rustfmt::skip]
fn bad_cases() -> Vec<BadCase> {
    let long = |n: usize| json!("a".repeat(n));
    vec![
        bad("no spec", "/spec", None, "spec"),
        bad("no serviceName", "/spec/serviceName", None, "spec.serviceName"),
        bad("no serviceNamespace", "/spec/serviceNamespace", None, "spec.serviceNamespace"),
        bad("no externalHost", "/spec/externalHost", None, "spec.externalHost"),
        bad("no internalHost", "/spec/internalHost", None, "spec.internalHost"),
        bad("no authentikConfig", "/spec/authentikConfig", None, "spec.authentikConfig"),
        bad("no providerName", "/spec/authentikConfig/providerName", None, "spec.authentikConfig.providerName"),
        bad("empty providerName", "/spec/authentikConfig/providerName", Some(json!("")), "spec.authentikConfig.providerName"),
        bad("providerName padded with spaces", "/spec/authentikConfig/providerName", Some(json!(" grafana ")), "spec.authentikConfig.providerName"),
        bad("providerName over 255", "/spec/authentikConfig/providerName", Some(long(256)), "spec.authentikConfig.providerName"),
        bad("protocol not an enum value", "/spec/protocol", Some(json!("ftp")), "spec.protocol"),
        bad("mode not an enum value", "/spec/authentikConfig/mode", Some(json!("forward_all")), "spec.authentikConfig.mode"),
        bad("port 0", "/spec/port", Some(json!(0)), "spec.port"),
        bad("port 70000", "/spec/port", Some(json!(70000)), "spec.port"),
        bad("port as a string", "/spec/port", Some(json!("80")), "spec.port"),
        bad("enabled as a string", "/spec/authentikConfig/enabled", Some(json!("yes")), "spec.authentikConfig.enabled"),
        bad("externalHost with spaces", "/spec/externalHost", Some(json!("not a host")), "spec.externalHost"),
        bad("externalHost over http", "/spec/externalHost", Some(json!("http://grafana.example.com")), "spec.externalHost"),
        bad("externalHost over 253", "/spec/externalHost", Some(json!(format!("{}.example.com", "a".repeat(250)))), "spec.externalHost"),
        bad("internalHost without scheme", "/spec/internalHost", Some(json!("grafana.monitoring:3000")), "spec.internalHost"),
        bad("internalHost with a bad port", "/spec/internalHost", Some(json!("http://grafana:port")), "spec.internalHost"),
        bad("serviceName not DNS-1035", "/spec/serviceName", Some(json!("Grafana_UI")), "spec.serviceName"),
        bad("serviceName over 63", "/spec/serviceName", Some(long(64)), "spec.serviceName"),
        bad("serviceNamespace starting with '-'", "/spec/serviceNamespace", Some(json!("-apps")), "spec.serviceNamespace"),
        bad("applicationSlug with spaces", "/spec/authentikConfig/applicationSlug", Some(json!("my app")), "spec.authentikConfig.applicationSlug"),
        bad("launchUrl not http(s)", "/spec/authentikConfig/launchUrl", Some(json!("ftp://files.example.com")), "spec.authentikConfig.launchUrl"),
        bad("accessTokenValidity in a foreign format", "/spec/authentikConfig/accessTokenValidity", Some(json!("1h")), "spec.authentikConfig.accessTokenValidity"),
        bad("skipPathRegex over 4096", "/spec/authentikConfig/skipPathRegex", Some(long(4097)), "spec.authentikConfig.skipPathRegex"),
        bad("allowedGroups as a string", "/spec/authentikConfig/allowedGroups", Some(json!("admins")), "spec.authentikConfig.allowedGroups"),
        bad("allowedGroups with an empty name", "/spec/authentikConfig/allowedGroups", Some(json!(["admins", ""])), "spec.authentikConfig.allowedGroups[1]"),
        bad("label value not a string", "/spec/labels", Some(json!({"team": 7})), "spec.labels.team"),
        bad("forwardAuth.httpRoute with an ExtensionRef and no Traefik Middleware", "/spec/forwardAuth", Some(json!({"httpRoute": {"name": "web", "filter": "ExtensionRef"}})), "spec.forwardAuth"),
        bad("forwardAuth.httpRoute.filter not an enum value", "/spec/forwardAuth", Some(json!({"traefik": {}, "httpRoute": {"name": "web", "filter": "Middleware"}})), "spec.forwardAuth.httpRoute.filter"),
    ]
}

/// Sets or removes the value at a JSON pointer whose parent exists.
fn edit(document: &mut Value, pointer: &str, value: Option<Value>) {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer");
    let parent = document
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .expect("parent object");
    match value {
        Some(value) => parent.insert(key.to_owned(), value),
        None => parent.remove(key),
    };
}

#[tokio::test]
async fn bad_proxyconfigs_are_rejected_naming_the_field() {
    let (client, namespace) = setup("bad-specs").await;
    let api = raw_api(&client, namespace.name());
    let cases = bad_cases();
    assert!(cases.len() >= 20);

    let mut failures = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let mut body = json!({"spec": valid_spec()});
        edit(&mut body, case.pointer, case.value.clone());
        let name = format!("bad-{index}");
        match api
            .create(&PostParams::default(), &raw_object(&name, body))
            .await
        {
            Ok(_) => failures.push(format!("{}: accepted", case.what)),
            Err(kube::Error::Api(status)) => {
                // The API server prefixes each cause with the field's path.
                let names_field = status.message.contains(&format!("{}:", case.field))
                    || status.message.contains(&format!("{} ", case.field));
                if status.code != 422 || !names_field {
                    failures.push(format!(
                        "{}: expected 422 naming {}, got {} {:?}",
                        case.what, case.field, status.code, status.message
                    ));
                }
            }
            Err(other) => failures.push(format!("{}: {other}", case.what)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad ProxyConfigs were not rejected as expected:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn spec_and_status_are_written_separately() {
    let (client, namespace) = setup("status").await;
    let api: Api<ProxyConfig> = Api::namespaced(client, namespace.name());
    let mut object: ProxyConfig = serde_saphyr::from_str(ORIGINAL_EXAMPLE).expect("YAML");
    object.metadata.namespace = Some(namespace.name().to_owned());
    object.status = Some(ProxyConfigStatus {
        phase: Some(Phase::Ready),
        ..ProxyConfigStatus::default()
    });
    let created = api
        .create(&PostParams::default(), &object)
        .await
        .expect("created");
    assert_eq!(created.status, None, "status in a create is dropped");
    assert_eq!(created.metadata.generation, Some(1));

    let merge = |value: Value| Patch::Merge(value);
    let params = PatchParams::default();

    // Status through the main resource is ignored.
    let patched = api
        .patch(
            "grafana-proxy",
            &params,
            &merge(json!({"status": {"phase": "Failed"}})),
        )
        .await
        .expect("patch");
    assert_eq!(patched.status, None);

    // Status through the status subresource is written; spec there is ignored; the spec's
    // generation does not move.
    let patched = api
        .patch_status(
            "grafana-proxy",
            &params,
            &merge(json!({
                "spec": {"port": 1234},
                "status": {"phase": "Ready", "observedGeneration": 1},
            })),
        )
        .await
        .expect("status patch");
    let status = patched.status.expect("status written");
    assert_eq!(status.phase, Some(Phase::Ready));
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(patched.spec.port, 3000, "spec unchanged through /status");
    assert_eq!(patched.metadata.generation, Some(1));

    // A spec write bumps the generation and leaves the status alone, even if it carries one.
    let patched = api
        .patch(
            "grafana-proxy",
            &params,
            &merge(json!({"spec": {"port": 8080}, "status": {"phase": "Failed"}})),
        )
        .await
        .expect("spec patch");
    assert_eq!(patched.spec.port, 8080);
    assert_eq!(patched.metadata.generation, Some(2));
    assert_eq!(
        patched.status.and_then(|status| status.phase),
        Some(Phase::Ready),
        "a spec write must not change status"
    );
}

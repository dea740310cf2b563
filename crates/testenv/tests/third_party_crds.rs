//! The third-party CRDs the chart's objects need install from their pinned Go modules, and the
//! API server then validates those objects against the real schemas.

use gitops_testenv::{TestEnv, install_third_party_crds};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

fn object(resource: &ApiResource, name: &str, spec: Value) -> DynamicObject {
    DynamicObject::new(name, resource).data(json!({ "spec": spec }))
}

#[tokio::test]
async fn third_party_crds_install_and_validate_objects() {
    let env = TestEnv::shared().expect("test environment");
    let client = env.client().await.expect("client");
    let installed = install_third_party_crds(&client)
        .await
        .expect("CRDs install");
    for name in [
        "prometheusrules.monitoring.coreos.com",
        "servicemonitors.monitoring.coreos.com",
        "externalsecrets.external-secrets.io",
        "helmreleases.helm.toolkit.fluxcd.io",
    ] {
        assert!(
            installed.iter().any(|crd| crd == name),
            "{name} not in {installed:?}"
        );
    }
    // Installing again is a no-op, as the chart tests will do it from many tests.
    install_third_party_crds(&client).await.expect("idempotent");

    let namespace = env.namespace("third-party").await.expect("namespace");
    let ns = namespace.name();
    let rules = resource(
        "monitoring.coreos.com",
        "v1",
        "PrometheusRule",
        "prometheusrules",
    );
    let monitors = resource(
        "monitoring.coreos.com",
        "v1",
        "ServiceMonitor",
        "servicemonitors",
    );
    let secrets = resource(
        "external-secrets.io",
        "v1",
        "ExternalSecret",
        "externalsecrets",
    );
    let releases = resource(
        "helm.toolkit.fluxcd.io",
        "v2",
        "HelmRelease",
        "helmreleases",
    );

    let valid = [
        (
            &rules,
            object(
                &rules,
                "alerts",
                json!({"groups": [{"name": "g", "rules": [
                    {"alert": "Down", "expr": "up == 0", "for": "5m", "labels": {"severity": "critical"}},
                ]}]}),
            ),
        ),
        (
            &monitors,
            object(
                &monitors,
                "metrics",
                json!({
                    "selector": {"matchLabels": {"app": "x"}},
                    "endpoints": [{"port": "metrics", "interval": "30s"}],
                }),
            ),
        ),
        (
            &secrets,
            object(
                &secrets,
                "token",
                json!({
                    "secretStoreRef": {"kind": "ClusterSecretStore", "name": "vault"},
                    "target": {"name": "token"},
                    "data": [{"secretKey": "token", "remoteRef": {"key": "authentik/token"}}],
                }),
            ),
        ),
        (
            &releases,
            object(
                &releases,
                "app",
                json!({
                    "interval": "10m",
                    "chart": {"spec": {"chart": "app", "sourceRef": {"kind": "HelmRepository", "name": "repo"}}},
                }),
            ),
        ),
    ];
    for (resource, object) in valid {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, resource);
        api.create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|error| panic!("valid {} rejected: {error}", resource.kind));
    }

    let invalid = [
        (
            &rules,
            object(
                &rules,
                "no-expr",
                json!({"groups": [{"name": "g", "rules": [{"alert": "A"}]}]}),
            ),
            "spec.groups[0].rules[0].expr",
        ),
        (
            &monitors,
            object(
                &monitors,
                "bad-scheme",
                json!({"selector": {}, "endpoints": [{"port": "m", "scheme": "ftp"}]}),
            ),
            "spec.endpoints[0].scheme",
        ),
        (
            &secrets,
            object(
                &secrets,
                "bad-policy",
                json!({"secretStoreRef": {"name": "vault"}, "target": {"creationPolicy": "Sometimes"}}),
            ),
            "spec.target.creationPolicy",
        ),
        (
            &releases,
            object(
                &releases,
                "bad-interval",
                json!({"interval": "ten minutes", "chart": {"spec": {"chart": "app", "sourceRef": {"kind": "HelmRepository", "name": "repo"}}}}),
            ),
            "spec.interval",
        ),
    ];
    for (resource, object, field) in invalid {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, resource);
        match api.create(&PostParams::default(), &object).await {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 422, "{}: {}", resource.kind, status.message);
                assert!(
                    status.message.contains(field),
                    "{}: {} does not name {field}",
                    resource.kind,
                    status.message
                );
            }
            other => panic!("invalid {} must be rejected, got {other:?}", resource.kind),
        }
    }
}

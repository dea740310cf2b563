//! The original system's manifests must deserialize with defaults applied and serialize back
//! without losing a field.

use gitops_crd::validate::check_spec;
use gitops_crd::{DEFAULT_SKIP_PATH_REGEX, Protocol, ProxyConfig, ProxyMode};
use serde_json::Value;

/// "Step 1" of the original runbook, placeholders filled.
const ORIGINAL_EXAMPLE: &str = include_str!("fixtures/original-runbook-example.yaml");

const MINIMAL: &str = r#"
apiVersion: gitops.io/v1
kind: ProxyConfig
metadata: {name: whoami, namespace: apps}
spec:
  serviceName: whoami
  serviceNamespace: apps
  externalHost: whoami.example.com
  internalHost: http://whoami.apps.svc.cluster.local
  authentikConfig:
    providerName: whoami-proxy
"#;

fn parse(yaml: &str) -> ProxyConfig {
    serde_saphyr::from_str(yaml).expect("manifest deserializes")
}

/// Every leaf of `original` is present, with the same value, in `round_tripped`.
fn assert_contains(original: &Value, round_tripped: &Value, path: &str) {
    match original {
        Value::Object(map) => {
            for (key, value) in map {
                let other = round_tripped
                    .get(key)
                    .unwrap_or_else(|| panic!("{path}.{key} was lost"));
                assert_contains(value, other, &format!("{path}.{key}"));
            }
        }
        leaf => assert_eq!(leaf, round_tripped, "{path} changed"),
    }
}

#[test]
fn original_example_round_trips_without_losing_fields() {
    let original: Value = serde_saphyr::from_str(ORIGINAL_EXAMPLE).expect("yaml");
    let typed = parse(ORIGINAL_EXAMPLE);
    let back = serde_json::to_value(&typed).expect("serializes");
    assert_contains(&original, &back, "");

    let spec = &typed.spec;
    assert_eq!(spec.port, 3000);
    assert_eq!(spec.authentik_config.mode, ProxyMode::ForwardSingle);
    assert_eq!(
        spec.labels
            .as_ref()
            .and_then(|l| l.get("team"))
            .map(String::as_str),
        Some("observability")
    );
    let checked = check_spec(spec).expect("the original example is valid");
    assert_eq!(
        checked.external_url,
        "https://grafana.k8s.home.geoffdavis.com"
    );
    assert_eq!(checked.internal.port, 3000);
}

#[test]
fn minimal_manifest_gets_every_default() {
    let typed = parse(MINIMAL);
    let spec = &typed.spec;
    assert_eq!(spec.port, 80);
    assert_eq!(spec.protocol, Protocol::Http);
    let config = &spec.authentik_config;
    assert!(config.enabled);
    assert_eq!(config.mode, ProxyMode::ForwardSingle);
    assert_eq!(config.skip_path_regex, DEFAULT_SKIP_PATH_REGEX);
    assert!(!config.basic_auth_enabled);
    assert!(!config.internal_host_ssl_validation);
    assert!(config.application_slug.is_none());
    assert!(spec.labels.is_none());
    assert!(typed.status.is_none());

    let original: Value = serde_saphyr::from_str(MINIMAL).expect("yaml");
    let back = serde_json::to_value(&typed).expect("serializes");
    assert_contains(&original, &back, "");
    // Absent optional extensions stay absent instead of turning into nulls.
    assert!(
        back["spec"]["authentikConfig"]
            .get("applicationSlug")
            .is_none()
    );
    assert!(back.get("status").is_none());
}

#[test]
fn bad_enum_and_missing_required_fields_are_clear_errors() {
    let bad_mode = MINIMAL.replace(
        "providerName: whoami-proxy",
        "providerName: whoami-proxy\n    mode: forward_all",
    );
    let error = serde_saphyr::from_str::<ProxyConfig>(&bad_mode)
        .expect_err("unknown mode is rejected")
        .to_string();
    assert!(error.contains("forward_all"), "{error}");

    let missing = MINIMAL.replace("  serviceName: whoami\n", "");
    let error = serde_saphyr::from_str::<ProxyConfig>(&missing)
        .expect_err("missing serviceName is rejected")
        .to_string();
    assert!(error.contains("serviceName"), "{error}");
}

#[test]
fn semantic_problems_are_all_reported_at_once() {
    let mut typed = parse(MINIMAL);
    typed.spec.authentik_config.skip_path_regex = "^/ok$\n(".into();
    typed.spec.external_host = "http://plain.example.com".into();
    typed.spec.authentik_config.basic_auth_enabled = true;
    let errors = check_spec(&typed.spec).expect_err("three problems");
    assert_eq!(errors.0.len(), 3, "{errors}");
    let message = errors.to_string();
    assert!(message.contains("skipPathRegex line 2"), "{message}");
    assert!(message.contains("externalHost"), "{message}");
    assert!(message.contains("basicAuthUserAttribute"), "{message}");
}

//! The chart, its alerts and its dashboard, checked without a cluster: helm lint, the values
//! schema, the README, hooks, security contexts, RBAC rules, alert metadata, metric names and
//! the promtool tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use gitops_e2e::{
    RELEASE, all_features_values, chart_dir, helm, kube_version, of_kind, promql, render, run,
    sources, template, tool, values_doc, workspace_root,
};
use serde_json::Value;

fn defaults() -> Vec<Value> {
    render(RELEASE, "flux-system", &[], &[])
}

fn all_features() -> Vec<Value> {
    render(RELEASE, "flux-system", &[&all_features_values()], &[])
}

#[test]
fn helm_lint_passes_with_default_and_all_features_values() {
    let chart = chart_dir();
    let chart = chart.to_str().expect("utf-8");
    let all = all_features_values();
    let kube = kube_version();
    for extra in [vec![], vec!["--values", all.to_str().expect("utf-8")]] {
        let mut args = vec!["lint", "--strict", chart, "--kube-version", kube.as_str()];
        args.extend(extra.iter().copied());
        let output = helm(&args, None).ok("helm lint");
        assert!(
            output.stdout.contains("0 chart(s) failed"),
            "{}",
            output.stdout
        );
    }
}

/// What a user types, with helm built as its releases are (the Kubernetes version of its
/// client-go stamped in at link time): no --kube-version, and the chart's kubeVersion
/// (>=1.33.0-0) is met. A helm built without the stamp assumes v1.20.0 and refuses the chart.
#[test]
fn helm_template_and_lint_work_as_users_type_them() {
    let chart = chart_dir();
    let chart = chart.to_str().expect("utf-8");
    let rendered =
        helm(&["template", RELEASE, chart], None).ok("helm template without --kube-version");
    assert!(
        rendered.stdout.contains("kind: Deployment"),
        "{}",
        rendered.stdout
    );
    let lint = helm(&["lint", chart], None).ok("helm lint without --kube-version");
    assert!(lint.stdout.contains("0 chart(s) failed"), "{}", lint.stdout);
}

/// Each bad value is rejected before anything reaches a cluster, with a message naming it.
#[test]
fn values_schema_rejects_bad_values_with_clear_messages() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["serviceDiscovery.replicas=-1"],
            "/serviceDiscovery/replicas",
        ),
        (
            &["cleanup.completedJobsTTL=an hour"],
            "/cleanup/completedJobsTTL",
        ),
        (
            &["serviceDiscovery.resyncInterval=5 minutes"],
            "/serviceDiscovery/resyncInterval",
        ),
        (&["authentik.host=authentik:9000"], "/authentik/host"),
        (&["global.logFormat=yaml"], "/global/logFormat"),
        (&["image.pullPolicy=Sometimes"], "/image/pullPolicy"),
        (
            &["serviceDiscovery.crossNamespaceAllowlist={nocolon}"],
            "/serviceDiscovery/crossNamespaceAllowlist/0",
        ),
        (
            &["serviceDiscovery.maxConcurrentReconciles=0"],
            "/serviceDiscovery/maxConcurrentReconciles",
        ),
        (&["cleanup.deleteRate=0"], "/cleanup/deleteRate"),
        (
            &["serviceDiscovery.image.digest=latest"],
            "/serviceDiscovery/image/digest",
        ),
        (&["metrics.port=70000"], "/metrics/port"),
        (
            &["cleanup.stuckPods.cleanup=true"],
            "/cleanup/stuckPods/namespaces",
        ),
        (
            &["externalSecrets.token.enabled=true"],
            "/externalSecrets/secretStoreRef/name",
        ),
        (
            &["serviceDiscovery.enabled=false", "cleanup.enabled=false"],
            "/serviceDiscovery/enabled",
        ),
        (
            &["serviceDiscovery.replicaCount=2"],
            "'replicaCount' not allowed",
        ),
        (&["unknownTopLevel=1"], "'unknownTopLevel' not allowed"),
        (
            &["prometheusRule.additionalAlertLabels.bad-label=x"],
            "'bad-label' does not match",
        ),
        (&["fullnameOverride=Not_A_Name"], "/fullnameOverride"),
    ];
    let mut failures = Vec::new();
    for (sets, expected) in cases {
        let output = template(RELEASE, "flux-system", &[], sets);
        let message = output.combined();
        if output.success {
            failures.push(format!("{sets:?} was accepted"));
        } else if !message.contains(expected) {
            failures.push(format!(
                "{sets:?}: message does not name {expected:?}:\n{message}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Settings the schema cannot express are checked by the templates, also with a clear message.
#[test]
fn templates_reject_inconsistent_values_with_clear_messages() {
    let long = "a-release-name-that-is-far-too-long-for-kubernetes"; // helm allows 53
    let output = template(long, "flux-system", &[], &[]);
    assert!(!output.success, "a too-long release name must fail");
    assert!(
        output.combined().contains("longer than 63 characters"),
        "{}",
        output.combined()
    );
}

#[test]
fn readme_lists_every_value() {
    let values_text =
        std::fs::read_to_string(chart_dir().join("values.yaml")).expect("values.yaml");
    let readme = std::fs::read_to_string(chart_dir().join("README.md")).expect("chart README.md");
    let documented = values_doc::documented_paths(&values_text);
    let values: Value = serde_saphyr::from_str(&values_text).expect("values.yaml parses");
    let undocumented: Vec<_> = values_doc::leaf_paths(&values)
        .into_iter()
        .filter(|leaf| {
            !documented
                .iter()
                .any(|d| leaf == d || leaf.starts_with(&format!("{d}.")))
        })
        .collect();
    assert!(
        undocumented.is_empty(),
        "values without a `# --` comment: {undocumented:?}"
    );
    let listed = values_doc::readme_paths(&readme);
    let missing: Vec<_> = documented.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&documented).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "README values table: missing {missing:?}, not in values.yaml {stale:?}"
    );
}

#[test]
fn no_hooks_but_the_helm_test_and_crds_are_kept() {
    for objects in [defaults(), all_features()] {
        for object in &objects {
            let annotations = &object["metadata"]["annotations"];
            if let Some(hook) = annotations.get("helm.sh/hook") {
                assert_eq!(
                    object["kind"],
                    "Pod",
                    "only the test Pod may be a hook: {}",
                    gitops_e2e::key(object)
                );
                assert_eq!(hook, "test", "{}", gitops_e2e::key(object));
            }
            if object["kind"] == "CustomResourceDefinition" {
                assert_eq!(
                    annotations["helm.sh/resource-policy"],
                    "keep",
                    "{}",
                    gitops_e2e::key(object)
                );
            }
        }
        let tests: Vec<_> = objects
            .iter()
            .filter(|o| o["metadata"]["annotations"].get("helm.sh/hook").is_some())
            .collect();
        assert_eq!(tests.len(), 1, "exactly one helm test Pod");
        // The check is built into the service-discovery image: no shell or curl image to mirror.
        let container = &tests[0]["spec"]["containers"][0];
        let image = container["image"].as_str().unwrap_or_default();
        assert!(
            image.contains("/gitops-service-discovery:"),
            "the test Pod runs {image}"
        );
        assert_eq!(container["args"][0], "check-authentik", "{container}");
        let token_source = container["args"][2].as_str().unwrap_or_default();
        assert!(
            token_source.starts_with("Secret flux-system/")
                && token_source.contains("authentik-token"),
            "the refusal message names the token's Secret: {token_source}"
        );
        assert!(
            container.get("command").is_none(),
            "the image's own entrypoint runs: {container}"
        );
    }
    let objects = defaults();
    let crds = of_kind(&objects, "CustomResourceDefinition");
    assert!(
        crds.contains_key("proxyconfigs.gitops.io")
            && crds.contains_key("authentikobjects.gitops.io")
    );
}

/// Every Pod the chart makes meets Pod Security "restricted" on paper (the install test proves
/// the API server agrees).
#[test]
fn pods_are_non_root_read_only_without_capabilities() {
    for objects in [defaults(), all_features()] {
        for object in objects
            .iter()
            .filter(|o| o["kind"] == "Deployment" || o["kind"] == "Pod")
        {
            let spec = if object["kind"] == "Pod" {
                &object["spec"]
            } else {
                &object["spec"]["template"]["spec"]
            };
            assert_eq!(
                spec["securityContext"]["runAsNonRoot"],
                true,
                "{}",
                gitops_e2e::key(object)
            );
            assert_eq!(
                spec["securityContext"]["seccompProfile"]["type"],
                "RuntimeDefault"
            );
            for container in spec["containers"].as_array().expect("containers") {
                let sc = &container["securityContext"];
                assert_eq!(
                    sc["allowPrivilegeEscalation"],
                    false,
                    "{}",
                    gitops_e2e::key(object)
                );
                assert_eq!(sc["readOnlyRootFilesystem"], true);
                assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
                assert!(container["resources"]["limits"]["memory"].is_string());
            }
        }
    }
}

/// The Deployments wire up exactly the settings the binaries read.
#[test]
fn deployments_set_only_environment_the_binaries_read() {
    let root = workspace_root();
    for (deployment, config) in [
        (
            "gitops-lifecycle-management-service-discovery",
            "crates/service-discovery/src/config.rs",
        ),
        (
            "gitops-lifecycle-management-cleanup",
            "crates/cleanup/src/config.rs",
        ),
    ] {
        // Each binary reads its own settings plus those every controller process shares (the
        // process settings and the authentik connection flags).
        let config = [
            config,
            "crates/gitops-runtime/src/process.rs",
            "crates/authentik-client/src/args.rs",
        ]
        .map(|path| std::fs::read_to_string(root.join(path)).expect("settings source"))
        .join("\n");
        let known: BTreeSet<String> = config
            .split("env = \"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .map(str::to_owned)
            .collect();
        for objects in [defaults(), all_features()] {
            let deployments = of_kind(&objects, "Deployment");
            let container = &deployments[deployment]["spec"]["template"]["spec"]["containers"][0];
            assert_eq!(container["name"], "controller");
            for env in container["env"].as_array().expect("env") {
                let name = env["name"].as_str().expect("name");
                if name == "RUST_BACKTRACE" {
                    continue; // extraEnv in the all-features values
                }
                assert!(
                    known.contains(name),
                    "{deployment} sets {name}, which the binary does not read"
                );
            }
            let names: BTreeSet<&str> = container["env"]
                .as_array()
                .expect("env")
                .iter()
                .filter_map(|e| e["name"].as_str())
                .collect();
            for required in [
                "POD_NAME",
                "POD_NAMESPACE",
                "LOG_FORMAT",
                "AUTHENTIK_TOKEN_FILE",
                "AUTHENTIK_HOST",
                "LEADER_ELECTION",
            ] {
                assert!(names.contains(required), "{deployment} lacks {required}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// RBAC

/// What each controller calls, read from its code (kube-runtime's Controller/watcher = list +
/// watch; the finalizer helper = JSON patch; server-side apply = patch; `Recorder` =
/// events.k8s.io create + patch; kube-lease-manager = get, create, patch on its Lease). The
/// chart's ClusterRoles must grant exactly this: nothing more (least privilege) and nothing
/// less (the impersonation tests run both controllers with these rights).
const SERVICE_DISCOVERY_NEEDS: &[(&str, &str, &[&str])] = &[
    // Controller + discovery store (list, watch); finalizer (JSON patch); discovered
    // ProxyConfigs: fresh read (get), create, server-side apply (patch), removal on opt-out.
    (
        "gitops.io",
        "proxyconfigs",
        &["get", "list", "watch", "create", "patch", "delete"],
    ),
    ("gitops.io", "proxyconfigs/status", &["patch"]),
    // Ownership records: reflector; fresh read when the cache may lag; create before each
    // authentik create; guarded replace; delete.
    (
        "gitops.io",
        "authentikobjects",
        &["get", "list", "watch", "create", "update", "delete"],
    ),
    ("", "services", &["list", "watch"]),
    // Traefik Middlewares: reflector (Protected); of forwardAuth: fresh read, create, guarded
    // replace, listed by label and deleted when renamed or no longer asked for.
    (
        "traefik.io",
        "middlewares",
        &["get", "list", "watch", "create", "update", "delete"],
    ),
    // Routes serving ProxyConfigs' hosts: reflectors (Protected).
    ("networking.k8s.io", "ingresses", &["list", "watch"]),
    ("traefik.io", "ingressroutes", &["list", "watch"]),
    // HTTPRoutes: reflector; the one forwardAuth.httpRoute names: fresh read, guarded replace.
    (
        "gateway.networking.k8s.io",
        "httproutes",
        &["get", "list", "watch", "update"],
    ),
    // Their CRDs, watched by name until served (routes of a kind installed later).
    (
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        &["list", "watch"],
    ),
    ("events.k8s.io", "events", &["create", "patch"]),
];

const CLEANUP_NEEDS: &[(&str, &str, &[&str])] = &[
    // Job watcher; re-read before deleting; delete with background propagation.
    ("batch", "jobs", &["get", "list", "watch", "delete"]),
    // Pods are listed page by page each sweep (no watch).
    ("", "pods", &["list", "delete"]),
    // Which records are still claimed: a metadata list per sweep.
    ("gitops.io", "proxyconfigs", &["list"]),
    // Records: list per sweep; re-read and delete an orphan's record; mark it (status).
    ("gitops.io", "authentikobjects", &["get", "list", "delete"]),
    ("gitops.io", "authentikobjects/status", &["patch"]),
    ("events.k8s.io", "events", &["create", "patch"]),
];

type Grant = (String, String, String);

fn expand(needs: &[(&str, &str, &[&str])]) -> BTreeSet<Grant> {
    needs
        .iter()
        .flat_map(|(group, resource, verbs)| {
            verbs.iter().map(move |verb| {
                (
                    (*group).to_owned(),
                    (*resource).to_owned(),
                    (*verb).to_owned(),
                )
            })
        })
        .collect()
}

fn grants(rules: &Value) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for rule in rules.as_array().into_iter().flatten() {
        let strings = |field: &str| -> Vec<String> {
            rule[field]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        };
        for group in strings("apiGroups") {
            for resource in strings("resources") {
                for verb in strings("verbs") {
                    out.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    out
}

/// Cluster-wide grants of a ServiceAccount through the rendered ClusterRoleBindings.
fn effective_cluster_grants(objects: &[Value], service_account: &str) -> BTreeSet<Grant> {
    let roles = of_kind(objects, "ClusterRole");
    of_kind(objects, "ClusterRoleBinding")
        .values()
        .filter(|b| {
            b["subjects"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s["kind"] == "ServiceAccount" && s["name"] == service_account)
        })
        .flat_map(|b| grants(&roles[b["roleRef"]["name"].as_str().expect("roleRef")]["rules"]))
        .collect()
}

#[test]
fn cluster_roles_have_no_wildcards_and_grant_exactly_what_the_controllers_use() {
    let objects = defaults();
    for (name, role) in of_kind(&objects, "ClusterRole")
        .into_iter()
        .chain(of_kind(&objects, "Role"))
    {
        for rule in role["rules"].as_array().expect("rules") {
            for field in ["apiGroups", "resources", "verbs"] {
                let values = rule[field].as_array().into_iter().flatten();
                assert!(
                    values.clone().all(|v| v != "*"),
                    "{name}: wildcard in {field}"
                );
            }
            assert!(
                rule.get("nonResourceURLs").is_none(),
                "{name}: nonResourceURLs"
            );
        }
    }
    for (service_account, needs) in [
        (
            "gitops-lifecycle-management-service-discovery",
            SERVICE_DISCOVERY_NEEDS,
        ),
        ("gitops-lifecycle-management-cleanup", CLEANUP_NEEDS),
    ] {
        let granted = effective_cluster_grants(&objects, service_account);
        let needed = expand(needs);
        let extra: Vec<_> = granted.difference(&needed).collect();
        let missing: Vec<_> = needed.difference(&granted).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "{service_account}: granted but unused {extra:?}; needed but missing {missing:?}"
        );
    }
    // Leases: only in the release namespace; only the controllers' own Leases beyond create.
    let role = of_kind(&objects, "Role")["gitops-lifecycle-management-leader-election"];
    let rules = role["rules"].as_array().expect("rules");
    assert_eq!(
        grants(&role["rules"]),
        expand(&[("coordination.k8s.io", "leases", &["create", "get", "patch"])])
    );
    let named = rules
        .iter()
        .find(|r| r.get("resourceNames").is_some())
        .expect("rule limited by name");
    assert_eq!(
        named["resourceNames"],
        serde_json::json!(["gitops-cleanup", "gitops-service-discovery"])
    );
    assert!(
        rules.iter().all(
            |r| r.get("resourceNames").is_some() || r["verbs"] == serde_json::json!(["create"])
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Alerts and dashboard

/// SPEC §5's list of alerts.
const SPEC_ALERTS: &[&str] = &[
    "GitOpsServiceDiscoveryDown",
    "GitOpsCleanupDown",
    "GitOpsProxyConfigNotReady",
    "GitOpsReconcileErrorRateHigh",
    "GitOpsReconcileSlow",
    "GitOpsAuthentikUnreachable",
    "GitOpsRetryFailureRateHigh",
    "GitOpsExcessiveRetries",
    "GitOpsSlowRetries",
    "GitOpsCleanupErrors",
    "GitOpsCleanupCycleSlow",
    "GitOpsCleanupStalled",
    "GitOpsExcessiveJobCleanup",
    "GitOpsStuckResourcesAccumulating",
    "GitOpsControllerMemoryNearLimit",
    "GitOpsControllerCPUNearLimit",
    "GitOpsControllerRestarting",
    // Not in SPEC §5: a controller that cannot watch a resource it needs (issue 17).
    "GitOpsRequiredResourceUnavailable",
    // Not in SPEC §5: a route serves a ProxyConfig's host without forward auth (issue 15).
    "GitOpsProxyConfigExposed",
];

/// Series that come from Prometheus itself, cAdvisor (kubelet) and kube-state-metrics, not from
/// the controllers.
const NOT_FROM_THE_CONTROLLERS: &[&str] = &[
    "up",
    "container_memory_working_set_bytes",
    "container_cpu_usage_seconds_total",
    "kube_pod_container_resource_limits",
    "kube_pod_container_status_restarts_total",
];

fn rendered_rules(objects: &[Value]) -> Vec<Value> {
    let rule = of_kind(objects, "PrometheusRule");
    let rule = rule
        .get("gitops-lifecycle-management-alerts")
        .expect("PrometheusRule <release>-alerts");
    rule["spec"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").clone())
        .collect()
}

#[test]
fn every_alert_has_component_severity_summary_description_and_a_runbook() {
    let rules = rendered_rules(&defaults());
    let names: BTreeSet<&str> = rules.iter().filter_map(|r| r["alert"].as_str()).collect();
    let expected: BTreeSet<&str> = SPEC_ALERTS.iter().copied().collect();
    assert_eq!(names, expected, "the alerts SPEC §5 lists");
    let runbooks = workspace_root().join("docs/runbooks");
    for rule in &rules {
        let alert = rule["alert"].as_str().expect("alert");
        assert!(
            rule["labels"]["component"]
                .as_str()
                .is_some_and(|c| c.contains("gitops")),
            "{alert}: component"
        );
        assert!(
            ["critical", "warning", "info"]
                .contains(&rule["labels"]["severity"].as_str().unwrap_or_default()),
            "{alert}: severity"
        );
        for annotation in ["summary", "description"] {
            assert!(
                rule["annotations"][annotation]
                    .as_str()
                    .is_some_and(|s| s.len() > 10),
                "{alert}: {annotation}"
            );
        }
        let url = rule["annotations"]["runbook_url"]
            .as_str()
            .expect("runbook_url");
        assert!(
            url.ends_with(&format!("/docs/runbooks/{alert}.md")),
            "{alert}: {url}"
        );
        let page = runbooks.join(format!("{alert}.md"));
        let text = std::fs::read_to_string(&page)
            .unwrap_or_else(|_| panic!("{} is missing", page.display()));
        for section in ["## What it means", "## How to confirm", "## How to fix"] {
            assert!(
                text.contains(section),
                "{}: no {section:?} section",
                page.display()
            );
        }
    }
    // Extra labels from values reach every alert but cannot replace component or severity.
    let custom = render(
        RELEASE,
        "flux-system",
        &[],
        &[
            "prometheusRule.additionalAlertLabels.team=platform",
            "prometheusRule.additionalAlertLabels.severity=none",
        ],
    );
    for rule in rendered_rules(&custom) {
        assert_eq!(rule["labels"]["team"], "platform");
        assert_ne!(rule["labels"]["severity"], "none");
    }
}

fn dashboard_queries(objects: &[Value]) -> Vec<String> {
    let maps = of_kind(objects, "ConfigMap");
    let map = maps
        .get("gitops-lifecycle-management-dashboard")
        .expect("dashboard ConfigMap");
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1");
    let json = map["data"]["gitops-lifecycle-management.json"]
        .as_str()
        .expect("dashboard JSON");
    let dashboard: Value = serde_json::from_str(json).expect("dashboard is JSON");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(target["expr"].as_str().expect("expr").to_owned());
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        if let Some(query) = variable["query"]["query"].as_str() {
            // label_values(<selector>, <label>)
            let inner = query
                .trim_start_matches("label_values(")
                .trim_end_matches(')');
            let selector = inner.rsplit_once(',').map_or(inner, |(s, _)| s);
            queries.push(selector.to_owned());
        }
    }
    queries
}

#[test]
fn alerts_and_dashboard_name_only_metrics_the_controllers_export() {
    let exported = sources::exported_metrics(&workspace_root());
    // The check itself must be able to fail.
    assert!(
        exported.contains("gitops_proxyconfig_reconcile_duration_seconds_bucket"),
        "{exported:?}"
    );
    assert!(
        !exported.contains("gitops_proxyconfig_reconcile_duration_seconds"),
        "histograms export _bucket/_sum/_count only"
    );
    let objects = defaults();
    let mut queries: Vec<(String, String)> = rendered_rules(&objects)
        .iter()
        .map(|r| {
            (
                format!("alert {}", r["alert"].as_str().unwrap_or("?")),
                r["expr"].as_str().expect("expr").to_owned(),
            )
        })
        .collect();
    queries.extend(
        dashboard_queries(&objects)
            .into_iter()
            .map(|q| ("dashboard".to_owned(), q)),
    );
    let mut unknown = BTreeMap::new();
    let mut used = BTreeSet::new();
    for (origin, query) in &queries {
        for name in promql::metric_names(query) {
            used.insert(name.clone());
            if !exported.contains(&name) && !NOT_FROM_THE_CONTROLLERS.contains(&name.as_str()) {
                unknown
                    .entry(name)
                    .or_insert_with(Vec::new)
                    .push(origin.clone());
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "metrics the controllers do not export: {unknown:#?}\nexported: {exported:#?}"
    );
    // SPEC §5 names the dashboard must show.
    for required in [
        "gitops_proxyconfig_phase",
        "gitops_authentik_request_duration_seconds_bucket",
        "gitops_retry_attempts_total",
        "gitops_cleanup_jobs_cleaned_total",
        "container_memory_working_set_bytes",
        "container_cpu_usage_seconds_total",
    ] {
        assert!(used.contains(required), "nothing queries {required}");
    }
}

#[test]
fn promtool_checks_the_rules_and_every_alert_has_a_firing_and_a_silent_test() {
    let dir = tempfile::tempdir().expect("tempdir");
    let groups = {
        let objects = defaults();
        let rule = of_kind(&objects, "PrometheusRule");
        rule["gitops-lifecycle-management-alerts"]["spec"]["groups"].clone()
    };
    let rules_file = dir.path().join("rules.yaml");
    std::fs::write(
        &rules_file,
        serde_json::to_string_pretty(&serde_json::json!({"groups": groups})).expect("json"),
    )
    .expect("write rules");
    let promtool = tool("prometheus", "promtool");
    run(
        &promtool,
        &["check", "rules", rules_file.to_str().expect("utf-8")],
        None,
        None,
    )
    .ok("promtool check rules");

    let tests_dir = chart_dir().join("tests/alerts");
    let mut test_files = Vec::new();
    let mut firing: BTreeSet<String> = BTreeSet::new();
    let mut silent: BTreeSet<String> = BTreeSet::new();
    for entry in std::fs::read_dir(&tests_dir)
        .expect("tests/alerts")
        .flatten()
    {
        let path = entry.path();
        let text = std::fs::read_to_string(&path).expect("test file");
        let document: Value = serde_saphyr::from_str(&text).expect("test file YAML");
        for test in document["tests"].as_array().expect("tests") {
            for case in test["alert_rule_test"].as_array().into_iter().flatten() {
                let alert = case["alertname"].as_str().expect("alertname").to_owned();
                let expected = case["exp_alerts"].as_array().map_or(0, Vec::len);
                if expected > 0 {
                    firing.insert(alert)
                } else {
                    silent.insert(alert)
                };
            }
        }
        let copy = dir.path().join(path.file_name().expect("file name"));
        std::fs::copy(&path, &copy).expect("copy test file");
        test_files.push(copy.display().to_string());
    }
    for alert in SPEC_ALERTS {
        assert!(firing.contains(*alert), "no promtool case fires {alert}");
        assert!(
            silent.contains(*alert),
            "no promtool case keeps {alert} silent"
        );
    }
    let mut args = vec!["test", "rules"];
    args.extend(test_files.iter().map(String::as_str));
    run(&promtool, &args, None, None).ok("promtool test rules");
}

// ---------------------------------------------------------------------------------------------
// Naming contract (rendered; the install test checks the same names in a real API server)

#[test]
fn names_the_runbook_uses_are_rendered() {
    let objects = all_features();
    let deployments = of_kind(&objects, "Deployment");
    for (name, component) in [
        (
            "gitops-lifecycle-management-service-discovery",
            "service-discovery-controller",
        ),
        ("gitops-lifecycle-management-cleanup", "cleanup-controller"),
    ] {
        let labels = &deployments[name]["spec"]["template"]["metadata"]["labels"];
        assert_eq!(
            labels["app.kubernetes.io/name"],
            "gitops-lifecycle-management"
        );
        assert_eq!(labels["app.kubernetes.io/component"], component);
        assert_eq!(labels["app.kubernetes.io/instance"], RELEASE);
    }
    let services = gitops_e2e::names_of_kind(&objects, "Service");
    assert!(services.contains("gitops-lifecycle-management-service-discovery-metrics"));
    assert!(services.contains("gitops-lifecycle-management-cleanup-metrics"));
    assert!(of_kind(&objects, "ClusterRole").contains_key(RELEASE));
    assert!(of_kind(&objects, "ClusterRoleBinding").contains_key(RELEASE));
    assert!(of_kind(&objects, "PrometheusRule").contains_key("gitops-lifecycle-management-alerts"));
    let secrets = of_kind(&objects, "ExternalSecret");
    assert_eq!(secrets.len(), 2);
    assert!(secrets.values().all(
        |s| s["metadata"]["labels"]["app.kubernetes.io/name"] == "gitops-lifecycle-management"
    ));
    // The token ExternalSecret creates the Secret the Deployments mount.
    let mounted = &deployments["gitops-lifecycle-management-cleanup"]["spec"]["template"]["spec"]["volumes"]
        [0]["secret"]["secretName"];
    assert!(
        secrets
            .values()
            .any(|s| &s["spec"]["target"]["name"] == mounted)
    );
}

#[test]
fn examples_are_service_and_proxyconfig_pairs_of_the_original_services() {
    let expected = [
        ("longhorn.yaml", "longhorn-frontend", "longhorn-system", 80),
        ("alertmanager.yaml", "alertmanager", "monitoring", 9093),
        ("hubble-ui.yaml", "hubble-ui", "kube-system", 80),
        (
            "home-assistant.yaml",
            "home-assistant",
            "home-automation",
            8123,
        ),
    ];
    for (file, service, namespace, port) in expected {
        let path = workspace_root().join("deploy/examples").join(file);
        let objects = gitops_e2e::documents(&std::fs::read_to_string(&path).expect("example"));
        let svc = of_kind(&objects, "Service")[service];
        assert_eq!(svc["metadata"]["namespace"], namespace);
        assert_eq!(svc["spec"]["ports"][0]["port"], port);
        let pcs = of_kind(&objects, "ProxyConfig");
        let pc = pcs.values().next().expect("a ProxyConfig");
        assert_eq!(pc["spec"]["serviceName"], service);
        assert_eq!(pc["spec"]["serviceNamespace"], namespace);
        assert_eq!(pc["spec"]["port"], port);
        assert_eq!(
            pc["spec"]["internalHost"],
            format!("http://{service}.{namespace}.svc.cluster.local:{port}")
        );
    }
}

#[test]
fn flux_kustomization_points_at_deploy_flux() {
    let root = workspace_root();
    let kustomization: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(root.join("deploy/flux/kustomization.yaml"))
            .expect("kustomization.yaml"),
    )
    .expect("YAML");
    for resource in kustomization["resources"].as_array().expect("resources") {
        assert!(
            root.join("deploy/flux")
                .join(resource.as_str().expect("path"))
                .is_file(),
            "{resource}"
        );
    }
    let flux: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(root.join("deploy/flux/flux-kustomization.yaml"))
            .expect("flux-kustomization.yaml"),
    )
    .expect("YAML");
    assert_eq!(flux["apiVersion"], "kustomize.toolkit.fluxcd.io/v1");
    assert_eq!(flux["metadata"]["namespace"], "flux-system");
    let path = flux["spec"]["path"].as_str().expect("path");
    assert!(
        root.join(path).join("kustomization.yaml").is_file(),
        "{path}"
    );
    let release: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(root.join("deploy/flux/helmrelease.yaml"))
            .expect("helmrelease.yaml"),
    )
    .expect("YAML");
    assert_eq!(release["metadata"]["name"], RELEASE);
    assert_eq!(release["metadata"]["namespace"], "flux-system");
    let chart = release["spec"]["chart"]["spec"]["chart"]
        .as_str()
        .expect("chart path");
    assert!(
        Path::new(&root).join(chart).join("Chart.yaml").is_file(),
        "{chart}"
    );
    // The HelmRelease's values pass the chart's schema.
    let values = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(
        values.path(),
        serde_json::to_string(&release["spec"]["values"]).expect("json"),
    )
    .expect("write");
    render(RELEASE, "flux-system", &[values.path()], &[]);
}

//! Every command against the real API server, the authentik double (or, in contract mode, an
//! external authentik) and the real service-discovery controller.

mod common;

use std::sync::{Arc, Mutex};

use common::{
    RELEASE, cli, harness, install_deployment, install_deployment_with_env, install_release_secret,
    set_ready_pods,
};
use gitops_crd::ownership::{
    AuthentikKind, AuthentikObject, AuthentikObjectSpec, Origin, ProxyConfigRef, record_name,
};
use gitops_crd::{Phase, ProxyConfig};
use gitops_harness::{Harness, skip_in_contract_mode};
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// A harness whose controller has made `names` Ready (each with its Service on port 80).
async fn converged(purpose: &str, names: &[&str]) -> (Harness, usize) {
    let mut h = harness(purpose).await;
    let controller = h.start_single();
    for name in names {
        h.create_service(name, 80).await;
        h.apply(h.proxyconfig(name)).await;
    }
    for name in names {
        h.wait_phase(name, Phase::Ready).await;
    }
    (h, controller)
}

fn provider_pk(pc: &ProxyConfig) -> i64 {
    pc.status
        .as_ref()
        .and_then(|s| s.authentik_provider_id)
        .expect("provider pk in status")
}

/// A Prometheus stand-in answering `/api/v1/alerts` with whatever the test sets.
async fn prometheus(alerts: Value) -> (String, Arc<Mutex<Value>>) {
    let body = Arc::new(Mutex::new(alerts));
    let shared = body.clone();
    let app = axum::Router::new().route(
        "/api/v1/alerts",
        axum::routing::get(move || {
            let shared = shared.clone();
            async move {
                let alerts = shared.lock().expect("lock").clone();
                axum::Json(json!({"status": "success", "data": {"alerts": alerts}}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, body)
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check {name}: {report:#}"))
}

#[tokio::test]
async fn health_exits_0_when_healthy_and_1_on_problems() {
    if skip_in_contract_mode("takes authentik down") {
        return;
    }
    let (h, _controller) = converged("cli-health", &["web"]).await;
    install_release_secret(&h, "deployed", json!({})).await;
    install_deployment(&h, "service-discovery", 1).await;
    install_deployment(&h, "cleanup", 2).await;
    set_ready_pods(&h, "service-discovery", 1, 1).await;
    set_ready_pods(&h, "cleanup", 2, 2).await;
    let (url, alerts) = prometheus(json!([
        {"labels": {"alertname": "NodeDown", "component": "node", "severity": "critical"}, "state": "firing"}
    ]))
    .await;

    let table = cli(&h, &["health", "--prometheus-url", &url]).await;
    table.expect_code(0);
    assert!(table.stdout.contains("healthy"), "{table:#?}");
    assert!(table.stdout.contains("1/1 replicas ready"), "{table:#?}");

    let healthy = cli(&h, &["health", "--prometheus-url", &url, "-o", "json"]).await;
    healthy.expect_code(0);
    let report = healthy.json();
    assert_eq!(report["healthy"], true, "{report:#}");
    let names: Vec<&str> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "release",
            "glm-service-discovery",
            "glm-cleanup",
            "crds",
            "proxyconfigs",
            "controller-errors",
            "authentik",
            "alerts"
        ]
    );
    assert_eq!(report["proxyConfigsByPhase"]["Ready"], 1);
    assert_eq!(check(&report, "release")["status"], "ok");
    assert_eq!(check(&report, "crds")["status"], "ok", "{report:#}");
    // No controller Pods to read logs from: a note, not a problem.
    let errors = check(&report, "controller-errors");
    assert_eq!(errors["status"], "skipped", "{report:#}");
    assert!(
        errors["summary"]
            .as_str()
            .is_some_and(|s| s.contains("no controller Pods")),
        "{report:#}"
    );

    // Now break things: a replica down, a firing gitops alert, a failed ProxyConfig, authentik
    // unreachable.
    set_ready_pods(&h, "cleanup", 1, 2).await;
    *alerts.lock().expect("lock") = json!([
        {"labels": {"alertname": "GitOpsCleanupStalled", "component": "gitops-cleanup", "severity": "warning"}, "state": "firing"}
    ]);
    let mut broken = h.proxyconfig("broken");
    broken["spec"]["authentikConfig"]["skipPathRegex"] = json!("((");
    h.apply(broken).await;
    h.wait_phase("broken", Phase::Failed).await;
    h.double().set_down(true);

    let sick = cli(&h, &["health", "--prometheus-url", &url, "-o", "json"]).await;
    sick.expect_code(1);
    let report = sick.json();
    assert_eq!(report["healthy"], false);
    for name in ["glm-cleanup", "alerts", "proxyconfigs", "authentik"] {
        assert_eq!(
            check(&report, name)["status"],
            "problem",
            "{name}: {report:#}"
        );
    }
    assert_eq!(check(&report, "glm-service-discovery")["status"], "ok");
    assert_eq!(report["notReady"][0]["name"], "broken", "{report:#}");
    assert_eq!(report["notReady"][0]["phase"], "Failed");
    assert!(
        check(&report, "alerts")["details"][0]
            .as_str()
            .is_some_and(|d| d.contains("GitOpsCleanupStalled")),
        "{report:#}"
    );
    h.double().set_down(false);

    // Without a release Secret (another release name): reported, not a crash.
    let missing = common::run(
        &[
            "health",
            "-n",
            h.namespace(),
            "--release",
            "other",
            "--release-namespace",
            h.namespace(),
        ],
        &common::env(&h),
    )
    .await;
    missing.expect_code(1);
    assert!(
        missing.stdout.contains("Helm release other not found"),
        "{missing:#?}"
    );
    assert!(!missing.stdout.contains(RELEASE), "{missing:#?}");
}

/// The controller applies its configured defaults; verify reads them from its Deployment
/// instead of assuming the built-in ones.
#[tokio::test]
async fn verify_judges_by_the_defaults_the_controller_runs_with() {
    let mut h = harness("cli-verify-defaults").await;
    h.start_controller(&[
        "--leader-election",
        "false",
        "--cookie-domain",
        "example.com",
    ]);
    h.create_service("web", 80).await;
    h.apply(h.proxyconfig("web")).await;
    h.wait_phase("web", Phase::Ready).await;

    let assumed = cli(&h, &["verify"]).await;
    assumed.expect_code(1);
    assert!(
        assumed.stdout.contains("cookie_domain") && assumed.stdout.contains("not found"),
        "without the Deployment, the built-in defaults (and why) are used: {assumed:#?}"
    );

    install_deployment_with_env(
        &h,
        "service-discovery",
        1,
        json!([{"name": "COOKIE_DOMAIN", "value": "example.com"}]),
    )
    .await;
    let read = cli(&h, &["verify"]).await;
    if h.authentik.as_double().is_some() {
        // Alone on the double; an external authentik's outpost may hold others' providers.
        read.expect_code(0);
    }
    assert!(
        read.stdout.contains("1 ProxyConfigs: 1 in sync")
            && read.stdout.contains("cookie domain example.com")
            && read.stdout.contains(&format!(
                "from Deployment {}/{RELEASE}-service-discovery",
                h.namespace()
            )),
        "{read:#?}"
    );
    let json: Value =
        serde_json::from_str(&cli(&h, &["verify", "-o", "json"]).await.stdout).expect("JSON");
    assert_eq!(json["defaults"]["cookie_domain"], "example.com");
    assert_eq!(findings_about(&h, &json), Vec::<Value>::new());
}

/// A route serving a ProxyConfig's host without forward auth, as the controller's Protected
/// condition finds it, makes verify list it and exit 1.
#[tokio::test]
async fn verify_lists_routes_that_expose_a_protected_host() {
    use k8s_openapi::api::networking::v1::Ingress;

    let (h, _controller) = converged("cli-exposed", &["web"]).await;
    verify_exit(&h, 0).await;
    let ingress: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "web-direct"},
        "spec": {"rules": [{"host": format!("web.{}.example.com", h.namespace())}]},
    }))
    .expect("Ingress");
    let ingresses: Api<Ingress> = Api::namespaced(h.client.clone(), h.namespace());
    ingresses
        .create(&PostParams::default(), &ingress)
        .await
        .expect("Ingress");
    h.wait_until("the route to be reported", || async {
        let pc = h.get("web").await?;
        (!pc.status?.exposed_routes.is_empty()).then_some(())
    })
    .await;
    let found = verify_exit(&h, 1).await;
    let route = format!("Ingress {}/web-direct", h.namespace());
    assert!(found.stdout.contains("EXPOSED ROUTE"), "{found:#?}");
    assert!(found.stdout.contains(&route), "{found:#?}");
    let report = cli(&h, &["verify", "-o", "json"]).await.json();
    assert_eq!(report["exposed"][0]["route"], route.as_str(), "{report:#}");

    ingresses
        .delete("web-direct", &DeleteParams::default())
        .await
        .expect("deleted");
    h.wait_until("the route to be gone from the status", || async {
        let pc = h.get("web").await?;
        pc.status?.exposed_routes.is_empty().then_some(())
    })
    .await;
    verify_exit(&h, 0).await;
}

async fn verify_exit(h: &Harness, code: i32) -> common::Run {
    let run = cli(h, &["verify"]).await;
    run.expect_code(code);
    run
}

#[tokio::test]
async fn verify_finds_drift_missing_orphaned_and_foreign() {
    let (mut h, controller) = converged("cli-verify", &["alpha", "beta"]).await;
    let clean = cli(&h, &["verify", "-o", "json"]).await;
    assert_eq!(findings_about(&h, &clean.json()), Vec::<Value>::new());
    assert_eq!(clean.json()["summary"]["inSync"], 2, "{clean:#?}");
    if h.authentik.as_double().is_some() {
        // Alone on the double; an external authentik's outpost may hold others' providers.
        clean.expect_code(0);
    }

    // Stop the controller so nothing is corrected, then change authentik behind its back.
    h.kill_controller(controller).await;
    let alpha = provider_pk(&h.get("alpha").await.expect("alpha"));
    let beta = provider_pk(&h.get("beta").await.expect("beta"));
    let mut edit =
        gitops_authentik::ProxyProviderPatch::new(gitops_authentik::ProxyMode::ForwardSingle);
    edit.skip_path_regex = Some("^/health$".into());
    let authentik = h.authentik.client();
    authentik
        .patch_proxy_provider(alpha, &edit)
        .await
        .expect("alpha edited by hand");
    authentik
        .delete_proxy_provider(beta)
        .await
        .expect("beta deleted");
    let foreign_name = format!("hand-made-{}", h.namespace());
    let foreign = h
        .authentik
        .create_proxy_provider(&foreign_name, "https://hand.example.com")
        .await
        .pk;
    h.authentik
        .change_embedded_outpost(|providers| providers.push(foreign))
        .await;
    let orphan_name = format!("gone-{}", h.namespace());
    let records: Api<AuthentikObject> = Api::all(h.client.clone());
    let orphan = AuthentikObject::new(
        &record_name(AuthentikKind::Provider, &orphan_name),
        AuthentikObjectSpec {
            kind: AuthentikKind::Provider,
            authentik_name: orphan_name.clone(),
            authentik_id: Some("4242".into()),
            claimed_by: ProxyConfigRef {
                namespace: h.namespace().to_owned(),
                name: "gone".into(),
                uid: "00000000-0000-4000-8000-00000000dead".into(),
            },
            origin: Origin::Created,
            application: None,
        },
    );
    records
        .create(&PostParams::default(), &orphan)
        .await
        .expect("orphan record");

    let requests_before = h.authentik.as_double().map(|d| d.write_count());
    let found = cli(&h, &["verify", "-o", "json"]).await;
    records
        .delete(&orphan.name_any(), &DeleteParams::default())
        .await
        .expect("orphan record removed");
    found.expect_code(1);
    assert_eq!(
        h.authentik.as_double().map(|d| d.write_count()),
        requests_before,
        "verify is read-only"
    );
    let report = found.json();
    let findings = findings_about(&h, &report);
    let of_kind =
        |kind: &str| -> Vec<&Value> { findings.iter().filter(|f| f["kind"] == kind).collect() };
    let drifted = of_kind("driftedProvider");
    assert_eq!(drifted.len(), 1, "{report:#}");
    assert_eq!(drifted[0]["differences"][0]["field"], "skip_path_regex");
    assert!(
        drifted[0]["differences"][0]["have"]
            .as_str()
            .is_some_and(|v| v.contains("^/health$"))
    );
    assert!(
        of_kind("missingProvider")[0]["proxyConfig"]
            .as_str()
            .is_some_and(|p| p.ends_with("/beta")),
        "{report:#}"
    );
    assert_eq!(of_kind("orphaned")[0]["authentikId"], "4242", "{report:#}");
    assert_eq!(
        of_kind("foreignProvider")[0]["provider"],
        foreign_name.as_str(),
        "{report:#}"
    );
    assert_eq!(
        of_kind("foreignProvider").len(),
        1,
        "our own providers are not foreign: {report:#}"
    );
    assert_eq!(report["summary"]["inSync"], 0);
    if h.authentik.as_double().is_some() {
        assert_eq!(
            findings.len(),
            report["findings"].as_array().map_or(0, Vec::len),
            "{report:#}"
        );
    }

    let table = cli(&h, &["verify"]).await;
    table.expect_code(1);
    assert!(table.stdout.contains("skip_path_regex is"), "{table:#?}");
}

async fn proxyconfig_versions(h: &Harness) -> Vec<(String, String)> {
    let mut versions: Vec<(String, String)> = h
        .proxyconfigs()
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .iter()
        .map(|pc| (pc.name_any(), pc.resource_version().unwrap_or_default()))
        .collect();
    versions.sort();
    versions
}

async fn our_records(h: &Harness) -> Vec<AuthentikObject> {
    Api::<AuthentikObject>::all(h.client.clone())
        .list(&ListParams::default())
        .await
        .expect("records")
        .items
        .into_iter()
        .filter(|r| r.spec.claimed_by.namespace == h.namespace())
        .collect()
}

fn actions(run: &common::Run, kind: &str) -> Vec<String> {
    run.json()
        .as_array()
        .expect("list of actions")
        .iter()
        .filter(|a| a["kind"] == kind)
        .map(|a| a["action"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// verify's findings about this test's objects (their names carry its namespace); an external
/// authentik's outposts may also hold other tests' or people's providers.
fn findings_about(h: &Harness, report: &Value) -> Vec<Value> {
    let findings = report["findings"].as_array().expect("findings");
    findings
        .iter()
        .filter(|f| f.to_string().contains(h.namespace()))
        .cloned()
        .collect()
}

/// This test's proxy providers (pks) and applications (slugs) in authentik.
async fn our_authentik_objects(h: &Harness) -> (Vec<i64>, Vec<String>) {
    let authentik = h.authentik.client();
    let providers = authentik.list_proxy_providers().await.expect("providers");
    let applications = authentik.list_applications().await.expect("applications");
    let mut pks: Vec<i64> = providers
        .into_iter()
        .filter(|p| p.name.contains(h.namespace()))
        .map(|p| p.pk)
        .collect();
    let mut slugs: Vec<String> = applications
        .into_iter()
        .filter(|a| a.slug.contains(h.namespace()))
        .map(|a| a.slug)
        .collect();
    pks.sort_unstable();
    slugs.sort();
    (pks, slugs)
}

#[tokio::test]
async fn backup_delete_restore_is_ready_again_without_new_authentik_objects() {
    let (h, _controller) = converged("cli-backup", &["alpha", "beta"]).await;
    install_release_secret(
        &h,
        "deployed",
        json!({"cleanup": {"completedJobsTTL": "2h"}}),
    )
    .await;
    let pks = [
        provider_pk(&h.get("alpha").await.expect("alpha")),
        provider_pk(&h.get("beta").await.expect("beta")),
    ];
    let objects_before = our_authentik_objects(&h).await;
    assert_eq!(objects_before.0.len(), 2, "{objects_before:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    let backup = dir.path().join("backup");
    let backup_arg = backup.to_str().expect("utf-8");

    cli(&h, &["backup", backup_arg]).await.expect_code(0);
    let proxyconfigs =
        std::fs::read_to_string(backup.join("proxyconfigs.yaml")).expect("proxyconfigs.yaml");
    assert!(
        proxyconfigs.contains("name: alpha") && proxyconfigs.contains("name: beta"),
        "{proxyconfigs}"
    );
    for server_field in [
        "status:",
        "uid:",
        "resourceVersion:",
        "managedFields:",
        "finalizers:",
    ] {
        assert!(
            !proxyconfigs.contains(server_field),
            "{server_field} in {proxyconfigs}"
        );
    }
    let values =
        std::fs::read_to_string(backup.join("helm-values.yaml")).expect("helm-values.yaml");
    assert!(values.contains("completedJobsTTL: 2h"), "{values}");
    assert!(backup.join("proxyconfig-crd.yaml").exists());
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(backup.join("manifest.json")).expect("manifest"),
    )
    .expect("json");
    assert_eq!(manifest["proxyConfigs"], 2);
    assert_eq!(
        manifest["authentikObjects"], 2,
        "one record per ProxyConfig, for its provider and application: {manifest:#}"
    );

    // A dry run against the live state changes nothing and says so.
    let versions = proxyconfig_versions(&h).await;
    let dry = cli(&h, &["restore", backup_arg, "--dry-run", "-o", "json"]).await;
    dry.expect_code(0);
    assert_eq!(
        actions(&dry, "ProxyConfig"),
        ["unchanged", "unchanged"],
        "{dry:#?}"
    );
    assert_eq!(actions(&dry, "AuthentikObject"), ["kept"; 2], "{dry:#?}");
    assert_eq!(proxyconfig_versions(&h).await, versions);

    // Disaster: the ProxyConfigs and the ownership records are gone, authentik keeps its objects.
    for name in ["alpha", "beta"] {
        h.proxyconfigs()
            .patch(name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"annotations": {"gitops.io/skip-authentik-cleanup": "true"}}})))
            .await
            .expect("annotated");
        h.delete(name).await;
        h.wait_gone(name).await;
    }
    let records: Api<AuthentikObject> = Api::all(h.client.clone());
    for record in our_records(&h).await {
        records
            .delete(&record.name_any(), &DeleteParams::default())
            .await
            .expect("record deleted");
    }
    assert!(our_records(&h).await.is_empty());

    let dry = cli(&h, &["restore", backup_arg, "--dry-run", "-o", "json"]).await;
    dry.expect_code(0);
    assert_eq!(
        actions(&dry, "ProxyConfig"),
        ["created", "created"],
        "{dry:#?}"
    );
    assert!(
        proxyconfig_versions(&h).await.is_empty(),
        "a dry run created something"
    );
    assert!(
        our_records(&h).await.is_empty(),
        "a dry run created a record"
    );

    // A broken backup is refused before anything is applied.
    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).expect("mkdir");
    for file in ["manifest.json", "proxyconfig-crd.yaml"] {
        std::fs::copy(backup.join(file), broken.join(file)).expect("copy");
    }
    std::fs::write(
        broken.join("proxyconfigs.yaml"),
        proxyconfigs.clone() + "---\napiVersion: gitops.io/v1\nkind: ProxyConfig\nmetadata: {name: incomplete}\nspec: {serviceName: x}\n",
    )
    .expect("write");
    cli(&h, &["restore", broken.to_str().expect("utf-8")])
        .await
        .expect_one_line_error("proxyconfigs.yaml");
    assert!(
        proxyconfig_versions(&h).await.is_empty(),
        "a refused backup applied something"
    );

    let restored = cli(&h, &["restore", backup_arg]).await;
    restored.expect_code(0);
    assert!(restored.stdout.contains("helm upgrade"), "{restored:#?}");
    let ready = [
        h.wait_phase("alpha", Phase::Ready).await,
        h.wait_phase("beta", Phase::Ready).await,
    ];
    assert_eq!(
        [provider_pk(&ready[0]), provider_pk(&ready[1])],
        pks,
        "the same providers"
    );
    assert_eq!(
        our_authentik_objects(&h).await,
        objects_before,
        "restore must not create authentik objects"
    );

    let again = cli(&h, &["restore", backup_arg, "-o", "json"]).await;
    again.expect_code(0);
    assert_eq!(
        actions(&again, "ProxyConfig"),
        ["unchanged", "unchanged"],
        "{again:#?}"
    );
    assert_eq!(
        actions(&again, "AuthentikObject"),
        ["kept"; 2],
        "{again:#?}"
    );
}

#[tokio::test]
async fn onboard_prints_and_applies_a_proxyconfig() {
    let h = harness("cli-onboard").await;
    h.create_service("grafana", 3000).await;

    let printed = cli(&h, &["onboard", "grafana", "--host", "grafana.example.com"]).await;
    printed.expect_code(0);
    let pc: ProxyConfig =
        serde_saphyr::from_str(&printed.stdout).expect("printed YAML is a ProxyConfig");
    assert_eq!(pc.name_any(), "grafana-proxy");
    assert_eq!(pc.spec.external_host, "grafana.example.com");
    assert_eq!(pc.spec.port, 3000);
    assert_eq!(
        pc.spec.internal_host,
        format!("http://grafana.{}.svc.cluster.local:3000", h.namespace())
    );
    assert!(
        h.get("grafana-proxy").await.is_none(),
        "printing applies nothing"
    );

    let apply = [
        "onboard",
        "grafana",
        "--host",
        "grafana.example.com",
        "--apply",
    ];
    cli(&h, &apply).await.expect_code(0);
    let applied = h.get("grafana-proxy").await.expect("applied");
    assert_eq!(applied.spec, pc.spec);
    // Applying again is harmless.
    cli(&h, &apply).await.expect_code(0);

    cli(&h, &["onboard", "nothing-here", "--host", "x.example.com"])
        .await
        .expect_one_line_error("not found");
    cli(
        &h,
        &["onboard", "grafana", "--host", "http://plain.example.com"],
    )
    .await
    .expect_one_line_error("external-host");
}

async fn finished_job(h: &Harness, name: &str, failed: bool, hours_ago: i64) {
    let jobs: Api<Job> = Api::namespaced(h.client.clone(), h.namespace());
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            // The Job controller leaves Jobs it does not manage alone: the test sets the status.
            "managedBy": "example.com/test",
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}
        }
    }))
    .expect("job");
    jobs.create(&PostParams::default(), &job)
        .await
        .expect("job created");
    let at = k8s_openapi::jiff::Timestamp::now()
        .checked_sub(k8s_openapi::jiff::SignedDuration::from_hours(hours_ago))
        .expect("time")
        .to_string();
    let status = if failed {
        json!({"startTime": at, "failed": 1, "conditions": [
            {"type": "FailureTarget", "status": "True", "lastTransitionTime": at},
            {"type": "Failed", "status": "True", "lastTransitionTime": at}]})
    } else {
        json!({"startTime": at, "completionTime": at, "succeeded": 1, "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": at},
            {"type": "Complete", "status": "True", "lastTransitionTime": at}]})
    };
    jobs.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await
    .expect("job status");
}

#[tokio::test]
async fn report_counts_finished_jobs_and_authentik_consistency() {
    let (h, _controller) = converged("cli-report", &["web"]).await;
    finished_job(&h, "done-recently", false, 2).await;
    finished_job(&h, "failed-long-ago", true, 30).await;

    let run = cli(&h, &["report", "-o", "json"]).await;
    run.expect_code(0);
    let report = run.json();
    assert_eq!(
        report["finishedJobs"]["complete"]["from1hTo24h"], 1,
        "{report:#}"
    );
    assert_eq!(report["finishedJobs"]["failed"]["over24h"], 1, "{report:#}");
    assert_eq!(
        report["finishedJobs"]["complete"]["under1h"], 0,
        "{report:#}"
    );
    assert_eq!(
        report["authentikConsistency"]["proxyConfigs"], 1,
        "{report:#}"
    );
    assert_eq!(report["authentikConsistency"]["inSync"], 1, "{report:#}");
    assert_eq!(report["notReady"], json!([]));
    assert!(
        report["logNotes"][0]
            .as_str()
            .is_some_and(|n| n.contains("no controller Pods")),
        "{report:#}"
    );

    // Without authentik the rest of the review still runs, with a note.
    let kubeconfig = h.env.kubeconfig().display().to_string();
    let without = common::run(
        &[
            "report",
            "-n",
            h.namespace(),
            "--release-namespace",
            h.namespace(),
        ],
        &[("KUBECONFIG", kubeconfig)],
    )
    .await;
    without.expect_code(0);
    assert!(
        without.stdout.contains("Cleanup effectiveness"),
        "{without:#?}"
    );
    assert!(
        without.stdout.contains("not checked: set --authentik-url"),
        "{without:#?}"
    );
}

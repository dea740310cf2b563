//! `kubectl gitops health`: the runbook's morning check as one command.

use std::collections::BTreeMap;

use gitops_crd::names::condition_types;
use gitops_crd::ownership::AuthentikObject;
use gitops_crd::{Phase, ProxyConfig};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde_json::Value;

use crate::args::{Global, HealthArgs};
use crate::consistency::list_proxyconfigs;
use crate::error::{CliError, describe_kube};
use crate::logs::{self, ControllerLogs};
use crate::output::{Format, Table, print_json};
use crate::release::{self, Lookup};
use crate::{Outcome, authentik, cluster};

/// The Deployments of a release, by the chart's naming contract.
pub const CONTROLLERS: [&str; 2] = ["service-discovery", "cleanup"];
/// How many recent error lines `health` shows.
const SHOWN_ERROR_LINES: usize = 5;

/// What was read from the cluster, authentik and Prometheus.
#[derive(Debug)]
pub struct Facts {
    pub release_name: String,
    pub release: Lookup,
    pub deployments: Vec<DeploymentFact>,
    /// The product's resources the API server does not serve (`plural.group/version`), or why
    /// that could not be read.
    pub unserved_crds: Result<Vec<String>, String>,
    pub proxyconfigs: Result<Vec<ProxyConfig>, String>,
    pub logs: ControllerLogs,
    /// `None`: not configured; else the user the token belongs to, or the error.
    pub authentik: Option<Result<String, String>>,
    /// `None`: no Prometheus URL; else the firing gitops alerts, or the error.
    pub alerts: Option<Result<Vec<String>, String>>,
}

/// One controller Deployment: (ready, desired) replicas, `None` if absent, or why it could not
/// be read.
#[derive(Debug)]
pub struct DeploymentFact {
    pub name: String,
    pub replicas: Result<Option<(i32, i32)>, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Problem,
    /// Could not be checked here; not counted as a problem (the note says why).
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub summary: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

/// A ProxyConfig that is not Ready, and why (its Ready condition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotReady {
    pub namespace: String,
    pub name: String,
    pub phase: String,
    pub reason: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    pub healthy: bool,
    pub checks: Vec<Check>,
    pub proxy_configs_by_phase: BTreeMap<String, usize>,
    pub not_ready: Vec<NotReady>,
}

pub async fn run(global: &Global, args: &HealthArgs) -> Result<Outcome, CliError> {
    let authentik = authentik::optional(global)?;
    let cluster = cluster::connect(global).await?;
    let client = &cluster.client;
    let namespace = &global.release_namespace;

    let deployments_api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let mut deployments = Vec::new();
    for controller in CONTROLLERS {
        let name = format!("{}-{controller}", global.release);
        let replicas = deployments_api
            .get_opt(&name)
            .await
            .map(|found| found.map(|d| replicas(&d)))
            .map_err(|error| describe_kube(&error));
        deployments.push(DeploymentFact { name, replicas });
    }
    let authentik = match authentik {
        None => None,
        Some(client) => Some(
            client
                .current_user()
                .await
                .map(|session| session.user.username)
                .map_err(|error| error.to_string()),
        ),
    };
    let alerts = match &args.prometheus_url {
        None => None,
        Some(url) => Some(firing_alerts(url).await),
    };
    let facts = Facts {
        release_name: global.release.clone(),
        release: release::latest(client, namespace, &global.release).await,
        deployments,
        unserved_crds: unserved_crds(client).await,
        proxyconfigs: list_proxyconfigs(client, global.namespace.as_deref())
            .await
            .map_err(|error| error.to_string()),
        logs: logs::read(client, namespace, args.since).await,
        authentik,
        alerts,
    };
    let report = evaluate(&facts);
    match global.output {
        Format::Json => print_json(&report)?,
        Format::Table => print!("{}", render(&report)),
    }
    Ok(Outcome::from_problems(!report.healthy))
}

/// The product's CRDs the API server does not serve (missing, or not at the version this
/// release uses): without them the controllers run but do nothing.
async fn unserved_crds(client: &kube::Client) -> Result<Vec<String>, String> {
    let mut unserved = Vec::new();
    for (group, version, plural) in [
        (
            ProxyConfig::group(&()),
            ProxyConfig::version(&()),
            ProxyConfig::plural(&()),
        ),
        (
            AuthentikObject::group(&()),
            AuthentikObject::version(&()),
            AuthentikObject::plural(&()),
        ),
    ] {
        let served = match client
            .list_api_group_resources(&format!("{group}/{version}"))
            .await
        {
            Ok(list) => list.resources.iter().any(|r| r.name == plural),
            Err(kube::Error::Api(status)) if status.code == 404 => false,
            Err(error) => return Err(describe_kube(&error)),
        };
        if !served {
            unserved.push(format!("{plural}.{group}/{version}"));
        }
    }
    Ok(unserved)
}

fn replicas(deployment: &Deployment) -> (i32, i32) {
    let ready = deployment
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    let desired = deployment.spec.replicas.unwrap_or(1);
    (ready, desired)
}

async fn firing_alerts(base: &str) -> Result<Vec<String>, String> {
    let url = format!("{}/api/v1/alerts", base.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(15))
        .build()
        .map_err(|error| error.to_string())?;
    let response = client
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|error| format!("querying {url}: {error}"))?;
    let body: Value = response
        .json()
        .await
        .map_err(|error| format!("{url} did not answer Prometheus JSON: {error}"))?;
    Ok(gitops_alerts(&body))
}

/// Firing alerts whose `component` label contains `gitops`, as `name (severity)`.
pub fn gitops_alerts(body: &Value) -> Vec<String> {
    let alerts = body
        .pointer("/data/alerts")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    alerts
        .iter()
        .filter(|a| a["state"] == "firing")
        .filter(|a| {
            a.pointer("/labels/component")
                .and_then(Value::as_str)
                .is_some_and(|c| c.contains("gitops"))
        })
        .map(|a| {
            let label = |key: &str| a["labels"][key].as_str().unwrap_or("?").to_owned();
            format!("{} ({})", label("alertname"), label("severity"))
        })
        .collect()
}

pub fn phase_name(pc: &ProxyConfig) -> String {
    match pc.status.as_ref().and_then(|s| s.phase) {
        Some(Phase::Ready) => "Ready",
        Some(Phase::Pending) => "Pending",
        Some(Phase::Failed) => "Failed",
        None => "Unknown",
    }
    .to_owned()
}

/// The ProxyConfigs that are not Ready, with their Ready condition's reason and message.
pub fn not_ready(proxyconfigs: &[ProxyConfig]) -> Vec<NotReady> {
    proxyconfigs
        .iter()
        .filter(|pc| phase_name(pc) != "Ready")
        .map(|pc| {
            let ready = pc.status.as_ref().and_then(|s| {
                s.conditions
                    .iter()
                    .find(|c| c.type_ == condition_types::READY)
            });
            NotReady {
                namespace: pc.namespace().unwrap_or_default(),
                name: pc.name_any(),
                phase: phase_name(pc),
                reason: ready
                    .map(|c| c.reason.clone())
                    .unwrap_or_else(|| "NoStatus".into()),
                message: ready.map(|c| c.message.clone()).unwrap_or_else(|| {
                    "the service-discovery controller has not reported on it yet".into()
                }),
            }
        })
        .collect()
}

/// The verdict (pure).
pub fn evaluate(facts: &Facts) -> HealthReport {
    let mut checks = Vec::new();
    let check = |name: &str, ok: bool, summary: String, details: Vec<String>| Check {
        name: name.to_owned(),
        status: if ok { Status::Ok } else { Status::Problem },
        summary,
        details,
    };

    checks.push(match &facts.release {
        Lookup::Found(release) => check(
            "release",
            release.status == "deployed",
            format!(
                "{} revision {}: {} ({})",
                release.name, release.revision, release.status, release.chart
            ),
            Vec::new(),
        ),
        Lookup::NotFound => check(
            "release",
            false,
            format!("Helm release {} not found", facts.release_name),
            Vec::new(),
        ),
        Lookup::Unreadable(reason) => check("release", false, reason.clone(), Vec::new()),
    });

    for DeploymentFact { name, replicas } in &facts.deployments {
        checks.push(match replicas {
            Ok(Some((ready, desired))) => check(
                name,
                *desired > 0 && ready >= desired,
                format!("{ready}/{desired} replicas ready"),
                Vec::new(),
            ),
            Ok(None) => check(name, false, "Deployment not found".into(), Vec::new()),
            Err(reason) => check(name, false, reason.clone(), Vec::new()),
        });
    }

    checks.push(match &facts.unserved_crds {
        Ok(unserved) if unserved.is_empty() => {
            check("crds", true, "ProxyConfig and AuthentikObject served".into(), Vec::new())
        }
        Ok(unserved) => check(
            "crds",
            false,
            format!("not served: {}", unserved.join(", ")),
            vec![
                "the controllers cannot watch them and do nothing until they are installed".into(),
                "install or upgrade the CRDs: helm upgrade with crds.install=true, or kubectl apply --server-side -f deploy/crds/".into(),
            ],
        ),
        Err(reason) => check("crds", false, reason.clone(), Vec::new()),
    });

    let mut by_phase = BTreeMap::new();
    let mut not_ready_list = Vec::new();
    checks.push(match &facts.proxyconfigs {
        Ok(proxyconfigs) => {
            for pc in proxyconfigs {
                *by_phase.entry(phase_name(pc)).or_insert(0) += 1;
            }
            not_ready_list = not_ready(proxyconfigs);
            let counts: Vec<String> = by_phase.iter().map(|(p, n)| format!("{n} {p}")).collect();
            check(
                "proxyconfigs",
                not_ready_list.is_empty(),
                if proxyconfigs.is_empty() {
                    "none".to_owned()
                } else {
                    counts.join(", ")
                },
                not_ready_list
                    .iter()
                    .map(|n| {
                        format!(
                            "{}/{}: {} ({}: {})",
                            n.namespace, n.name, n.phase, n.reason, n.message
                        )
                    })
                    .collect(),
            )
        }
        Err(reason) => check("proxyconfigs", false, reason.clone(), Vec::new()),
    });

    let logs = &facts.logs;
    checks.push(if logs.readable() {
        let count = logs.error_lines.len();
        let shown = logs.error_lines.len().saturating_sub(SHOWN_ERROR_LINES);
        let mut details = logs.error_lines[shown..].to_vec();
        details.extend(logs.unreadable.iter().map(|u| format!("unreadable: {u}")));
        check(
            "controller-errors",
            count == 0,
            format!("{count} error lines"),
            details,
        )
    } else {
        Check {
            name: "controller-errors".into(),
            status: Status::Skipped,
            summary: if logs.pods == 0 && logs.unreadable.is_empty() {
                "no controller Pods found, no logs to read".into()
            } else {
                "controller logs could not be read (no kubelet, or no permission for pods/log)"
                    .into()
            },
            details: logs.unreadable.clone(),
        }
    });

    checks.push(match &facts.authentik {
        None => Check {
            name: "authentik".into(),
            status: Status::Skipped,
            summary: "not checked: set --authentik-url (or AUTHENTIK_HOST) and the token".into(),
            details: Vec::new(),
        },
        Some(Ok(user)) => check(
            "authentik",
            true,
            format!("reachable, token of {user}"),
            Vec::new(),
        ),
        Some(Err(reason)) => check("authentik", false, reason.clone(), Vec::new()),
    });

    if let Some(alerts) = &facts.alerts {
        checks.push(match alerts {
            Ok(firing) => check(
                "alerts",
                firing.is_empty(),
                format!("{} firing gitops alerts", firing.len()),
                firing.clone(),
            ),
            Err(reason) => check("alerts", false, reason.clone(), Vec::new()),
        });
    }

    HealthReport {
        healthy: checks.iter().all(|c| c.status != Status::Problem),
        checks,
        proxy_configs_by_phase: by_phase,
        not_ready: not_ready_list,
    }
}

fn render(report: &HealthReport) -> String {
    let mut table = Table::new(&["CHECK", "STATUS", "SUMMARY"]);
    for check in &report.checks {
        let status = match check.status {
            Status::Ok => "ok",
            Status::Problem => "PROBLEM",
            Status::Skipped => "skipped",
        };
        table.row(vec![
            check.name.clone(),
            status.into(),
            check.summary.clone(),
        ]);
        for detail in &check.details {
            table.row(vec![String::new(), String::new(), format!("- {detail}")]);
        }
    }
    let problems = report
        .checks
        .iter()
        .filter(|c| c.status == Status::Problem)
        .count();
    let verdict = if report.healthy {
        "healthy".to_owned()
    } else {
        format!("{problems} problem(s) found")
    };
    format!("{}\n{verdict}\n", table.render())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts() -> Facts {
        Facts {
            release_name: "glm".into(),
            release: Lookup::NotFound,
            deployments: vec![DeploymentFact {
                name: "glm-service-discovery".into(),
                replicas: Ok(Some((1, 1))),
            }],
            unserved_crds: Ok(Vec::new()),
            proxyconfigs: Ok(Vec::new()),
            logs: ControllerLogs::default(),
            authentik: None,
            alerts: None,
        }
    }

    fn status_of(report: &HealthReport, name: &str) -> Status {
        report
            .checks
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.status)
            .unwrap_or_else(|| panic!("no check {name}"))
    }

    #[test]
    fn a_missing_release_is_a_problem_unreadable_logs_are_not() {
        let report = evaluate(&facts());
        assert!(!report.healthy);
        assert_eq!(status_of(&report, "release"), Status::Problem);
        assert_eq!(status_of(&report, "glm-service-discovery"), Status::Ok);
        assert_eq!(status_of(&report, "controller-errors"), Status::Skipped);
        assert_eq!(status_of(&report, "authentik"), Status::Skipped);
    }

    #[test]
    fn replicas_short_of_desired_and_error_lines_are_problems() {
        let mut facts = facts();
        facts.release = Lookup::Found(crate::release::HelmRelease {
            name: "glm".into(),
            revision: 1,
            status: "deployed".into(),
            chart: "c-1".into(),
            values: json!({}),
        });
        assert!(evaluate(&facts).healthy);
        facts.deployments[0].replicas = Ok(Some((0, 2)));
        facts.logs = ControllerLogs {
            pods: 1,
            error_lines: vec!["ERROR boom".into()],
            unreadable: Vec::new(),
        };
        let report = evaluate(&facts);
        assert_eq!(status_of(&report, "glm-service-discovery"), Status::Problem);
        assert_eq!(status_of(&report, "controller-errors"), Status::Problem);
    }

    #[test]
    fn a_crd_that_is_not_served_is_named_with_the_fix() {
        let mut facts = facts();
        assert_eq!(status_of(&evaluate(&facts), "crds"), Status::Ok);
        facts.unserved_crds = Ok(vec!["authentikobjects.gitops.io/v1".into()]);
        let report = evaluate(&facts);
        let crds = report
            .checks
            .iter()
            .find(|c| c.name == "crds")
            .expect("crds");
        assert_eq!(crds.status, Status::Problem);
        assert!(
            crds.summary.contains("authentikobjects.gitops.io/v1"),
            "{crds:?}"
        );
        assert!(
            crds.details.iter().any(|d| d.contains("deploy/crds/")),
            "{crds:?}"
        );
    }

    #[test]
    fn only_firing_gitops_alerts_count() {
        let body = json!({"status": "success", "data": {"alerts": [
            {"labels": {"alertname": "GitOpsControllerDown", "component": "gitops-service-discovery", "severity": "critical"}, "state": "firing"},
            {"labels": {"alertname": "GitOpsSlow", "component": "gitops-cleanup", "severity": "warning"}, "state": "pending"},
            {"labels": {"alertname": "NodeDown", "component": "node", "severity": "critical"}, "state": "firing"}
        ]}});
        assert_eq!(
            gitops_alerts(&body),
            vec!["GitOpsControllerDown (critical)"]
        );
    }
}

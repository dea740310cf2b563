//! `kubectl gitops report`: the runbook's weekly review — error patterns, non-Ready
//! ProxyConfigs, cleanup effectiveness (finished Jobs by age), authentik consistency.

use gitops_crd::ProxyConfig;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use serde::Serialize;

use crate::args::{Global, ReportArgs};
use crate::consistency::{self, Summary, list_proxyconfigs};
use crate::error::CliError;
use crate::health::{NotReady, not_ready};
use crate::logs::{self, Pattern};
use crate::output::{Format, Table, print_json};
use crate::{Outcome, authentik, cluster, settings};

const TOP_PATTERNS: usize = 10;

/// Finished Jobs by how long ago they finished.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgeBuckets {
    pub under_1h: usize,
    pub from_1h_to_24h: usize,
    pub over_24h: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FinishedJobs {
    pub complete: AgeBuckets,
    pub failed: AgeBuckets,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub error_patterns: Vec<Pattern>,
    /// Why the logs could not be read (patterns are then incomplete or empty).
    pub log_notes: Vec<String>,
    pub not_ready: Vec<NotReady>,
    pub finished_jobs: FinishedJobs,
    /// `None` when authentik was not checked; see `authentikNote`.
    pub authentik_consistency: Option<Summary>,
    pub authentik_note: Option<String>,
}

pub async fn run(global: &Global, args: &ReportArgs) -> Result<Outcome, CliError> {
    let authentik = authentik::optional(global)?;
    let cluster = cluster::connect(global).await?;
    let client = &cluster.client;
    let scope = global.namespace.as_deref();

    let logs = logs::read(client, &global.release_namespace, args.since).await;
    let log_notes = if logs.readable() {
        logs.unreadable.clone()
    } else if logs.pods == 0 && logs.unreadable.is_empty() {
        vec!["no controller Pods found".to_owned()]
    } else {
        let mut notes = vec![
            "controller logs could not be read (no kubelet, or no permission for pods/log)"
                .to_owned(),
        ];
        notes.extend(logs.unreadable.iter().cloned());
        notes
    };
    let proxyconfigs: Vec<ProxyConfig> = list_proxyconfigs(client, scope).await?;
    let jobs_api: Api<Job> = match scope {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let jobs = jobs_api
        .list(&ListParams::default())
        .await
        .map_err(|error| CliError::kube("listing Jobs", &error))?
        .items;
    let (authentik_consistency, authentik_note) = match authentik {
        None => (
            None,
            Some("not checked: set --authentik-url (or AUTHENTIK_HOST) and the token".to_owned()),
        ),
        Some(authentik) => match consistency::gather(
            client,
            &authentik,
            scope,
            settings::read(client, &global.release_namespace, &global.release).await,
        )
        .await
        {
            Ok(observed) => (Some(consistency::evaluate(&observed).summary), None),
            Err(error) => (None, Some(error.to_string())),
        },
    };
    let report = Report {
        error_patterns: logs::top_patterns(&logs.error_lines, TOP_PATTERNS),
        log_notes,
        not_ready: not_ready(&proxyconfigs),
        finished_jobs: finished_jobs(&jobs, Timestamp::now()),
        authentik_consistency,
        authentik_note,
    };
    match global.output {
        Format::Json => print_json(&report)?,
        Format::Table => print!("{}", render(&report)),
    }
    Ok(Outcome::Clean)
}

/// When a Job finished, and whether it failed; `None` while it runs.
fn finished(job: &Job) -> Option<(Timestamp, bool)> {
    let status = job.status.as_ref()?;
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let condition = |type_: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == "True")
    };
    if let Some(complete) = condition("Complete") {
        let at = status
            .completion_time
            .as_ref()
            .or(complete.last_transition_time.as_ref())?;
        return Some((at.0, false));
    }
    let failed = condition("Failed")?;
    Some((failed.last_transition_time.as_ref()?.0, true))
}

/// Finished Jobs by age (pure).
pub fn finished_jobs(jobs: &[Job], now: Timestamp) -> FinishedJobs {
    let mut result = FinishedJobs::default();
    for (at, failed) in jobs.iter().filter_map(finished) {
        let age = now.as_second() - at.as_second();
        let buckets = if failed {
            &mut result.failed
        } else {
            &mut result.complete
        };
        match age {
            ..3_600 => buckets.under_1h += 1,
            3_600..86_400 => buckets.from_1h_to_24h += 1,
            _ => buckets.over_24h += 1,
        }
    }
    result
}

fn render(report: &Report) -> String {
    let mut out = String::from("== Error patterns (controller logs)\n");
    if report.error_patterns.is_empty() {
        out.push_str("none\n");
    } else {
        let mut table = Table::new(&["COUNT", "PATTERN"]);
        for p in &report.error_patterns {
            table.row(vec![p.count.to_string(), p.pattern.clone()]);
        }
        out.push_str(&table.render());
    }
    for note in &report.log_notes {
        out.push_str(&format!("note: {note}\n"));
    }

    out.push_str("\n== ProxyConfigs not Ready\n");
    if report.not_ready.is_empty() {
        out.push_str("none\n");
    } else {
        let mut table = Table::new(&["NAMESPACE", "NAME", "PHASE", "REASON", "MESSAGE"]);
        for n in &report.not_ready {
            table.row(vec![
                n.namespace.clone(),
                n.name.clone(),
                n.phase.clone(),
                n.reason.clone(),
                n.message.clone(),
            ]);
        }
        out.push_str(&table.render());
    }

    out.push_str("\n== Cleanup effectiveness (finished Jobs still present, by age)\n");
    let mut table = Table::new(&["RESULT", "<1h", "1-24h", ">24h"]);
    for (label, b) in [
        ("complete", report.finished_jobs.complete),
        ("failed", report.finished_jobs.failed),
    ] {
        table.row(vec![
            label.into(),
            b.under_1h.to_string(),
            b.from_1h_to_24h.to_string(),
            b.over_24h.to_string(),
        ]);
    }
    out.push_str(&table.render());
    out.push_str("(with the default TTLs, complete Jobs older than 1h and failed ones older than 24h should not remain)\n");

    out.push_str("\n== authentik consistency\n");
    match (&report.authentik_consistency, &report.authentik_note) {
        (Some(s), _) => out.push_str(&format!(
            "{} ProxyConfigs: {} in sync, {} skipped, {} missing, {} drifted, {} not in outpost, {} in conflict, {} unresolved; {} orphaned records; {} foreign providers in our outposts\n",
            s.proxy_configs, s.in_sync, s.skipped, s.missing, s.drifted, s.not_in_outpost, s.conflicts, s.unresolved, s.orphaned, s.foreign
        )),
        (None, Some(note)) => out.push_str(&format!("{note}\n")),
        (None, None) => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(status: serde_json::Value) -> Job {
        serde_json::from_value(json!({"metadata": {"name": "j"}, "status": status})).expect("job")
    }

    #[test]
    fn finished_jobs_are_bucketed_by_age_and_result() {
        let now: Timestamp = "2025-06-01T12:00:00Z".parse().expect("time");
        let complete = |at: &str| {
            job(
                json!({"completionTime": at, "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": at}]}),
            )
        };
        let failed = |at: &str| {
            job(
                json!({"conditions": [{"type": "Failed", "status": "True", "lastTransitionTime": at}]}),
            )
        };
        let jobs = vec![
            complete("2025-06-01T11:30:00Z"),
            complete("2025-06-01T02:00:00Z"),
            complete("2025-05-20T00:00:00Z"),
            failed("2025-06-01T11:59:00Z"),
            failed("2025-05-01T00:00:00Z"),
            job(json!({"active": 1})),
        ];
        assert_eq!(
            finished_jobs(&jobs, now),
            FinishedJobs {
                complete: AgeBuckets {
                    under_1h: 1,
                    from_1h_to_24h: 1,
                    over_24h: 1
                },
                failed: AgeBuckets {
                    under_1h: 1,
                    from_1h_to_24h: 0,
                    over_24h: 1
                },
            }
        );
    }
}

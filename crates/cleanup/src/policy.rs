//! What may be deleted and when: pure functions of an object, the current time and the policy,
//! so every rule and exemption is a row in a table test. All I/O lives elsewhere.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use gitops_crd::names::CLEANUP_ANNOTATION;
use gitops_crd::ownership::AuthentikObject;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::job_summary::JobSummary;

/// Which namespaces are in scope: all, or the included ones, minus the excluded ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceScope {
    include: BTreeSet<String>,
    exclude: BTreeSet<String>,
}

impl NamespaceScope {
    pub fn new(include: Vec<String>, exclude: Vec<String>) -> Self {
        Self {
            include: include.into_iter().collect(),
            exclude: exclude.into_iter().collect(),
        }
    }

    pub fn allows(&self, namespace: &str) -> bool {
        (self.include.is_empty() || self.include.contains(namespace))
            && !self.exclude.contains(namespace)
    }
}

/// An excluded label: any value of `key`, or exactly `key=value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelMatch {
    key: String,
    value: Option<String>,
}

impl LabelMatch {
    pub fn parse(entry: &str) -> Option<Self> {
        let (key, value) = match entry.split_once('=') {
            Some((key, value)) => (key.trim(), Some(value.trim().to_owned())),
            None => (entry.trim(), None),
        };
        (!key.is_empty()).then(|| Self {
            key: key.to_owned(),
            value,
        })
    }

    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        labels
            .get(&self.key)
            .is_some_and(|actual| self.value.as_ref().is_none_or(|wanted| wanted == actual))
    }
}

impl fmt::Display for LabelMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{}={value}", self.key),
            None => f.write_str(&self.key),
        }
    }
}

#[derive(Clone, Debug)]
pub struct JobPolicy {
    pub completed_ttl: Duration,
    pub failed_ttl: Duration,
    pub cleanup_cronjob_jobs: bool,
    pub excluded_labels: Vec<LabelMatch>,
    pub namespaces: NamespaceScope,
}

impl JobPolicy {
    pub fn ttl(&self, outcome: JobOutcome) -> Duration {
        match outcome {
            JobOutcome::Completed => self.completed_ttl,
            JobOutcome::Failed => self.failed_ttl,
        }
    }
}

#[derive(Clone, Debug)]
pub struct PodPolicy {
    /// TTL of finished Pods without a controlling owner; `None`: leave them alone.
    pub finished: Option<Duration>,
    /// How long after its grace period a terminating Pod counts as stuck; `None`: never
    /// force-delete.
    pub stuck_after: Option<Duration>,
    /// The only namespaces where stuck Pods may be force-deleted.
    pub stuck_namespaces: BTreeSet<String>,
    pub namespaces: NamespaceScope,
}

#[derive(Clone, Debug)]
pub struct OrphanPolicy {
    pub max_age: Duration,
}

/// Why an object stays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Keep {
    OutOfScope,
    OptedOut,
    ExcludedLabel(String),
    /// `ttlSecondsAfterFinished`: Kubernetes' TTL controller owns it.
    OwnTtl,
    /// Its CronJob's history limits own it.
    CronJobOwned,
    BeingDeleted,
    Running,
    /// Finished, but no time to count from: deleting could be early, so it stays.
    NoFinishTime,
    /// A Pod with a controller (Job, ReplicaSet, ...): its owner decides.
    HasController,
    /// A terminating Pod held by finalizers: force-deleting cannot remove it.
    HeldByFinalizers,
    /// The kind of cleanup is switched off.
    Disabled,
}

impl fmt::Display for Keep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Keep::OutOfScope => f.write_str("namespace out of scope"),
            Keep::OptedOut => write!(f, "annotated {CLEANUP_ANNOTATION}: \"false\""),
            Keep::ExcludedLabel(label) => write!(f, "carries excluded label {label}"),
            Keep::OwnTtl => f.write_str("sets ttlSecondsAfterFinished"),
            Keep::CronJobOwned => f.write_str("owned by a CronJob"),
            Keep::BeingDeleted => f.write_str("already being deleted"),
            Keep::Running => f.write_str("not finished"),
            Keep::NoFinishTime => f.write_str("finished at an unknown time"),
            Keep::HasController => f.write_str("has a controlling owner"),
            Keep::HeldByFinalizers => f.write_str("held by finalizers"),
            Keep::Disabled => f.write_str("this cleanup is disabled"),
        }
    }
}

/// The decision for one object; `W` says what kind of deletion is due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict<W> {
    Keep(Keep),
    /// Not yet: look again at this time.
    DeleteAt(Timestamp),
    DeleteNow(W),
}

/// How a Job finished (the `type` label of the jobs-cleaned metric).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobOutcome {
    Completed,
    Failed,
}

impl JobOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Completed => "completed",
            JobOutcome::Failed => "failed",
        }
    }
}

/// Which Pod cleanup applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodCase {
    /// Finished, no controlling owner, older than the TTL: a normal delete.
    Finished,
    /// Terminating for too long: a force delete (grace period 0).
    Stuck,
}

fn opted_out(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(CLEANUP_ANNOTATION))
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"))
}

fn namespace(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or_default()
}

/// `at + after`, or `None` when that is past the end of time (a TTL of centuries).
fn plus(at: Timestamp, after: Duration) -> Option<Timestamp> {
    SignedDuration::try_from(after)
        .ok()
        .and_then(|d| at.checked_add(d).ok())
}

fn due<W>(since: Timestamp, after: Duration, now: Timestamp, what: W) -> Verdict<W> {
    match plus(since, after) {
        Some(expiry) if expiry <= now => Verdict::DeleteNow(what),
        Some(expiry) => Verdict::DeleteAt(expiry),
        None => Verdict::DeleteAt(Timestamp::MAX),
    }
}

/// The rules of SPEC §4 for one Job, in the order an operator would ask "why is it still here?".
pub fn job_verdict(job: &JobSummary, now: Timestamp, policy: &JobPolicy) -> Verdict<JobOutcome> {
    let meta = &job.metadata;
    if !policy.namespaces.allows(namespace(meta)) {
        return Verdict::Keep(Keep::OutOfScope);
    }
    if opted_out(meta) {
        return Verdict::Keep(Keep::OptedOut);
    }
    let labels = meta.labels.clone().unwrap_or_default();
    if let Some(label) = policy.excluded_labels.iter().find(|l| l.matches(&labels)) {
        return Verdict::Keep(Keep::ExcludedLabel(label.to_string()));
    }
    if job.spec.ttl_seconds_after_finished.is_some() {
        return Verdict::Keep(Keep::OwnTtl);
    }
    let cronjob_owned = meta
        .owner_references
        .iter()
        .flatten()
        .any(|owner| owner.kind == "CronJob" && owner.api_version.starts_with("batch/"));
    if cronjob_owned && !policy.cleanup_cronjob_jobs {
        return Verdict::Keep(Keep::CronJobOwned);
    }
    if meta.deletion_timestamp.is_some() {
        return Verdict::Keep(Keep::BeingDeleted);
    }
    match job_finished(job) {
        Ok((outcome, at)) => due(at, policy.ttl(outcome), now, outcome),
        Err(keep) => Verdict::Keep(keep),
    }
}

/// When a finished Job's retention ends (`None`: not finished, or never).
pub fn job_expiry(job: &JobSummary, policy: &JobPolicy) -> Option<Timestamp> {
    let (outcome, at) = job_finished(job).ok()?;
    plus(at, policy.ttl(outcome))
}

/// How and when a Job finished: `Complete` by its completion time, `Failed` by the condition's
/// transition time (falling back to the start time). Only these terminal conditions count;
/// `SuccessCriteriaMet` / `FailureTarget` mean Pods may still be terminating.
fn job_finished(job: &JobSummary) -> Result<(JobOutcome, Timestamp), Keep> {
    let status = job.status.as_ref().ok_or(Keep::Running)?;
    let condition = |type_: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == type_ && c.status == "True")
    };
    if let Some(complete) = condition("Complete") {
        let at = status
            .completion_time
            .as_ref()
            .or(complete.last_transition_time.as_ref())
            .ok_or(Keep::NoFinishTime)?;
        return Ok((JobOutcome::Completed, at.0));
    }
    if let Some(failed) = condition("Failed") {
        let at = failed
            .last_transition_time
            .as_ref()
            .or(status.start_time.as_ref())
            .ok_or(Keep::NoFinishTime)?;
        return Ok((JobOutcome::Failed, at.0));
    }
    Err(Keep::Running)
}

/// Finished Pods with no controlling owner, and Pods stuck terminating in allowlisted
/// namespaces.
pub fn pod_verdict(pod: &Pod, now: Timestamp, policy: &PodPolicy) -> Verdict<PodCase> {
    let meta = &pod.metadata;
    let ns = namespace(meta);
    if !policy.namespaces.allows(ns) {
        return Verdict::Keep(Keep::OutOfScope);
    }
    if opted_out(meta) {
        return Verdict::Keep(Keep::OptedOut);
    }
    if let Some(deleting) = &meta.deletion_timestamp {
        return match policy.stuck_after {
            Some(_) if meta.finalizers.as_ref().is_some_and(|f| !f.is_empty()) => {
                Verdict::Keep(Keep::HeldByFinalizers)
            }
            // The deletion timestamp is when the grace period ends.
            Some(after) if policy.stuck_namespaces.contains(ns) => {
                due(deleting.0, after, now, PodCase::Stuck)
            }
            Some(_) => Verdict::Keep(Keep::OutOfScope),
            None => Verdict::Keep(Keep::BeingDeleted),
        };
    }
    let Some(ttl) = policy.finished else {
        return Verdict::Keep(Keep::Disabled);
    };
    let status = pod.status.as_ref();
    if !matches!(
        status.and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    ) {
        return Verdict::Keep(Keep::Running);
    }
    if meta
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true))
    {
        return Verdict::Keep(Keep::HasController);
    }
    match status.and_then(pod_finished) {
        Some(at) => due(at, ttl, now, PodCase::Finished),
        None => Verdict::Keep(Keep::NoFinishTime),
    }
}

/// When a finished Pod finished: its last container's end, else the last condition change
/// (termination flips `Ready`), never earlier than it really did.
fn pod_finished(status: &k8s_openapi::api::core::v1::PodStatus) -> Option<Timestamp> {
    let containers = status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    containers.or_else(|| {
        status
            .conditions
            .iter()
            .flatten()
            .filter_map(|c| c.last_transition_time.as_ref().map(|t| t.0))
            .max()
    })
}

/// What the orphan sweep does with one ownership record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrphanVerdict {
    /// Listing ProxyConfigs failed: nothing can be judged, nothing is touched.
    Unknown,
    /// A ProxyConfig claims it; `clear_mark`: an earlier sweep marked it orphaned.
    Claimed { clear_mark: bool },
    /// Unclaimed and not marked yet: record `status.orphanedSince` = now.
    Mark,
    /// Orphaned, grace period running until then.
    Wait(Timestamp),
    /// Orphaned past the grace period, with an authentik id: verify and delete the object,
    /// then the record.
    DeleteObject,
    /// Orphaned past the grace period, but the create was never confirmed: no proof which
    /// object it meant, so only the record goes.
    DeleteRecordOnly,
}

/// `claimant_exists`: whether a ProxyConfig with the record's `claimedBy.uid` exists; `None`
/// when that is unknown (the list failed).
pub fn orphan_verdict(
    record: &AuthentikObject,
    claimant_exists: Option<bool>,
    now: Timestamp,
    policy: &OrphanPolicy,
) -> OrphanVerdict {
    let marked = record
        .status
        .as_ref()
        .and_then(|s| s.orphaned_since.as_ref());
    match (claimant_exists, marked) {
        (None, _) => OrphanVerdict::Unknown,
        (Some(true), marked) => OrphanVerdict::Claimed {
            clear_mark: marked.is_some(),
        },
        (Some(false), None) => OrphanVerdict::Mark,
        (Some(false), Some(since)) => match due(since.0, policy.max_age, now, ()) {
            Verdict::DeleteAt(at) => OrphanVerdict::Wait(at),
            _ if record.spec.authentik_id.is_some() => OrphanVerdict::DeleteObject,
            _ => OrphanVerdict::DeleteRecordOnly,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const NOW: &str = "2026-11-10T12:00:00Z";

    fn now() -> Timestamp {
        NOW.parse().expect("timestamp")
    }

    fn ago(seconds: i64) -> String {
        (now() - SignedDuration::from_secs(seconds)).to_string()
    }

    fn job_policy() -> JobPolicy {
        JobPolicy {
            completed_ttl: Duration::from_secs(3600),
            failed_ttl: Duration::from_secs(24 * 3600),
            cleanup_cronjob_jobs: false,
            excluded_labels: vec![LabelMatch::parse("helm.sh/hook").expect("label")],
            namespaces: NamespaceScope::new(vec![], vec!["kube-system".into()]),
        }
    }

    fn completed(seconds_ago: i64) -> Value {
        json!({
            "metadata": {"name": "j", "namespace": "apps"},
            "spec": {"template": {}},
            "status": {
                "startTime": ago(seconds_ago + 10),
                "completionTime": ago(seconds_ago),
                "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True"},
                    {"type": "Complete", "status": "True", "lastTransitionTime": ago(seconds_ago)}
                ]
            }
        })
    }

    fn failed(condition_ago: Option<i64>, start_ago: Option<i64>) -> Value {
        let mut condition = json!({"type": "Failed", "status": "True"});
        if let Some(s) = condition_ago {
            condition["lastTransitionTime"] = json!(ago(s));
        }
        let mut job = json!({
            "metadata": {"name": "j", "namespace": "apps"},
            "spec": {"template": {}},
            "status": {"conditions": [{"type": "FailureTarget", "status": "True"}, condition]}
        });
        if let Some(s) = start_ago {
            job["status"]["startTime"] = json!(ago(s));
        }
        job
    }

    fn with(mut base: Value, pointer: &str, value: Value) -> Value {
        let (parent, key) = pointer.rsplit_once('/').expect("pointer");
        let target = if parent.is_empty() {
            &mut base
        } else {
            base.pointer_mut(parent).expect("parent exists")
        };
        target[key] = value;
        base
    }

    fn at(seconds_from_now: i64) -> Timestamp {
        now() + SignedDuration::from_secs(seconds_from_now)
    }

    #[test]
    fn job_rules_and_exemptions() {
        use JobOutcome::*;
        let cronjob_owner = json!([{"apiVersion": "batch/v1", "kind": "CronJob", "name": "c", "uid": "u", "controller": true}]);
        let cases: Vec<(&str, Value, Verdict<JobOutcome>)> = vec![
            (
                "completed past its TTL",
                completed(3601),
                Verdict::DeleteNow(Completed),
            ),
            (
                "completed exactly at its TTL",
                completed(3600),
                Verdict::DeleteNow(Completed),
            ),
            (
                "completed within its TTL",
                completed(600),
                Verdict::DeleteAt(at(3000)),
            ),
            (
                "failed past its TTL",
                failed(Some(86401), Some(90000)),
                Verdict::DeleteNow(Failed),
            ),
            (
                "failed within its TTL",
                failed(Some(3600), Some(4000)),
                Verdict::DeleteAt(at(86400 - 3600)),
            ),
            (
                "failed, no transition time: start time",
                failed(None, Some(86500)),
                Verdict::DeleteNow(Failed),
            ),
            (
                "failed, no time at all",
                failed(None, None),
                Verdict::Keep(Keep::NoFinishTime),
            ),
            (
                "completed without completionTime: the condition's time",
                with(completed(7200), "/status/completionTime", Value::Null),
                Verdict::DeleteNow(Completed),
            ),
            (
                "running",
                with(completed(9999), "/status/conditions", json!([])),
                Verdict::Keep(Keep::Running),
            ),
            (
                "no status",
                with(completed(9999), "/status", Value::Null),
                Verdict::Keep(Keep::Running),
            ),
            (
                "success criteria met but not yet Complete",
                with(
                    completed(9999),
                    "/status/conditions",
                    json!([{"type": "SuccessCriteriaMet", "status": "True"}]),
                ),
                Verdict::Keep(Keep::Running),
            ),
            (
                "Complete=False is not complete",
                with(
                    completed(9999),
                    "/status/conditions",
                    json!([{"type": "Complete", "status": "False"}]),
                ),
                Verdict::Keep(Keep::Running),
            ),
            (
                "ttlSecondsAfterFinished",
                with(completed(9999), "/spec/ttlSecondsAfterFinished", json!(100)),
                Verdict::Keep(Keep::OwnTtl),
            ),
            (
                "owned by a CronJob",
                with(
                    completed(9999),
                    "/metadata/ownerReferences",
                    cronjob_owner.clone(),
                ),
                Verdict::Keep(Keep::CronJobOwned),
            ),
            (
                "helm hook",
                with(
                    completed(9999),
                    "/metadata/labels",
                    json!({"helm.sh/hook": "post-install"}),
                ),
                Verdict::Keep(Keep::ExcludedLabel("helm.sh/hook".into())),
            ),
            (
                "other labels",
                with(completed(9999), "/metadata/labels", json!({"app": "x"})),
                Verdict::DeleteNow(Completed),
            ),
            (
                "opt-out annotation",
                with(
                    completed(9999),
                    "/metadata/annotations",
                    json!({"gitops.io/cleanup": "false"}),
                ),
                Verdict::Keep(Keep::OptedOut),
            ),
            (
                "opt-out annotation with another value",
                with(
                    completed(9999),
                    "/metadata/annotations",
                    json!({"gitops.io/cleanup": "true"}),
                ),
                Verdict::DeleteNow(Completed),
            ),
            (
                "excluded namespace",
                with(completed(9999), "/metadata/namespace", json!("kube-system")),
                Verdict::Keep(Keep::OutOfScope),
            ),
            (
                "already being deleted",
                with(
                    completed(9999),
                    "/metadata/deletionTimestamp",
                    json!(ago(1)),
                ),
                Verdict::Keep(Keep::BeingDeleted),
            ),
        ];
        for (name, job, expected) in cases {
            let job: JobSummary = serde_json::from_value(job).expect(name);
            assert_eq!(job_verdict(&job, now(), &job_policy()), expected, "{name}");
        }

        let mut policy = job_policy();
        policy.cleanup_cronjob_jobs = true;
        let job: JobSummary = serde_json::from_value(with(
            completed(9999),
            "/metadata/ownerReferences",
            cronjob_owner,
        ))
        .expect("job");
        assert_eq!(
            job_verdict(&job, now(), &policy),
            Verdict::DeleteNow(Completed),
            "CronJob Jobs when enabled"
        );

        policy.namespaces = NamespaceScope::new(vec!["batch".into()], vec![]);
        assert_eq!(
            job_verdict(&job, now(), &policy),
            Verdict::Keep(Keep::OutOfScope),
            "include list"
        );

        policy.excluded_labels = vec![LabelMatch::parse("keep=yes").expect("label")];
        let labelled = |value: &str| -> JobSummary {
            serde_json::from_value(with(
                completed(9999),
                "/metadata/labels",
                json!({"keep": value}),
            ))
            .expect("job")
        };
        assert_eq!(
            job_verdict(&labelled("yes"), now(), &job_policy_with(&policy)),
            Verdict::Keep(Keep::ExcludedLabel("keep=yes".into()))
        );
        assert_eq!(
            job_verdict(&labelled("no"), now(), &job_policy_with(&policy)),
            Verdict::DeleteNow(Completed)
        );

        policy.completed_ttl = Duration::from_secs(u64::MAX / 2);
        assert_eq!(
            job_verdict(
                &serde_json::from_value(completed(1)).expect("job"),
                now(),
                &job_policy_with(&policy)
            ),
            Verdict::DeleteAt(Timestamp::MAX),
            "a TTL of centuries never overflows"
        );
    }

    /// The policy's labels and TTLs with every namespace in scope.
    fn job_policy_with(policy: &JobPolicy) -> JobPolicy {
        JobPolicy {
            namespaces: NamespaceScope::default(),
            ..policy.clone()
        }
    }

    fn pod_policy() -> PodPolicy {
        PodPolicy {
            finished: Some(Duration::from_secs(3600)),
            stuck_after: Some(Duration::from_secs(300)),
            stuck_namespaces: ["apps".to_owned()].into(),
            namespaces: NamespaceScope::default(),
        }
    }

    fn finished_pod(seconds_ago: i64) -> Value {
        json!({
            "metadata": {"name": "p", "namespace": "apps"},
            "status": {
                "phase": "Succeeded",
                "containerStatuses": [
                    {"name": "a", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                     "state": {"terminated": {"exitCode": 0, "finishedAt": ago(seconds_ago + 100)}}},
                    {"name": "b", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                     "state": {"terminated": {"exitCode": 0, "finishedAt": ago(seconds_ago)}}}
                ]
            }
        })
    }

    fn terminating_pod(grace_ended_ago: i64) -> Value {
        json!({
            "metadata": {"name": "p", "namespace": "apps", "deletionTimestamp": ago(grace_ended_ago)},
            "status": {"phase": "Running"}
        })
    }

    #[test]
    fn pod_rules_and_exemptions() {
        use PodCase::*;
        let job_owner = json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "u", "controller": true}]);
        let cases: Vec<(&str, Value, Verdict<PodCase>)> = vec![
            (
                "finished past its TTL, by the last container",
                finished_pod(3600),
                Verdict::DeleteNow(Finished),
            ),
            (
                "finished within its TTL",
                finished_pod(60),
                Verdict::DeleteAt(at(3540)),
            ),
            (
                "failed counts as finished",
                with(finished_pod(4000), "/status/phase", json!("Failed")),
                Verdict::DeleteNow(Finished),
            ),
            (
                "running",
                with(finished_pod(4000), "/status/phase", json!("Running")),
                Verdict::Keep(Keep::Running),
            ),
            (
                "controlled by a Job",
                with(finished_pod(4000), "/metadata/ownerReferences", job_owner),
                Verdict::Keep(Keep::HasController),
            ),
            (
                "a non-controlling owner does not protect it",
                with(
                    finished_pod(4000),
                    "/metadata/ownerReferences",
                    json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "u"}]),
                ),
                Verdict::DeleteNow(Finished),
            ),
            (
                "no container times: the last condition change",
                json!({"metadata": {"name": "p", "namespace": "apps"}, "status": {"phase": "Failed",
                    "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": ago(4000)}]}}),
                Verdict::DeleteNow(Finished),
            ),
            (
                "no time at all",
                json!({"metadata": {"name": "p", "namespace": "apps"}, "status": {"phase": "Failed"}}),
                Verdict::Keep(Keep::NoFinishTime),
            ),
            (
                "opt-out annotation",
                with(
                    finished_pod(4000),
                    "/metadata/annotations",
                    json!({"gitops.io/cleanup": "false"}),
                ),
                Verdict::Keep(Keep::OptedOut),
            ),
            (
                "stuck terminating",
                terminating_pod(301),
                Verdict::DeleteNow(Stuck),
            ),
            (
                "terminating, not yet stuck",
                terminating_pod(100),
                Verdict::DeleteAt(at(200)),
            ),
            (
                "stuck outside the allowlist",
                with(terminating_pod(999), "/metadata/namespace", json!("other")),
                Verdict::Keep(Keep::OutOfScope),
            ),
            (
                "stuck but held by finalizers",
                with(
                    terminating_pod(999),
                    "/metadata/finalizers",
                    json!(["example.com/hold"]),
                ),
                Verdict::Keep(Keep::HeldByFinalizers),
            ),
        ];
        for (name, pod, expected) in cases {
            let pod: Pod = serde_json::from_value(pod).expect(name);
            assert_eq!(pod_verdict(&pod, now(), &pod_policy()), expected, "{name}");
        }

        let off = PodPolicy {
            finished: None,
            stuck_after: None,
            ..pod_policy()
        };
        let finished: Pod = serde_json::from_value(finished_pod(99999)).expect("pod");
        let stuck: Pod = serde_json::from_value(terminating_pod(99999)).expect("pod");
        assert_eq!(
            pod_verdict(&finished, now(), &off),
            Verdict::Keep(Keep::Disabled),
            "opt-in"
        );
        assert_eq!(
            pod_verdict(&stuck, now(), &off),
            Verdict::Keep(Keep::BeingDeleted),
            "opt-in"
        );
        let scoped = PodPolicy {
            namespaces: NamespaceScope::new(vec![], vec!["apps".into()]),
            ..pod_policy()
        };
        assert_eq!(
            pod_verdict(&stuck, now(), &scoped),
            Verdict::Keep(Keep::OutOfScope)
        );
    }

    fn record(id: Option<&str>, orphaned_ago: Option<i64>) -> AuthentikObject {
        let mut value = json!({
            "apiVersion": "gitops.io/v1",
            "kind": "AuthentikObject",
            "metadata": {"name": "provider-x"},
            "spec": {
                "kind": "Provider",
                "authentikName": "x",
                "claimedBy": {"namespace": "apps", "name": "x", "uid": "uid-1"},
                "origin": "Created"
            }
        });
        if let Some(id) = id {
            value["spec"]["authentikId"] = json!(id);
        }
        if let Some(s) = orphaned_ago {
            value["status"] = json!({"orphanedSince": ago(s)});
        }
        serde_json::from_value(value).expect("record")
    }

    #[test]
    fn orphan_rules() {
        let policy = OrphanPolicy {
            max_age: Duration::from_secs(7 * 86400),
        };
        let week = 7 * 86400;
        let cases = [
            (
                "list failed: nothing is judged",
                record(Some("1"), Some(week * 2)),
                None,
                OrphanVerdict::Unknown,
            ),
            (
                "claimed",
                record(Some("1"), None),
                Some(true),
                OrphanVerdict::Claimed { clear_mark: false },
            ),
            (
                "claimed again after being marked",
                record(Some("1"), Some(60)),
                Some(true),
                OrphanVerdict::Claimed { clear_mark: true },
            ),
            (
                "first sighting",
                record(Some("1"), None),
                Some(false),
                OrphanVerdict::Mark,
            ),
            (
                "grace period running",
                record(Some("1"), Some(60)),
                Some(false),
                OrphanVerdict::Wait(at(week - 60)),
            ),
            (
                "grace period over",
                record(Some("1"), Some(week)),
                Some(false),
                OrphanVerdict::DeleteObject,
            ),
            (
                "grace period over, no id",
                record(None, Some(week + 1)),
                Some(false),
                OrphanVerdict::DeleteRecordOnly,
            ),
            (
                "no id, grace period running",
                record(None, Some(1)),
                Some(false),
                OrphanVerdict::Wait(at(week - 1)),
            ),
        ];
        for (name, record, claimant, expected) in cases {
            assert_eq!(
                orphan_verdict(&record, claimant, now(), &policy),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn label_matches_parse_and_print() {
        assert_eq!(LabelMatch::parse("a=b").expect("kv").to_string(), "a=b");
        assert_eq!(LabelMatch::parse(" a ").expect("key").to_string(), "a");
        assert_eq!(LabelMatch::parse("=b"), None);
        assert_eq!(LabelMatch::parse(""), None);
    }
}

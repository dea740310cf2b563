//! Finished Jobs, deleted on time: the controller reconciles each Job on every change and asks
//! to be woken at its expiry (one timer per Job); at expiry the Job is read again, judged
//! again, and deleted with background propagation (its Pods go too) under uid and
//! resourceVersion preconditions, so a Job that changed or was replaced meanwhile is never
//! deleted on stale grounds. The periodic sweep calls the same code for every cached Job.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use gitops_runtime::Events;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};

use crate::error::{Error, Operation, is_conflict, is_not_found};
use crate::events::{ReportOnce, WOULD_DELETE};
use crate::job_summary::JobSummary;
use crate::metrics;
use crate::policy::{JobOutcome, JobPolicy, Verdict, job_expiry, job_verdict};
use crate::throttle::Throttle;

/// A failed read or delete is tried again this soon (the sweep is the backstop).
const RETRY: Duration = Duration::from_secs(10);
/// A Job that changed between read and delete is judged again this soon.
const RECHECK: Duration = Duration::from_secs(1);

pub struct JobCleaner {
    pub client: kube::Client,
    pub policy: JobPolicy,
    pub label_selector: Option<String>,
    pub dry_run: bool,
    pub throttle: Arc<Throttle>,
    pub events: Events,
    /// The longest a Job waits between looks, whatever its expiry.
    pub max_wait: Duration,
    /// Uids a dry run already reported, so each Job is reported once, not every sweep.
    pub reported: ReportOnce,
}

pub async fn reconcile(job: Arc<JobSummary>, cleaner: Arc<JobCleaner>) -> Result<Action, Error> {
    cleaner.handle(&job).await
}

pub fn error_policy(job: Arc<JobSummary>, error: &Error, _cleaner: Arc<JobCleaner>) -> Action {
    metrics::error(error);
    tracing::warn!(job = %job.name_any(), namespace = job.namespace().unwrap_or_default(), %error, "will retry");
    Action::requeue(RETRY)
}

impl JobCleaner {
    /// Judges one Job (from the cache) and deletes it when due.
    pub async fn handle(&self, job: &JobSummary) -> Result<Action, Error> {
        match job_verdict(job, Timestamp::now(), &self.policy) {
            Verdict::Keep(_) => Ok(Action::await_change()),
            Verdict::DeleteAt(at) => Ok(self.wake_at(at)),
            Verdict::DeleteNow(_) => self.delete(job).await,
        }
    }

    /// The full sweep's share: every cached Job that is due, however the timers fared.
    pub async fn sweep(&self, store: &Store<JobSummary>) {
        let jobs = store.state();
        let present: HashSet<String> = jobs.iter().filter_map(|j| j.uid()).collect();
        self.reported.retain(&present);
        let now = Timestamp::now();
        for job in jobs {
            if matches!(job_verdict(&job, now, &self.policy), Verdict::DeleteNow(_))
                && let Err(error) = self.delete(&job).await
            {
                metrics::error(&error);
                tracing::warn!(%error, "sweep: will retry");
            }
        }
    }

    fn wake_at(&self, at: Timestamp) -> Action {
        let wait = Duration::try_from(at.duration_since(Timestamp::now())).unwrap_or_default();
        // A few ms late rather than early, so the wake-up finds the Job expired.
        Action::requeue(wait.min(self.max_wait) + Duration::from_millis(20))
    }

    async fn delete(&self, cached: &JobSummary) -> Result<Action, Error> {
        let namespace = cached.namespace().unwrap_or_default();
        let name = cached.name_any();
        let api: Api<JobSummary> = Api::namespaced(self.client.clone(), &namespace);
        let target = format!("Job {namespace}/{name}");

        // The cache may lag: judge the Job as it is now.
        let Some(job) = self
            .reread(&api, &name)
            .await
            .map_err(|e| Error::kube(Operation::ReadJob, &target, e))?
        else {
            return Ok(Action::await_change());
        };
        let now = Timestamp::now();
        let outcome = match job_verdict(&job, now, &self.policy) {
            Verdict::DeleteNow(outcome) => outcome,
            Verdict::DeleteAt(at) => return Ok(self.wake_at(at)),
            Verdict::Keep(reason) => {
                tracing::debug!(%target, %reason, "kept after re-reading");
                return Ok(Action::await_change());
            }
        };
        if self.dry_run {
            self.report_dry_run(&job, outcome).await;
            return Ok(Action::await_change());
        }
        if let Err(cap) = self.throttle.acquire().await {
            metrics::deferred();
            tracing::info!(%target, resumes_in = ?cap.resumes_in, "deletion cap of this cycle reached; deferred");
            return Ok(Action::requeue(cap.resumes_in));
        }
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: Some(Preconditions {
                uid: job.uid(),
                resource_version: job.resource_version(),
            }),
            ..DeleteParams::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {
                let lag = job_expiry(&job, &self.policy).map_or(0.0, |expiry| {
                    Timestamp::now().duration_since(expiry).as_secs_f64()
                });
                metrics::job_deleted(outcome, lag);
                tracing::info!(%target, r#type = outcome.as_str(), lag_seconds = lag, "deleted finished Job");
                Ok(Action::await_change())
            }
            Err(error) if is_not_found(&error) => Ok(Action::await_change()),
            Err(error) if is_conflict(&error) => {
                tracing::debug!(%target, "changed or replaced since it was read; judging again");
                Ok(Action::requeue(RECHECK))
            }
            Err(error) => Err(Error::kube(Operation::DeleteJob, &target, error)),
        }
    }

    /// GET, or with a label selector a list by name, so that a Job whose labels no longer
    /// match is left alone (the API server evaluates the selector).
    async fn reread(
        &self,
        api: &Api<JobSummary>,
        name: &str,
    ) -> Result<Option<JobSummary>, kube::Error> {
        match &self.label_selector {
            None => api.get_opt(name).await,
            Some(selector) => {
                let params = ListParams::default()
                    .fields(&format!("metadata.name={name}"))
                    .labels(selector);
                Ok(api.list(&params).await?.items.into_iter().next())
            }
        }
    }

    async fn report_dry_run(&self, job: &JobSummary, outcome: JobOutcome) {
        let Some(uid) = job.uid() else { return };
        if !self.reported.first(&uid) {
            return;
        }
        let ttl = humantime::format_duration(self.policy.ttl(outcome));
        let note = format!(
            "dry run: would delete this {} Job (retention {ttl} is over)",
            outcome.as_str()
        );
        tracing::info!(job = %job.name_any(), namespace = job.namespace().unwrap_or_default(), r#type = outcome.as_str(), "dry run: would delete finished Job");
        metrics::would_delete(match outcome {
            JobOutcome::Completed => "completed_job",
            JobOutcome::Failed => "failed_job",
        });
        self.events
            .publish(&job.object_ref(&()), WOULD_DELETE, note, false)
            .await;
    }
}

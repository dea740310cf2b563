//! The cleanup controller's metrics. The SPEC §5 names are the original operations documents'
//! and alert rules'; they live here so the chart's alerts and dashboard can be checked against
//! them. Dry runs count in their own counter, so alerts on real deletions never fire for them.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::error::Error;
use crate::policy::JobOutcome;

pub mod names {
    /// Counter: Jobs deleted, by `type` (`completed`, `failed`).
    pub const JOBS_CLEANED: &str = "gitops_cleanup_jobs_cleaned_total";
    /// Histogram: time of one full sweep.
    pub const CYCLE_DURATION: &str = "gitops_cleanup_cycle_duration_seconds";
    /// Counter: failed operations, by `operation`.
    pub const ERRORS: &str = "gitops_cleanup_errors_total";
    /// Gauge: Unix time the last full sweep ended.
    pub const LAST_RUN: &str = "gitops_cleanup_last_run_timestamp_seconds";
    /// Counter: orphaned authentik objects deleted, by `kind` (`provider`, `application`).
    pub const PROVIDERS_CLEANED: &str = "gitops_cleanup_providers_cleaned_total";
    /// Counter: Pods stuck terminating that were force-deleted.
    pub const STUCK_CLEANED: &str = "gitops_cleanup_stuck_resources_cleaned_total";
    /// Counter: finished Pods without a controlling owner deleted.
    pub const PODS_CLEANED: &str = "gitops_cleanup_pods_cleaned_total";
    /// Counter: what a dry run would have deleted, by `resource` (`completed_job`,
    /// `failed_job`, `finished_pod`, `stuck_pod`, `provider`, `application`, `record`).
    pub const DRY_RUN: &str = "gitops_cleanup_dry_run_deletions_total";
    /// Counter: deletions postponed to the next cycle because the cycle's cap was reached.
    pub const DEFERRED: &str = "gitops_cleanup_deletions_deferred_total";
    /// Histogram: how long after its expiry a Job was deleted.
    pub const JOB_DELETION_LAG: &str = "gitops_cleanup_job_deletion_lag_seconds";
    /// Gauge: ownership records currently orphaned and waiting out their grace period.
    pub const ORPHANED_OBJECTS: &str = "gitops_cleanup_orphaned_objects";
}

pub fn job_deleted(outcome: JobOutcome, lag_seconds: f64) {
    metrics::counter!(names::JOBS_CLEANED, "type" => outcome.as_str()).increment(1);
    metrics::histogram!(names::JOB_DELETION_LAG).record(lag_seconds.max(0.0));
}

pub fn pod_deleted() {
    metrics::counter!(names::PODS_CLEANED).increment(1);
}

pub fn stuck_pod_deleted() {
    metrics::counter!(names::STUCK_CLEANED).increment(1);
}

pub fn authentik_object_deleted(kind: &'static str) {
    metrics::counter!(names::PROVIDERS_CLEANED, "kind" => kind).increment(1);
}

pub fn would_delete(resource: &'static str) {
    metrics::counter!(names::DRY_RUN, "resource" => resource).increment(1);
}

pub fn deferred() {
    metrics::counter!(names::DEFERRED).increment(1);
}

/// Counts a failure as it is reported (logged), so each is counted once.
pub fn error(error: &Error) {
    metrics::counter!(names::ERRORS, "operation" => error.operation().as_str()).increment(1);
}

pub fn orphaned_objects(count: usize) {
    // Counts of records fit an f64 exactly.
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!(names::ORPHANED_OBJECTS).set(count as f64);
}

/// Registers every series at zero, so dashboards and `rate()` see them before the first event.
pub fn describe() {
    for outcome in [JobOutcome::Completed, JobOutcome::Failed] {
        metrics::counter!(names::JOBS_CLEANED, "type" => outcome.as_str()).absolute(0);
    }
    for kind in ["provider", "application"] {
        metrics::counter!(names::PROVIDERS_CLEANED, "kind" => kind).absolute(0);
    }
    metrics::counter!(names::STUCK_CLEANED).absolute(0);
    metrics::counter!(names::PODS_CLEANED).absolute(0);
}

/// Times one full sweep; when dropped records its duration and the end time.
pub struct CycleTimer {
    started: Instant,
}

impl CycleTimer {
    pub fn start() -> Self {
        Self {
            started: Instant::now(),
        }
    }
}

impl Drop for CycleTimer {
    fn drop(&mut self) {
        metrics::histogram!(names::CYCLE_DURATION).record(self.started.elapsed().as_secs_f64());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        metrics::gauge!(names::LAST_RUN).set(now);
    }
}

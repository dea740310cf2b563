//! The part of a `batch/v1` Job the cleanup rules read, watched, cached and re-read in place of
//! the whole Job. A k8s-openapi `Job` takes 2.8 KB before any of its strings (the Pod template's
//! types are inline even when empty); this takes a fifth of that, and the Pod template is never
//! parsed. Deletion goes through the same type: the URL and preconditions are the Job's.

use gitops_crd::names::CLEANUP_ANNOTATION;
use k8s_openapi::api::batch::v1::JobStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct JobSummary {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: JobSummarySpec,
    pub status: Option<JobStatus>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSummarySpec {
    /// Set: Kubernetes' TTL controller owns the Job's deletion.
    pub ttl_seconds_after_finished: Option<i32>,
}

gitops_runtime::partial_resource!(
    JobSummary,
    group = "batch",
    version = "v1",
    kind = "Job",
    plural = "jobs"
);

impl JobSummary {
    /// Drops what the cached copy never needs: `managedFields`, and every annotation but the
    /// opt-out (`kubectl apply` keeps a whole copy of the manifest in one). Deciding to delete
    /// reads the Job afresh, so the cache only has to say when to look.
    pub fn trim_for_cache(&mut self) {
        self.metadata.managed_fields = None;
        self.metadata.annotations = self
            .metadata
            .annotations
            .take()
            .map(|mut annotations| {
                annotations.retain(|key, _| key == CLEANUP_ANNOTATION);
                annotations
            })
            .filter(|annotations| !annotations.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    /// A Job as `kubectl apply` leaves it, finished.
    fn applied_job() -> serde_json::Value {
        json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": "migrate", "namespace": "apps", "uid": "u1", "resourceVersion": "42",
                "labels": {"app": "migrate"},
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"a whole\":\"manifest\"}",
                    CLEANUP_ANNOTATION: "false"
                },
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]
            },
            "spec": {
                "ttlSecondsAfterFinished": 30,
                "template": {"spec": {"containers": [{"name": "m", "image": "busybox"}], "restartPolicy": "Never"}}
            },
            "status": {
                "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                "completionTime": "2026-01-01T00:00:00Z"
            }
        })
    }

    #[test]
    fn reads_what_the_rules_need_from_a_whole_job() {
        let job: JobSummary = serde_json::from_value(applied_job()).expect("a Job parses");
        assert_eq!(job.spec.ttl_seconds_after_finished, Some(30));
        assert_eq!(job.metadata.uid.as_deref(), Some("u1"));
        assert_eq!(job.metadata.resource_version.as_deref(), Some("42"));
        let status = job.status.expect("status");
        assert!(status.completion_time.is_some());
        assert_eq!(status.conditions.expect("conditions")[0].type_, "Complete");
    }

    #[test]
    fn the_cached_copy_keeps_only_the_opt_out_annotation() {
        let mut job: JobSummary = serde_json::from_value(applied_job()).expect("a Job parses");
        job.trim_for_cache();
        assert_eq!(job.metadata.managed_fields, None);
        assert_eq!(
            job.metadata.annotations,
            Some(BTreeMap::from([(
                CLEANUP_ANNOTATION.to_owned(),
                "false".to_owned()
            )]))
        );
        assert_eq!(
            job.metadata.labels,
            Some(BTreeMap::from([("app".to_owned(), "migrate".to_owned())])),
            "labels stay: exclusions match on them"
        );

        let mut unannotated = applied_job();
        unannotated["metadata"]["annotations"]
            .as_object_mut()
            .expect("annotations")
            .remove(CLEANUP_ANNOTATION);
        let mut job: JobSummary = serde_json::from_value(unannotated).expect("a Job parses");
        job.trim_for_cache();
        assert_eq!(job.metadata.annotations, None);
    }

    #[test]
    fn is_addressed_as_a_batch_v1_job() {
        use kube::Resource as _;
        assert_eq!(JobSummary::kind(&()), "Job");
        assert_eq!(JobSummary::api_version(&()), "batch/v1");
        assert_eq!(JobSummary::plural(&()), "jobs");
        assert!(size_of::<JobSummary>() * 4 < size_of::<k8s_openapi::api::batch::v1::Job>());
    }
}

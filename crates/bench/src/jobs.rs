//! Finished Jobs in bulk. Without a kubelet Jobs never finish, so each is created with
//! `spec.managedBy` (kube-controller-manager's Job controller leaves it alone) and marked
//! `Complete` through the status subresource.

use anyhow::Result;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::setup::{Bench, create_all};

/// Creates Job `name` for each `(name, completed_at)` and marks it Complete at that time.
pub async fn create_completed(bench: &Bench, jobs: Vec<(String, Timestamp)>) -> Result<()> {
    let api: Api<Job> = Api::namespaced(bench.client.clone(), bench.namespace());
    create_all(jobs, |(name, at)| {
        let api = api.clone();
        async move {
            let job: Job = serde_json::from_value(json!({
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": name},
                "spec": {
                    "managedBy": "bench.gitops.io/none",
                    "template": {"spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "work", "image": "busybox"}]
                    }}
                }
            }))
            .map_err(kube::Error::SerdeError)?;
            match api.create(&PostParams::default(), &job).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(error) => return Err(error),
            }
            let t = at.to_string();
            let status = json!({"status": {
                "startTime": t, "completionTime": t, "succeeded": 1,
                "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": t},
                    {"type": "Complete", "status": "True", "lastTransitionTime": t}
                ]
            }});
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                .await
                .map(drop)
        }
    })
    .await
}

//! Pods, each cleanup opt-in and run by the periodic sweep: finished Pods without a controlling
//! owner past their TTL (a normal delete), and Pods stuck terminating in allowlisted namespaces
//! (a force delete: grace period 0). Both under a uid precondition, from a fresh list.

use std::collections::HashSet;
use std::sync::Arc;

use gitops_runtime::Events;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use kube::{Resource, ResourceExt};

use crate::error::{Error, Operation, is_conflict, is_not_found};
use crate::events::{FORCE_DELETED, ReportOnce, WOULD_DELETE};
use crate::metrics;
use crate::policy::{PodCase, PodPolicy, Verdict, pod_verdict};
use crate::throttle::Throttle;

const PAGE: u32 = 500;

pub struct PodCleaner {
    pub client: kube::Client,
    /// Where to list: all namespaces, or the watched one.
    pub api: Api<Pod>,
    pub policy: PodPolicy,
    pub dry_run: bool,
    pub throttle: Arc<Throttle>,
    pub events: Events,
    pub reported: ReportOnce,
}

impl PodCleaner {
    pub fn enabled(&self) -> bool {
        self.policy.finished.is_some() || self.policy.stuck_after.is_some()
    }

    pub async fn sweep(&self) -> Result<(), Error> {
        let now = Timestamp::now();
        let mut seen = HashSet::new();
        let mut params = ListParams::default().limit(PAGE);
        loop {
            let page = self
                .api
                .list(&params)
                .await
                .map_err(|e| Error::kube(Operation::ListPods, "Pods", e))?;
            for pod in &page.items {
                seen.extend(pod.uid());
                if let Verdict::DeleteNow(case) = pod_verdict(pod, now, &self.policy) {
                    match self.delete(pod, case).await {
                        Ok(true) => {}
                        Ok(false) => return Ok(()), // the cycle's cap is reached
                        Err(error) => {
                            metrics::error(&error);
                            tracing::warn!(%error, "will retry next sweep");
                        }
                    }
                }
            }
            match page.metadata.continue_.filter(|t| !t.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        self.reported.retain(&seen);
        Ok(())
    }

    /// `Ok(false)`: stop, the cycle's deletion cap is reached.
    async fn delete(&self, pod: &Pod, case: PodCase) -> Result<bool, Error> {
        let namespace = pod.namespace().unwrap_or_default();
        let target = format!("Pod {namespace}/{}", pod.name_any());
        if self.dry_run {
            self.report_dry_run(pod, case).await;
            return Ok(true);
        }
        if self.throttle.acquire().await.is_err() {
            metrics::deferred();
            tracing::info!(%target, "deletion cap of this cycle reached; the rest waits for the next sweep");
            return Ok(false);
        }
        let params = DeleteParams {
            grace_period_seconds: (case == PodCase::Stuck).then_some(0),
            preconditions: Some(Preconditions {
                uid: pod.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        match api.delete(&pod.name_any(), &params).await {
            Ok(_) => {
                match case {
                    PodCase::Finished => {
                        metrics::pod_deleted();
                        tracing::info!(%target, "deleted finished Pod without a controlling owner");
                    }
                    PodCase::Stuck => {
                        metrics::stuck_pod_deleted();
                        tracing::warn!(%target, "force-deleted Pod stuck terminating");
                        let note =
                            "force-deleted: stuck terminating past its grace period".to_owned();
                        self.events
                            .publish(&pod.object_ref(&()), FORCE_DELETED, note, true)
                            .await;
                    }
                }
                Ok(true)
            }
            Err(error) if is_not_found(&error) || is_conflict(&error) => Ok(true),
            Err(error) => Err(Error::kube(Operation::DeletePod, &target, error)),
        }
    }

    async fn report_dry_run(&self, pod: &Pod, case: PodCase) {
        let Some(uid) = pod.uid() else { return };
        if !self.reported.first(&uid) {
            return;
        }
        let (resource, what) = match case {
            PodCase::Finished => (
                "finished_pod",
                "delete this finished Pod (no controlling owner, retention over)",
            ),
            PodCase::Stuck => ("stuck_pod", "force-delete this Pod stuck terminating"),
        };
        tracing::info!(pod = %pod.name_any(), namespace = pod.namespace().unwrap_or_default(), resource, "dry run: would delete Pod");
        metrics::would_delete(resource);
        self.events
            .publish(
                &pod.object_ref(&()),
                WOULD_DELETE,
                format!("dry run: would {what}"),
                false,
            )
            .await;
    }
}

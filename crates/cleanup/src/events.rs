//! Kubernetes Events, for what people should be able to find next to the object: what a dry run
//! would delete, Pods force-deleted, and authentik objects deleted as orphans (on their record;
//! records are cluster-scoped, so those Events land in `default`). Plain Job and Pod deletions
//! are only logged and counted: an Event per deleted Job would outnumber the Jobs.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use gitops_crd::names::CLEANUP_MANAGER;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

pub const WOULD_DELETE: &str = "WouldDelete";
pub const FORCE_DELETED: &str = "ForceDeleted";
pub const ORPHAN_DELETED: &str = "OrphanDeleted";
pub const ORPHAN_LEFT: &str = "OrphanLeftInPlace";

#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
}

impl Events {
    pub fn new(client: kube::Client, identity: String) -> Self {
        Self {
            recorder: Recorder::new(
                client,
                Reporter {
                    controller: CLEANUP_MANAGER.into(),
                    instance: Some(identity),
                },
            ),
        }
    }

    /// Best effort: a lost Event is logged, never a reason to stop.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        reason: &str,
        note: String,
        warning: bool,
    ) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note),
            action: "Cleanup".into(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, regarding).await {
            tracing::warn!(%error, reason, "could not publish an Event");
        }
    }
}

/// The objects a dry run has reported, so that each is reported once, not at every sweep.
#[derive(Debug, Default)]
pub struct ReportOnce(Mutex<HashSet<String>>);

impl ReportOnce {
    /// True the first time `uid` is seen.
    pub fn first(&self, uid: &str) -> bool {
        self.lock().insert(uid.to_owned())
    }

    /// Forgets objects that no longer exist.
    pub fn retain(&self, present: &HashSet<String>) {
        self.lock().retain(|uid| present.contains(uid));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

//! Kubernetes Events (published through [`gitops_runtime::Events`]), for what people should be able to find next to the object: what a dry run
//! would delete, Pods force-deleted, and authentik objects deleted as orphans (on their record;
//! records are cluster-scoped, so those Events land in `default`). Plain Job and Pod deletions
//! are only logged and counted: an Event per deleted Job would outnumber the Jobs.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

pub const WOULD_DELETE: &str = "WouldDelete";
pub const FORCE_DELETED: &str = "ForceDeleted";
pub const ORPHAN_DELETED: &str = "OrphanDeleted";
pub const ORPHAN_LEFT: &str = "OrphanLeftInPlace";

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

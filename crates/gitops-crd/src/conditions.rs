//! Kubernetes-convention conditions: `lastTransitionTime` moves only when `status` changes, and
//! every condition records the generation it describes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// A condition's truth value as Kubernetes spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

impl From<bool> for ConditionStatus {
    fn from(value: bool) -> Self {
        if value {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        }
    }
}

/// What a reconcile step found, before it is merged into the stored conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionUpdate {
    pub type_: &'static str,
    pub status: ConditionStatus,
    /// CamelCase, stable: alerts and scripts match on it.
    pub reason: String,
    /// For people: what happened and what to do.
    pub message: String,
}

impl ConditionUpdate {
    pub fn new(
        type_: &'static str,
        status: impl Into<ConditionStatus>,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Merges `update` into `conditions`, keeping `lastTransitionTime` when the status is unchanged.
/// Returns whether anything but `observedGeneration` changed, so callers can emit an Event only on
/// real transitions.
pub fn merge_condition(
    conditions: &mut Vec<Condition>,
    update: ConditionUpdate,
    observed_generation: Option<i64>,
    now: &Time,
) -> bool {
    let status = update.status.as_str();
    match conditions.iter_mut().find(|c| c.type_ == update.type_) {
        Some(existing) => {
            let status_changed = existing.status != status;
            let changed = status_changed
                || existing.reason != update.reason
                || existing.message != update.message;
            if status_changed {
                existing.last_transition_time = now.clone();
            }
            existing.status = status.to_owned();
            existing.reason = update.reason;
            existing.message = update.message;
            existing.observed_generation = observed_generation;
            changed
        }
        None => {
            conditions.push(Condition {
                type_: update.type_.to_owned(),
                status: status.to_owned(),
                reason: update.reason,
                message: update.message,
                observed_generation,
                last_transition_time: now.clone(),
            });
            true
        }
    }
}

/// The condition of `type_`, if present.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::condition_types::READY;
    use k8s_openapi::jiff::Timestamp;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).expect("valid timestamp"))
    }

    #[test]
    fn new_condition_is_added_with_transition_time() {
        let mut conditions = Vec::new();
        let changed = merge_condition(
            &mut conditions,
            ConditionUpdate::new(READY, false, "Reconciling", "working"),
            Some(3),
            &at(100),
        );
        assert!(changed);
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].status, "False");
        assert_eq!(conditions[0].observed_generation, Some(3));
        assert_eq!(conditions[0].last_transition_time, at(100));
    }

    #[test]
    fn same_status_keeps_transition_time_but_updates_generation() {
        let mut conditions = Vec::new();
        merge_condition(
            &mut conditions,
            ConditionUpdate::new(READY, true, "Synced", "ok"),
            Some(1),
            &at(100),
        );
        let changed = merge_condition(
            &mut conditions,
            ConditionUpdate::new(READY, true, "Synced", "ok"),
            Some(2),
            &at(200),
        );
        assert!(!changed);
        assert_eq!(conditions[0].last_transition_time, at(100));
        assert_eq!(conditions[0].observed_generation, Some(2));
    }

    #[test]
    fn reason_change_without_status_change_is_a_change_but_not_a_transition() {
        let mut conditions = Vec::new();
        merge_condition(
            &mut conditions,
            ConditionUpdate::new(READY, false, "AuthentikUnreachable", "down"),
            Some(1),
            &at(100),
        );
        let changed = merge_condition(
            &mut conditions,
            ConditionUpdate::new(READY, false, "Conflict", "taken"),
            Some(1),
            &at(200),
        );
        assert!(changed);
        assert_eq!(conditions[0].reason, "Conflict");
        assert_eq!(conditions[0].last_transition_time, at(100));
    }

    #[test]
    fn status_change_moves_transition_time() {
        let mut conditions = Vec::new();
        merge_condition(
            &mut conditions,
            ConditionUpdate::new(READY, false, "Reconciling", "working"),
            Some(1),
            &at(100),
        );
        merge_condition(
            &mut conditions,
            ConditionUpdate::new(READY, true, "Synced", "ok"),
            Some(1),
            &at(200),
        );
        let ready = find_condition(&conditions, READY).expect("ready condition");
        assert_eq!(ready.status, "True");
        assert_eq!(ready.last_transition_time, at(200));
    }
}

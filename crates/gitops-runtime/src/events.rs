//! Publishing Kubernetes Events, best effort: a lost Event is logged, never a reason to stop.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// The API server refuses an Event note longer than 1 KB.
const MAX_NOTE_BYTES: usize = 1000;

/// Publishes Events for one controller and one kind of action (`Reconcile`, `Cleanup`, …),
/// through a fresh [`Recorder`] each time. A long-lived Recorder keeps every Event it sent for
/// six minutes (to count repeats into a series); with one Event per onboarded ProxyConfig that
/// cache held ~3 KB per object, ~30 MB while 10,000 were onboarded. Our Events are
/// transitions, rarely repeated, so each is simply created.
#[derive(Clone)]
pub struct Events {
    client: kube::Client,
    reporter: Reporter,
    action: &'static str,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("reporter", &self.reporter)
            .field("action", &self.action)
            .finish_non_exhaustive()
    }
}

impl Events {
    /// `controller`: the reporting controller (its field manager name); `instance`: this
    /// process's identity.
    pub fn new(
        client: kube::Client,
        controller: &str,
        instance: String,
        action: &'static str,
    ) -> Self {
        Self {
            client,
            reporter: Reporter {
                controller: controller.to_owned(),
                instance: Some(instance),
            },
            action,
        }
    }

    /// The same publisher, for another kind of action.
    pub fn with_action(&self, action: &'static str) -> Self {
        Self {
            action,
            ..self.clone()
        }
    }

    /// Publishes an Event about `regarding`; a failure is logged, never returned.
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
            reason: reason.to_owned(),
            note: Some(truncate(note, MAX_NOTE_BYTES)),
            action: self.action.to_owned(),
            secondary: None,
        };
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        if let Err(error) = recorder.publish(&event, regarding).await {
            tracing::warn!(
                %error,
                reason,
                kind = regarding.kind.as_deref().unwrap_or_default(),
                namespace = regarding.namespace.as_deref().unwrap_or_default(),
                name = regarding.name.as_deref().unwrap_or_default(),
                "could not publish an Event"
            );
        }
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("short".into(), 10), "short");
        assert_eq!(truncate("ééé".into(), 3), "é");
        assert_eq!(truncate("abcdef".into(), 4), "abcd");
    }
}

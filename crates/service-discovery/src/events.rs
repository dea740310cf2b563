//! Publishing Kubernetes Events.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, Recorder, Reporter};

/// Publishes Events through a fresh [`Recorder`] each time. A long-lived Recorder keeps every
/// Event it sent for six minutes (to count repeats into a series); with one Event per
/// onboarded ProxyConfig that cache held ~3 KB per object, ~30 MB while 10,000 were onboarded.
/// Our Events are transitions, rarely repeated, so each is simply created.
#[derive(Clone)]
pub struct Events {
    client: kube::Client,
    reporter: Reporter,
}

impl Events {
    pub fn new(client: kube::Client, reporter: Reporter) -> Self {
        Self { client, reporter }
    }

    pub async fn publish(
        &self,
        event: &Event,
        reference: &ObjectReference,
    ) -> Result<(), kube::Error> {
        Recorder::new(self.client.clone(), self.reporter.clone())
            .publish(event, reference)
            .await
    }
}

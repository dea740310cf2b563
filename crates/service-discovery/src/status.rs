//! Step 6: status through the status subresource (server-side apply) and Events, written only
//! when something changed, so a converged system makes no API-server writes.

use gitops_authentik::ServerVersion;
use gitops_crd::conditions::{ConditionUpdate, merge_condition};
use gitops_crd::names::{SERVICE_DISCOVERY_MANAGER, condition_types};
use gitops_crd::{Phase, ProxyConfig, ProxyConfigStatus};
use gitops_plan::FieldDiff;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};

use gitops_runtime::Events;

use crate::error::{Error, Failure};
use crate::metrics;

/// What one reconcile found, step by step.
pub struct Report {
    steps: Vec<ConditionUpdate>,
    /// Conditions of steps that no longer apply (e.g. `forwardAuth` removed from the spec).
    forgotten: Vec<&'static str>,
    events: Vec<(&'static str, String)>,
    pub provider_id: Option<i64>,
    pub application_slug: Option<String>,
    pub outpost_id: Option<String>,
    /// The authentik version this reconcile talked to, when known.
    pub authentik_version: Option<ServerVersion>,
    /// Routes serving the host without forward auth (set with the `Protected` step).
    pub exposed_routes: Vec<String>,
}

impl Report {
    pub fn new(_pc: &ProxyConfig) -> Self {
        Self {
            steps: Vec::new(),
            forgotten: Vec::new(),
            events: Vec::new(),
            provider_id: None,
            application_slug: None,
            outpost_id: None,
            authentik_version: None,
            exposed_routes: Vec::new(),
        }
    }

    pub fn step(&mut self, condition: ConditionUpdate) {
        self.steps.push(condition);
    }

    /// Drops the condition `type_` from the status: its step no longer applies.
    pub fn forget(&mut self, type_: &'static str) {
        self.forgotten.push(type_);
    }

    /// A Normal Event about a change made in authentik.
    pub fn event(&mut self, reason: &'static str, note: String) {
        self.events.push((reason, note));
    }

    pub fn event_changes(&mut self, reason: &'static str, what: &str, diffs: &[FieldDiff]) {
        let changes: Vec<String> = diffs.iter().map(ToString::to_string).collect();
        self.event(
            reason,
            format!("reverted {what} fields to the spec: {}", changes.join("; ")),
        );
    }
}

/// The status a report leads to, starting from the stored one.
pub fn next_status(
    pc: &ProxyConfig,
    report: &Report,
    failure: Option<&Failure>,
    now: &Time,
) -> ProxyConfigStatus {
    let mut status = pc.status.clone().unwrap_or_default();
    let generation = pc.metadata.generation;
    status
        .conditions
        .retain(|c| !report.forgotten.contains(&c.type_.as_str()));
    for step in &report.steps {
        merge_condition(&mut status.conditions, step.clone(), generation, now);
    }
    if let Some(version) = &report.authentik_version {
        status.authentik_version = Some(version.as_str().to_owned());
        merge_condition(
            &mut status.conditions,
            version_condition(version),
            generation,
            now,
        );
    }
    let (phase, ready) = match failure {
        None => (
            Phase::Ready,
            ConditionUpdate::new(
                condition_types::READY,
                true,
                "Ready",
                "authentik matches the spec",
            ),
        ),
        Some(failure) => {
            if failure.condition != condition_types::READY {
                merge_condition(
                    &mut status.conditions,
                    ConditionUpdate::new(
                        failure.condition,
                        false,
                        failure.reason,
                        failure.message.clone(),
                    ),
                    generation,
                    now,
                );
            }
            (
                failure.phase,
                ConditionUpdate::new(
                    condition_types::READY,
                    failure.phase == Phase::Ready,
                    failure.reason,
                    failure.message.clone(),
                ),
            )
        }
    };
    merge_condition(&mut status.conditions, ready, generation, now);
    status.conditions.sort_by_key(|c| condition_order(&c.type_));
    status.phase = Some(phase);
    status.observed_generation = generation;
    let disabled = failure.is_some_and(|f| f.phase == Phase::Ready);
    if disabled {
        status.authentik_provider_id = None;
        status.application_slug = None;
        status.outpost_id = None;
    }
    if report.provider_id.is_some() {
        status.authentik_provider_id = report.provider_id;
    }
    if report.application_slug.is_some() {
        status.application_slug.clone_from(&report.application_slug);
    }
    if report.outpost_id.is_some() {
        status.outpost_id.clone_from(&report.outpost_id);
    }
    status.exposed_routes.clone_from(&report.exposed_routes);
    status
}

/// Whether the server's version was proven to work; a False condition does not stop anything.
fn version_condition(version: &ServerVersion) -> ConditionUpdate {
    let range = ServerVersion::supported_range();
    let (supported, reason, message) = match version {
        ServerVersion::Supported(v) => (
            true,
            "SupportedAuthentikVersion",
            format!("authentik {v} is in the supported range {range}"),
        ),
        ServerVersion::Unsupported(v) => (
            false,
            "UnsupportedAuthentikVersion",
            format!("authentik {v} is outside the supported range {range}; serving what it can"),
        ),
        ServerVersion::Unknown(v) => (
            false,
            "UnknownAuthentikVersion",
            format!(
                "authentik reported version {v:?}, which is not a release number; treated as unknown"
            ),
        ),
    };
    ConditionUpdate::new(
        condition_types::AUTHENTIK_VERSION_SUPPORTED,
        supported,
        reason,
        message,
    )
}

fn condition_order(type_: &str) -> usize {
    [
        condition_types::READY,
        condition_types::SERVICE_RESOLVED,
        condition_types::PROVIDER_SYNCED,
        condition_types::APPLICATION_SYNCED,
        condition_types::OUTPOST_ASSIGNED,
        condition_types::FORWARD_AUTH_READY,
        condition_types::PROTECTED,
        condition_types::AUTHENTIK_VERSION_SUPPORTED,
    ]
    .iter()
    .position(|t| *t == type_)
    .unwrap_or(usize::MAX)
}

/// Equal apart from `lastReconciled`, which alone never justifies a write.
fn same_status(a: &ProxyConfigStatus, b: &ProxyConfigStatus) -> bool {
    let mut a = a.clone();
    a.last_reconciled.clone_from(&b.last_reconciled);
    a == *b
}

pub struct StatusWriter {
    client: kube::Client,
    events: Events,
}

impl StatusWriter {
    pub fn new(client: kube::Client, events: Events) -> Self {
        Self { client, events }
    }

    pub async fn write(
        &self,
        pc: &ProxyConfig,
        report: Report,
        failure: Option<&Failure>,
    ) -> Result<(), Error> {
        let now = Time(Timestamp::now());
        let old = pc.status.clone().unwrap_or_default();
        let mut status = next_status(pc, &report, failure, &now);
        let namespace = pc.namespace().unwrap_or_default();
        let name = pc.name_any();
        metrics::set_phase(&namespace, &name, status.phase);
        if !same_status(&status, &old) {
            status.last_reconciled = Some(now);
            let api: Api<ProxyConfig> = Api::namespaced(self.client.clone(), &namespace);
            let patch = serde_json::json!({
                "apiVersion": "gitops.io/v1",
                "kind": "ProxyConfig",
                "status": status,
            });
            api.patch_status(
                &name,
                &PatchParams::apply(SERVICE_DISCOVERY_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map_err(|source| Error::Status {
                name: format!("{namespace}/{name}"),
                source,
            })?;
        }
        let transition = transition(&old, &status);
        if let Some((_, note, _)) = &transition {
            let object = format!("{namespace}/{name}");
            match status.phase {
                Some(Phase::Failed) => {
                    tracing::error!(proxyconfig = %object, %note, "ProxyConfig failed")
                }
                Some(Phase::Pending) => {
                    tracing::warn!(proxyconfig = %object, %note, "ProxyConfig pending")
                }
                _ => tracing::info!(proxyconfig = %object, %note, "ProxyConfig ready"),
            }
        }
        for (reason, note, warning) in events_to_publish(&report.events, transition) {
            self.event(pc, reason, note, warning).await;
        }
        Ok(())
    }

    pub async fn flush_events(&self, pc: &ProxyConfig, report: &Report) {
        for (reason, note) in &report.events {
            self.event(pc, reason, note.clone(), false).await;
        }
    }

    /// Publishes an Event; a failure to do so is logged, never fatal.
    pub async fn event(&self, pc: &ProxyConfig, reason: &str, note: String, warning: bool) {
        self.events
            .publish(&pc.object_ref(&()), reason, note, warning)
            .await;
    }
}

/// The Events one reconcile publishes: the changes it made in authentik, and a change of phase.
/// When it made changes and became Ready, one Event tells both (onboarding a ProxyConfig is
/// one Event, not four): every Event is an API-server write, and bulk onboarding is bound by
/// those.
fn events_to_publish(
    changes: &[(&'static str, String)],
    transition: Option<(&'static str, String, bool)>,
) -> Vec<(&'static str, String, bool)> {
    let mut events: Vec<_> = changes
        .iter()
        .map(|(reason, note)| (*reason, note.clone(), false))
        .collect();
    match transition {
        Some((reason, note, false)) if !events.is_empty() => {
            let done: Vec<String> = events.drain(..).map(|(_, change, _)| change).collect();
            events.push((reason, format!("{}; {note}", done.join("; ")), false));
        }
        Some(transition) => events.push(transition),
        None => {}
    }
    events
}

/// The Event for a change of phase or of the Ready reason, if there was one.
fn transition(
    old: &ProxyConfigStatus,
    new: &ProxyConfigStatus,
) -> Option<(&'static str, String, bool)> {
    let ready = |s: &ProxyConfigStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == condition_types::READY)
            .map(|c| (c.reason.clone(), c.message.clone()))
    };
    let (old_reason, new_ready) = (ready(old).map(|r| r.0), ready(new)?);
    if old.phase == new.phase && old_reason.as_deref() == Some(new_ready.0.as_str()) {
        return None;
    }
    let (reason, warning) = match new.phase {
        Some(Phase::Ready) => ("Ready", false),
        Some(Phase::Failed) => ("Failed", true),
        _ => ("Pending", true),
    };
    Some((reason, format!("{}: {}", new_ready.0, new_ready.1), warning))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_that_end_in_ready_are_one_event() {
        let changes = vec![
            (
                "ProviderCreated",
                "created proxy provider \"web\" (pk 3)".to_owned(),
            ),
            (
                "ApplicationCreated",
                "created application \"apps-web\"".to_owned(),
            ),
        ];
        let ready = Some(("Ready", "Reconciled: all steps done".to_owned(), false));
        assert_eq!(
            events_to_publish(&changes, ready.clone()),
            vec![(
                "Ready",
                "created proxy provider \"web\" (pk 3); created application \"apps-web\"; Reconciled: all steps done".to_owned(),
                false
            )]
        );
        assert_eq!(
            events_to_publish(&[], ready.clone()),
            vec![("Ready", "Reconciled: all steps done".to_owned(), false)]
        );
    }

    #[test]
    fn changes_without_ready_keep_their_own_events() {
        let changes = vec![(
            "ProviderUpdated",
            "reverted proxy provider fields".to_owned(),
        )];
        let pending = Some(("Pending", "AuthentikUnavailable: retrying".to_owned(), true));
        assert_eq!(
            events_to_publish(&changes, pending),
            vec![
                (
                    "ProviderUpdated",
                    "reverted proxy provider fields".to_owned(),
                    false
                ),
                ("Pending", "AuthentikUnavailable: retrying".to_owned(), true),
            ]
        );
        assert_eq!(
            events_to_publish(&changes, None),
            vec![(
                "ProviderUpdated",
                "reverted proxy provider fields".to_owned(),
                false
            )]
        );
    }

    fn pc() -> ProxyConfig {
        let mut pc: ProxyConfig = serde_json::from_value(serde_json::json!({
            "apiVersion": "gitops.io/v1", "kind": "ProxyConfig",
            "metadata": {"name": "web", "namespace": "apps", "generation": 2},
            "spec": {"serviceName": "web", "serviceNamespace": "apps", "externalHost": "web.example.com",
                     "internalHost": "http://web", "authentikConfig": {"providerName": "web"}}
        }))
        .expect("valid");
        pc.status = None;
        pc
    }

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).expect("timestamp"))
    }

    fn converged_report() -> Report {
        let mut report = Report::new(&pc());
        report.step(ConditionUpdate::new(
            condition_types::PROVIDER_SYNCED,
            true,
            "ProviderSynced",
            "ok",
        ));
        report.provider_id = Some(7);
        report.application_slug = Some("apps-web".into());
        report.outpost_id = Some("outpost".into());
        report
    }

    #[test]
    fn the_authentik_version_is_named_and_judged_without_affecting_ready() {
        let version_of = |reported: &str| {
            let mut report = converged_report();
            report.authentik_version = Some(ServerVersion::classify(reported));
            next_status(&pc(), &report, None, &at(100))
        };
        let status = version_of("2025.12.4");
        assert_eq!(status.authentik_version.as_deref(), Some("2025.12.4"));
        let c = status
            .conditions
            .iter()
            .find(|c| c.type_ == condition_types::AUTHENTIK_VERSION_SUPPORTED)
            .expect("version condition");
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "SupportedAuthentikVersion")
        );
        for (reported, reason) in [
            ("2023.10.7", "UnsupportedAuthentikVersion"),
            ("not-a-version", "UnknownAuthentikVersion"),
        ] {
            let status = version_of(reported);
            assert_eq!(
                status.phase,
                Some(Phase::Ready),
                "{reported}: keeps serving"
            );
            assert_eq!(status.authentik_version.as_deref(), Some(reported));
            let c = status
                .conditions
                .iter()
                .find(|c| c.type_ == condition_types::AUTHENTIK_VERSION_SUPPORTED)
                .expect("version condition");
            assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", reason));
            assert!(c.message.contains(reported), "{}", c.message);
        }
        // Not read yet: nothing is claimed.
        let status = next_status(&pc(), &converged_report(), None, &at(100));
        assert_eq!(status.authentik_version, None);
        assert!(
            !status
                .conditions
                .iter()
                .any(|c| c.type_ == condition_types::AUTHENTIK_VERSION_SUPPORTED)
        );
    }

    #[test]
    fn converged_report_is_ready_with_ids_and_generation() {
        let status = next_status(&pc(), &converged_report(), None, &at(100));
        assert_eq!(status.phase, Some(Phase::Ready));
        assert_eq!(status.observed_generation, Some(2));
        assert_eq!(status.authentik_provider_id, Some(7));
        assert_eq!(
            status.conditions[0].type_,
            condition_types::READY,
            "Ready comes first"
        );
        assert!(
            status
                .conditions
                .iter()
                .all(|c| c.observed_generation == Some(2))
        );
    }

    #[test]
    fn unchanged_status_is_not_rewritten_and_makes_no_event() {
        let mut pc = pc();
        let first = next_status(&pc, &converged_report(), None, &at(100));
        pc.status = Some(first.clone());
        let second = next_status(&pc, &converged_report(), None, &at(200));
        assert!(same_status(&second, &first));
        assert_eq!(transition(&first, &second), None);
    }

    #[test]
    fn failure_marks_its_step_and_ready_and_emits_a_warning() {
        let mut pc = pc();
        pc.status = Some(next_status(&pc, &converged_report(), None, &at(100)));
        let failure = Failure::flow_not_found("authorization", "missing-flow");
        let status = next_status(&pc, &Report::new(&pc), Some(&failure), &at(200));
        assert_eq!(status.phase, Some(Phase::Failed));
        let provider = status
            .conditions
            .iter()
            .find(|c| c.type_ == condition_types::PROVIDER_SYNCED)
            .expect("step");
        assert_eq!(provider.status, "False");
        assert_eq!(provider.reason, "FlowNotFound");
        assert_eq!(
            status.authentik_provider_id,
            Some(7),
            "ids survive a failed run"
        );
        let (reason, note, warning) =
            transition(pc.status.as_ref().expect("old"), &status).expect("transition");
        assert_eq!(reason, "Failed");
        assert!(warning);
        assert!(note.contains("missing-flow"), "{note}");
    }

    #[test]
    fn disabled_is_ready_and_forgets_ids() {
        let mut pc = pc();
        pc.status = Some(next_status(&pc, &converged_report(), None, &at(100)));
        let status = next_status(&pc, &Report::new(&pc), Some(&Failure::disabled()), &at(200));
        assert_eq!(status.phase, Some(Phase::Ready));
        assert_eq!(status.authentik_provider_id, None);
        let ready = status
            .conditions
            .iter()
            .find(|c| c.type_ == condition_types::READY)
            .expect("ready");
        assert_eq!(ready.reason, "AuthenticationDisabled");
        assert_eq!(ready.status, "True");
    }
}

//! The service-discovery controller's metrics. Names are the original operations documents'
//! and alert rules'; they live here so the chart's alerts and dashboard can be checked against
//! them.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Instant;

use gitops_crd::Phase;

pub mod names {
    /// Histogram: time of one reconcile.
    pub const RECONCILE_DURATION: &str = "gitops_proxyconfig_reconcile_duration_seconds";
    /// Counter: reconciles, by `result` (`success`, `error`).
    pub const RECONCILES: &str = "gitops_proxyconfig_reconciles_total";
    /// Counter: failed reconciles, by `reason`.
    pub const RECONCILE_ERRORS: &str = "gitops_proxyconfig_reconcile_errors_total";
    /// Gauge: 1 for the ProxyConfig's current phase, 0 for phases it was in before (phases it
    /// never was in have no series).
    pub const PHASE: &str = "gitops_proxyconfig_phase";
    /// Gauge: 1 while a route serves the ProxyConfig's host without forward auth to the outpost
    /// (its `Protected` condition is False), else 0.
    pub const EXPOSED: &str = "gitops_proxyconfig_exposed";
    /// Gauge: Unix time of the last successful reconcile of a ProxyConfig.
    pub const LAST_RECONCILED: &str = "gitops_proxyconfig_last_reconciled";
    /// Counter: writes of outpost provider lists.
    pub const OUTPOST_WRITES: &str = "gitops_outpost_writes_total";
    /// Histogram: provider assignments carried by one outpost write.
    pub const OUTPOST_BATCH_SIZE: &str = "gitops_outpost_write_batch_size";
    /// Counter: full re-reads of authentik for drift detection.
    pub const RESYNCS: &str = "gitops_authentik_resyncs_total";
    /// Counter: ProxyConfigs written by onboarding from Service annotations.
    pub const DISCOVERED: &str = "gitops_discovery_services_discovered_total";
    /// Counter: Services onboarding skipped, by `reason` (`name_taken`: a ProxyConfig of that
    /// name was not created from the Service, so it is neither written nor, once the label is
    /// gone, removed).
    pub const DISCOVERY_SKIPPED: &str = "gitops_discovery_services_skipped_total";
}

/// Times one reconcile and counts it when dropped, so early returns are measured too.
pub struct ReconcileTimer {
    started: Instant,
}

impl ReconcileTimer {
    pub fn start() -> Self {
        Self {
            started: Instant::now(),
        }
    }
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        metrics::histogram!(names::RECONCILE_DURATION).record(self.started.elapsed().as_secs_f64());
    }
}

pub fn reconcile_succeeded(namespace: &str, name: &str) {
    metrics::counter!(names::RECONCILES, "result" => "success").increment(1);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    metrics::gauge!(names::LAST_RECONCILED, "namespace" => namespace.to_owned(), "name" => name.to_owned())
        .set(now);
}

pub fn reconcile_failed(reason: &'static str) {
    metrics::counter!(names::RECONCILES, "result" => "error").increment(1);
    metrics::counter!(names::RECONCILE_ERRORS, "reason" => reason).increment(1);
}

/// Sets the phase gauges of one ProxyConfig; `None` (deleted) zeroes all of them, and its
/// exposure gauge.
///
/// Only the series of phases a ProxyConfig has been in exist: one for a ProxyConfig that went
/// straight to Ready, instead of a 1 and two 0s. Each series costs the exporter a few hundred
/// bytes, so at 10,000 ProxyConfigs that is ~6 MB less, and a scrape renders a third of the
/// lines. The phases left behind are set to 0, so `== 1` and `sum by (phase)` read as before.
pub fn set_phase(namespace: &str, name: &str, phase: Option<Phase>) {
    if phase.is_none() {
        set_exposed(namespace, name, false);
    }
    let changes = {
        let mut shown = SHOWN_PHASES.lock().unwrap_or_else(PoisonError::into_inner);
        shown.set(namespace, name, phase)
    };
    for (candidate, value) in changes {
        metrics::gauge!(
            names::PHASE,
            "namespace" => namespace.to_owned(),
            "name" => name.to_owned(),
            "phase" => candidate.as_str()
        )
        .set(value);
    }
}

/// Sets whether one ProxyConfig's host is served by a route without forward auth.
pub fn set_exposed(namespace: &str, name: &str, exposed: bool) {
    metrics::gauge!(
        names::EXPOSED,
        "namespace" => namespace.to_owned(),
        "name" => name.to_owned()
    )
    .set(if exposed { 1.0 } else { 0.0 });
}

static SHOWN_PHASES: LazyLock<Mutex<ShownPhases>> = LazyLock::new(Mutex::default);

/// Which phase series exist for each ProxyConfig (by namespace and name), as a bit per
/// [`Phase::ALL`] entry.
#[derive(Default)]
struct ShownPhases(HashMap<(Box<str>, Box<str>), u8>);

fn bit(phase: Phase) -> u8 {
    let index = Phase::ALL.iter().position(|p| *p == phase).unwrap_or(0);
    1 << index
}

impl ShownPhases {
    /// The series to write so that `phase` alone reads 1 (`None`: none does), remembering
    /// which series exist from now on.
    fn set(&mut self, namespace: &str, name: &str, phase: Option<Phase>) -> Vec<(Phase, f64)> {
        let key = (Box::from(namespace), Box::from(name));
        let shown = self.0.get(&key).copied().unwrap_or(0);
        let mut changes: Vec<(Phase, f64)> = Phase::ALL
            .into_iter()
            .filter(|p| Some(*p) != phase && shown & bit(*p) != 0)
            .map(|p| (p, 0.0))
            .collect();
        match phase {
            Some(phase) => {
                changes.push((phase, 1.0));
                self.0.insert(key, shown | bit(phase));
            }
            None => {
                self.0.remove(&key);
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_phases_a_proxyconfig_was_in_have_series() {
        let mut shown = ShownPhases::default();
        assert_eq!(
            shown.set("apps", "web", Some(Phase::Ready)),
            [(Phase::Ready, 1.0)],
            "straight to Ready: one series"
        );
        assert_eq!(
            shown.set("apps", "web", Some(Phase::Ready)),
            [(Phase::Ready, 1.0)]
        );
        assert_eq!(
            shown.set("apps", "web", Some(Phase::Failed)),
            [(Phase::Ready, 0.0), (Phase::Failed, 1.0)],
            "the phase it left reads 0"
        );
        assert_eq!(
            shown.set("apps", "web", Some(Phase::Ready)),
            [(Phase::Failed, 0.0), (Phase::Ready, 1.0)]
        );
        assert_eq!(
            shown.set("apps", "other", Some(Phase::Pending)),
            [(Phase::Pending, 1.0)],
            "per ProxyConfig"
        );
        assert_eq!(
            shown.set("apps", "web", None),
            [(Phase::Ready, 0.0), (Phase::Failed, 0.0)],
            "deleted: every series it has reads 0"
        );
        assert_eq!(shown.set("apps", "web", None), [], "and is forgotten");
    }
}

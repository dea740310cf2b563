//! The end-to-end harness, running this crate's controller binary.

#![allow(dead_code)] // each test binary uses a different part of it

pub use gitops_harness::*;

pub async fn harness(purpose: &str) -> Harness {
    Harness::new(purpose, env!("CARGO_BIN_EXE_gitops-service-discovery")).await
}

/// Full re-reads of authentik.
pub const RESYNCS: &str = "gitops_authentik_resyncs_total";
/// Reconciles that ended in an error (and a backoff).
pub const FAILED_RECONCILES: &str = r#"gitops_proxyconfig_reconciles_total{result="error"}"#;
/// Reconciles that converged.
pub const SUCCESSFUL_RECONCILES: &str = r#"gitops_proxyconfig_reconciles_total{result="success"}"#;

/// Reconciles finished so far, whatever their outcome.
pub async fn reconciles(h: &Harness, index: usize) -> f64 {
    let mut total = 0.0;
    for series in [SUCCESSFUL_RECONCILES, FAILED_RECONCILES] {
        total += h.metric(index, series).await.unwrap_or_default();
    }
    total
}

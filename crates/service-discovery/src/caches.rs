//! Whether the watch caches hold a full list yet: shared by the controller wiring (which fills
//! them) and the reconciler (which waits on them), so neither imports the other.

use tokio::sync::watch;

/// Readiness of the watch caches, tracked from the watch streams themselves:
/// kube-runtime 5's `Store::wait_until_ready` wakes only the last of several waiters, and the
/// controller runtime already waits on the ProxyConfig store.
#[derive(Clone)]
pub struct Caches(pub Vec<watch::Receiver<bool>>);

impl Caches {
    /// Resolves once every cache holds a full list (or the process is stopping).
    pub async fn wait(&self) {
        for ready in &self.0 {
            let _ = ready.clone().wait_for(|ready| *ready).await;
        }
    }
}

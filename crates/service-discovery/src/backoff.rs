//! Per-object exponential backoff with jitter (kube-runtime requeues at a fixed delay): each
//! failing ProxyConfig waits longer on each failure, independently of the others. The delays
//! are the authentik client's [`ExponentialBackoff`]; this keeps the failure count per object.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use gitops_authentik::ExponentialBackoff;
use gitops_crd::ProxyConfig;
use kube::runtime::reflector::ObjectRef;

pub struct Backoff {
    failures: Mutex<HashMap<ObjectRef<ProxyConfig>, u32>>,
    delays: ExponentialBackoff,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            failures: Mutex::default(),
            delays: ExponentialBackoff::new(base, cap),
        }
    }

    /// The wait before the next attempt: `base · 2^(failures-1)`, capped, then jittered into its
    /// upper half so that objects failing together do not retry together. Never shorter than
    /// `at_least` (a server's Retry-After).
    pub fn next_delay(&self, key: &ObjectRef<ProxyConfig>, at_least: Option<Duration>) -> Duration {
        let failures = {
            let mut map = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
            let count = map.entry(key.clone()).or_insert(0);
            *count = count.saturating_add(1);
            *count
        };
        self.delays
            .delay(failures)
            .max(at_least.unwrap_or_default())
    }

    pub fn reset(&self, key: &ObjectRef<ProxyConfig>) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_per_object_caps_and_resets() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let a = ObjectRef::new("a").within("ns");
        let b = ObjectRef::new("b").within("ns");
        let delays: Vec<_> = (0..10).map(|_| backoff.next_delay(&a, None)).collect();
        for (i, delay) in delays.iter().enumerate() {
            let ceiling = backoff.delays.ceiling(i as u32 + 1);
            assert!(*delay <= ceiling && *delay >= ceiling / 2, "{i}: {delay:?}");
        }
        assert_eq!(backoff.delays.ceiling(10), Duration::from_secs(60));
        assert!(
            backoff.next_delay(&b, None) <= Duration::from_secs(1),
            "b is independent of a"
        );
        backoff.reset(&a);
        assert!(backoff.next_delay(&a, None) <= Duration::from_secs(1));
    }

    #[test]
    fn retry_after_is_a_floor() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let key = ObjectRef::new("a").within("ns");
        assert!(backoff.next_delay(&key, Some(Duration::from_secs(30))) >= Duration::from_secs(30));
    }
}

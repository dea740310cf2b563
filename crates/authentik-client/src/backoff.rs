//! Exponential backoff with jitter: the one formula behind both this client's retries and the
//! service-discovery controller's per-object requeues.
//!
//! Not `backon` (already in the build through kube-runtime): its jitter adds up to 100 % on top
//! of the delay, so a capped delay could double past its cap, and it hands out delays from an
//! iterator that each caller would have to keep per object; a failure count is all we keep.

use std::time::Duration;

use rand::RngExt;

/// Delays that double from `initial` up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExponentialBackoff {
    pub initial: Duration,
    pub max: Duration,
}

impl ExponentialBackoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max }
    }

    /// The delay after `failures` consecutive failures (1-based) before jitter:
    /// `initial · 2^(failures-1)`, at most `max`.
    pub fn ceiling(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1));
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The delay after `failures` consecutive failures, with "equal jitter": uniform in the
    /// upper half of [`ceiling`](Self::ceiling), so that callers failing together do not retry
    /// in lock-step.
    pub fn delay(&self, failures: u32) -> Duration {
        let ceiling = self.ceiling(failures);
        let half = ceiling / 2;
        half + rand::rng().random_range(Duration::ZERO..=ceiling - half)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let backoff =
            ExponentialBackoff::new(Duration::from_millis(100), Duration::from_millis(300));
        for (failures, ceiling_ms) in [(1, 100), (2, 200), (3, 300), (4, 300), (40, 300)] {
            let ceiling = Duration::from_millis(ceiling_ms);
            assert_eq!(backoff.ceiling(failures), ceiling, "{failures}");
            for _ in 0..50 {
                let delay = backoff.delay(failures);
                assert!(
                    delay >= ceiling / 2 && delay <= ceiling,
                    "{failures}: {delay:?}"
                );
            }
        }
        assert_eq!(backoff.ceiling(u32::MAX), Duration::from_millis(300));
    }
}

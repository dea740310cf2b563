//! When a failed call is tried again, and how long to wait first.

use std::time::Duration;

use http::Method;

use crate::backoff::ExponentialBackoff;
use crate::error::Error;

/// Retry rules for one call. Only idempotent calls are retried (GET, PUT, DELETE and this
/// client's PATCHes, never POST), and only after a
/// [`Transient`](crate::ErrorCategory::Transient) or
/// [`RateLimited`](crate::ErrorCategory::RateLimited) error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included; `1` disables retries.
    pub max_attempts: u32,
    /// Backoff before the first retry; it doubles for each further retry.
    pub initial_backoff: Duration,
    /// Upper bound of a single backoff.
    pub max_backoff: Duration,
    /// No retry starts later than this after the first attempt began, so one call cannot hold
    /// a reconcile for long; the last error is returned instead.
    pub max_elapsed: Duration,
    /// The longest `Retry-After` honoured in place. A longer one ends the call with
    /// [`Error::RateLimited`] so the caller can requeue after it.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(4),
            max_elapsed: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    fn backoff(&self) -> ExponentialBackoff {
        ExponentialBackoff::new(self.initial_backoff, self.max_backoff)
    }

    /// How long to wait before trying again after `attempt` (1-based) failed with `err`, or
    /// `None` to give up. `elapsed` is the time since the first attempt began.
    ///
    /// The wait is the exponential backoff with "equal jitter" (uniform in `[b/2, b]`, so that
    /// controllers restarted together do not retry in lock-step), or the server's
    /// `Retry-After` when that is longer.
    pub(crate) fn delay_before_retry(
        &self,
        method: &Method,
        attempt: u32,
        elapsed: Duration,
        err: &Error,
    ) -> Option<Duration> {
        if !is_idempotent(method) || !err.is_retryable() || attempt >= self.max_attempts {
            return None;
        }
        let jittered = self.backoff().delay(attempt);
        let delay = match err.retry_after() {
            Some(asked) if asked > self.max_retry_after => return None,
            Some(asked) => asked.max(jittered),
            None => jittered,
        };
        (elapsed.saturating_add(delay) <= self.max_elapsed).then_some(delay)
    }
}

/// Whether repeating a call cannot change the outcome, so it is safe after a lost response —
/// including a write that failed on a reused connection (reset, or closed before any answer),
/// where the client cannot tell whether the server handled it. Per method:
///
/// - GET, HEAD: read only.
/// - PUT: this client always sends the complete desired object, so a second PUT leaves what the
///   first left.
/// - PATCH: every PATCH this client sends sets fields to absolute values (never increments or
///   appends) — in particular the outpost's `providers` list is replaced wholesale — so sending
///   it twice leaves the same state as once. (The outpost list's lost-update race with other
///   writers exists with or without the retry; callers verify after writing.)
/// - DELETE: a repeat meets 404, which the client reads as done.
/// - POST: never. A repeat after a lost 201 meets a duplicate-name 400 or, for policy bindings,
///   creates a second object. A create whose fate is unknown is instead found by the caller's
///   lookup on its next attempt (service-discovery records ownership before creating). This is
///   the rule of Go's `net/http` transport too: only idempotent requests are replayed after a
///   reused connection failed.
///
/// A request that never left the client (the pooled connection was found closed before
/// sending) is replayed by the connection pool itself, whatever its method.
pub(crate) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::PATCH
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transient() -> Error {
        Error::Transient {
            endpoint: "GET /x/".to_owned(),
            reason: "HTTP 503".to_owned(),
        }
    }

    fn rate_limited(retry_after: Option<Duration>) -> Error {
        Error::RateLimited {
            endpoint: "GET /x/".to_owned(),
            retry_after,
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
            max_elapsed: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(5),
        }
    }

    #[test]
    fn only_idempotent_methods_are_retried() {
        let p = policy();
        for method in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
            assert!(
                p.delay_before_retry(&method, 1, Duration::ZERO, &transient())
                    .is_some(),
                "{method}"
            );
        }
        assert_eq!(
            p.delay_before_retry(&Method::POST, 1, Duration::ZERO, &transient()),
            None
        );
        assert_eq!(
            p.delay_before_retry(&Method::POST, 1, Duration::ZERO, &rate_limited(None)),
            None
        );
    }

    #[test]
    fn only_transient_and_rate_limited_errors_are_retried() {
        let p = policy();
        let not_found = Error::NotFound {
            endpoint: "GET /x/".to_owned(),
        };
        let invalid = Error::Validation {
            endpoint: "PUT /x/".to_owned(),
            status: 400,
            fields: Default::default(),
        };
        let denied = Error::Unauthorized {
            endpoint: "GET /x/".to_owned(),
            status: 403,
            detail: String::new(),
        };
        for err in [not_found, invalid, denied] {
            assert_eq!(
                p.delay_before_retry(&Method::GET, 1, Duration::ZERO, &err),
                None,
                "{err}"
            );
        }
        assert!(
            p.delay_before_retry(&Method::GET, 1, Duration::ZERO, &rate_limited(None))
                .is_some()
        );
    }

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_is_capped() {
        let p = policy();
        for (attempt, ceiling_ms) in [(1, 100), (2, 200), (3, 300), (4, 300)] {
            let ceiling = Duration::from_millis(ceiling_ms);
            for _ in 0..50 {
                let delay = p
                    .delay_before_retry(&Method::GET, attempt, Duration::ZERO, &transient())
                    .expect("retry allowed");
                assert!(
                    delay >= ceiling / 2 && delay <= ceiling,
                    "attempt {attempt}: {delay:?}"
                );
            }
        }
    }

    #[test]
    fn attempts_and_total_time_are_capped() {
        let p = policy();
        assert_eq!(
            p.delay_before_retry(&Method::GET, 5, Duration::ZERO, &transient()),
            None
        );
        assert!(
            p.delay_before_retry(&Method::GET, 4, Duration::ZERO, &transient())
                .is_some()
        );
        // 9.95 s spent plus at least 50 ms of backoff would pass the 10 s budget.
        assert_eq!(
            p.delay_before_retry(&Method::GET, 1, Duration::from_millis(9_951), &transient()),
            None
        );
        assert_eq!(
            RetryPolicy::none().delay_before_retry(&Method::GET, 1, Duration::ZERO, &transient()),
            None
        );
    }

    #[test]
    fn retry_after_is_honoured_up_to_its_cap() {
        let p = policy();
        let asked = Duration::from_secs(3);
        assert_eq!(
            p.delay_before_retry(&Method::GET, 1, Duration::ZERO, &rate_limited(Some(asked))),
            Some(asked)
        );
        // A short Retry-After does not shorten the backoff.
        let short = p
            .delay_before_retry(
                &Method::GET,
                3,
                Duration::ZERO,
                &rate_limited(Some(Duration::ZERO)),
            )
            .expect("retry allowed");
        assert!(short >= Duration::from_millis(150), "{short:?}");
        // Longer than the cap: give up and let the caller requeue after it.
        assert_eq!(
            p.delay_before_retry(
                &Method::GET,
                1,
                Duration::ZERO,
                &rate_limited(Some(Duration::from_secs(6)))
            ),
            None
        );
        // Within the cap but past the total budget: give up too.
        assert_eq!(
            p.delay_before_retry(
                &Method::GET,
                1,
                Duration::from_secs(8),
                &rate_limited(Some(asked))
            ),
            None
        );
    }
}

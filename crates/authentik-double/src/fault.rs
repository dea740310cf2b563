//! Fault injection: what the next requests should suffer, decided once per request.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Restricts a fault to some requests. Both parts are optional; an empty matcher matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matcher {
    /// HTTP method, case-insensitive (`"PATCH"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Prefix of the raw request path (`"/api/v3/outposts/instances/"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
}

impl Matcher {
    /// Match one method under a path prefix.
    pub fn new(method: &str, path_prefix: &str) -> Self {
        Matcher {
            method: Some(method.to_owned()),
            path_prefix: Some(path_prefix.to_owned()),
        }
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| path.starts_with(p))
    }
}

fn matches(matcher: &Option<Matcher>, method: &str, path: &str) -> bool {
    matcher.as_ref().is_none_or(|m| m.matches(method, path))
}

fn is_write(method: &str) -> bool {
    matches!(method, "POST" | "PUT" | "PATCH" | "DELETE")
}

/// A fault to inject. JSON form (admin API): `{"kind": "fail_next", "count": 2, "status": 503}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Add `ms` milliseconds to every matching request, until cleared.
    Latency {
        /// Added delay in milliseconds.
        ms: u64,
        /// Only requests matching this.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        matching: Option<Matcher>,
    },
    /// The next `count` matching requests fail with `status` before touching any state.
    FailNext {
        /// How many requests.
        count: u32,
        /// HTTP status to answer with.
        status: u16,
        /// Answer with an empty body instead of authentik's JSON `detail` (what a server
        /// closing a kept-alive connection answered; see `ServerBehaviour`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        empty_body: bool,
        /// Only requests matching this.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        matching: Option<Matcher>,
    },
    /// The next `count` matching requests get 429 with `Retry-After`, like DRF throttling.
    RateLimitNext {
        /// How many requests.
        count: u32,
        /// Value of the `Retry-After` header.
        retry_after_secs: u64,
        /// Only requests matching this.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        matching: Option<Matcher>,
    },
    /// The next `count` matching requests lose their connection (TCP reset) before being handled.
    ResetNext {
        /// How many requests.
        count: u32,
        /// Only requests matching this.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        matching: Option<Matcher>,
    },
    /// Another admin deletes these providers just before the next matching request is handled
    /// (through the API, so they also leave every outpost and application): the race of a
    /// client that read an outpost, then writes its list back with pks deleted meanwhile.
    DeleteProvidersFirst {
        /// Provider pks to delete (unknown ones are skipped).
        providers: Vec<i64>,
        /// Only before a request matching this.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        matching: Option<Matcher>,
    },
    /// The next `count` matching *write* requests (POST/PUT/PATCH/DELETE) are applied, then the
    /// connection is reset instead of answering: the "lost response" case. GETs never consume it.
    DropResponseAfterWrite {
        /// How many requests.
        count: u32,
        /// Only requests matching this.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        matching: Option<Matcher>,
    },
}

impl Fault {
    /// Add `delay` to every request.
    pub fn latency(delay: Duration) -> Self {
        Fault::Latency {
            ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            matching: None,
        }
    }

    /// The next `count` requests fail with `status`.
    pub fn fail_next(count: u32, status: u16) -> Self {
        Fault::FailNext {
            count,
            status,
            empty_body: false,
            matching: None,
        }
    }

    /// The next `count` requests get `status` with an empty body.
    pub fn fail_next_empty(count: u32, status: u16) -> Self {
        Fault::FailNext {
            count,
            status,
            empty_body: true,
            matching: None,
        }
    }

    /// Delete `providers` just before the next (matching) request, as another admin would.
    pub fn delete_providers_first(providers: Vec<i64>) -> Self {
        Fault::DeleteProvidersFirst {
            providers,
            matching: None,
        }
    }

    /// The next `count` requests are throttled.
    pub fn rate_limit_next(count: u32, retry_after_secs: u64) -> Self {
        Fault::RateLimitNext {
            count,
            retry_after_secs,
            matching: None,
        }
    }

    /// The next `count` requests see a connection reset.
    pub fn reset_next(count: u32) -> Self {
        Fault::ResetNext {
            count,
            matching: None,
        }
    }

    /// The next `count` writes are applied, and their responses lost.
    pub fn drop_response_after_write(count: u32) -> Self {
        Fault::DropResponseAfterWrite {
            count,
            matching: None,
        }
    }

    /// Restrict this fault to requests with `method` under `path_prefix`.
    pub fn only(mut self, method: &str, path_prefix: &str) -> Self {
        let m = Some(Matcher::new(method, path_prefix));
        match &mut self {
            Fault::Latency { matching, .. }
            | Fault::FailNext { matching, .. }
            | Fault::RateLimitNext { matching, .. }
            | Fault::ResetNext { matching, .. }
            | Fault::DeleteProvidersFirst { matching, .. }
            | Fault::DropResponseAfterWrite { matching, .. } => *matching = m,
        }
        self
    }
}

/// What a down double looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum DownMode {
    /// Up.
    #[default]
    Up,
    /// Unreachable: every API request's connection is reset without an answer.
    Reset,
    /// Up behind a proxy whose backend is gone: every API request gets this status
    /// (502/503) with a non-JSON body, as an ingress controller answers.
    Status {
        /// The status to answer with.
        status: u16,
    },
}

/// What to do with one request before it reaches a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Reset,
    Down(u16),
    Fail {
        status: u16,
        empty_body: bool,
    },
    RateLimit(u64),
    Handle {
        extra_latency: Duration,
        drop_response: bool,
        /// Providers another admin deletes just before this request is handled.
        delete_providers: Vec<i64>,
    },
}

/// The active faults, consumed in order of injection.
#[derive(Debug, Default)]
pub(crate) struct FaultSet {
    pub(crate) faults: Vec<Fault>,
    pub(crate) down: DownMode,
}

impl FaultSet {
    /// Decide the fate of a request and consume counted faults. Down wins; otherwise the
    /// first matching reset/fail/rate-limit fault in injection order; latency faults add up;
    /// a lost response is only decided for writes that will be handled.
    pub(crate) fn decide(&mut self, method: &str, path: &str) -> Verdict {
        match self.down {
            DownMode::Up => {}
            DownMode::Reset => return Verdict::Reset,
            DownMode::Status { status } => return Verdict::Down(status),
        }
        let mut extra_latency = Duration::ZERO;
        let mut drop_response = false;
        for fault in &self.faults {
            if let Fault::Latency { ms, matching } = fault
                && matches(matching, method, path)
            {
                extra_latency += Duration::from_millis(*ms);
            }
        }
        let verdict = self.faults.iter_mut().find_map(|fault| {
            let (count, matching, verdict) = match fault {
                Fault::ResetNext { count, matching } => (count, matching, Verdict::Reset),
                Fault::FailNext {
                    count,
                    status,
                    empty_body,
                    matching,
                } => (
                    count,
                    matching,
                    Verdict::Fail {
                        status: *status,
                        empty_body: *empty_body,
                    },
                ),
                Fault::RateLimitNext {
                    count,
                    retry_after_secs,
                    matching,
                } => (count, matching, Verdict::RateLimit(*retry_after_secs)),
                Fault::Latency { .. }
                | Fault::DropResponseAfterWrite { .. }
                | Fault::DeleteProvidersFirst { .. } => return None,
            };
            (*count > 0 && matches(matching, method, path)).then(|| {
                *count -= 1;
                verdict
            })
        });
        // A lost response is only consumed by a write that will actually be handled.
        if verdict.is_none() && is_write(method) {
            for fault in &mut self.faults {
                if let Fault::DropResponseAfterWrite { count, matching } = fault
                    && *count > 0
                    && matches(matching, method, path)
                {
                    *count -= 1;
                    drop_response = true;
                    break;
                }
            }
        }
        let mut delete_providers = Vec::new();
        if verdict.is_none()
            && let Some(index) = self.faults.iter().position(|fault| {
                matches!(fault, Fault::DeleteProvidersFirst { matching, .. } if matches(matching, method, path))
            })
            && let Fault::DeleteProvidersFirst { providers, .. } = self.faults.remove(index)
        {
            delete_providers = providers;
        }
        self.faults.retain(|fault| match fault {
            Fault::Latency { .. } | Fault::DeleteProvidersFirst { .. } => true,
            Fault::FailNext { count, .. }
            | Fault::RateLimitNext { count, .. }
            | Fault::ResetNext { count, .. }
            | Fault::DropResponseAfterWrite { count, .. } => *count > 0,
        });
        verdict.unwrap_or(Verdict::Handle {
            extra_latency,
            drop_response,
            delete_providers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_faults_are_consumed_in_order_and_removed() {
        let mut set = FaultSet::default();
        set.faults.push(Fault::fail_next(1, 503));
        set.faults.push(Fault::rate_limit_next(1, 7));
        assert_eq!(
            set.decide("GET", "/api/v3/x/"),
            Verdict::Fail {
                status: 503,
                empty_body: false
            }
        );
        assert_eq!(set.decide("GET", "/api/v3/x/"), Verdict::RateLimit(7));
        assert!(matches!(
            set.decide("GET", "/api/v3/x/"),
            Verdict::Handle { .. }
        ));
        assert!(set.faults.is_empty());
    }

    #[test]
    fn matcher_limits_a_fault_to_method_and_prefix() {
        let mut set = FaultSet::default();
        set.faults
            .push(Fault::fail_next(1, 500).only("patch", "/api/v3/outposts/"));
        assert!(matches!(
            set.decide("GET", "/api/v3/outposts/instances/"),
            Verdict::Handle { .. }
        ));
        assert!(matches!(
            set.decide("PATCH", "/api/v3/providers/proxy/1/"),
            Verdict::Handle { .. }
        ));
        assert_eq!(
            set.decide("PATCH", "/api/v3/outposts/instances/u/"),
            Verdict::Fail {
                status: 500,
                empty_body: false
            }
        );
    }

    #[test]
    fn lost_response_is_not_consumed_by_reads() {
        let mut set = FaultSet::default();
        set.faults.push(Fault::drop_response_after_write(1));
        assert_eq!(
            set.decide("GET", "/api/v3/x/"),
            Verdict::Handle {
                extra_latency: Duration::ZERO,
                drop_response: false,
                delete_providers: Vec::new(),
            }
        );
        assert_eq!(
            set.decide("POST", "/api/v3/x/"),
            Verdict::Handle {
                extra_latency: Duration::ZERO,
                drop_response: true,
                delete_providers: Vec::new(),
            }
        );
        assert!(set.faults.is_empty());
    }

    #[test]
    fn latency_faults_add_up_and_stay() {
        let mut set = FaultSet::default();
        set.faults.push(Fault::latency(Duration::from_millis(5)));
        set.faults.push(Fault::latency(Duration::from_millis(7)));
        for _ in 0..2 {
            assert_eq!(
                set.decide("GET", "/"),
                Verdict::Handle {
                    extra_latency: Duration::from_millis(12),
                    drop_response: false,
                    delete_providers: Vec::new(),
                }
            );
        }
    }

    #[test]
    fn a_concurrent_deletion_happens_once_before_the_first_matching_request() {
        let mut set = FaultSet::default();
        set.faults
            .push(Fault::delete_providers_first(vec![7, 8]).only("PATCH", "/api/v3/outposts/"));
        let deleted = |verdict: Verdict| match verdict {
            Verdict::Handle {
                delete_providers, ..
            } => delete_providers,
            other => panic!("{other:?}"),
        };
        assert!(deleted(set.decide("GET", "/api/v3/outposts/instances/u/")).is_empty());
        assert_eq!(
            deleted(set.decide("PATCH", "/api/v3/outposts/instances/u/")),
            vec![7, 8]
        );
        assert!(deleted(set.decide("PATCH", "/api/v3/outposts/instances/u/")).is_empty());
        assert!(set.faults.is_empty());
    }

    #[test]
    fn fault_json_round_trips() {
        let f: Fault =
            serde_json::from_str(r#"{"kind":"fail_next","count":2,"status":503}"#).expect("parse");
        assert_eq!(f, Fault::fail_next(2, 503));
        let f: Fault = serde_json::from_str(
            r#"{"kind":"fail_next","count":1,"status":405,"empty_body":true}"#,
        )
        .expect("parse");
        assert_eq!(f, Fault::fail_next_empty(1, 405));
        let f = Fault::reset_next(1).only("POST", "/api/v3/providers/");
        let back: Fault =
            serde_json::from_value(serde_json::to_value(&f).expect("ser")).expect("de");
        assert_eq!(back, f);
    }
}

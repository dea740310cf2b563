//! Why a reconcile did not converge, in two layers: a [`Failure`] is what users read in status
//! (phase, reason, message) and decides when to try again; an [`Error`] is what the controller
//! runtime sees (it triggers per-object backoff).

use std::time::Duration;

use gitops_authentik::{ErrorCategory, OutpostSelector};
use gitops_crd::Phase;
use gitops_crd::names::{SKIP_AUTHENTIK_CLEANUP_ANNOTATION, condition_types};

use crate::outpost::AssignError;
use crate::ownership::RecordError;

/// Conflict losers look again this often, so they converge soon after the winner goes away.
const CONFLICT_RECHECK: Duration = Duration::from_secs(30);
/// A missing CRD is installed by a person; checking once a minute is enough.
const KIND_RECHECK: Duration = Duration::from_secs(60);
/// Token problems need a person; checking once a minute is enough.
const UNAUTHORIZED_RECHECK: Duration = Duration::from_secs(60);

/// A reconcile that stopped short of Ready, as reported in status.
#[derive(Clone, Debug)]
pub struct Failure {
    pub phase: Phase,
    /// CamelCase reason for the `Ready` condition (and the failing step's condition).
    pub reason: &'static str,
    pub message: String,
    /// The step condition that failed (`Ready` when no single step did).
    pub condition: &'static str,
    /// The authentik error class behind it, if any.
    pub category: Option<ErrorCategory>,
    /// The wait authentik asked for (429).
    pub retry_after: Option<Duration>,
    /// When to look again; `None` means at the next resync.
    pub requeue_after: Option<Duration>,
    /// Retry with per-object exponential backoff (transient trouble).
    pub backoff: bool,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

impl std::error::Error for Failure {}

impl Failure {
    fn new(phase: Phase, reason: &'static str, condition: &'static str, message: String) -> Self {
        Self {
            phase,
            reason,
            message,
            condition,
            category: None,
            retry_after: None,
            requeue_after: None,
            backoff: false,
        }
    }

    fn after(mut self, delay: Duration) -> Self {
        self.requeue_after = Some(delay);
        self
    }

    fn with_backoff(mut self) -> Self {
        self.backoff = true;
        self
    }

    pub fn invalid(message: String) -> Self {
        Self::new(
            Phase::Failed,
            "InvalidSpec",
            condition_types::READY,
            message,
        )
    }

    pub fn cross_namespace(from: &str, to: &str) -> Self {
        Self::new(
            Phase::Failed,
            "CrossNamespaceNotAllowed",
            condition_types::SERVICE_RESOLVED,
            format!(
                "a ProxyConfig in namespace {from:?} may not publish a Service in {to:?}; add {from}:{to} to the controller's CROSS_NAMESPACE_ALLOWLIST, or move the ProxyConfig"
            ),
        )
    }

    /// Not a failure for users: authentication is switched off on purpose.
    pub fn disabled() -> Self {
        Self::new(
            Phase::Ready,
            "AuthenticationDisabled",
            condition_types::READY,
            "authentikConfig.enabled is false: nothing exists in authentik for this ProxyConfig"
                .into(),
        )
    }

    pub fn conflict(message: String) -> Self {
        Self::new(Phase::Failed, "Conflict", condition_types::READY, message)
            .after(CONFLICT_RECHECK)
    }

    pub fn ownership_conflict(condition: &'static str, message: String) -> Self {
        Self::new(Phase::Failed, "Conflict", condition, message)
    }

    pub fn flow_not_found(designation: &str, key: &str) -> Self {
        Self::new(
            Phase::Failed,
            "FlowNotFound",
            condition_types::PROVIDER_SYNCED,
            format!(
                "{designation} flow {key:?} does not exist in authentik (give a slug or UUID of an existing flow)"
            ),
        )
    }

    pub fn group_not_found(name: &str) -> Self {
        Self::new(
            Phase::Failed,
            "GroupNotFound",
            condition_types::APPLICATION_SYNCED,
            format!("allowedGroups names {name:?}, which is not an authentik group"),
        )
    }

    pub fn outpost_not_found(selector: &OutpostSelector) -> Self {
        let which = match selector {
            OutpostSelector::Embedded => "the embedded outpost".to_owned(),
            OutpostSelector::Named(name) => format!("outpost {name:?}"),
        };
        Self::new(
            Phase::Failed,
            "OutpostNotFound",
            condition_types::OUTPOST_ASSIGNED,
            format!("{which} does not exist in authentik"),
        )
    }

    /// A failed authentik call, classified by what it calls for.
    pub fn authentik(condition: &'static str, doing: &str, error: gitops_authentik::Error) -> Self {
        let category = error.category();
        let message = format!("{doing}: {error}");
        let mut failure = match category {
            ErrorCategory::Transient => {
                Self::new(Phase::Pending, "AuthentikUnreachable", condition, message).with_backoff()
            }
            ErrorCategory::RateLimited => {
                Self::new(Phase::Pending, "AuthentikRateLimited", condition, message).with_backoff()
            }
            ErrorCategory::NotFound => {
                // A cached view was stale; the next attempt reads fresh.
                Self::new(
                    Phase::Pending,
                    "AuthentikObjectVanished",
                    condition,
                    message,
                )
                .with_backoff()
            }
            ErrorCategory::Unauthorized => {
                Self::new(Phase::Failed, "AuthentikUnauthorized", condition, message)
                    .after(UNAUTHORIZED_RECHECK)
            }
            ErrorCategory::Invalid => {
                Self::new(Phase::Failed, "RejectedByAuthentik", condition, message)
            }
            ErrorCategory::Permanent => {
                Self::new(Phase::Failed, "AuthentikError", condition, message)
            }
        };
        failure.retry_after = error.retry_after();
        failure.category = Some(category);
        failure
    }

    pub fn outpost(condition: &'static str, error: AssignError) -> Self {
        match error {
            AssignError::Authentik(error) => {
                Self::authentik(condition, "assigning the outpost", error)
            }
            // The next attempt finds the provider missing and creates it again.
            gone @ AssignError::ProviderGone { .. } => Self::new(
                Phase::Pending,
                "AuthentikObjectVanished",
                condition,
                gone.to_string(),
            )
            .with_backoff(),
            other => Self::new(
                Phase::Pending,
                "OutpostContended",
                condition,
                other.to_string(),
            )
            .with_backoff(),
        }
    }

    pub fn record(condition: &'static str, error: RecordError) -> Self {
        Self::new(
            Phase::Pending,
            "OwnershipRecordPending",
            condition,
            format!("writing the AuthentikObject ownership record: {error}"),
        )
        .with_backoff()
    }

    /// The reverse-proxy wiring `forwardAuth` asks for cannot be made (see
    /// `gitops_plan::forward_auth::WiringProblem`); nothing was written.
    pub fn forward_auth(reason: &'static str, message: String) -> Self {
        Self::new(
            Phase::Failed,
            reason,
            condition_types::FORWARD_AUTH_READY,
            message,
        )
    }

    /// `forwardAuth` names a kind the API server does not serve; looked at again soon, so that
    /// installing the CRDs is enough.
    pub fn proxy_kind_not_installed(kind: &str, crds: &str) -> Self {
        Self::new(
            Phase::Failed,
            "ProxyKindNotInstalled",
            condition_types::FORWARD_AUTH_READY,
            format!(
                "forwardAuth asks for a {kind}, which this cluster does not serve; install {crds} or remove that part of forwardAuth"
            ),
        )
        .after(KIND_RECHECK)
    }

    /// `forwardAuth.httpRoute` names a route that does not exist (yet); looked at again soon.
    pub fn route_not_found(namespace: &str, name: &str) -> Self {
        Self::new(
            Phase::Failed,
            "RouteNotFound",
            condition_types::FORWARD_AUTH_READY,
            format!(
                "forwardAuth.httpRoute names HTTPRoute {namespace}/{name}, which does not exist; create it or correct the name"
            ),
        )
        .after(KIND_RECHECK)
    }

    /// The outpost the wiring would point at does not answer its ping; nothing was written.
    pub fn outpost_unreachable(url: &str, why: String) -> Self {
        Self::new(
            Phase::Pending,
            "OutpostUnreachable",
            condition_types::FORWARD_AUTH_READY,
            format!(
                "the outpost does not answer {url} ({why}); the forward-auth wiring is not written until it does, as it would lock every user out. Check FORWARD_AUTH_OUTPOST_URL and that the outpost runs"
            ),
        )
        .with_backoff()
    }

    /// A failed API-server call while wiring the reverse proxy.
    pub fn proxy_api(condition: &'static str, message: String) -> Self {
        Self::new(Phase::Pending, "ProxyWiringFailed", condition, message).with_backoff()
    }

    pub fn retry_soon(condition: &'static str, message: String) -> Self {
        Self::new(Phase::Pending, "Retrying", condition, message).with_backoff()
    }

    /// Rewords a failure that keeps a ProxyConfig from being deleted.
    pub fn blocking_deletion(mut self) -> Self {
        self.message = format!(
            "deletion waits for authentik cleanup ({}); the finalizer stays until it succeeds. Set the annotation {SKIP_AUTHENTIK_CLEANUP_ANNOTATION}: \"true\" to release it without cleaning authentik",
            self.message
        );
        self.reason = "CleanupBlocked";
        self.phase = Phase::Pending;
        self.backoff = true;
        self
    }

    pub fn wants_backoff(&self) -> bool {
        self.backoff
    }

    /// When to reconcile again after reporting this failure.
    pub fn requeue(&self, resync: Duration) -> kube::runtime::controller::Action {
        kube::runtime::controller::Action::requeue(self.requeue_after.unwrap_or(resync))
    }
}

/// What the controller runtime sees.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reported in status; retried with backoff.
    #[error("{0}")]
    Retry(Failure),
    #[error("writing the status of {name}: {source}")]
    Status {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// The finalizer patch's precondition on the finalizer list failed: the copy being
    /// reconciled is older than the server's (a reconcile just before added the finalizer).
    /// Not a failure: the watch is bringing the newer copy.
    #[error("the ProxyConfig changed since this copy was read; reconciling the newer one")]
    StaleCopy,
    /// Stopping before the caches were complete; the next leader reconciles it.
    #[error(transparent)]
    Stopping(#[from] gitops_runtime::watches::Stopping),
}

impl From<kube::runtime::finalizer::Error<Error>> for Error {
    fn from(error: kube::runtime::finalizer::Error<Error>) -> Self {
        use kube::runtime::finalizer::Error as F;
        match error {
            F::ApplyFailed(inner) | F::CleanupFailed(inner) => inner,
            F::AddFinalizer(kube::Error::Api(status))
            | F::RemoveFinalizer(kube::Error::Api(status))
                if is_failed_patch_test(&status) =>
            {
                Error::StaleCopy
            }
            other => Error::Finalizer(Box::new(other)),
        }
    }
}

/// A JSON patch whose `test` operation failed: the API server answers 422 without naming an
/// object or field, unlike a validation error (which names the ProxyConfig and its causes).
fn is_failed_patch_test(status: &kube::core::Status) -> bool {
    status.code == 422
        && status.details.as_ref().is_none_or(|details| {
            details.name.is_empty() && details.kind.is_empty() && details.causes.is_empty()
        })
}

impl Error {
    /// Low-cardinality label for the error counter.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Retry(failure) => failure.reason,
            Error::Status { .. } => "StatusWriteFailed",
            Error::Finalizer(_) => "FinalizerUpdateFailed",
            Error::StaleCopy => "StaleCopy",
            Error::Stopping(_) => "Stopping",
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Retry(failure) => failure.retry_after,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use kube::runtime::finalizer::Error as FinalizerError;
    use serde_json::{Value, json};

    use super::Error;

    /// An API server's answer as it arrives on the wire.
    fn answer(status: Value) -> kube::Error {
        kube::Error::Api(Box::new(serde_json::from_value(status).expect("a Status")))
    }

    /// What kube-apiserver answers when a JSON patch's `test` operation fails.
    fn failed_patch_test() -> kube::Error {
        answer(json!({
            "status": "Failure", "code": 422, "reason": "Invalid", "details": {},
            "message": "the server rejected our request due to an error in our request"
        }))
    }

    #[test]
    fn a_failed_finalizer_precondition_is_a_stale_copy() {
        for failed in [
            FinalizerError::AddFinalizer(failed_patch_test()),
            FinalizerError::RemoveFinalizer(failed_patch_test()),
        ] {
            assert!(matches!(Error::from(failed), Error::StaleCopy));
        }
        assert_eq!(Error::StaleCopy.metric_label(), "StaleCopy");
    }

    #[test]
    fn other_answers_to_the_finalizer_patch_stay_failures() {
        let invalid = answer(json!({
            "status": "Failure", "code": 422, "reason": "Invalid",
            "message": "ProxyConfig.gitops.io \"web\" is invalid",
            "details": {"name": "web", "group": "gitops.io", "kind": "ProxyConfig",
                        "causes": [{"reason": "FieldValueInvalid", "field": "spec.host"}]}
        }));
        let conflict = answer(json!({"status": "Failure", "code": 409, "reason": "Conflict"}));
        for failed in [invalid, conflict] {
            let error = Error::from(FinalizerError::AddFinalizer(failed));
            assert!(matches!(error, Error::Finalizer(_)), "{error:?}");
        }
    }
}

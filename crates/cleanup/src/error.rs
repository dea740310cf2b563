//! Failures, each tagged with the operation that failed (the `operation` label of
//! `gitops_cleanup_errors_total`). They are counted where they are reported
//! ([`crate::metrics::error`] beside each log line), once each.

use std::fmt;

/// What was being done; a stable, low-cardinality metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    ReadJob,
    DeleteJob,
    ListPods,
    DeletePod,
    ListProxyConfigs,
    ListRecords,
    ReadRecord,
    MarkOrphaned,
    ClearOrphaned,
    DeleteRecord,
    ReachAuthentik,
    ReadAuthentikObject,
    DeleteAuthentikObject,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::ReadJob => "read_job",
            Operation::DeleteJob => "delete_job",
            Operation::ListPods => "list_pods",
            Operation::DeletePod => "delete_pod",
            Operation::ListProxyConfigs => "list_proxyconfigs",
            Operation::ListRecords => "list_records",
            Operation::ReadRecord => "read_record",
            Operation::MarkOrphaned => "mark_orphaned",
            Operation::ClearOrphaned => "clear_orphaned",
            Operation::DeleteRecord => "delete_record",
            Operation::ReachAuthentik => "reach_authentik",
            Operation::ReadAuthentikObject => "read_authentik_object",
            Operation::DeleteAuthentikObject => "delete_authentik_object",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str().replace('_', " "))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{operation} {target}: {source}")]
    Kube {
        operation: Operation,
        target: String,
        #[source]
        source: kube::Error,
    },
    #[error("{operation} {target}: {source}")]
    Authentik {
        operation: Operation,
        target: String,
        #[source]
        source: gitops_authentik::Error,
    },
}

impl Error {
    pub fn kube(operation: Operation, target: impl fmt::Display, source: kube::Error) -> Self {
        Error::Kube {
            operation,
            target: target.to_string(),
            source,
        }
    }

    pub fn authentik(
        operation: Operation,
        target: impl fmt::Display,
        source: gitops_authentik::Error,
    ) -> Self {
        Error::Authentik {
            operation,
            target: target.to_string(),
            source,
        }
    }
}

impl Error {
    pub fn operation(&self) -> Operation {
        match self {
            Error::Kube { operation, .. } | Error::Authentik { operation, .. } => *operation,
        }
    }
}

/// The API server answered 404.
pub fn is_not_found(error: &kube::Error) -> bool {
    status_code(error) == Some(404)
}

/// The API server answered 409: a precondition (uid, resourceVersion) no longer holds.
pub fn is_conflict(error: &kube::Error) -> bool {
    status_code(error) == Some(409)
}

fn status_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

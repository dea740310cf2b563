//! Why a command could not check (exit code 2), each with a message that says what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("cannot reach the Kubernetes API server at {server}: {reason}")]
    Unreachable { server: String, reason: String },
    #[error("{action}: {reason}")]
    Kube { action: String, reason: String },
    #[error("authentik: {0}")]
    Authentik(String),
    #[error("{0}")]
    Config(String),
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
}

impl CliError {
    pub fn kube(action: impl Into<String>, error: &kube::Error) -> Self {
        CliError::Kube {
            action: action.into(),
            reason: describe_kube(error),
        }
    }

    pub fn file(path: impl Into<PathBuf>, reason: impl ToString) -> Self {
        CliError::File {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}

/// A kube error as people read it: the API server's message, or the innermost cause of a
/// transport error ("Connection refused") rather than kube's wrapper names.
pub fn describe_kube(error: &kube::Error) -> String {
    if let kube::Error::Api(status) = error {
        let message = if status.message.is_empty() {
            status.reason.clone()
        } else {
            status.message.clone()
        };
        return format!("{message} (HTTP {})", status.code);
    }
    let mut innermost: &dyn std::error::Error = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    innermost.to_string()
}

/// Whether the API server answered `Forbidden` or `NotFound`: a permission or installation
/// gap worth reporting as a problem, not a reason to stop.
pub fn is_status(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_show_the_servers_message_and_code() {
        let status =
            kube::core::Status::failure("secrets is forbidden", "Forbidden").with_code(403);
        let error = kube::Error::Api(Box::new(status));
        assert_eq!(describe_kube(&error), "secrets is forbidden (HTTP 403)");
        assert!(is_status(&error, 403));
        assert!(!is_status(&error, 404));
    }
}

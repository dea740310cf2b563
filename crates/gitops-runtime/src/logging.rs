use std::str::FromStr;

use tracing_subscriber::EnvFilter;

/// Log line format: JSON for the cluster (one object per line, easy to ship and grep), text for
/// people at a terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

impl FromStr for LogFormat {
    type Err = LoggingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            other => Err(LoggingError::UnknownFormat(other.to_owned())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("log format {0:?} is not one of: json, text")]
    UnknownFormat(String),
    #[error("log filter {filter:?} is invalid: {reason}")]
    InvalidFilter { filter: String, reason: String },
    #[error("a global logger is already installed")]
    AlreadyInstalled,
}

/// Installs the global subscriber. `filter` uses `RUST_LOG` syntax (e.g. `info,kube=warn`).
pub fn init_logging(format: LogFormat, filter: &str) -> Result<(), LoggingError> {
    let env_filter = EnvFilter::try_new(filter).map_err(|e| LoggingError::InvalidFilter {
        filter: filter.to_owned(),
        reason: e.to_string(),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_target(true);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.map_err(|_| LoggingError::AlreadyInstalled)
}

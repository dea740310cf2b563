use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while building tools or running the test environment.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("image archive {}: {reason}", path.display())]
    ImageArchive { path: PathBuf, reason: String },

    #[error("tools.toml: {0}")]
    Pins(String),

    #[error("the Go toolchain (`go`) is not on PATH; it builds the pinned tools from source")]
    GoMissing,

    #[error("`{command}` failed ({status}); full output in {log}\n{tail}")]
    Command {
        command: String,
        status: String,
        log: PathBuf,
        tail: String,
    },

    #[error("unexpected output from `{command}`: {detail}")]
    CommandOutput { command: String, detail: String },

    #[error("generating certificates: {0}")]
    Certificate(#[from] rcgen::Error),

    #[error("{component} exited during start-up ({status}); last lines of {log}:\n{tail}")]
    ComponentExited {
        component: &'static str,
        status: String,
        log: PathBuf,
        tail: String,
    },

    /// A component could not listen: the first line is the whole diagnosis.
    #[error(
        "{component} cannot start: {address} is already taken{holder}; free it and start again. \
         Last lines of {log}:\n{tail}"
    )]
    PortTaken {
        component: &'static str,
        /// `host:port` as the component's log names it.
        address: String,
        /// ` by pid N (name)` when the listener's process is known, else empty.
        holder: String,
        log: PathBuf,
        tail: String,
    },

    #[error("timed out after {waited:?} waiting for {what}")]
    Timeout { what: String, waited: Duration },

    #[error("no test environment at {dir}: {reason}")]
    NotRunning { dir: PathBuf, reason: String },

    #[error("no shared test environment is running; start one with `cargo xtask testenv up`")]
    NoneRunning,

    #[error("YAML in {path}: {message}")]
    Yaml { path: PathBuf, message: String },

    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),

    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),

    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),

    #[error("a helper thread panicked: {0}")]
    HelperPanicked(String),

    #[error("the shared test environment failed to start earlier in this process: {0}")]
    SharedStartFailed(String),

    #[error("cannot start a test node: {0}")]
    NodeBusy(String),

    #[error(
        "this test binary cannot watch the node it starts: add `gitops_testenv::node_watchdog!();` \
         to it (the test environment runs that test as the node's watchdog); {detail}"
    )]
    NoNodeWatchdog { detail: String },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches what was being done to an I/O error.
pub(crate) trait IoContext<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}

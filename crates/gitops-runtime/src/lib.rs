//! What both controllers run on, so neither carries its own copy: structured logging, Events, the
//! Prometheus recorder with `/metrics`, `/healthz` and `/readyz`, Lease-based leader election and
//! graceful shutdown on SIGTERM or Ctrl-C, and the watches both controllers set up (see [`watches`]).
//!
//! It knows nothing of ProxyConfigs or authentik.

mod events;
mod health;
mod leader;
mod logging;
mod process;
mod shutdown;
pub mod watches;

pub use events::Events;
pub use health::{
    Readiness, ReadinessGate, ServeError, ServingAddrs, install_metrics_recorder, serve,
};
pub use leader::{LeaderConfig, LeaderError, run_while_leader};
pub use logging::{LogFormat, LoggingError, init_logging};
pub use process::{Process, ProcessArgs, ProcessError, Work, duration, finish, start};
pub use shutdown::shutdown_on_signal;

/// Installs ring as the process-wide rustls crypto provider. Call first thing in `main`: kube and
/// reqwest both build TLS configs, and with no provider chosen rustls panics at the first TLS use.
pub fn install_crypto_provider() {
    // An Err means a provider is already installed, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

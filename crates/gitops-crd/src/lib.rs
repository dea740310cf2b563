//! Types shared by both controllers and the CLI: the `ProxyConfig` custom resource, the
//! `AuthentikObject` ownership record, the checks
//! the API server cannot do, Kubernetes-convention conditions, and the names everything agrees on.
//!
//! This crate knows nothing of authentik's wire format and depends on no other crate of ours.

pub mod conditions;
pub mod names;
pub mod onboarding;
pub mod ownership;
mod proxyconfig;
pub mod validate;

pub use proxyconfig::{
    AuthentikConfig, DEFAULT_SKIP_PATH_REGEX, ForwardAuth, HttpRouteForwardAuth, Phase, Protocol,
    ProxyConfig, ProxyConfigSpec, ProxyConfigStatus, ProxyMode, RouteFilterKind,
    TraefikForwardAuth,
};

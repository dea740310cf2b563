//! A typed async client for the parts of the authentik API that wire Services into
//! forward-auth: flows, proxy providers, applications, groups and policy bindings, outposts,
//! and the health endpoints. It knows nothing of Kubernetes.
//!
//! # Use
//!
//! ```no_run
//! # async fn demo() -> Result<(), gitops_authentik::Error> {
//! use gitops_authentik::{ApiToken, AuthentikClient, ClientConfig, ProxyMode, ProxyProviderRequest};
//!
//! let config = ClientConfig::new(
//!     "http://authentik-server.authentik.svc.cluster.local:9000", // or …/api/v3
//!     ApiToken::new(std::env::var("AUTHENTIK_TOKEN").unwrap_or_default()),
//! );
//! let client = AuthentikClient::new(config)?;
//! client.current_user().await?; // proves the token works
//!
//! let authz = client.get_flow("default-provider-authorization-implicit-consent").await?;
//! let inval = client.get_flow("default-provider-invalidation-flow").await?;
//! let provider = match client.find_proxy_provider_by_name("grafana").await? {
//!     Some(existing) => existing,
//!     None => {
//!         let mut request =
//!             ProxyProviderRequest::new("grafana", authz.pk, inval.pk, "https://grafana.example.com");
//!         request.mode = ProxyMode::ForwardSingle;
//!         client.create_proxy_provider(&request).await?
//!     }
//! };
//! if let Some(outpost) = client.find_embedded_outpost().await? {
//!     if !outpost.providers.contains(&provider.pk) {
//!         let mut providers = outpost.providers.clone();
//!         providers.push(provider.pk);
//!         client.set_outpost_providers(&outpost.pk, &providers).await?;
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # API
//!
//! [`AuthentikClient`] methods follow one convention: `get_*` addresses an object by key and
//! fails with [`Error::NotFound`]; `find_*` filters a list and returns `Ok(None)` without an
//! exact match; `list_*` follows every page (`page_size=100`, `pagination.next == 0` ends).
//!
//! | area | methods |
//! |---|---|
//! | flows | [`get_flow`](AuthentikClient::get_flow) (slug), [`list_flows_by_designation`](AuthentikClient::list_flows_by_designation), [`find_flow_by_uuid`](AuthentikClient::find_flow_by_uuid) |
//! | proxy providers | [`find_proxy_provider_by_name`](AuthentikClient::find_proxy_provider_by_name), [`list_proxy_providers`](AuthentikClient::list_proxy_providers), [`get_proxy_provider`](AuthentikClient::get_proxy_provider), [`create_proxy_provider`](AuthentikClient::create_proxy_provider), [`update_proxy_provider`](AuthentikClient::update_proxy_provider) (PUT), [`patch_proxy_provider`](AuthentikClient::patch_proxy_provider), [`delete_proxy_provider`](AuthentikClient::delete_proxy_provider) |
//! | any provider | [`find_provider_by_name`](AuthentikClient::find_provider_by_name) (who holds a name) |
//! | applications | [`get_application`](AuthentikClient::get_application) (slug), [`list_applications`](AuthentikClient::list_applications), [`create_application`](AuthentikClient::create_application), [`update_application`](AuthentikClient::update_application) (PUT), [`patch_application`](AuthentikClient::patch_application), [`delete_application`](AuthentikClient::delete_application) |
//! | groups, bindings | [`find_group_by_name`](AuthentikClient::find_group_by_name), [`list_policy_bindings`](AuthentikClient::list_policy_bindings), [`create_policy_binding`](AuthentikClient::create_policy_binding), [`delete_policy_binding`](AuthentikClient::delete_policy_binding) |
//! | outposts | [`find_embedded_outpost`](AuthentikClient::find_embedded_outpost), [`find_outpost_by_name`](AuthentikClient::find_outpost_by_name), [`get_outpost`](AuthentikClient::get_outpost), [`set_outpost_providers`](AuthentikClient::set_outpost_providers) |
//! | health | [`current_user`](AuthentikClient::current_user), [`version`](AuthentikClient::version) |
//!
//! Response types tolerate unknown fields and missing optional ones (authentik 2024.10 to
//! 2026.8). Request types always send `invalidation_flow` and `mode`, and never send
//! `property_mappings` unless set; outpost writes send only `providers`.
//!
//! # Errors
//!
//! Every method returns [`Error`]; [`Error::category`] tells a controller what to do:
//! [`NotFound`](ErrorCategory::NotFound) (create / treat as gone),
//! [`Invalid`](ErrorCategory::Invalid) (400 with the field-keyed body kept; see
//! [`Error::is_field_conflict`] for taken names and slugs),
//! [`Unauthorized`](ErrorCategory::Unauthorized) (401 and 403 alike: authentik answers 403 for
//! bad tokens), [`RateLimited`](ErrorCategory::RateLimited) (429, [`Error::retry_after`]),
//! [`Transient`](ErrorCategory::Transient) (5xx, timeouts, connection errors, a 4xx without a
//! JSON body) and [`Permanent`](ErrorCategory::Permanent) (undecodable body, unexpected status
//! with a JSON body or a redirect, bad config).
//!
//! # Retries, timeouts, connections
//!
//! Idempotent calls (GET, PUT, DELETE, and this client's PATCHes, which set absolute values)
//! are retried after transient and rate-limit errors with exponential backoff and jitter,
//! capped in attempts and total time, honouring `Retry-After` up to a cap ([`RetryPolicy`]).
//! POST is never retried. A retried DELETE that meets 404 counts as done. Each attempt has
//! [`ClientConfig::request_timeout`]; clones of a client share one connection pool.
//!
//! Connections: an idle kept-alive connection is dropped after
//! [`ClientConfig::idle_connection_timeout`] (default 1 s), below authentik's own keep-alive
//! (2 s): reusing a connection the server is closing fails the request. Such failures — a
//! connection reset, or a 4xx without a JSON body (authentik 2025.12.4 answered an empty 405) —
//! are [`Transient`](ErrorCategory::Transient), so idempotent calls are retried and a
//! controller keeps the object pending instead of failing it. gunicorn also recycles a worker
//! after ~1,000 requests, resetting its kept-alive connections; the same rules cover that.
//!
//! # Metrics and tracing
//!
//! Through the `metrics` facade, named in [`metric_names`]: requests by endpoint template,
//! method and status, request latency, and the `gitops_retry_*` family by operation. Each
//! attempt runs in a `debug` span `authentik_request` (method, endpoint template, attempt,
//! status, duration). The token is never logged, and response bodies are not logged.
//!
//! # Secrets
//!
//! The token lives in [`ApiToken`], whose `Debug` and `Display` print `ApiToken(***)`;
//! [`ClientConfig`] and [`AuthentikClient`] print it the same way, and response text kept in
//! errors is redacted against it.

mod api;
#[cfg(feature = "clap")]
mod args;
mod backoff;
mod client;
mod config;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod lookup;
mod metrics;
mod models;
mod retry;
mod server_version;
mod token;

#[cfg(feature = "clap")]
pub use args::{ConnectionArgs, ConnectionError};
pub use backoff::ExponentialBackoff;
pub use client::AuthentikClient;
pub use config::{ClientConfig, DEFAULT_IDLE_CONNECTION_TIMEOUT};
pub use error::{Error, ErrorCategory};
pub use lookup::{OutpostSelector, looks_like_uuid, not_found_as_none};
pub use metrics::{describe_metrics, metric_names};
pub use models::{
    Application, ApplicationPatch, ApplicationRequest, Flow, FlowDesignation, Group, Outpost,
    Paginated, Pagination, PolicyBinding, PolicyBindingRequest, PolicyEngineMode, ProviderSummary,
    ProxyMode, ProxyProvider, ProxyProviderPatch, ProxyProviderRequest, SessionUser, UserSelf,
    Version,
};
pub use retry::RetryPolicy;
pub use server_version::{NEWEST_SUPPORTED_YEAR, OLDEST_SUPPORTED, ServerVersion};
pub use token::{ApiToken, TokenSourceError};

//! Start-up configuration: token, imitated release and the latency model.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::version::ApiVersion;

/// Default admin API token of a fresh double (any non-empty string works; tests usually keep it).
pub const DEFAULT_TOKEN: &str = "authentik-double-admin-token";

/// How long requests take. Off by default so unit tests stay fast.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LatencyModel {
    /// Answer as fast as possible.
    #[default]
    Off,
    /// The same delay for every API request.
    Fixed {
        /// Delay in milliseconds.
        ms: u64,
    },
    /// Per-endpoint costs measured on a real authentik 2025.12.4 on 2 cores (API doc §11).
    Realistic,
}

impl LatencyModel {
    /// Per-endpoint latency as measured on a real server.
    pub fn realistic() -> Self {
        LatencyModel::Realistic
    }

    /// The same delay for every request.
    pub fn fixed(delay: Duration) -> Self {
        LatencyModel::Fixed {
            ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// How long a request should take. `template` is the route template (e.g.
    /// `/api/v3/outposts/instances/{uuid}/`); `outpost_providers` is the outpost's provider
    /// count after an outpost write, because that PATCH grows with it on a real server.
    pub fn latency_for(
        &self,
        method: &str,
        template: &str,
        outpost_providers: Option<usize>,
    ) -> Duration {
        match self {
            LatencyModel::Off => Duration::ZERO,
            LatencyModel::Fixed { ms } => Duration::from_millis(*ms),
            LatencyModel::Realistic => {
                Duration::from_millis(realistic_ms(method, template, outpost_providers))
            }
        }
    }
}

fn realistic_ms(method: &str, template: &str, outpost_providers: Option<usize>) -> u64 {
    let is_outpost = template.starts_with("/api/v3/outposts/");
    let is_provider = template.starts_with("/api/v3/providers/");
    let is_application = template.starts_with("/api/v3/core/applications/");
    match method {
        // ~0.4 s with an empty outpost, ~1.6 s with 40 providers (measured 1.5–2.3 s).
        "PUT" | "PATCH" if is_outpost => {
            let n = u64::try_from(outpost_providers.unwrap_or(0)).unwrap_or(u64::MAX);
            400u64.saturating_add(n.saturating_mul(30))
        }
        "GET" if is_outpost => 115,
        "GET" => 57,
        "POST" | "PUT" | "PATCH" if is_provider => 180,
        "POST" | "PUT" | "PATCH" if is_application => 150,
        "POST" | "PUT" | "PATCH" => 120,
        "DELETE" => 120,
        _ => 57,
    }
}

/// How the double starts.
#[derive(Debug, Clone)]
pub struct DoubleConfig {
    /// Address to bind; `None` means `127.0.0.1:0` (a free port).
    pub listen: Option<SocketAddr>,
    /// The only API token the double accepts (the seeded admin token).
    pub token: String,
    /// Release to imitate.
    pub api_version: ApiVersion,
    /// Request cost model.
    pub latency: LatencyModel,
    /// Largest `page_size` honoured. The real cap is configurable and its default unknown;
    /// 100 (the default page size) makes clients that forget to paginate fail visibly.
    pub max_page_size: usize,
    /// Seed for generated uuids, client ids and secrets, so runs are reproducible.
    pub seed: u64,
}

impl Default for DoubleConfig {
    fn default() -> Self {
        DoubleConfig {
            listen: None,
            token: DEFAULT_TOKEN.to_owned(),
            api_version: ApiVersion::default(),
            latency: LatencyModel::Off,
            max_page_size: 100,
            seed: 0x5eed_a07e_2025_1204,
        }
    }
}

impl DoubleConfig {
    /// Use this token instead of the default.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = token.into();
        self
    }

    /// Imitate another release.
    pub fn with_api_version(mut self, version: ApiVersion) -> Self {
        self.api_version = version;
        self
    }

    /// Use a latency model.
    pub fn with_latency(mut self, latency: LatencyModel) -> Self {
        self.latency = latency;
        self
    }

    /// Bind this address.
    pub fn with_listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }
}

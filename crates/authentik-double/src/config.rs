//! Start-up configuration: token, imitated release, latency model and listen address.

use std::net::SocketAddr;

use crate::latency::LatencyModel;
pub use crate::version::ApiVersion;

/// Default admin API token of a fresh double (any non-empty string works; tests usually keep it).
pub const DEFAULT_TOKEN: &str = "authentik-double-admin-token";

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

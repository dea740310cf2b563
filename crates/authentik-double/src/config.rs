//! Start-up configuration: token, API version switch, latency model and listen address.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::latency::LatencyModel;

/// Default admin API token of a fresh double (any non-empty string works; tests usually keep it).
pub const DEFAULT_TOKEN: &str = "authentik-double-admin-token";

/// Which authentik release the double imitates where releases differ in ways clients see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ApiVersion {
    /// 2025.12.x: the release the recorded transcripts come from.
    #[default]
    #[serde(rename = "2025.12")]
    V2025_12,
    /// 2024.10.x: list envelopes have no `autocomplete` key (it arrived in 2025.8).
    #[serde(rename = "2024.10")]
    V2024_10,
}

impl ApiVersion {
    /// `version_current` reported by `/admin/version/`.
    pub fn version_string(self) -> &'static str {
        match self {
            ApiVersion::V2025_12 => "2025.12.4",
            ApiVersion::V2024_10 => "2024.10.5",
        }
    }

    /// Whether paginated list envelopes carry `autocomplete`.
    pub fn has_autocomplete(self) -> bool {
        matches!(self, ApiVersion::V2025_12)
    }
}

impl std::str::FromStr for ApiVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "2025.12" | "2025.12.4" => Ok(ApiVersion::V2025_12),
            "2024.10" | "2024.10.5" => Ok(ApiVersion::V2024_10),
            other => Err(format!(
                "unsupported api version {other:?} (use 2025.12 or 2024.10)"
            )),
        }
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

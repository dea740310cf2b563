//! How long the double takes to answer: off, fixed, or the realistic per-endpoint model fitted
//! to a real authentik 2025.12.4 on 2 cores (gunicorn, 2 workers).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What an outpost write did, because on a real server its cost depends on the outpost's size
/// and on how many providers the write added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutpostWrite {
    /// Providers in the outpost after the write.
    pub providers: usize,
    /// Providers the write added (in the list after, not before).
    pub added: usize,
}

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
    /// Per-endpoint costs measured on a real authentik 2025.12.4 on 2 cores (API doc §11,
    /// outpost writes re-measured from 1 to 201 providers).
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
    /// `/api/v3/outposts/instances/{uuid}/`); `outpost_write` describes an outpost write,
    /// whose cost on a real server grows with the outpost and with the providers it adds.
    pub fn latency_for(
        &self,
        method: &str,
        template: &str,
        outpost_write: Option<OutpostWrite>,
    ) -> Duration {
        match self {
            LatencyModel::Off => Duration::ZERO,
            LatencyModel::Fixed { ms } => Duration::from_millis(*ms),
            LatencyModel::Realistic => {
                Duration::from_millis(realistic_ms(method, template, outpost_write))
            }
        }
    }
}

/// An outpost write that changes nothing: fixed part and cost per provider in the outpost.
/// Measured (3 writes each): 0.49 s at 1 provider, 0.97 s at 51, 1.17 s at 101, 1.67 s at 201.
const OUTPOST_WRITE_BASE_MS: u64 = 500;
const OUTPOST_WRITE_PER_PROVIDER_MS: u64 = 6;
/// What each added provider costs on top (outpost-refresh work per new member). Measured:
/// adding 50 took 3.6 s, adding 100 (to 101) 8.3 s, i.e. 70–80 ms per added provider in
/// total, of which the unchanged-write cost above is the smaller part.
const OUTPOST_WRITE_PER_ADDED_MS: u64 = 60;

fn outpost_write_ms(write: OutpostWrite) -> u64 {
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    OUTPOST_WRITE_BASE_MS
        .saturating_add(count(write.providers).saturating_mul(OUTPOST_WRITE_PER_PROVIDER_MS))
        .saturating_add(count(write.added).saturating_mul(OUTPOST_WRITE_PER_ADDED_MS))
}

fn realistic_ms(method: &str, template: &str, outpost_write: Option<OutpostWrite>) -> u64 {
    let is_outpost = template.starts_with("/api/v3/outposts/");
    let is_provider = template.starts_with("/api/v3/providers/");
    let is_application = template.starts_with("/api/v3/core/applications/");
    match method {
        "POST" | "PUT" | "PATCH" if is_outpost => {
            outpost_write_ms(outpost_write.unwrap_or_default())
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

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPOST: &str = "/api/v3/outposts/instances/{uuid}/";

    fn seconds(providers: usize, added: usize) -> f64 {
        LatencyModel::realistic()
            .latency_for("PATCH", OUTPOST, Some(OutpostWrite { providers, added }))
            .as_secs_f64()
    }

    fn assert_near(what: &str, modelled: f64, measured: f64, tolerance: f64) {
        let off = (modelled - measured).abs() / measured;
        assert!(
            off <= tolerance,
            "{what}: model {modelled:.2} s, measured {measured:.2} s ({:.0} % off)",
            off * 100.0
        );
    }

    /// The fit against the measurements on a real authentik 2025.12.4 (issue 16, 5d).
    #[test]
    fn outpost_writes_follow_the_real_server() {
        for (providers, measured) in [(1, 0.49), (51, 0.97), (101, 1.17), (201, 1.67)] {
            assert_near(
                &format!("unchanged write at {providers}"),
                seconds(providers, 0),
                measured,
                0.2,
            );
        }
        // The outpost grew 1 → 51 → 101 → 201 between those points.
        assert_near("adding 50 to 1", seconds(51, 50), 3.6, 0.15);
        assert_near("adding 50 to 51", seconds(101, 50), 3.6, 0.15);
        assert_near("adding 100 to 101", seconds(201, 100), 8.3, 0.15);
        // Removing providers costs like an unchanged write of the smaller outpost.
        assert!((seconds(100, 0) - 1.1).abs() < 1e-9);
    }

    #[test]
    fn other_endpoints_keep_their_measured_costs() {
        let model = LatencyModel::realistic();
        let ms = |method: &str, template: &str| model.latency_for(method, template, None);
        assert_eq!(ms("GET", "/api/v3/providers/proxy/").as_millis(), 57);
        assert_eq!(ms("POST", "/api/v3/providers/proxy/").as_millis(), 180);
        assert_eq!(ms("POST", "/api/v3/core/applications/").as_millis(), 150);
        assert_eq!(ms("GET", OUTPOST).as_millis(), 115);
        assert_eq!(ms("PATCH", OUTPOST).as_millis(), 500);
        assert_eq!(
            LatencyModel::default().latency_for("GET", "/", None),
            Duration::ZERO
        );
    }
}

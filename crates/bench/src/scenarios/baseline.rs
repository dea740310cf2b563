//! Scenario 7: the original system's way, for comparison — one sequential pass per object as
//! the old curl Jobs did it (look the provider up, create it, create the application, read the
//! outpost, write its provider list back), against a double with the same latency.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use authentik_double::{AuthentikDouble, DoubleConfig};
use gitops_authentik::{
    ApiToken, ApplicationRequest, AuthentikClient, ClientConfig, ProxyMode, ProxyProviderRequest,
};
use serde::Serialize;

use crate::setup::Latency;
use crate::stats::linear_fit;

#[derive(Debug, Serialize)]
pub struct Baseline {
    pub objects: usize,
    /// Objects actually onboarded before the time budget ran out.
    pub measured_objects: usize,
    /// Seconds for all `objects`: measured, or extrapolated from the measured ones.
    pub total_s: f64,
    pub extrapolated: bool,
    pub requests_per_object: f64,
    pub outpost_writes: usize,
}

/// Onboards `objects` providers the naive way until done or `budget` is spent. Past the
/// budget the rest is extrapolated from a line fitted through the per-object times, because
/// with the realistic model each outpost write costs more as the outpost grows (6 ms per
/// provider already in it).
pub async fn run(latency: Latency, objects: usize, budget: Duration) -> Result<Baseline> {
    let double = AuthentikDouble::start(DoubleConfig::default().with_latency(latency.model()))
        .await
        .context("starting the baseline's authentik double")?;
    let client = AuthentikClient::new(ClientConfig::new(
        double.base_url(),
        ApiToken::new(double.token()),
    ))?;
    // The old Jobs hard-coded the flows; look them up once, outside the timed part.
    let flow = |slug: &str| double.flow_pk(slug).map(|pk| pk.to_string());
    let authorization = flow("default-provider-authorization-implicit-consent")
        .context("seeded authorization flow")?;
    let invalidation =
        flow("default-provider-invalidation-flow").context("seeded invalidation flow")?;

    let mut times = Vec::new();
    let started = Instant::now();
    for i in 0..objects {
        if started.elapsed() > budget {
            break;
        }
        let one = Instant::now();
        let name = format!("baseline-{i}");
        let provider = match client.find_proxy_provider_by_name(&name).await? {
            Some(provider) => provider,
            None => {
                let mut request = ProxyProviderRequest::new(
                    &name,
                    &authorization,
                    &invalidation,
                    format!("https://{name}.example.com"),
                );
                request.mode = ProxyMode::ForwardSingle;
                client.create_proxy_provider(&request).await?
            }
        };
        if client.get_application(&name).await.is_err() {
            let application = ApplicationRequest {
                name: name.clone(),
                slug: name.clone(),
                provider: Some(provider.pk),
                ..ApplicationRequest::default()
            };
            client.create_application(&application).await?;
        }
        let outpost = client
            .find_embedded_outpost()
            .await?
            .context("embedded outpost")?;
        let mut providers = outpost.providers.clone();
        if !providers.contains(&provider.pk) {
            providers.push(provider.pk);
            client
                .set_outpost_providers(&outpost.pk, &providers)
                .await?;
        }
        times.push(one.elapsed().as_secs_f64());
    }
    let measured_s = started.elapsed().as_secs_f64();
    let records = double.requests();
    let measured_objects = times.len();
    let extrapolated = measured_objects < objects;
    let total_s = if extrapolated {
        let points: Vec<(f64, f64)> = times
            .iter()
            .enumerate()
            .map(|(i, t)| (i as f64, *t))
            .collect();
        let (a, b) = linear_fit(&points).context("too few baseline objects to extrapolate")?;
        let rest: f64 = (measured_objects..objects)
            .map(|i| (a + b * i as f64).max(0.0))
            .sum();
        measured_s + rest
    } else {
        measured_s
    };
    Ok(Baseline {
        objects,
        measured_objects,
        total_s,
        extrapolated,
        requests_per_object: records.len() as f64 / measured_objects.max(1) as f64,
        outpost_writes: crate::authentik::outpost_writes(&records),
    })
}

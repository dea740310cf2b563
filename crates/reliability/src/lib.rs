//! The reliability suite's shared parts: how long to run (short in `cargo xtask test`, long by
//! hand through `cargo xtask chaos`), and the invariant every scenario ends with.

use std::collections::BTreeMap;
use std::time::Duration;

use authentik_double::model::Provider;
use gitops_crd::ownership::AuthentikObject;
use gitops_crd::{Phase, ProxyConfig};
use gitops_harness::{Harness, eventually};
use kube::ResourceExt;
use kube::api::{Api, ListParams};

/// Scale of a run, from the environment `cargo xtask chaos` sets.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    /// Controller kills in the kill -9 scenario.
    pub kills: usize,
    /// How long authentik stays down in the outage scenario.
    pub outage: Duration,
    /// Leader kills in the failover scenario.
    pub failovers: usize,
    /// ProxyConfigs per scenario.
    pub objects: usize,
}

impl Scale {
    pub fn from_env() -> Self {
        let number = |key: &str, default: usize| {
            std::env::var(key)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        Self {
            kills: number("GITOPS_CHAOS_KILLS", 20),
            outage: Duration::from_secs(number("GITOPS_CHAOS_OUTAGE_SECS", 5) as u64),
            failovers: number("GITOPS_CHAOS_FAILOVERS", 3),
            objects: number("GITOPS_CHAOS_OBJECTS", 12),
        }
    }
}

/// What a scenario expects at the end besides "everything converged".
#[derive(Debug, Default)]
pub struct Expected {
    /// ProxyConfigs that must be `Failed`, with the reason.
    pub failed: BTreeMap<String, &'static str>,
    /// authentik providers someone else made, as they must still be.
    pub foreign: Vec<Provider>,
    /// Foreign provider pks that must still be in the embedded outpost.
    pub foreign_in_outpost: Vec<i64>,
}

/// Waits until every ProxyConfig in the namespace has settled, then checks the invariants of
/// SPEC §3–§4: every ProxyConfig Ready (or Failed for the expected reason); exactly one
/// provider and one application each; each provider in its outpost exactly once; no object
/// this product created without a ProxyConfig claiming it; no foreign object touched.
pub async fn assert_converged(h: &Harness, expected: &Expected) {
    let api: Api<ProxyConfig> = Api::namespaced(h.client.clone(), h.namespace());
    let settled = eventually("every ProxyConfig to settle", || async {
        let list = api.list(&ListParams::default()).await.ok()?;
        let all_settled = list.items.iter().all(|pc| {
            let status = pc.status.as_ref();
            let current = status.and_then(|s| s.observed_generation) == pc.metadata.generation;
            let want = if expected.failed.contains_key(&pc.name_any()) {
                Phase::Failed
            } else {
                Phase::Ready
            };
            pc.metadata.deletion_timestamp.is_none()
                && current
                && status.and_then(|s| s.phase) == Some(want)
        });
        all_settled.then_some(list.items)
    })
    .await;
    let proxyconfigs = match settled {
        Ok(items) => items,
        Err(error) => {
            let summary: Vec<String> = api
                .list(&ListParams::default())
                .await
                .map(|l| {
                    l.items
                        .iter()
                        .map(|pc| {
                            format!(
                                "{} {:?} deleting={} {:?}",
                                pc.name_any(),
                                pc.status.as_ref().and_then(|s| s.phase),
                                pc.metadata.deletion_timestamp.is_some(),
                                pc.status.as_ref().and_then(|s| s
                                    .conditions
                                    .iter()
                                    .find(|c| c.type_ == "Ready")
                                    .map(|c| c.message.clone()))
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            panic!("{error}: {summary:#?}");
        }
    };

    for pc in &proxyconfigs {
        if let Some(reason) = expected.failed.get(&pc.name_any()) {
            let ready = pc
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                .expect("Ready condition");
            assert_eq!(&ready.reason.as_str(), reason, "{}", pc.name_any());
        }
    }

    let providers = h.double().providers();
    let applications = h.double().with_state(|m| m.applications.clone());
    let outpost = h.double().embedded_outpost_providers();
    for pc in proxyconfigs
        .iter()
        .filter(|pc| !expected.failed.contains_key(&pc.name_any()))
    {
        let name = &pc.spec.authentik_config.provider_name;
        let matching: Vec<&Provider> = providers.iter().filter(|p| &p.name == name).collect();
        assert_eq!(matching.len(), 1, "exactly one provider named {name}");
        let pk = matching[0].pk;
        let status = pc.status.as_ref().expect("status");
        assert_eq!(
            status.authentik_provider_id,
            Some(pk),
            "{name}: status names the provider"
        );
        let slug = status
            .application_slug
            .as_deref()
            .expect("application slug");
        let apps: Vec<_> = applications.iter().filter(|a| a.slug == slug).collect();
        assert_eq!(apps.len(), 1, "exactly one application {slug}");
        assert_eq!(apps[0].provider, Some(pk), "{slug} is bound to {name}");
        assert_eq!(
            outpost.iter().filter(|p| **p == pk).count(),
            1,
            "{name} is in the outpost exactly once"
        );
    }

    // Every proxy provider is claimed by a live ProxyConfig, or is a foreign fixture.
    let records: Vec<AuthentikObject> = Api::<AuthentikObject>::all(h.client.clone())
        .list(&ListParams::default())
        .await
        .expect("records")
        .items
        .into_iter()
        .filter(|r| r.spec.claimed_by.namespace == h.namespace())
        .collect();
    let live_uids: Vec<String> = proxyconfigs.iter().filter_map(|pc| pc.uid()).collect();
    for record in &records {
        assert!(
            live_uids.contains(&record.spec.claimed_by.uid),
            "record {} is claimed by a ProxyConfig that no longer exists",
            record.name_any()
        );
    }
    let foreign_pks: Vec<i64> = expected.foreign.iter().map(|p| p.pk).collect();
    // Every application is named by the record of the provider it is bound to.
    for application in &applications {
        let Some(pk) = application.provider else {
            continue;
        };
        if foreign_pks.contains(&pk) {
            continue;
        }
        let named = records.iter().any(|r| {
            r.spec.authentik_id.as_deref() == Some(pk.to_string().as_str())
                && r.spec
                    .application
                    .as_ref()
                    .is_some_and(|a| a.id == application.pk.to_string())
        });
        assert!(
            named,
            "application {} (bound to provider {pk}) is not named by that provider's record",
            application.slug
        );
    }
    for provider in providers.iter().filter(|p| p.proxy().is_some()) {
        let claimed = records
            .iter()
            .any(|r| r.spec.authentik_id.as_deref() == Some(provider.pk.to_string().as_str()));
        assert!(
            claimed || foreign_pks.contains(&provider.pk),
            "provider {} (pk {}) is not claimed by any ProxyConfig",
            provider.name,
            provider.pk
        );
    }
    for foreign in &expected.foreign {
        assert_eq!(
            h.double().provider(foreign.pk).as_ref(),
            Some(foreign),
            "foreign provider {} was touched",
            foreign.name
        );
    }
    for pk in &expected.foreign_in_outpost {
        assert!(
            outpost.contains(pk),
            "foreign provider {pk} was dropped from the outpost"
        );
    }
}

/// A proxy provider made by "a person" (not this product), optionally put in the embedded
/// outpost: the fixture no scenario may touch.
pub async fn foreign_provider(h: &Harness, name: &str, in_outpost: bool) -> Provider {
    let created = h
        .authentik
        .create_proxy_provider(name, "https://foreign.example.com")
        .await;
    if in_outpost {
        let outpost = h.double().embedded_outpost_uuid();
        let mut list = h.double().embedded_outpost_providers();
        list.push(created.pk);
        h.double().set_outpost_providers(outpost, list);
    }
    h.double().provider(created.pk).expect("stored")
}

//! Conflicts between ProxyConfigs: two that want the same provider name, application slug or
//! external host. The oldest wins; the others touch nothing until it goes away.

use std::collections::HashSet;

use gitops_crd::ProxyConfig;
use gitops_crd::validate::{derive_application_slug, normalize_external_host};
use kube::ResourceExt;

/// What two ProxyConfigs can collide on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConflictKey {
    ProviderName,
    ApplicationSlug,
    ExternalHost,
}

impl ConflictKey {
    fn field(self) -> &'static str {
        match self {
            ConflictKey::ProviderName => "authentikConfig.providerName",
            ConflictKey::ApplicationSlug => "application slug",
            ConflictKey::ExternalHost => "externalHost",
        }
    }
}

/// Why a ProxyConfig lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub key: ConflictKey,
    pub value: String,
    /// `namespace/name` of the ProxyConfig that keeps it.
    pub winner: String,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:?} is already used by the older ProxyConfig {}; change one of them (this one converges by itself once {} is gone)",
            self.key.field(),
            self.value,
            self.winner,
            self.winner
        )
    }
}

/// The keys a ProxyConfig claims, normalised so that spelling variants collide. Disabled
/// ProxyConfigs claim nothing (they make sure nothing exists in authentik).
pub fn claimed_keys(pc: &ProxyConfig) -> Vec<(ConflictKey, String)> {
    let config = &pc.spec.authentik_config;
    if !config.enabled {
        return Vec::new();
    }
    let namespace = pc.namespace().unwrap_or_default();
    let slug = config
        .application_slug
        .clone()
        .unwrap_or_else(|| derive_application_slug(&namespace, &pc.name_any()));
    let mut keys = vec![
        (
            ConflictKey::ProviderName,
            config.provider_name.to_lowercase(),
        ),
        (ConflictKey::ApplicationSlug, slug.to_lowercase()),
    ];
    if let Ok(url) = normalize_external_host(&pc.spec.external_host) {
        keys.push((ConflictKey::ExternalHost, url));
    }
    keys
}

/// Seniority: older first, then by namespace/name so that ties are decided the same way by
/// every replica and every run.
fn seniority(pc: &ProxyConfig) -> (Option<k8s_openapi::jiff::Timestamp>, String, String) {
    (
        pc.creation_timestamp().map(|t| t.0),
        pc.namespace().unwrap_or_default(),
        pc.name_any(),
    )
}

/// Decides, for `candidate`, whether an older ProxyConfig among `all` holds one of its keys.
/// `all` may contain `candidate` itself; objects being deleted still hold their keys until
/// their cleanup finished, so a successor never races the cleanup of its predecessor.
pub fn find_conflict<'a>(
    candidate: &ProxyConfig,
    all: impl IntoIterator<Item = &'a ProxyConfig>,
) -> Option<Conflict> {
    let wanted: HashSet<(ConflictKey, String)> = claimed_keys(candidate).into_iter().collect();
    if wanted.is_empty() {
        return None;
    }
    let candidate_uid = candidate.uid();
    let candidate_seniority = seniority(candidate);
    let mut best: Option<(&ProxyConfig, Conflict)> = None;
    for other in all {
        if other.uid() == candidate_uid || seniority(other) >= candidate_seniority {
            continue;
        }
        for (key, value) in claimed_keys(other) {
            if !wanted.contains(&(key, value.clone())) {
                continue;
            }
            let is_older = best
                .as_ref()
                .is_none_or(|(held, _)| seniority(other) < seniority(held));
            if is_older {
                let winner = format!(
                    "{}/{}",
                    other.namespace().unwrap_or_default(),
                    other.name_any()
                );
                best = Some((other, Conflict { key, value, winner }));
            }
        }
    }
    best.map(|(_, conflict)| conflict)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn pc(ns: &str, name: &str, created: i64, provider: &str, host: &str) -> ProxyConfig {
        let mut pc: ProxyConfig = serde_json::from_value(serde_json::json!({
            "apiVersion": "gitops.io/v1",
            "kind": "ProxyConfig",
            "metadata": {"name": name, "namespace": ns, "uid": format!("{ns}-{name}")},
            "spec": {
                "serviceName": "svc", "serviceNamespace": ns,
                "externalHost": host, "internalHost": "http://svc",
                "authentikConfig": {"providerName": provider}
            }
        }))
        .expect("valid ProxyConfig");
        pc.metadata.creation_timestamp =
            Some(Time(Timestamp::from_second(created).expect("timestamp")));
        pc
    }

    #[test]
    fn oldest_wins_each_key() {
        let old = pc("a", "old", 100, "grafana", "grafana.example.com");
        let young_same_provider = pc("b", "young", 200, "Grafana", "other.example.com");
        let young_same_host = pc("c", "host", 300, "x", "https://GRAFANA.example.com/");
        let unrelated = pc("d", "free", 50, "free", "free.example.com");
        let all = [&old, &young_same_provider, &young_same_host, &unrelated];

        assert_eq!(find_conflict(&old, all), None);
        assert_eq!(find_conflict(&unrelated, all), None);

        let c = find_conflict(&young_same_provider, all).expect("provider conflict");
        assert_eq!(c.key, ConflictKey::ProviderName);
        assert_eq!(c.winner, "a/old");

        let c = find_conflict(&young_same_host, all).expect("host conflict");
        assert_eq!(c.key, ConflictKey::ExternalHost);
        assert_eq!(c.value, "https://grafana.example.com");
        assert!(c.to_string().contains("a/old"), "{c}");
    }

    #[test]
    fn explicit_slug_collides_with_derived_slug() {
        let old = pc("apps", "web", 100, "p1", "a.example.com");
        let mut young = pc("other", "x", 200, "p2", "b.example.com");
        young.spec.authentik_config.application_slug = Some("apps-web".into());
        let c = find_conflict(&young, [&old, &young]).expect("slug conflict");
        assert_eq!(c.key, ConflictKey::ApplicationSlug);
    }

    #[test]
    fn loser_is_free_once_the_winner_is_gone_or_disabled() {
        let old = pc("a", "old", 100, "grafana", "g.example.com");
        let young = pc("b", "young", 200, "grafana", "h.example.com");
        assert!(find_conflict(&young, [&old, &young]).is_some());
        assert!(find_conflict(&young, [&young]).is_none());
        let mut disabled = old.clone();
        disabled.spec.authentik_config.enabled = false;
        assert!(find_conflict(&young, [&disabled, &young]).is_none());
    }

    #[test]
    fn ties_are_broken_by_name_the_same_way_everywhere() {
        let a = pc("ns", "a", 100, "same", "a.example.com");
        let b = pc("ns", "b", 100, "same", "b.example.com");
        assert!(find_conflict(&a, [&a, &b]).is_none());
        assert_eq!(
            find_conflict(&b, [&b, &a]).map(|c| c.winner),
            Some("ns/a".into())
        );
    }

    #[test]
    fn the_oldest_of_several_winners_is_named() {
        let oldest = pc("ns", "oldest", 10, "p", "x1.example.com");
        let middle = pc("ns", "middle", 20, "p", "x2.example.com");
        let young = pc("ns", "young", 30, "p", "x3.example.com");
        assert_eq!(
            find_conflict(&young, [&middle, &young, &oldest]).map(|c| c.winner),
            Some("ns/oldest".into())
        );
    }
}

//! Conflicts between ProxyConfigs: two that want the same provider name, application slug or
//! external host. The oldest wins; the others touch nothing until it goes away.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use gitops_crd::ProxyConfig;
use gitops_crd::validate::{derive_application_slug, normalize_external_host};
use kube::ResourceExt;
use kube::runtime::watcher;

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
type Seniority = (Option<k8s_openapi::jiff::Timestamp>, String, String);

fn seniority(pc: &ProxyConfig) -> Seniority {
    (
        pc.creation_timestamp().map(|t| t.0),
        pc.namespace().unwrap_or_default(),
        pc.name_any(),
    )
}

/// One key a ProxyConfig claims. The value is shared between the claimant's list and the
/// index's key, so that each claimed string is stored once.
type Claim = (ConflictKey, Arc<str>);

/// One ProxyConfig as the index knows it, shared by every key it claims (a pointer per claim
/// instead of copies of its names). Ordered by seniority, then uid.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Claimant {
    seniority: Seniority,
    uid: Arc<str>,
}

/// Who claims what, kept up to date from the ProxyConfig watch, so that checking one
/// ProxyConfig costs a few lookups instead of a pass over all of them (which made a resync of
/// N objects cost N², and a controller with 10,000 busy for minutes).
#[derive(Default)]
pub struct ClaimIndex {
    /// Each ProxyConfig (by uid) and what it claims.
    objects: HashMap<Arc<str>, (Arc<Claimant>, Vec<Claim>)>,
    /// The claimants of each key, oldest first. Almost always one: a sorted Vec, because a
    /// BTreeSet allocates a whole node (~1 KB) for it.
    claimants: HashMap<Claim, Vec<Arc<Claimant>>>,
}

impl ClaimIndex {
    /// Records what `pc` claims now (replacing what it claimed before). Objects being deleted
    /// still hold their keys until they are gone, so a successor never races the cleanup of
    /// its predecessor.
    pub fn upsert(&mut self, pc: &ProxyConfig) {
        let Some(uid) = pc.uid() else {
            return;
        };
        self.remove(&uid);
        let uid: Arc<str> = uid.into();
        let claimant = Arc::new(Claimant {
            seniority: seniority(pc),
            uid: uid.clone(),
        });
        let claims: Vec<Claim> = claimed_keys(pc)
            .into_iter()
            .map(|(key, value)| (key, value.into()))
            .collect();
        for claim in &claims {
            let claimants = self.claimants.entry(claim.clone()).or_default();
            if let Err(at) = claimants.binary_search(&claimant) {
                claimants.insert(at, claimant.clone());
            }
        }
        self.objects.insert(uid, (claimant, claims));
    }

    pub fn remove(&mut self, uid: &str) {
        let Some((claimant, claims)) = self.objects.remove(uid) else {
            return;
        };
        for claim in claims {
            if let Some(claimants) = self.claimants.get_mut(&claim) {
                claimants.retain(|other| !Arc::ptr_eq(other, &claimant));
                if claimants.is_empty() {
                    self.claimants.remove(&claim);
                }
            }
        }
    }

    /// Whether an older ProxyConfig holds one of `candidate`'s keys; the oldest such one is
    /// named.
    pub fn conflict_for(&self, candidate: &ProxyConfig) -> Option<Conflict> {
        let uid = candidate.uid();
        let mine = seniority(candidate);
        claimed_keys(candidate)
            .into_iter()
            .filter_map(|(key, value)| {
                let claim: Claim = (key, value.into());
                let oldest = self
                    .claimants
                    .get(&claim)?
                    .iter()
                    .find(|holder| uid.as_deref() != Some(&*holder.uid))?;
                (oldest.seniority < mine).then(|| (oldest.clone(), claim))
            })
            .min_by(|a, b| a.0.cmp(&b.0))
            .map(|(oldest, (key, value))| {
                let (_, namespace, name) = &oldest.seniority;
                Conflict {
                    key,
                    value: value.to_string(),
                    winner: format!("{namespace}/{name}"),
                }
            })
    }
}

/// The [`ClaimIndex`] of the watched ProxyConfigs, fed with every watch event (a re-list
/// builds a new index and swaps it in at its end, as the cache itself does).
#[derive(Clone, Default)]
pub struct Claims {
    current: Arc<Mutex<ClaimIndex>>,
    relisting: Arc<Mutex<Option<ClaimIndex>>>,
}

impl Claims {
    pub fn observe(&self, event: &watcher::Event<ProxyConfig>) {
        match event {
            watcher::Event::Apply(pc) => lock(&self.current).upsert(pc),
            watcher::Event::Delete(pc) => {
                if let Some(uid) = pc.uid() {
                    lock(&self.current).remove(&uid);
                }
            }
            watcher::Event::Init => *lock(&self.relisting) = Some(ClaimIndex::default()),
            watcher::Event::InitApply(pc) => {
                if let Some(index) = lock(&self.relisting).as_mut() {
                    index.upsert(pc);
                }
            }
            watcher::Event::InitDone => {
                if let Some(index) = lock(&self.relisting).take() {
                    *lock(&self.current) = index;
                }
            }
        }
    }

    pub fn conflict_for(&self, candidate: &ProxyConfig) -> Option<Conflict> {
        lock(&self.current).conflict_for(candidate)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    /// The conflict of `candidate` in an index of `all`.
    fn find_conflict<'a>(
        candidate: &ProxyConfig,
        all: impl IntoIterator<Item = &'a ProxyConfig>,
    ) -> Option<Conflict> {
        let mut index = ClaimIndex::default();
        for pc in all {
            index.upsert(pc);
        }
        index.conflict_for(candidate)
    }

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

    #[test]
    fn the_index_follows_changes_and_deletions() {
        let old = pc("a", "old", 100, "grafana", "g.example.com");
        let young = pc("b", "young", 200, "grafana", "h.example.com");
        let mut index = ClaimIndex::default();
        index.upsert(&old);
        index.upsert(&young);
        assert!(index.conflict_for(&young).is_some());

        let mut renamed = old.clone();
        renamed.spec.authentik_config.provider_name = "grafana-old".into();
        index.upsert(&renamed);
        assert_eq!(
            index.conflict_for(&young),
            None,
            "the old claim was replaced"
        );

        index.upsert(&old);
        assert!(index.conflict_for(&young).is_some());
        index.remove("a-old");
        assert_eq!(index.conflict_for(&young), None);
        assert!(
            index.claimants.values().all(|c| c.len() == 1),
            "nothing left behind"
        );
    }

    #[test]
    fn a_relist_replaces_the_index_when_it_is_complete() {
        let old = pc("a", "old", 100, "grafana", "g.example.com");
        let young = pc("b", "young", 200, "grafana", "h.example.com");
        let claims = Claims::default();
        claims.observe(&watcher::Event::Apply(old.clone()));
        claims.observe(&watcher::Event::Apply(young.clone()));
        assert!(claims.conflict_for(&young).is_some());

        // The old one was deleted while the watch was down: the relist no longer has it.
        claims.observe(&watcher::Event::Init);
        claims.observe(&watcher::Event::InitApply(young.clone()));
        assert!(
            claims.conflict_for(&young).is_some(),
            "until the relist is done"
        );
        claims.observe(&watcher::Event::InitDone);
        assert_eq!(claims.conflict_for(&young), None);
    }
}

//! The controller's window on authentik: every call goes through a bounded number of permits,
//! and reads are served from a snapshot of all proxy providers and applications taken at each
//! resync, so that re-verifying N converged ProxyConfigs costs a few list pages instead of
//! several GETs per object. Writes update the snapshot, so it stays true to what this process
//! did in between.
//!
//! Both rules are properties of the type, not of its callers: the client is reachable only
//! through [`Authentik::call`], which holds a permit, and providers and applications (what the
//! snapshot holds) are written only through methods that record the outcome.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use gitops_authentik::{
    Application, ApplicationPatch, ApplicationRequest, AuthentikClient, Error, FlowDesignation,
    Outpost, OutpostSelector, ProxyProvider, ProxyProviderPatch, ProxyProviderRequest,
    ServerVersion, not_found_as_none,
};
use tokio::sync::{RwLock, Semaphore, watch};

use crate::metrics::names;

#[derive(Default)]
struct Snapshot {
    taken: Option<Instant>,
    /// Keyed by lower-cased name: authentik looks names up case-insensitively.
    providers: Known<ProxyProvider>,
    applications: Known<Application>,
}

/// What the snapshot knows of one kind of object, and what this process changed since.
struct Known<T> {
    entries: HashMap<String, T>,
    /// Keys the snapshot must not answer for until read afresh: a create failed or was
    /// rejected, so authentik may hold what the snapshot lacks.
    unverified: HashSet<String>,
    /// When this process last wrote, read or forgot each key. A list that started before that
    /// is older than what is known here, so a refresh keeps these entries.
    changed: HashMap<String, Instant>,
}

impl<T> Default for Known<T> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            unverified: HashSet::new(),
            changed: HashMap::new(),
        }
    }
}

impl<T> Known<T> {
    /// `key` as authentik has it now (`None`: absent), as far as this process knows.
    fn record(&mut self, key: String, value: Option<T>) {
        self.unverified.remove(&key);
        self.changed.insert(key.clone(), Instant::now());
        match value {
            Some(value) => self.entries.insert(key, value),
            None => self.entries.remove(&key),
        };
    }

    fn forget(&mut self, key: String) {
        self.entries.remove(&key);
        self.changed.insert(key.clone(), Instant::now());
        self.unverified.insert(key);
    }

    /// Takes a full list whose reading began at `started`, keeping what this process learned
    /// after that: the list may predate a create that finished while it was being read.
    fn replace(&mut self, listed: HashMap<String, T>, started: Instant) {
        let mut fresh = listed;
        self.changed.retain(|_, at| *at >= started);
        for key in self.changed.keys() {
            match self.entries.remove(key) {
                Some(value) => fresh.insert(key.clone(), value),
                None => fresh.remove(key),
            };
        }
        self.entries = fresh;
        let changed = &self.changed;
        self.unverified.retain(|key| changed.contains_key(key));
    }

    fn answer(&self, key: &str) -> Answer<'_, T> {
        match self.entries.get(key) {
            _ if self.unverified.contains(key) => Answer::Unverified,
            Some(value) => Answer::Present(value),
            None => Answer::Absent,
        }
    }
}

/// A provider as the snapshot keeps it: without what drift detection
/// ([`gitops_plan::provider_changes`]) never compares — the property mappings authentik adds
/// by itself, the names of the outposts serving it and of the application bound to it. The
/// snapshot holds every proxy provider; these are a third of each one's strings.
fn kept_of(mut provider: ProxyProvider) -> ProxyProvider {
    provider.property_mappings = Vec::new();
    provider.outpost_set = Vec::new();
    provider.assigned_application_slug = None;
    provider.assigned_application_name = None;
    provider
}

/// What the snapshot says of one key.
#[derive(Debug, PartialEq, Eq)]
enum Answer<'a, T> {
    /// authentik holds it, as far as this process knows.
    Present(&'a T),
    /// authentik does not hold it, as far as this process knows.
    Absent,
    /// Unknown until read afresh from authentik.
    Unverified,
}

/// A cached lookup (flows, groups, outposts): valid for one resync interval.
struct Cached<T> {
    value: T,
    fetched: Instant,
}

/// Cached lookups by key. Concurrent misses of one key share a single fetch: right after a
/// resync every reconcile needs the same few flows and outposts at once, and without this each
/// of them would fetch them itself.
struct Lookups<K, T> {
    slots: Mutex<HashMap<K, Slot<T>>>,
}

/// One key's cached value; its lock is held while the value is fetched.
type Slot<T> = Arc<tokio::sync::Mutex<Option<Cached<T>>>>;

impl<K, T> Default for Lookups<K, T> {
    fn default() -> Self {
        Self {
            slots: Mutex::default(),
        }
    }
}

impl<K: Hash + Eq + Clone, T: Clone> Lookups<K, T> {
    async fn get_or_fetch<F>(&self, key: &K, max_age: Duration, fetch: F) -> Result<T, Error>
    where
        F: Future<Output = Result<T, Error>>,
    {
        let slot = lock(&self.slots).entry(key.clone()).or_default().clone();
        let mut slot = slot.lock().await;
        if let Some(cached) = slot.as_ref().filter(|c| c.fetched.elapsed() < max_age) {
            return Ok(cached.value.clone());
        }
        let value = fetch.await?;
        *slot = Some(Cached {
            value: value.clone(),
            fetched: Instant::now(),
        });
        Ok(value)
    }

    fn clear(&self) {
        lock(&self.slots).clear();
    }

    async fn update_each(&self, update: impl Fn(&mut T)) {
        let slots: Vec<_> = lock(&self.slots).values().cloned().collect();
        for slot in slots {
            if let Some(cached) = slot.lock().await.as_mut() {
                update(&mut cached.value);
            }
        }
    }
}

pub struct Authentik {
    client: AuthentikClient,
    permits: Semaphore,
    max_age: Duration,
    snapshot: RwLock<Snapshot>,
    /// Turns true once the first snapshot was attempted: until then lookups wait for it
    /// rather than each reading authentik (a restart would otherwise cost a GET per object).
    first_refresh: watch::Sender<bool>,
    flows: Lookups<String, Option<String>>,
    groups: Lookups<String, Option<String>>,
    outposts: Lookups<OutpostSelector, Option<Outpost>>,
    /// What `/admin/version/` last said; `None` until it answered once.
    server_version: Mutex<Option<ServerVersion>>,
}

impl Authentik {
    /// `max_age`: how long a snapshot or cached lookup is trusted (the resync interval).
    pub fn new(client: AuthentikClient, concurrency: usize, max_age: Duration) -> Self {
        Self {
            client,
            permits: Semaphore::new(concurrency),
            max_age,
            snapshot: RwLock::default(),
            first_refresh: watch::Sender::new(false),
            flows: Lookups::default(),
            groups: Lookups::default(),
            outposts: Lookups::default(),
            server_version: Mutex::new(None),
        }
    }

    /// The server's version as last read (at each snapshot), if it was read at all.
    pub fn server_version(&self) -> Option<ServerVersion> {
        self.server_version
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the server's version and says so in the log when it is new (start-up, or an
    /// upgrade): a warning when it is outside the supported range or not a release number.
    /// A failed read only keeps the last value: nothing depends on the version to work.
    async fn read_server_version(&self) {
        let reported = match self.call(|client| client.version()).await {
            Ok(version) => ServerVersion::classify(&version.version_current),
            Err(error) => {
                tracing::debug!(%error, "could not read authentik's version");
                return;
            }
        };
        let previous = self
            .server_version
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(reported.clone());
        if previous.as_ref() == Some(&reported) {
            return;
        }
        let range = ServerVersion::supported_range();
        match &reported {
            ServerVersion::Supported(v) => tracing::info!(version = %v, "authentik version"),
            ServerVersion::Unsupported(v) => tracing::warn!(
                version = %v,
                "authentik {v} is outside the supported range {range}; serving what it can (reported in each ProxyConfig's status as UnsupportedAuthentikVersion)"
            ),
            ServerVersion::Unknown(v) => tracing::warn!(
                version = %v,
                "authentik reported version {v:?}, which is not a release number; treated as unknown"
            ),
        }
    }

    /// Runs client calls under a permit, so that however many reconciles run, authentik sees
    /// at most the configured number of requests at once. For objects the snapshot does not
    /// hold (outposts, policy bindings, lookups); providers and applications are written
    /// through the methods below, which keep the snapshot true.
    pub async fn call<'a, T, Fut>(
        &'a self,
        call: impl FnOnce(&'a AuthentikClient) -> Fut,
    ) -> Result<T, Error>
    where
        Fut: Future<Output = Result<T, Error>>,
    {
        // The semaphore is never closed, so acquire cannot fail.
        let _permit = self.permits.acquire().await.ok();
        call(&self.client).await
    }

    /// Re-reads every proxy provider and application, and forgets cached lookups, so that
    /// hand edits and deletions are seen.
    pub async fn refresh(&self) -> Result<(), Error> {
        self.read_server_version().await;
        let result = self.take_snapshot().await;
        self.first_refresh.send_replace(true);
        result
    }

    async fn take_snapshot(&self) -> Result<(), Error> {
        let started = Instant::now();
        let providers = self.call(AuthentikClient::list_proxy_providers).await?;
        let applications = self.call(AuthentikClient::list_applications).await?;
        let mut snapshot = self.snapshot.write().await;
        snapshot.providers.replace(
            providers
                .into_iter()
                .map(|p| (p.name.to_lowercase(), kept_of(p)))
                .collect(),
            started,
        );
        snapshot.applications.replace(
            applications
                .into_iter()
                .map(|a| (a.slug.clone(), a))
                .collect(),
            started,
        );
        snapshot.taken = Some(started);
        drop(snapshot);
        self.flows.clear();
        self.groups.clear();
        self.outposts.clear();
        metrics::counter!(names::RESYNCS).increment(1);
        Ok(())
    }

    /// The snapshot, once the first refresh has been tried.
    async fn read_snapshot(&self) -> tokio::sync::RwLockReadGuard<'_, Snapshot> {
        // The sender lives as long as `self`, so waiting cannot fail.
        let _ = self
            .first_refresh
            .subscribe()
            .wait_for(|tried| *tried)
            .await;
        self.snapshot.read().await
    }

    /// Whether the snapshot is recent enough to answer at all.
    fn fresh(&self, snapshot: &Snapshot) -> bool {
        snapshot
            .taken
            .is_some_and(|taken| taken.elapsed() < self.max_age + self.max_age / 2)
    }

    /// The proxy provider named `name` (exact, case-sensitive, as authentik stores it). From the
    /// snapshot it comes without the fields drift detection never reads (see [`kept_of`]).
    pub async fn provider(&self, name: &str) -> Result<Option<ProxyProvider>, Error> {
        let key = name.to_lowercase();
        {
            let snapshot = self.read_snapshot().await;
            if self.fresh(&snapshot) {
                match snapshot.providers.answer(&key) {
                    // Names differing only in case are distinct providers.
                    Answer::Present(p) => return Ok(Some(p.clone()).filter(|p| p.name == name)),
                    Answer::Absent => return Ok(None),
                    Answer::Unverified => {}
                }
            }
        }
        let found = self
            .call(|client| client.find_proxy_provider_by_name(name))
            .await?;
        self.snapshot
            .write()
            .await
            .providers
            .record(key, found.clone().map(kept_of));
        Ok(found)
    }

    /// Creates a provider. A failed create may still have happened (lost response), or the
    /// snapshot missed a provider of that name: either way the name is read afresh next time.
    pub async fn create_provider(
        &self,
        request: &ProxyProviderRequest,
    ) -> Result<ProxyProvider, Error> {
        let created = self
            .call(|client| client.create_proxy_provider(request))
            .await;
        self.record_provider(&request.name, created.as_ref().ok())
            .await;
        created
    }

    pub async fn patch_provider(
        &self,
        pk: i64,
        patch: &ProxyProviderPatch,
    ) -> Result<ProxyProvider, Error> {
        let updated = self
            .call(|client| client.patch_proxy_provider(pk, patch))
            .await?;
        self.record_provider(&updated.name, Some(&updated)).await;
        Ok(updated)
    }

    /// Deletes a provider (`None`: it was already gone); the name is read afresh next time.
    pub async fn delete_provider(&self, pk: i64, name: &str) -> Result<Option<()>, Error> {
        self.record_provider(name, None).await;
        not_found_as_none(self.call(|client| client.delete_proxy_provider(pk)).await)
    }

    /// What a write left: the provider as written, or (`None`) unknown until read again.
    async fn record_provider(&self, name: &str, written: Option<&ProxyProvider>) {
        let mut snapshot = self.snapshot.write().await;
        match written {
            Some(provider) => snapshot.providers.record(
                provider.name.to_lowercase(),
                Some(kept_of(provider.clone())),
            ),
            None => snapshot.providers.forget(name.to_lowercase()),
        }
    }

    /// Drops what the snapshot knows of the provider with `pk` (authentik said it no longer
    /// exists), so the next lookup of its name reads authentik.
    pub async fn forget_provider_pk(&self, pk: i64) {
        let mut snapshot = self.snapshot.write().await;
        let names: Vec<String> = snapshot
            .providers
            .entries
            .iter()
            .filter(|(_, provider)| provider.pk == pk)
            .map(|(name, _)| name.clone())
            .collect();
        for name in names {
            snapshot.providers.forget(name);
        }
    }

    pub async fn application(&self, slug: &str) -> Result<Option<Application>, Error> {
        {
            let snapshot = self.read_snapshot().await;
            if self.fresh(&snapshot) {
                match snapshot.applications.answer(slug) {
                    Answer::Present(application) => return Ok(Some(application.clone())),
                    Answer::Absent => return Ok(None),
                    Answer::Unverified => {}
                }
            }
        }
        let found = not_found_as_none(self.call(|client| client.get_application(slug)).await)?;
        self.snapshot
            .write()
            .await
            .applications
            .record(slug.to_owned(), found.clone());
        Ok(found)
    }

    /// Creates an application; after a failure the slug is read afresh next time.
    pub async fn create_application(
        &self,
        request: &ApplicationRequest,
    ) -> Result<Application, Error> {
        let created = self.call(|client| client.create_application(request)).await;
        self.record_application(&request.slug, created.as_ref().ok())
            .await;
        created
    }

    pub async fn patch_application(
        &self,
        slug: &str,
        patch: &ApplicationPatch,
    ) -> Result<Application, Error> {
        let updated = self
            .call(|client| client.patch_application(slug, patch))
            .await?;
        self.record_application(slug, Some(&updated)).await;
        Ok(updated)
    }

    /// Deletes an application (`None`: it was already gone); the slug is read afresh next time.
    pub async fn delete_application(&self, slug: &str) -> Result<Option<()>, Error> {
        self.record_application(slug, None).await;
        not_found_as_none(self.call(|client| client.delete_application(slug)).await)
    }

    /// What a write left: the application as written, or (`None`) unknown until read again.
    async fn record_application(&self, slug: &str, written: Option<&Application>) {
        let mut snapshot = self.snapshot.write().await;
        match written {
            Some(application) => snapshot
                .applications
                .record(application.slug.clone(), Some(application.clone())),
            None => snapshot.applications.forget(slug.to_owned()),
        }
    }

    /// A flow's UUID from a slug or UUID. A configured default that was renamed or deleted
    /// falls back to the first flow of its designation.
    pub async fn flow(
        &self,
        key: &str,
        designation: FlowDesignation,
        is_default: bool,
    ) -> Result<Option<String>, Error> {
        let fetch = self.call(|client| client.resolve_flow(key, is_default.then_some(designation)));
        self.flows
            .get_or_fetch(&key.to_owned(), self.max_age, fetch)
            .await
    }

    /// A group's UUID by exact name.
    pub async fn group(&self, name: &str) -> Result<Option<String>, Error> {
        let fetch = self.call(|client| client.resolve_group(name));
        self.groups
            .get_or_fetch(&name.to_owned(), self.max_age, fetch)
            .await
    }

    /// The outpost a selector names, from the cache when it is fresh.
    pub async fn outpost(&self, selector: &OutpostSelector) -> Result<Option<Outpost>, Error> {
        let fetch = self.call(|client| client.resolve_outpost(selector));
        self.outposts
            .get_or_fetch(selector, self.max_age, fetch)
            .await
    }

    /// Records an outpost's provider list as written, so reconciles see it without a read.
    pub async fn remember_outpost(&self, outpost: &Outpost) {
        self.outposts
            .update_each(|cached| {
                if let Some(known) = cached
                    && known.pk == outpost.pk
                {
                    known.providers = outpost.providers.clone();
                }
            })
            .await;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A proxy provider as authentik lists it, with `edit` applied to the JSON.
    fn listed_provider(edit: impl FnOnce(&mut serde_json::Value)) -> ProxyProvider {
        let mut body = serde_json::json!({
            "pk": 7, "name": "grafana", "mode": "forward_single",
            "authorization_flow": "authz", "invalidation_flow": "inval",
            "external_host": "https://grafana.example.com",
            "internal_host": "http://grafana:3000", "internal_host_ssl_validation": false,
            "skip_path_regex": "", "basic_auth_enabled": false, "intercept_header_auth": true,
            "cookie_domain": "", "access_token_validity": "hours=24",
            "property_mappings": ["managed-1", "managed-2", "managed-3"],
            "assigned_application_slug": "grafana", "assigned_application_name": "Grafana",
            "outpost_set": ["authentik Embedded Outpost"]
        });
        edit(&mut body);
        serde_json::from_value(body).expect("a listed provider decodes")
    }

    #[test]
    fn the_snapshot_keeps_every_field_drift_detection_compares() {
        let mut desired =
            ProxyProviderRequest::new("grafana", "authz", "inval", "https://grafana.example.com");
        desired.internal_host = "http://grafana:3000".into();
        desired.internal_host_ssl_validation = false;
        desired.mode = gitops_authentik::ProxyMode::ForwardSingle;
        desired.access_token_validity = Some("hours=24".into());
        let edits: [fn(&mut serde_json::Value); 4] = [
            |_| {},
            |p| p["external_host"] = "https://hand-edited.example.com".into(),
            |p| p["invalidation_flow"] = "other".into(),
            |p| p["access_token_validity"] = "hours=1".into(),
        ];
        for edit in edits {
            let listed = listed_provider(edit);
            let kept = kept_of(listed.clone());
            assert!(kept.property_mappings.is_empty() && kept.outpost_set.is_empty());
            assert_eq!(
                gitops_plan::provider_changes(&desired, &kept),
                gitops_plan::provider_changes(&desired, &listed),
                "{listed:?}"
            );
        }
        assert!(
            gitops_plan::provider_changes(&desired, &kept_of(listed_provider(edits[1]))).is_some(),
            "a hand edit is still seen"
        );
    }

    #[test]
    fn a_refresh_keeps_what_changed_while_it_listed() {
        let mut known = Known::default();
        known.record("old".into(), Some(1));
        std::thread::sleep(Duration::from_millis(2));
        let started = Instant::now();
        known.record("created-meanwhile".into(), Some(2));
        known.forget("rejected-meanwhile".into());
        known.record("deleted-meanwhile".into(), None);

        let listed = HashMap::from([
            ("old".to_owned(), 10),
            ("deleted-meanwhile".to_owned(), 3),
            ("rejected-meanwhile".to_owned(), 4),
        ]);
        known.replace(listed, started);

        assert_eq!(
            known.answer("old"),
            Answer::Present(&10),
            "the list wins for older entries"
        );
        assert_eq!(known.answer("created-meanwhile"), Answer::Present(&2));
        assert_eq!(known.answer("deleted-meanwhile"), Answer::Absent);
        assert_eq!(
            known.answer("rejected-meanwhile"),
            Answer::Unverified,
            "still unverified"
        );

        // The next refresh, started after all that, takes the list as it is.
        known.replace(
            HashMap::from([("rejected-meanwhile".to_owned(), 4)]),
            Instant::now(),
        );
        assert_eq!(known.answer("rejected-meanwhile"), Answer::Present(&4));
        assert_eq!(known.answer("created-meanwhile"), Answer::Absent);
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_fetch() {
        let lookups: Arc<Lookups<String, u32>> = Arc::default();
        let fetches = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let waiters = (0..16).map(|_| {
            let (lookups, fetches) = (lookups.clone(), fetches.clone());
            tokio::spawn(async move {
                let fetch = async {
                    fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Ok(7)
                };
                lookups
                    .get_or_fetch(&"key".to_owned(), Duration::from_secs(60), fetch)
                    .await
            })
        });
        for waiter in waiters.collect::<Vec<_>>() {
            assert_eq!(waiter.await.ok().and_then(Result::ok), Some(7));
        }
        assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_fetch_is_not_cached() {
        let lookups: Lookups<String, u32> = Lookups::default();
        let key = "key".to_owned();
        let failed = lookups
            .get_or_fetch(&key, Duration::from_secs(60), async {
                Err(Error::Config {
                    reason: "down".into(),
                })
            })
            .await;
        assert!(failed.is_err());
        let retried = lookups
            .get_or_fetch(&key, Duration::from_secs(60), async { Ok(3) })
            .await;
        assert_eq!(retried.ok(), Some(3));
    }
}

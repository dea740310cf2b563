//! The controller's window on authentik: every call goes through a bounded number of permits,
//! and reads are served from a snapshot of all proxy providers and applications taken at each
//! resync, so that re-verifying N converged ProxyConfigs costs a few list pages instead of
//! several GETs per object. Writes update the snapshot, so it stays true to what this process
//! did in between.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use authentik_client::{
    Application, AuthentikClient, Error, FlowDesignation, Outpost, ProxyProvider,
};
use tokio::sync::{RwLock, Semaphore, watch};

use crate::config::OutpostSelector;
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

    fn answer(&self, key: &str) -> Option<Option<&T>> {
        (!self.unverified.contains(key)).then(|| self.entries.get(key))
    }
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
        }
    }

    /// Runs one client call under a permit, so that however many reconciles run, authentik
    /// sees at most the configured number of requests at once.
    pub async fn call<T>(&self, call: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        // The semaphore is never closed, so acquire cannot fail.
        let _permit = self.permits.acquire().await.ok();
        call.await
    }

    pub fn client(&self) -> &AuthentikClient {
        &self.client
    }

    /// Re-reads every proxy provider and application, and forgets cached lookups, so that
    /// hand edits and deletions are seen.
    pub async fn refresh(&self) -> Result<(), Error> {
        let result = self.take_snapshot().await;
        self.first_refresh.send_replace(true);
        result
    }

    async fn take_snapshot(&self) -> Result<(), Error> {
        let started = Instant::now();
        let providers = self.call(self.client.list_proxy_providers()).await?;
        let applications = self.call(self.client.list_applications()).await?;
        let mut snapshot = self.snapshot.write().await;
        snapshot.providers.replace(
            providers
                .into_iter()
                .map(|p| (p.name.to_lowercase(), p))
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

    /// The proxy provider named `name` (exact, case-sensitive, as authentik stores it).
    pub async fn provider(&self, name: &str) -> Result<Option<ProxyProvider>, Error> {
        let key = name.to_lowercase();
        {
            let snapshot = self.read_snapshot().await;
            if self.fresh(&snapshot)
                && let Some(known) = snapshot.providers.answer(&key)
            {
                return Ok(known.filter(|p| p.name == name).cloned());
            }
        }
        let found = self
            .call(self.client.find_proxy_provider_by_name(name))
            .await?;
        self.snapshot
            .write()
            .await
            .providers
            .record(key, found.clone());
        Ok(found)
    }

    pub async fn remember_provider(&self, provider: ProxyProvider) {
        let key = provider.name.to_lowercase();
        self.snapshot
            .write()
            .await
            .providers
            .record(key, Some(provider));
    }

    /// Drops what the snapshot knows of a provider name; the next lookup reads authentik.
    pub async fn forget_provider(&self, name: &str) {
        self.snapshot
            .write()
            .await
            .providers
            .forget(name.to_lowercase());
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
            if self.fresh(&snapshot)
                && let Some(known) = snapshot.applications.answer(slug)
            {
                return Ok(known.cloned());
            }
        }
        let found = not_found_as_none(self.call(self.client.get_application(slug)).await)?;
        self.snapshot
            .write()
            .await
            .applications
            .record(slug.to_owned(), found.clone());
        Ok(found)
    }

    pub async fn remember_application(&self, application: Application) {
        let key = application.slug.clone();
        self.snapshot
            .write()
            .await
            .applications
            .record(key, Some(application));
    }

    /// Drops what the snapshot knows of a slug; the next lookup reads authentik.
    pub async fn forget_application(&self, slug: &str) {
        self.snapshot
            .write()
            .await
            .applications
            .forget(slug.to_owned());
    }

    /// A flow's UUID from a slug or UUID. A configured default that was renamed or deleted
    /// falls back to the first flow of its designation (by slug, so every run picks the same).
    pub async fn flow(
        &self,
        key: &str,
        designation: FlowDesignation,
        is_default: bool,
    ) -> Result<Option<String>, Error> {
        let fetch = async {
            let found = if looks_like_uuid(key) {
                self.call(self.client.find_flow_by_uuid(key))
                    .await?
                    .map(|f| f.pk)
            } else {
                not_found_as_none(self.call(self.client.get_flow(key)).await)?.map(|f| f.pk)
            };
            match found {
                None if is_default => Ok(self
                    .call(self.client.list_flows_by_designation(designation))
                    .await?
                    .into_iter()
                    .next()
                    .map(|f| f.pk)),
                found => Ok(found),
            }
        };
        self.flows
            .get_or_fetch(&key.to_owned(), self.max_age, fetch)
            .await
    }

    /// A group's UUID by exact name.
    pub async fn group(&self, name: &str) -> Result<Option<String>, Error> {
        let fetch = async {
            Ok(self
                .call(self.client.find_group_by_name(name))
                .await?
                .map(|g| g.pk))
        };
        self.groups
            .get_or_fetch(&name.to_owned(), self.max_age, fetch)
            .await
    }

    /// The outpost a selector names, from the cache when it is fresh.
    pub async fn outpost(&self, selector: &OutpostSelector) -> Result<Option<Outpost>, Error> {
        let fetch = async {
            match selector {
                OutpostSelector::Embedded => self.call(self.client.find_embedded_outpost()).await,
                OutpostSelector::Named(key) if looks_like_uuid(key) => {
                    not_found_as_none(self.call(self.client.get_outpost(key)).await)
                }
                OutpostSelector::Named(name) => {
                    self.call(self.client.find_outpost_by_name(name)).await
                }
            }
        };
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

pub fn not_found_as_none<T>(result: Result<T, Error>) -> Result<Option<T>, Error> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error),
    }
}

/// authentik UUIDs in their canonical 8-4-4-4-12 hex form.
pub fn looks_like_uuid(value: &str) -> bool {
    value.len() == 36
        && value.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_shape() {
        assert!(looks_like_uuid("4a8f6ea7-1c4f-4a8e-9a33-2f1d1f0f6a11"));
        assert!(!looks_like_uuid("default-provider-invalidation-flow"));
        assert!(!looks_like_uuid("4a8f6ea7x1c4f-4a8e-9a33-2f1d1f0f6a11"));
        assert!(!looks_like_uuid(""));
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
            Some(Some(&10)),
            "the list wins for older entries"
        );
        assert_eq!(known.answer("created-meanwhile"), Some(Some(&2)));
        assert_eq!(known.answer("deleted-meanwhile"), Some(None));
        assert_eq!(known.answer("rejected-meanwhile"), None, "still unverified");

        // The next refresh, started after all that, takes the list as it is.
        known.replace(
            HashMap::from([("rejected-meanwhile".to_owned(), 4)]),
            Instant::now(),
        );
        assert_eq!(known.answer("rejected-meanwhile"), Some(Some(&4)));
        assert_eq!(known.answer("created-meanwhile"), Some(None));
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

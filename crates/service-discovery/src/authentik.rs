//! The controller's window on authentik: every call goes through a bounded number of permits,
//! and reads are served from a snapshot of all proxy providers and applications taken at each
//! resync, so that re-verifying N converged ProxyConfigs costs a few list pages instead of
//! several GETs per object. Writes update the snapshot, so it stays true to what this process
//! did in between.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use authentik_client::{
    Application, AuthentikClient, Error, FlowDesignation, Outpost, ProxyProvider,
};
use tokio::sync::{RwLock, Semaphore};

use crate::config::OutpostSelector;
use crate::metrics::names;

#[derive(Default)]
struct Snapshot {
    taken: Option<Instant>,
    /// Names (lower-cased) and slugs the snapshot must not answer for until read afresh:
    /// a create failed or was rejected, so authentik may hold what the snapshot lacks.
    unverified: HashSet<String>,
    /// Keyed by lower-cased name: authentik looks names up case-insensitively.
    providers: HashMap<String, ProxyProvider>,
    applications: HashMap<String, Application>,
}

/// A cached lookup (flows, groups, outposts): valid for one resync interval.
struct Cached<T> {
    value: T,
    fetched: Instant,
}

pub struct Authentik {
    client: AuthentikClient,
    permits: Semaphore,
    max_age: Duration,
    snapshot: RwLock<Snapshot>,
    flows: Mutex<HashMap<String, Cached<Option<String>>>>,
    groups: Mutex<HashMap<String, Cached<Option<String>>>>,
    outposts: Mutex<HashMap<OutpostSelector, Cached<Option<Outpost>>>>,
}

impl Authentik {
    /// `max_age`: how long a snapshot or cached lookup is trusted (the resync interval).
    pub fn new(client: AuthentikClient, concurrency: usize, max_age: Duration) -> Self {
        Self {
            client,
            permits: Semaphore::new(concurrency),
            max_age,
            snapshot: RwLock::default(),
            flows: Mutex::default(),
            groups: Mutex::default(),
            outposts: Mutex::default(),
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
        let providers = self.call(self.client.list_proxy_providers()).await?;
        let applications = self.call(self.client.list_applications()).await?;
        let mut snapshot = self.snapshot.write().await;
        snapshot.providers = providers
            .into_iter()
            .map(|p| (p.name.to_lowercase(), p))
            .collect();
        snapshot.applications = applications
            .into_iter()
            .map(|a| (a.slug.clone(), a))
            .collect();
        snapshot.taken = Some(Instant::now());
        snapshot.unverified.clear();
        drop(snapshot);
        lock(&self.flows).clear();
        lock(&self.groups).clear();
        lock(&self.outposts).clear();
        metrics::counter!(names::RESYNCS).increment(1);
        Ok(())
    }

    /// Whether the snapshot may answer for `key`.
    fn answers_for(&self, snapshot: &Snapshot, key: &str) -> bool {
        snapshot
            .taken
            .is_some_and(|taken| taken.elapsed() < self.max_age + self.max_age / 2)
            && !snapshot.unverified.contains(key)
    }

    /// The proxy provider named `name` (exact, case-sensitive, as authentik stores it).
    pub async fn provider(&self, name: &str) -> Result<Option<ProxyProvider>, Error> {
        {
            let snapshot = self.snapshot.read().await;
            if self.answers_for(&snapshot, &name.to_lowercase()) {
                return Ok(snapshot
                    .providers
                    .get(&name.to_lowercase())
                    .filter(|p| p.name == name)
                    .cloned());
            }
        }
        let found = self
            .call(self.client.find_proxy_provider_by_name(name))
            .await?;
        let key = name.to_lowercase();
        let mut snapshot = self.snapshot.write().await;
        snapshot.unverified.remove(&key);
        match &found {
            Some(provider) => snapshot.providers.insert(key, provider.clone()),
            None => snapshot.providers.remove(&key),
        };
        Ok(found)
    }

    pub async fn remember_provider(&self, provider: ProxyProvider) {
        self.snapshot
            .write()
            .await
            .providers
            .insert(provider.name.to_lowercase(), provider);
    }

    /// Drops what the snapshot knows of a provider name; the next lookup reads authentik.
    pub async fn forget_provider(&self, name: &str) {
        let key = name.to_lowercase();
        let mut snapshot = self.snapshot.write().await;
        snapshot.providers.remove(&key);
        snapshot.unverified.insert(key);
    }

    pub async fn application(&self, slug: &str) -> Result<Option<Application>, Error> {
        {
            let snapshot = self.snapshot.read().await;
            if self.answers_for(&snapshot, slug) {
                return Ok(snapshot.applications.get(slug).cloned());
            }
        }
        let found = not_found_as_none(self.call(self.client.get_application(slug)).await)?;
        let mut snapshot = self.snapshot.write().await;
        snapshot.unverified.remove(slug);
        match &found {
            Some(application) => snapshot
                .applications
                .insert(slug.to_owned(), application.clone()),
            None => snapshot.applications.remove(slug),
        };
        Ok(found)
    }

    pub async fn remember_application(&self, application: Application) {
        self.snapshot
            .write()
            .await
            .applications
            .insert(application.slug.clone(), application);
    }

    /// Drops what the snapshot knows of a slug; the next lookup reads authentik.
    pub async fn forget_application(&self, slug: &str) {
        let mut snapshot = self.snapshot.write().await;
        snapshot.applications.remove(slug);
        snapshot.unverified.insert(slug.to_owned());
    }

    /// A flow's UUID from a slug or UUID. A configured default that was renamed or deleted
    /// falls back to the first flow of its designation (by slug, so every run picks the same).
    pub async fn flow(
        &self,
        key: &str,
        designation: FlowDesignation,
        is_default: bool,
    ) -> Result<Option<String>, Error> {
        if let Some(cached) = self.cached(&self.flows, key) {
            return Ok(cached);
        }
        let found = if looks_like_uuid(key) {
            self.call(self.client.find_flow_by_uuid(key))
                .await?
                .map(|f| f.pk)
        } else {
            not_found_as_none(self.call(self.client.get_flow(key)).await)?.map(|f| f.pk)
        };
        let found = match found {
            None if is_default => self
                .call(self.client.list_flows_by_designation(designation))
                .await?
                .into_iter()
                .next()
                .map(|f| f.pk),
            found => found,
        };
        self.store(&self.flows, key, found.clone());
        Ok(found)
    }

    /// A group's UUID by exact name.
    pub async fn group(&self, name: &str) -> Result<Option<String>, Error> {
        if let Some(cached) = self.cached(&self.groups, name) {
            return Ok(cached);
        }
        let found = self
            .call(self.client.find_group_by_name(name))
            .await?
            .map(|g| g.pk);
        self.store(&self.groups, name, found.clone());
        Ok(found)
    }

    /// The outpost a selector names, from the cache when it is fresh.
    pub async fn outpost(&self, selector: &OutpostSelector) -> Result<Option<Outpost>, Error> {
        if let Some(cached) = self.cached(&self.outposts, selector) {
            return Ok(cached);
        }
        let found = match selector {
            OutpostSelector::Embedded => self.call(self.client.find_embedded_outpost()).await?,
            OutpostSelector::Named(key) if looks_like_uuid(key) => {
                not_found_as_none(self.call(self.client.get_outpost(key)).await)?
            }
            OutpostSelector::Named(name) => {
                self.call(self.client.find_outpost_by_name(name)).await?
            }
        };
        self.store(&self.outposts, selector, found.clone());
        Ok(found)
    }

    /// Records an outpost's provider list as written, so reconciles see it without a read.
    pub fn remember_outpost(&self, outpost: &Outpost) {
        for cached in lock(&self.outposts).values_mut() {
            if let Some(known) = &mut cached.value
                && known.pk == outpost.pk
            {
                known.providers = outpost.providers.clone();
            }
        }
    }

    fn cached<K, Q, T>(&self, cache: &Mutex<HashMap<K, Cached<T>>>, key: &Q) -> Option<T>
    where
        K: std::hash::Hash + Eq + std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
        T: Clone,
    {
        lock(cache)
            .get(key)
            .filter(|c| c.fetched.elapsed() < self.max_age)
            .map(|c| c.value.clone())
    }

    fn store<K, Q, T>(&self, cache: &Mutex<HashMap<K, Cached<T>>>, key: &Q, value: T)
    where
        K: std::hash::Hash + Eq + std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        lock(cache).insert(
            key.to_owned(),
            Cached {
                value,
                fetched: Instant::now(),
            },
        );
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
}

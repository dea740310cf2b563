//! The watches both controllers set up the same way: scoped to the watched namespace, feeding a
//! cache, telling when that cache holds a full list, and saying loudly when a resource they need
//! cannot be watched at all (CRD missing or at another version, RBAC forbids it) instead of
//! waiting for it silently.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::api::{Api, ListParams};
use kube::core::Status;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::Readiness;

/// Gauge, per `resource` and `reason` ([`Unavailable::label`]): 1 while this process needs the
/// resource but the API server does not let it list or watch it.
pub const RESOURCE_UNAVAILABLE_METRIC: &str = "gitops_resource_unavailable";

/// An Api for all namespaces, or only `namespace`.
pub fn scoped<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// Drops managedFields before an object is cached: they are often larger than the object itself
/// and the controllers never read them.
pub fn clear_managed_fields<K: kube::Resource>(object: &mut K) {
    kube::ResourceExt::managed_fields_mut(object).clear();
}

/// `plural.group/version` (`services/v1` for the core group): how a person finds it with
/// `kubectl api-resources` and how its CRD is named.
pub fn resource_name<K>() -> String
where
    K: kube::Resource,
    K::DynamicType: Default,
{
    let dt = K::DynamicType::default();
    let group = K::group(&dt);
    let plural = K::plural(&dt);
    let version = K::version(&dt);
    if group.is_empty() {
        format!("{plural}/{version}")
    } else {
        format!("{plural}.{group}/{version}")
    }
}

/// Makes `$type` (a struct with `metadata: ObjectMeta` and the few fields a controller reads of
/// a namespaced built-in resource) watchable and cacheable in place of the whole object:
/// implements k8s-openapi's `Resource` and `Metadata` for it, so kube's `Api`, watcher and
/// reflector treat it as that resource. The caller depends on k8s-openapi.
///
/// ```ignore
/// gitops_runtime::partial_resource!(ServicePorts, group = "", version = "v1", kind = "Service", plural = "services");
/// ```
#[macro_export]
macro_rules! partial_resource {
    ($type:ty, group = $group:literal, version = $version:literal, kind = $kind:literal, plural = $plural:literal) => {
        impl ::k8s_openapi::Resource for $type {
            const API_VERSION: &'static str = if $group.is_empty() {
                $version
            } else {
                concat!($group, "/", $version)
            };
            const GROUP: &'static str = $group;
            const KIND: &'static str = $kind;
            const VERSION: &'static str = $version;
            const URL_PATH_SEGMENT: &'static str = $plural;
            type Scope = ::k8s_openapi::NamespaceResourceScope;
        }

        impl ::k8s_openapi::Metadata for $type {
            type Ty = ::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

            fn metadata(&self) -> &Self::Ty {
                &self.metadata
            }

            fn metadata_mut(&mut self) -> &mut Self::Ty {
                &mut self.metadata
            }
        }
    };
}

/// Why a needed resource cannot be used; each says what to do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// 404: no CRD, or the CRD does not serve this version.
    NotServed,
    /// 403: the ServiceAccount may not list or watch it.
    Forbidden,
    /// 401: the API server does not accept this process's credentials.
    Unauthorized,
}

impl Unavailable {
    /// The one that `error` stands for; `None` for errors that pass by themselves (connection
    /// lost, 410 Gone, 5xx), which the watch retries quietly.
    pub fn of_watch_error(error: &watcher::Error) -> Option<Self> {
        match error {
            watcher::Error::InitialListFailed(error)
            | watcher::Error::WatchStartFailed(error)
            | watcher::Error::WatchFailed(error) => Self::of_error(error),
            watcher::Error::WatchError(status) => Self::of_status(status),
            watcher::Error::NoResourceVersion => None,
        }
    }

    pub fn of_error(error: &kube::Error) -> Option<Self> {
        match error {
            kube::Error::Api(status) => Self::of_status(status),
            _ => None,
        }
    }

    fn of_status(status: &Status) -> Option<Self> {
        match status.code {
            404 => Some(Self::NotServed),
            403 => Some(Self::Forbidden),
            401 => Some(Self::Unauthorized),
            _ => None,
        }
    }

    /// The metric's `reason` label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::NotServed => "not_served",
            Self::Forbidden => "forbidden",
            Self::Unauthorized => "unauthorized",
        }
    }

    /// One line for the log and `/readyz`: what is wrong with `resource` and the fix.
    pub fn describe(&self, resource: &str) -> String {
        let name = resource.split('/').next().unwrap_or(resource);
        match self {
            Self::NotServed => format!(
                "cannot watch {resource}: the API server does not serve it (its CustomResourceDefinition {name} is missing or does not serve this version); install or upgrade the CRDs: helm upgrade with crds.install=true, or kubectl apply --server-side -f deploy/crds/"
            ),
            Self::Forbidden => format!(
                "cannot watch {resource}: RBAC forbids it; grant this ServiceAccount get, list and watch on {name} (the chart's ClusterRole does: check rbac.create and the binding)"
            ),
            Self::Unauthorized => format!(
                "cannot watch {resource}: the API server rejects this process's credentials (ServiceAccount token or KUBECONFIG)"
            ),
        }
    }
}

/// What this process knows about one resource it needs. Cloned into the watch that uses it;
/// when the last clone is dropped (the work stopped), the resource no longer counts against
/// readiness.
#[derive(Clone, Debug)]
pub struct ResourceHealth(Arc<ResourceState>);

#[derive(Debug)]
struct ResourceState {
    resource: String,
    readiness: Readiness,
    current: Mutex<Option<Unavailable>>,
}

impl Readiness {
    /// Starts tracking `resource` (see [`resource_name`]); nothing is reported until it fails.
    pub fn resource(&self, resource: String) -> ResourceHealth {
        ResourceHealth(Arc::new(ResourceState {
            resource,
            readiness: self.clone(),
            current: Mutex::new(None),
        }))
    }
}

impl ResourceHealth {
    pub fn resource(&self) -> &str {
        &self.0.resource
    }

    /// The API server answered: the resource is usable (again).
    pub fn available(&self) {
        let previous = self.replace(None);
        if previous.is_some() {
            tracing::info!(resource = %self.0.resource, "can watch {} now", self.0.resource);
        }
    }

    /// A request for the resource failed: reported (once per change) when the error means the
    /// resource is unusable until a person acts; transient errors change nothing.
    pub fn failed(&self, unavailable: Option<Unavailable>) {
        let Some(unavailable) = unavailable else {
            return;
        };
        let message = unavailable.describe(&self.0.resource);
        if self.replace(Some(unavailable)).as_ref() != Some(&unavailable) {
            tracing::error!(resource = %self.0.resource, "{message}");
        }
    }

    fn replace(&self, next: Option<Unavailable>) -> Option<Unavailable> {
        let state = &self.0;
        let mut current = state.current.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = std::mem::replace(&mut *current, next);
        if previous != next {
            if let Some(reason) = &previous {
                state.gauge(reason).set(0.0);
            }
            if let Some(reason) = &next {
                state.gauge(reason).set(1.0);
            }
            state.readiness.set_problem(
                &state.resource,
                next.map(|reason| reason.describe(&state.resource)),
            );
        }
        previous
    }
}

impl ResourceState {
    fn gauge(&self, reason: &Unavailable) -> metrics::Gauge {
        metrics::gauge!(RESOURCE_UNAVAILABLE_METRIC, "resource" => self.resource.clone(), "reason" => reason.label())
    }
}

impl Drop for ResourceState {
    fn drop(&mut self) {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(reason) = current.as_ref() {
            self.gauge(reason).set(0.0);
        }
        self.readiness.set_problem(&self.resource, None);
    }
}

/// Checks that a resource used only by periodic lists (not watched) can be listed, retrying
/// until it can or `stop` is cancelled, so a missing CRD is reported at start-up rather than at
/// the first sweep.
pub async fn check_listable<K>(api: Api<K>, health: ResourceHealth, stop: CancellationToken)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut retry = Duration::from_secs(1);
    loop {
        match api.list_metadata(&ListParams::default().limit(1)).await {
            Ok(_) => {
                health.available();
                return;
            }
            Err(error) => health.failed(Unavailable::of_error(&error)),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(retry) => {}
        }
        retry = (retry * 2).min(Duration::from_secs(30));
    }
}

/// Whether a cache holds a full list yet.
pub type CacheSynced = watch::Receiver<bool>;

/// A watch feeding a cache: the cache, the stream that fills it (it must be polled: give it to a
/// controller or spawn it) and a flag that turns true once the first full list is in the cache.
pub struct CachedWatch<K, S>
where
    K: kube::Resource + 'static,
    K::DynamicType: Eq + std::hash::Hash,
{
    pub store: Store<K>,
    pub stream: S,
    pub synced: CacheSynced,
}

impl<K, S> std::fmt::Debug for CachedWatch<K, S>
where
    K: kube::Resource + 'static,
    K::DynamicType: Eq + std::hash::Hash,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedWatch")
            .field("synced", &*self.synced.borrow())
            .finish_non_exhaustive()
    }
}

/// Sets up a [`CachedWatch`] of `api`. `trim` shrinks each object before it is cached (e.g.
/// clearing managedFields); `observe` sees every event too, for indexes kept beside the cache.
/// Failures that need a person are reported through `health`.
pub fn cached_watch<K>(
    api: Api<K>,
    config: watcher::Config,
    trim: impl FnMut(&mut K) + Send + 'static,
    observe: impl Fn(&watcher::Event<K>) + Send + 'static,
    health: ResourceHealth,
) -> CachedWatch<K, impl Stream<Item = Result<K, watcher::Error>> + Send + 'static>
where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (store, writer) = reflector::store::<K>();
    let (synced_tx, synced) = watch::channel(false);
    let stream = watcher(api, config)
        .modify(trim)
        .default_backoff()
        .reflect(writer)
        .inspect(move |result| match result {
            Ok(event) => {
                // `Init` comes before the list request, so it proves nothing yet.
                if !matches!(event, watcher::Event::Init) {
                    health.available();
                }
                observe(event);
                if matches!(event, watcher::Event::InitDone) {
                    synced_tx.send_replace(true);
                }
            }
            Err(error) => health.failed(Unavailable::of_watch_error(error)),
        })
        .touched_objects();
    CachedWatch {
        store,
        stream,
        synced,
    }
}

/// The process is stopping; what waited for the caches should give up.
#[derive(Debug, thiserror::Error)]
#[error("stopping before the caches were synced")]
pub struct Stopping;

/// Readiness of several caches, tracked from their watch streams. Not `Store::wait_until_ready`:
/// in kube-runtime 5 it wakes only the last of several waiters (its `DelayedInit` polls one
/// oneshot receiver that keeps a single waker; see kube-rs/kube#1226 and the review of
/// kube-rs/kube#1243), and the controller runtime itself already waits on its main store.
#[derive(Clone, Debug)]
pub struct Caches {
    synced: Vec<CacheSynced>,
    stopping: CancellationToken,
}

impl Caches {
    pub fn new(synced: Vec<CacheSynced>, stopping: CancellationToken) -> Self {
        Self { synced, stopping }
    }

    /// Resolves once every cache holds a full list; `Err` when the process stops first (a cache
    /// whose resource is missing may never fill, and nothing may wait for it past shutdown).
    pub async fn wait(&self) -> Result<(), Stopping> {
        for synced in &self.synced {
            let mut synced = synced.clone();
            tokio::select! {
                _ = self.stopping.cancelled() => return Err(Stopping),
                filled = synced.wait_for(|synced| *synced) => if filled.is_err() {
                    // The watch is gone: only happens while stopping.
                    return Err(Stopping);
                },
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(Status::failure("no", "Reason").with_code(code)))
    }

    #[test]
    fn only_errors_a_person_must_fix_make_a_resource_unavailable() {
        let list =
            |code| Unavailable::of_watch_error(&watcher::Error::InitialListFailed(status(code)));
        assert_eq!(list(404), Some(Unavailable::NotServed));
        assert_eq!(list(403), Some(Unavailable::Forbidden));
        assert_eq!(list(401), Some(Unavailable::Unauthorized));
        assert_eq!(list(500), None);
        assert_eq!(list(410), None);
        assert_eq!(
            Unavailable::of_watch_error(&watcher::Error::WatchStartFailed(status(403))),
            Some(Unavailable::Forbidden)
        );
        assert_eq!(
            Unavailable::of_watch_error(&watcher::Error::NoResourceVersion),
            None
        );
    }

    #[test]
    fn the_description_names_the_crd_and_the_fix() {
        let text = Unavailable::NotServed.describe("authentikobjects.gitops.io/v1alpha1");
        assert!(
            text.contains("CustomResourceDefinition authentikobjects.gitops.io "),
            "{text}"
        );
        assert!(text.contains("deploy/crds/"), "{text}");
        let text = Unavailable::Forbidden.describe("jobs.batch/v1");
        assert!(text.contains("list and watch on jobs.batch "), "{text}");
    }

    #[test]
    fn a_problem_shows_in_readiness_until_it_passes_or_the_watch_is_dropped() {
        let readiness = Readiness::default();
        let health = readiness.resource("widgets.example.com/v1".into());
        assert!(readiness.problems().is_empty());
        health.failed(None);
        assert!(
            readiness.problems().is_empty(),
            "transient errors are not problems"
        );
        health.failed(Some(Unavailable::NotServed));
        let problems = readiness.problems();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("widgets.example.com/v1"),
            "{problems:?}"
        );
        health.available();
        assert!(readiness.problems().is_empty());
        health.failed(Some(Unavailable::Forbidden));
        assert_eq!(readiness.problems().len(), 1);
        drop(health);
        assert!(
            readiness.problems().is_empty(),
            "a stopped watch no longer counts"
        );
    }

    #[test]
    fn resource_names_carry_group_and_version() {
        assert_eq!(
            resource_name::<k8s_openapi::api::core::v1::Service>(),
            "services/v1"
        );
        assert_eq!(
            resource_name::<k8s_openapi::api::batch::v1::Job>(),
            "jobs.batch/v1"
        );
    }

    #[tokio::test]
    async fn waiting_for_caches_ends_when_stopping() {
        let (_tx, never) = watch::channel(false);
        let stopping = CancellationToken::new();
        let caches = Caches::new(vec![never], stopping.clone());
        stopping.cancel();
        assert!(caches.wait().await.is_err());

        let (tx, filled) = watch::channel(false);
        let caches = Caches::new(vec![filled], CancellationToken::new());
        tx.send_replace(true);
        assert!(caches.wait().await.is_ok());
    }
}

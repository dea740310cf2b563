//! One measurement's world: the test API server, a fresh namespace, a fresh authentik double
//! with the chosen latency, and helpers to fill them quickly.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use authentik_double::{AuthentikDouble, DoubleConfig, DoubleHandle, LatencyModel};
use futures::{StreamExt, TryStreamExt, stream};
use gitops_crd::ownership::AuthentikObject;
use gitops_crd::{Phase, ProxyConfig};
use gitops_testenv::{TestEnv, TestNamespace};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::controller::{Controller, Kind};

/// Creates in flight at once when filling the API server: enough to keep it busy on 2 cores
/// without piling up timeouts.
const CREATE_CONCURRENCY: usize = 32;

/// The authentik double's injected latency, as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latency {
    Fixed(u64),
    Realistic,
}

impl Latency {
    pub fn model(self) -> LatencyModel {
        match self {
            Latency::Fixed(0) => LatencyModel::Off,
            Latency::Fixed(ms) => LatencyModel::fixed(Duration::from_millis(ms)),
            Latency::Realistic => LatencyModel::realistic(),
        }
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Latency::Fixed(ms) => write!(f, "{ms}ms"),
            Latency::Realistic => f.write_str("realistic"),
        }
    }
}

impl FromStr for Latency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().trim_end_matches("ms") {
            "realistic" => Ok(Latency::Realistic),
            ms => ms
                .parse()
                .map(Latency::Fixed)
                .map_err(|_| format!("{s:?}: use a number of milliseconds or `realistic`")),
        }
    }
}

pub struct Bench {
    pub env: &'static TestEnv,
    pub client: Client,
    pub ns: TestNamespace,
    pub double: DoubleHandle,
    log_dir: PathBuf,
}

impl fmt::Debug for Bench {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bench")
            .field("namespace", &self.ns.name())
            .field("authentik", &self.double.base_url())
            .finish_non_exhaustive()
    }
}

impl Bench {
    pub async fn new(purpose: &str, latency: Latency) -> Result<Self> {
        let env = TestEnv::shared().context("test environment")?;
        let client = env.client().await?;
        gitops_testenv::install_product_crds(&client).await?;
        let ns = env.namespace(&format!("bench-{purpose}")).await?;
        let double = AuthentikDouble::start(DoubleConfig::default().with_latency(latency.model()))
            .await
            .context("starting the authentik double")?;
        let log_dir = crate::report::out_dir().join("logs").join(ns.name());
        Ok(Self {
            env,
            client,
            ns,
            double,
            log_dir,
        })
    }

    pub fn namespace(&self) -> &str {
        self.ns.name()
    }

    /// Removes the namespace and waits until it is gone, so that its deletion (by
    /// kube-controller-manager, in the background) is not counted in the next measurement.
    /// Call after the controllers are stopped: the ProxyConfigs' finalizers are released by
    /// hand (authentik here is a throw-away double).
    pub async fn teardown(self) -> Result<()> {
        let api = self.proxyconfigs();
        let names: Vec<String> = api
            .list_metadata(&ListParams::default())
            .await?
            .items
            .iter()
            .map(ResourceExt::name_any)
            .collect();
        let release = json!({"metadata": {"finalizers": null}});
        create_all(names, |name| {
            let api = api.clone();
            let release = release.clone();
            async move {
                match api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(release))
                    .await
                {
                    Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
                    other => other.map(drop),
                }
            }
        })
        .await?;
        // Ownership records are cluster-scoped and outlive the namespace; left behind they
        // would inflate the next measurement's caches (the controllers watch all of them).
        let records: Api<AuthentikObject> = Api::all(self.client.clone());
        let ours: Vec<String> = records
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|r| r.spec.claimed_by.namespace == self.namespace())
            .map(|r| r.name_any())
            .collect();
        create_all(ours, |name| {
            let records = records.clone();
            async move {
                match records.delete(&name, &DeleteParams::default()).await {
                    Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
                    other => other.map(drop),
                }
            }
        })
        .await?;
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        namespaces
            .delete(self.namespace(), &DeleteParams::background())
            .await?;
        let started = Instant::now();
        while namespaces.get_opt(self.namespace()).await?.is_some() {
            if started.elapsed() > Duration::from_secs(300) {
                bail!("namespace {} not gone after 300 s", self.namespace());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(())
    }

    /// Starts a controller against this namespace and double.
    pub fn start(&self, kind: Kind, settings: &[(&str, String)]) -> Result<Controller> {
        let mut all = vec![
            ("AUTHENTIK_HOST", self.double.base_url()),
            ("AUTHENTIK_TOKEN", self.double.token().to_owned()),
        ];
        all.extend(settings.iter().cloned());
        Controller::spawn(
            kind,
            &self.env.kubeconfig(),
            self.namespace(),
            &self.log_dir,
            &all,
        )
    }

    pub fn proxyconfigs(&self) -> Api<ProxyConfig> {
        Api::namespaced(self.client.clone(), self.namespace())
    }

    /// A minimal ProxyConfig (forward auth, default flows and outpost), as users write them.
    pub fn proxyconfig(&self, name: &str) -> Result<ProxyConfig> {
        let ns = self.namespace();
        Ok(serde_json::from_value(json!({
            "apiVersion": "gitops.io/v1",
            "kind": "ProxyConfig",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "serviceName": name,
                "serviceNamespace": ns,
                "externalHost": format!("{name}.{ns}.example.com"),
                "internalHost": format!("http://{name}.{ns}.svc.cluster.local:80"),
                "authentikConfig": {"providerName": format!("{name}-{ns}")}
            }
        }))?)
    }

    /// Creates ProxyConfigs `<prefix>-0..n` concurrently; returns how long that took.
    pub async fn create_proxyconfigs(&self, prefix: &str, n: usize) -> Result<Duration> {
        let api = self.proxyconfigs();
        let objects = (0..n)
            .map(|i| self.proxyconfig(&format!("{prefix}-{i}")))
            .collect::<Result<Vec<_>>>()?;
        let started = Instant::now();
        create_all(objects, |pc| {
            let api = api.clone();
            async move { api.create(&PostParams::default(), &pc).await.map(drop) }
        })
        .await?;
        Ok(started.elapsed())
    }
}

/// Creates every object with [`CREATE_CONCURRENCY`] requests in flight; an object that
/// already exists (a retried create that had gone through) counts as created.
pub async fn create_all<T, F, Fut>(objects: Vec<T>, create: F) -> Result<()>
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = kube::Result<()>>,
    T: Clone,
{
    stream::iter(objects)
        .map(|object| {
            let create = &create;
            async move {
                let mut attempt = 0;
                loop {
                    match create(object.clone()).await {
                        Ok(()) => return Ok(()),
                        Err(kube::Error::Api(status)) if status.code == 409 => return Ok(()),
                        // The API server sheds load with 429/5xx on 2 cores; back off briefly.
                        Err(_) if attempt < 5 => {
                            attempt += 1;
                            tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                        }
                        Err(error) => return Err(error),
                    }
                }
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await
        .context("creating objects")?;
    Ok(())
}

/// When each ProxyConfig was first seen `Ready` for its current generation, from a watch
/// (not polling, so that the bench adds one watch, not thousands of GETs, to the API server).
#[derive(Debug)]
pub struct ReadyTracker {
    ready: Arc<Mutex<HashMap<String, Instant>>>,
    task: JoinHandle<()>,
}

impl Drop for ReadyTracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn is_ready(pc: &ProxyConfig) -> bool {
    pc.status.as_ref().is_some_and(|s| {
        s.phase == Some(Phase::Ready) && s.observed_generation == pc.metadata.generation
    })
}

impl ReadyTracker {
    pub fn start(api: Api<ProxyConfig>) -> Self {
        let ready: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let seen = ready.clone();
        let task = tokio::spawn(async move {
            let mut events = watcher(api, watcher::Config::default()).boxed();
            while let Some(event) = events.next().await {
                let now = Instant::now();
                // Errors: the watcher re-lists by itself.
                let pc = match event {
                    Ok(watcher::Event::Apply(pc) | watcher::Event::InitApply(pc)) => pc,
                    _ => continue,
                };
                if is_ready(&pc) {
                    seen.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .entry(pc.name_any())
                        .or_insert(now);
                }
            }
        });
        Self { ready, task }
    }

    pub fn count(&self) -> usize {
        self.lock().len()
    }

    pub fn ready_at(&self, name: &str) -> Option<Instant> {
        self.lock().get(name).copied()
    }

    /// The latest first-Ready time of all tracked objects.
    pub fn last_ready(&self) -> Option<Instant> {
        self.lock().values().max().copied()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.ready.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until `n` objects have been Ready, up to `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        while self.count() < n {
            if started.elapsed() > timeout {
                bail!(
                    "only {} of {n} ProxyConfigs Ready after {timeout:?}",
                    self.count()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

/// A resync interval for N converged objects: `wanted`, but never shorter than a resync of N
/// takes (~1.5 ms of controller CPU per object, and the double renders every object for each
/// list page). Shorter, the controller spends all its time re-verifying and onboarding stalls:
/// 5,000 objects with a 10 s resync had 2,605 Ready after 9 minutes.
pub fn resync_for(n: usize, wanted: Duration) -> Duration {
    wanted.max(Duration::from_secs((n / 100) as u64))
}

/// Onboards `n` ProxyConfigs through a running service-discovery controller and waits until
/// all are Ready: the starting point of the steady-state, restart and memory scenarios.
pub async fn converge(bench: &Bench, n: usize, timeout: Duration) -> Result<Duration> {
    let tracker = ReadyTracker::start(bench.proxyconfigs());
    let started = Instant::now();
    bench.create_proxyconfigs("pc", n).await?;
    tracker.wait_for(n, timeout).await?;
    Ok(started.elapsed())
}

//! What integration tests use: the shared environment, a namespace per test, and clients.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};

use crate::control_plane::{ControlPlane, client_for};
use crate::crds::FIELD_MANAGER;
use crate::error::{Error, Result};
use crate::shared;
use crate::util::{block_on, random_hex};

/// Label on every namespace a test creates.
pub const TEST_NAMESPACE_LABEL: &str = "gitops-testenv.io/test";

/// The environment the tests of this process share.
#[derive(Debug)]
pub struct TestEnv {
    plane: ControlPlane,
    /// Stopped when this value drops (an environment with a node started for one test).
    owned: bool,
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if self.owned
            && let Err(error) = self.plane.stop()
        {
            eprintln!(
                "testenv: could not stop the environment in {}: {error}",
                self.plane.dir().display()
            );
        }
    }
}

impl TestEnv {
    /// The environment for this test process: started on first use (or found running, see
    /// [`crate::shared`]) and shared by every test in the process. The first call blocks until
    /// the environment is ready (~10 s warm; building the pinned tools first can take minutes).
    pub fn shared() -> Result<&'static TestEnv> {
        static SHARED: OnceLock<Result<TestEnv, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                // One failure is reported to every test, instead of each test retrying.
                shared::acquire_for_tests()
                    .map(|plane| TestEnv {
                        plane,
                        owned: false,
                    })
                    .map_err(|error| error.to_string())
            })
            .as_ref()
            .map_err(|message| Error::SharedStartFailed(message.clone()))
    }

    /// An environment of its own for this test process (for tests that restart the API server
    /// or etcd, which would disturb everyone sharing one). It lives until the process exits; the
    /// watchdog then stops it.
    pub fn private() -> Result<TestEnv> {
        shared::start_private(std::process::id()).map(|plane| TestEnv {
            plane,
            owned: false,
        })
    }

    /// An environment whose Pods run (see [`ControlPlane::start_with_node`]): the shared one
    /// when it has a node (`cargo xtask testenv up --node`), else a new one that is stopped —
    /// node, mounts, bridge, iptables rules and all — when the returned value drops, or by its
    /// watchdog when this process dies first (SIGKILL, Ctrl-C). The watchdog is this test binary
    /// running one test: call [`node_watchdog!`](crate::node_watchdog) once in the test file.
    /// One node runs per machine: tests that need one take turns.
    pub fn with_node() -> Result<TestEnv> {
        if let Some(plane) = shared::shared_environment()?.filter(ControlPlane::has_node) {
            return Ok(TestEnv {
                plane,
                owned: false,
            });
        }
        ControlPlane::start_with_watched_node().map(|plane| TestEnv { plane, owned: true })
    }

    /// The control plane behind it.
    pub fn control_plane(&self) -> &ControlPlane {
        &self.plane
    }

    /// Admin kubeconfig path.
    pub fn kubeconfig(&self) -> PathBuf {
        self.plane.kubeconfig()
    }

    /// A cluster-admin client. Make one per test: a client belongs to the Tokio runtime it was
    /// made in, and every `#[tokio::test]` has its own.
    pub async fn client(&self) -> Result<Client> {
        self.plane.client().await
    }

    /// A client that acts as ServiceAccount `namespace/name` (impersonation: the API server
    /// authorizes each request as that account, with its groups), to test RBAC rules.
    pub async fn client_as_service_account(&self, namespace: &str, name: &str) -> Result<Client> {
        client_for(
            &self.kubeconfig(),
            Some(format!("system:serviceaccount:{namespace}:{name}")),
        )
        .await
    }

    /// What most tests start with: a client, the product's CRDs installed, and a fresh
    /// namespace named after `purpose`.
    pub async fn prepare(&self, purpose: &str) -> Result<(Client, TestNamespace)> {
        let client = self.client().await?;
        crate::install_product_crds(&client).await?;
        let namespace = self.namespace(purpose).await?;
        Ok((client, namespace))
    }

    /// Creates a fresh namespace named after `purpose`; it is deleted when the guard drops,
    /// also when the test panics.
    pub async fn namespace(&self, purpose: &str) -> Result<TestNamespace> {
        let prefix: String = purpose
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(50)
            .collect();
        let name = format!("{}-{}", prefix.trim_matches('-'), random_hex(4)?);
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(BTreeMap::from([(
                    TEST_NAMESPACE_LABEL.to_owned(),
                    "true".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let api: Api<Namespace> = Api::all(self.client().await?);
        api.create(&PostParams::default(), &namespace).await?;
        Ok(TestNamespace {
            name,
            kubeconfig: self.kubeconfig(),
        })
    }
}

/// Server-side applies `manifest` (named by its `metadata.name`; apiVersion and kind included)
/// through `api`, taking over fields others set.
pub async fn apply<K>(api: Api<K>, manifest: serde_json::Value) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = manifest["metadata"]["name"].as_str().unwrap_or_default();
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&manifest),
    )
    .await?;
    Ok(())
}

/// A namespace that exists for one test. Dropping it deletes it (kube-controller-manager's
/// namespace controller then removes everything in it).
#[derive(Debug)]
pub struct TestNamespace {
    name: String,
    kubeconfig: PathBuf,
}

impl TestNamespace {
    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        let kubeconfig = self.kubeconfig.clone();
        // Drop cannot await, and may run while a panic unwinds a test's runtime: delete from a
        // helper thread with its own runtime.
        let deleted = block_on(async move {
            let api: Api<Namespace> = Api::all(client_for(&kubeconfig, None).await?);
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
                Err(error) => Err(Error::from(error)),
            }
        });
        if let Err(error) | Ok(Err(error)) = deleted {
            eprintln!("testenv: could not delete namespace {}: {error}", self.name);
        }
    }
}

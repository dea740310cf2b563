//! What every reconcile shares (the reconciler and the deletion path both run on it).

use std::sync::Arc;

use gitops_crd::ProxyConfig;
use kube::runtime::reflector::Store;

use crate::authentik::Authentik;
use crate::backoff::Backoff;

use crate::config::Settings;
use crate::conflicts::Claims;
use crate::exposure::Routes;
use crate::forward_auth::{OutpostProbe, ServedKinds};
use crate::outpost::OutpostAssigner;
use crate::ownership::Records;
use crate::service_ports::ServicePorts;
use crate::status::StatusWriter;

/// Everything a reconcile needs; shared by all of them.
pub struct Context {
    pub client: kube::Client,
    pub authentik: Arc<Authentik>,
    pub outposts: OutpostAssigner,
    pub records: Records,
    pub proxyconfigs: Store<ProxyConfig>,
    pub claims: Claims,
    pub services: Store<ServicePorts>,
    pub status: StatusWriter,
    pub settings: Arc<Settings>,
    pub defaults: gitops_plan::Defaults,
    pub backoff: Backoff,
    pub caches: gitops_runtime::watches::Caches,
    /// Which reverse-proxy kinds the API server serves (for `forwardAuth`).
    pub served_kinds: ServedKinds,
    pub outpost_probe: OutpostProbe,
    /// The routes serving ProxyConfigs' hosts (for `Protected`).
    pub routes: Routes,
}

//! Reading what the comparison needs: ProxyConfigs and ownership records from the API server,
//! providers, applications, flows and outposts from authentik (resolved as the controller
//! resolves them).

use std::collections::BTreeMap;

use gitops_authentik::{
    Application, AuthentikClient, FlowDesignation, Outpost, OutpostSelector, ProxyProvider,
};
use gitops_crd::ProxyConfig;
use gitops_crd::ownership::AuthentikObject;
use kube::api::{Api, ListParams};

use crate::error::CliError;
use crate::settings::ControllerDefaults;

/// The ProxyConfigs, records and authentik objects the comparison needs, read once.
#[derive(Debug)]
pub struct Observed {
    /// ProxyConfigs in scope.
    pub proxyconfigs: Vec<ProxyConfig>,
    /// Every ownership record (cluster-scoped).
    pub records: Vec<AuthentikObject>,
    pub providers: Vec<ProxyProvider>,
    pub applications: Vec<Application>,
    /// Flow slug or UUID → UUID (`None`: not found).
    pub flows: BTreeMap<String, Option<String>>,
    /// Outpost selector (`embedded`, a name or a UUID) → outpost (`None`: not found).
    pub outposts: BTreeMap<String, Option<Outpost>>,
    /// `Some(namespace)` when only one namespace is checked.
    pub scope: Option<String>,
    /// What a ProxyConfig that names no flow, outpost or cookie domain gets.
    pub defaults: ControllerDefaults,
}

pub async fn gather(
    client: &kube::Client,
    authentik: &AuthentikClient,
    scope: Option<&str>,
    defaults: ControllerDefaults,
) -> Result<Observed, CliError> {
    let proxyconfigs = list_proxyconfigs(client, scope).await?;
    let records = Api::<AuthentikObject>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|error| CliError::kube("listing AuthentikObject records", &error))?
        .items;
    let failed = |what: &str, error: gitops_authentik::Error| {
        CliError::Authentik(format!("{what}: {error}"))
    };
    let providers = authentik
        .list_proxy_providers()
        .await
        .map_err(|e| failed("listing proxy providers", e))?;
    let applications = authentik
        .list_applications()
        .await
        .map_err(|e| failed("listing applications", e))?;

    let mut flows = BTreeMap::new();
    let mut outposts = BTreeMap::new();
    for proxyconfig in proxyconfigs
        .iter()
        .filter(|pc| pc.spec.authentik_config.enabled)
    {
        let config = &proxyconfig.spec.authentik_config;
        for (key, designation, default) in [
            (
                &config.authorization_flow,
                FlowDesignation::Authorization,
                &defaults.authorization_flow,
            ),
            (
                &config.invalidation_flow,
                FlowDesignation::Invalidation,
                &defaults.invalidation_flow,
            ),
        ] {
            let key = key.as_deref().unwrap_or(default);
            if !flows.contains_key(key) {
                let fallback = (key == default.as_str()).then_some(designation);
                let found = authentik
                    .resolve_flow(key, fallback)
                    .await
                    .map_err(|e| failed(&format!("looking up flow {key}"), e))?;
                flows.insert(key.to_owned(), found);
            }
        }
        let selector = outpost_selector(proxyconfig, &defaults);
        if !outposts.contains_key(selector) {
            let found = authentik
                .resolve_outpost(&OutpostSelector::parse(selector))
                .await
                .map_err(|e| failed(&format!("looking up outpost {selector}"), e))?;
            outposts.insert(selector.to_owned(), found);
        }
    }
    Ok(Observed {
        proxyconfigs,
        records,
        providers,
        applications,
        flows,
        outposts,
        scope: scope.map(str::to_owned),
        defaults,
    })
}

pub async fn list_proxyconfigs(
    client: &kube::Client,
    scope: Option<&str>,
) -> Result<Vec<ProxyConfig>, CliError> {
    let api: Api<ProxyConfig> = match scope {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    api.list(&ListParams::default())
        .await
        .map(|list| list.items)
        .map_err(|error| CliError::kube("listing ProxyConfigs", &error))
}

pub(super) fn outpost_selector<'a>(
    proxyconfig: &'a ProxyConfig,
    defaults: &'a ControllerDefaults,
) -> &'a str {
    proxyconfig
        .spec
        .authentik_config
        .outpost
        .as_deref()
        .unwrap_or(&defaults.outpost)
}

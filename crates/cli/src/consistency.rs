//! ProxyConfigs against authentik, shared by `verify` (findings) and `report` (counts).
//!
//! What authentik should hold comes from `gitops-plan`, exactly as the controller computes
//! it; which objects are ours comes from the `AuthentikObject` records (docs/design/ownership.md).

use std::collections::{BTreeMap, BTreeSet};

use authentik_client::{Application, AuthentikClient, FlowDesignation, Outpost, ProxyProvider};
use gitops_crd::ProxyConfig;
use gitops_crd::names::DEFAULT_OUTPOST;
use gitops_crd::ownership::{AuthentikKind, AuthentikObject, record_name};
use gitops_crd::validate::check_spec;
use gitops_plan::{
    Defaults, FieldDiff, Flows, application_changes, application_slug, desired_application,
    desired_provider, provider_changes,
};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde::Serialize;

use crate::error::CliError;
use crate::settings::ControllerDefaults;

/// Everything the comparison needs, read once.
#[derive(Debug)]
pub struct World {
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
) -> Result<World, CliError> {
    let proxyconfigs = list_proxyconfigs(client, scope).await?;
    let records = Api::<AuthentikObject>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|error| CliError::kube("listing AuthentikObject records", &error))?
        .items;
    let failed = |what: &str, error: authentik_client::Error| {
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
    for pc in proxyconfigs
        .iter()
        .filter(|pc| pc.spec.authentik_config.enabled)
    {
        let config = &pc.spec.authentik_config;
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
                let found = resolve_flow(authentik, key, designation, key == default.as_str())
                    .await
                    .map_err(|e| failed(&format!("looking up flow {key}"), e))?;
                flows.insert(key.to_owned(), found);
            }
        }
        let selector = outpost_selector(pc, &defaults);
        if !outposts.contains_key(selector) {
            let found = resolve_outpost(authentik, selector)
                .await
                .map_err(|e| failed(&format!("looking up outpost {selector}"), e))?;
            outposts.insert(selector.to_owned(), found);
        }
    }
    Ok(World {
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

fn outpost_selector<'a>(pc: &'a ProxyConfig, defaults: &'a ControllerDefaults) -> &'a str {
    pc.spec
        .authentik_config
        .outpost
        .as_deref()
        .unwrap_or(&defaults.outpost)
}

fn is_uuid(key: &str) -> bool {
    uuid::Uuid::parse_str(key).is_ok()
}

fn not_found_as_none<T>(
    result: Result<T, authentik_client::Error>,
) -> Result<Option<T>, authentik_client::Error> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(error) if error.category() == authentik_client::ErrorCategory::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// As the controller resolves flows: slug or UUID; a default that was renamed falls back to
/// the first flow of its designation.
async fn resolve_flow(
    authentik: &AuthentikClient,
    key: &str,
    designation: FlowDesignation,
    is_default: bool,
) -> Result<Option<String>, authentik_client::Error> {
    let found = if is_uuid(key) {
        authentik.find_flow_by_uuid(key).await?.map(|f| f.pk)
    } else {
        not_found_as_none(authentik.get_flow(key).await)?.map(|f| f.pk)
    };
    if found.is_some() || !is_default {
        return Ok(found);
    }
    let mut candidates = authentik.list_flows_by_designation(designation).await?;
    candidates.sort_by(|a, b| a.slug.cmp(&b.slug));
    Ok(candidates.into_iter().next().map(|f| f.pk))
}

async fn resolve_outpost(
    authentik: &AuthentikClient,
    selector: &str,
) -> Result<Option<Outpost>, authentik_client::Error> {
    if selector.eq_ignore_ascii_case(DEFAULT_OUTPOST) {
        authentik.find_embedded_outpost().await
    } else if is_uuid(selector) {
        not_found_as_none(authentik.get_outpost(selector).await)
    } else {
        authentik.find_outpost_by_name(selector).await
    }
}

/// One field that differs: what the ProxyConfig wants and what authentik has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub field: String,
    pub want: String,
    pub have: String,
}

impl From<FieldDiff> for Difference {
    fn from(diff: FieldDiff) -> Self {
        Self {
            field: diff.field.to_owned(),
            want: diff.want,
            have: diff.have,
        }
    }
}

/// Something that does not match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Finding {
    /// The ProxyConfig's provider does not exist in authentik.
    MissingProvider {
        proxy_config: String,
        provider: String,
    },
    /// The ProxyConfig's application does not exist in authentik.
    MissingApplication { proxy_config: String, slug: String },
    /// Fields of the provider differ from the spec.
    DriftedProvider {
        proxy_config: String,
        provider: String,
        differences: Vec<Difference>,
    },
    /// Fields of the application differ from the spec.
    DriftedApplication {
        proxy_config: String,
        slug: String,
        differences: Vec<Difference>,
    },
    /// The provider exists but its outpost does not serve it.
    NotInOutpost {
        proxy_config: String,
        provider: String,
        outpost: String,
    },
    /// A flow or outpost the spec names does not exist.
    Unresolved {
        proxy_config: String,
        reason: String,
    },
    /// A record whose ProxyConfig no longer exists: the cleanup controller deletes its object
    /// after the grace period.
    Orphaned {
        record: String,
        object: String,
        authentik_id: Option<String>,
        claimed_by: String,
    },
    /// A provider in an outpost our ProxyConfigs use that this product did not create.
    ForeignProvider {
        outpost: String,
        provider: String,
        pk: i64,
    },
}

impl Finding {
    /// Short label for tables and counts.
    pub fn label(&self) -> &'static str {
        match self {
            Finding::MissingProvider { .. } | Finding::MissingApplication { .. } => "missing",
            Finding::DriftedProvider { .. } | Finding::DriftedApplication { .. } => "drifted",
            Finding::NotInOutpost { .. } => "not-in-outpost",
            Finding::Unresolved { .. } => "unresolved",
            Finding::Orphaned { .. } => "orphaned",
            Finding::ForeignProvider { .. } => "foreign",
        }
    }

    /// What it concerns and what is wrong, for the table.
    pub fn describe(&self) -> (String, String) {
        match self {
            Finding::MissingProvider {
                proxy_config,
                provider,
            } => (
                proxy_config.clone(),
                format!("provider {provider:?} does not exist"),
            ),
            Finding::MissingApplication { proxy_config, slug } => (
                proxy_config.clone(),
                format!("application {slug:?} does not exist"),
            ),
            Finding::DriftedProvider {
                proxy_config,
                provider,
                differences,
            } => (
                proxy_config.clone(),
                format!("provider {provider:?}: {}", join(differences)),
            ),
            Finding::DriftedApplication {
                proxy_config,
                slug,
                differences,
            } => (
                proxy_config.clone(),
                format!("application {slug:?}: {}", join(differences)),
            ),
            Finding::NotInOutpost {
                proxy_config,
                provider,
                outpost,
            } => (
                proxy_config.clone(),
                format!("provider {provider:?} is not in outpost {outpost:?}"),
            ),
            Finding::Unresolved {
                proxy_config,
                reason,
            } => (proxy_config.clone(), reason.clone()),
            Finding::Orphaned {
                record,
                object,
                authentik_id,
                claimed_by,
            } => (
                format!("authentikobject/{record}"),
                format!(
                    "{object} (id {}) is claimed by {claimed_by}, which no longer exists",
                    authentik_id.as_deref().unwrap_or("none")
                ),
            ),
            Finding::ForeignProvider {
                outpost,
                provider,
                pk,
            } => (
                format!("outpost/{outpost}"),
                format!(
                    "provider {provider:?} (pk {pk}) was not created by gitops-lifecycle-management"
                ),
            ),
        }
    }
}

fn join(differences: &[Difference]) -> String {
    differences
        .iter()
        .map(|d| format!("{} is {} (want {})", d.field, d.have, d.want))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A ProxyConfig that was not compared, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    pub proxy_config: String,
    pub reason: String,
}

/// Counts, for the weekly report and the end of `verify`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub proxy_configs: usize,
    pub in_sync: usize,
    pub skipped: usize,
    pub missing: usize,
    pub drifted: usize,
    pub not_in_outpost: usize,
    pub unresolved: usize,
    pub orphaned: usize,
    pub foreign: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub summary: Summary,
    pub findings: Vec<Finding>,
    pub skipped: Vec<Skipped>,
}

/// The comparison itself (pure).
pub fn evaluate(world: &World) -> Verification {
    let mut verification = Verification::default();
    let mut used_outposts: BTreeMap<&str, &Outpost> = BTreeMap::new();
    for pc in &world.proxyconfigs {
        let id = format!("{}/{}", pc.namespace().unwrap_or_default(), pc.name_any());
        if !pc.spec.authentik_config.enabled {
            verification.skipped.push(Skipped {
                proxy_config: id,
                reason: "authentikConfig.enabled is false".into(),
            });
            continue;
        }
        let before = verification.findings.len();
        match compare_one(world, pc, &id, &mut verification.findings) {
            Ok(Some(outpost)) => {
                used_outposts.insert(&outpost.pk, outpost);
            }
            Ok(None) => {}
            Err(reason) => {
                verification.skipped.push(Skipped {
                    proxy_config: id,
                    reason,
                });
                continue;
            }
        }
        if verification.findings.len() == before {
            verification.summary.in_sync += 1;
        }
    }
    verification.findings.extend(orphans(world));
    verification
        .findings
        .extend(foreign_providers(world, used_outposts.values().copied()));

    let summary = &mut verification.summary;
    summary.proxy_configs = world.proxyconfigs.len();
    summary.skipped = verification.skipped.len();
    for finding in &verification.findings {
        let counter = match finding {
            Finding::MissingProvider { .. } | Finding::MissingApplication { .. } => {
                &mut summary.missing
            }
            Finding::DriftedProvider { .. } | Finding::DriftedApplication { .. } => {
                &mut summary.drifted
            }
            Finding::NotInOutpost { .. } => &mut summary.not_in_outpost,
            Finding::Unresolved { .. } => &mut summary.unresolved,
            Finding::Orphaned { .. } => &mut summary.orphaned,
            Finding::ForeignProvider { .. } => &mut summary.foreign,
        };
        *counter += 1;
    }
    verification
}

/// The id a record holds for an authentik object of `kind` named `name`.
fn recorded_id<'a>(world: &'a World, kind: AuthentikKind, name: &str) -> Option<&'a str> {
    let wanted = record_name(kind, name);
    world
        .records
        .iter()
        .find(|r| r.name_any() == wanted && r.spec.kind == kind)
        .and_then(|r| r.spec.authentik_id.as_deref())
}

/// Compares one enabled ProxyConfig; returns the outpost it uses (if found), or why it was not
/// compared.
fn compare_one<'w>(
    world: &'w World,
    pc: &ProxyConfig,
    id: &str,
    findings: &mut Vec<Finding>,
) -> Result<Option<&'w Outpost>, String> {
    let spec = &pc.spec;
    let config = &spec.authentik_config;
    let checked = check_spec(spec).map_err(|errors| format!("invalid spec: {errors}"))?;
    let unresolved = |reason: String| Finding::Unresolved {
        proxy_config: id.to_owned(),
        reason,
    };
    let flow = |key: &Option<String>, default: &str| {
        let key = key.as_deref().unwrap_or(default);
        world
            .flows
            .get(key)
            .cloned()
            .flatten()
            .ok_or_else(|| format!("flow {key:?} does not exist in authentik"))
    };
    let flows = match (
        flow(
            &config.authorization_flow,
            &world.defaults.authorization_flow,
        ),
        flow(&config.invalidation_flow, &world.defaults.invalidation_flow),
    ) {
        (Ok(authorization), Ok(invalidation)) => Flows {
            authorization,
            invalidation,
        },
        (Err(reason), _) | (_, Err(reason)) => {
            findings.push(unresolved(reason));
            return Ok(None);
        }
    };
    let selector = outpost_selector(pc, &world.defaults);
    let outpost = world.outposts.get(selector).and_then(Option::as_ref);
    if outpost.is_none() {
        findings.push(unresolved(format!(
            "outpost {selector:?} does not exist in authentik"
        )));
    }

    // Provider: by the pk our record (or the status) holds, so a renamed provider shows as
    // drift rather than missing; else by name.
    let defaults = Defaults {
        cookie_domain: world.defaults.cookie_domain.clone(),
    };
    let desired = desired_provider(spec, &checked, &flows, &defaults);
    let known_pk = recorded_id(world, AuthentikKind::Provider, &config.provider_name)
        .and_then(|id| id.parse::<i64>().ok())
        .or_else(|| pc.status.as_ref().and_then(|s| s.authentik_provider_id));
    let provider = known_pk
        .and_then(|pk| world.providers.iter().find(|p| p.pk == pk))
        .or_else(|| {
            world
                .providers
                .iter()
                .find(|p| p.name.eq_ignore_ascii_case(&config.provider_name))
        });
    match provider {
        None => findings.push(Finding::MissingProvider {
            proxy_config: id.to_owned(),
            provider: config.provider_name.clone(),
        }),
        Some(provider) => {
            if let Some((_, diffs)) = provider_changes(&desired, provider) {
                findings.push(Finding::DriftedProvider {
                    proxy_config: id.to_owned(),
                    provider: config.provider_name.clone(),
                    differences: diffs.into_iter().map(Difference::from).collect(),
                });
            }
            if let Some(outpost) = outpost
                && !outpost.providers.contains(&provider.pk)
            {
                findings.push(Finding::NotInOutpost {
                    proxy_config: id.to_owned(),
                    provider: config.provider_name.clone(),
                    outpost: outpost.name.clone(),
                });
            }
        }
    }

    let slug = application_slug(spec, &pc.namespace().unwrap_or_default(), &pc.name_any());
    let known_uuid = recorded_id(world, AuthentikKind::Application, &slug);
    let application = known_uuid
        .and_then(|uuid| world.applications.iter().find(|a| a.pk == uuid))
        .or_else(|| world.applications.iter().find(|a| a.slug == slug));
    match (application, provider) {
        (None, _) => findings.push(Finding::MissingApplication {
            proxy_config: id.to_owned(),
            slug,
        }),
        (Some(application), Some(provider)) => {
            let desired = desired_application(spec, slug.clone(), provider.pk);
            if let Some((_, diffs)) = application_changes(&desired, application) {
                findings.push(Finding::DriftedApplication {
                    proxy_config: id.to_owned(),
                    slug,
                    differences: diffs.into_iter().map(Difference::from).collect(),
                });
            }
        }
        // Without the provider there is nothing to bind to; `missing` says enough.
        (Some(_), None) => {}
    }
    Ok(outpost)
}

/// Records whose claiming ProxyConfig (by uid) no longer exists, within the scope.
fn orphans(world: &World) -> Vec<Finding> {
    let alive: BTreeSet<String> = world
        .proxyconfigs
        .iter()
        .filter_map(|pc| pc.uid())
        .collect();
    world
        .records
        .iter()
        .filter(|r| {
            world
                .scope
                .as_deref()
                .is_none_or(|ns| r.spec.claimed_by.namespace == ns)
        })
        .filter(|r| !alive.contains(&r.spec.claimed_by.uid))
        .map(|r| Finding::Orphaned {
            record: r.name_any(),
            object: format!(
                "{} {:?}",
                match r.spec.kind {
                    AuthentikKind::Provider => "provider",
                    AuthentikKind::Application => "application",
                },
                r.spec.authentik_name
            ),
            authentik_id: r.spec.authentik_id.clone(),
            claimed_by: format!("{}/{}", r.spec.claimed_by.namespace, r.spec.claimed_by.name),
        })
        .collect()
}

/// Providers in the given outposts without an ownership record (matched by name and pk).
fn foreign_providers<'a>(
    world: &World,
    outposts: impl Iterator<Item = &'a Outpost>,
) -> Vec<Finding> {
    let mut found = Vec::new();
    for outpost in outposts {
        for &pk in &outpost.providers {
            let name = world
                .providers
                .iter()
                .find(|p| p.pk == pk)
                .map(|p| p.name.clone());
            let ours = name.as_deref().is_some_and(|name| {
                recorded_id(world, AuthentikKind::Provider, name) == Some(pk.to_string().as_str())
            });
            if !ours {
                found.push(Finding::ForeignProvider {
                    outpost: outpost.name.clone(),
                    provider: name.unwrap_or_else(|| "(not a proxy provider)".into()),
                    pk,
                });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitops_crd::names::{DEFAULT_AUTHORIZATION_FLOW, DEFAULT_INVALIDATION_FLOW};
    use serde_json::json;

    const AUTHZ: &str = "11111111-1111-4111-8111-111111111111";
    const INVAL: &str = "22222222-2222-4222-8222-222222222222";
    const OUTPOST: &str = "33333333-3333-4333-8333-333333333333";

    fn proxyconfig(name: &str, uid: &str) -> ProxyConfig {
        serde_json::from_value(json!({
            "apiVersion": "gitops.io/v1", "kind": "ProxyConfig",
            "metadata": {"name": name, "namespace": "apps", "uid": uid},
            "spec": {
                "serviceName": name, "serviceNamespace": "apps",
                "externalHost": format!("{name}.example.com"),
                "internalHost": format!("http://{name}.apps.svc.cluster.local:80"),
                "authentikConfig": {"providerName": name}
            }
        }))
        .expect("ProxyConfig")
    }

    fn provider(pk: i64, name: &str) -> ProxyProvider {
        serde_json::from_value(json!({
            "pk": pk, "name": name, "authorization_flow": AUTHZ, "invalidation_flow": INVAL,
            "external_host": format!("https://{name}.example.com"),
            "internal_host": format!("http://{name}.apps.svc.cluster.local:80"),
            "internal_host_ssl_validation": false, "skip_path_regex": "^/api/.*$",
            "mode": "forward_single", "intercept_header_auth": true, "cookie_domain": ""
        }))
        .expect("provider")
    }

    fn application(slug: &str, name: &str, provider: i64) -> Application {
        serde_json::from_value(json!({
            "pk": format!("app-{slug}"), "name": name, "slug": slug, "provider": provider,
            "meta_launch_url": "", "meta_description": "", "meta_publisher": "", "group": "",
            "policy_engine_mode": "any"
        }))
        .expect("application")
    }

    fn record(
        kind: AuthentikKind,
        name: &str,
        id: &str,
        claimant: &str,
        uid: &str,
    ) -> AuthentikObject {
        let mut record = AuthentikObject::new(
            &record_name(kind, name),
            gitops_crd::ownership::AuthentikObjectSpec {
                kind,
                authentik_name: name.to_owned(),
                authentik_id: Some(id.to_owned()),
                claimed_by: gitops_crd::ownership::ProxyConfigRef {
                    namespace: "apps".into(),
                    name: claimant.into(),
                    uid: uid.into(),
                },
                origin: gitops_crd::ownership::Origin::Created,
            },
        );
        record.metadata.name = Some(record_name(kind, name));
        record
    }

    /// One converged ProxyConfig `web` (provider pk 1, application `apps-web`).
    fn converged() -> World {
        let slug = application_slug(&proxyconfig("web", "u1").spec, "apps", "web");
        World {
            proxyconfigs: vec![proxyconfig("web", "u1")],
            records: vec![
                record(AuthentikKind::Provider, "web", "1", "web", "u1"),
                record(
                    AuthentikKind::Application,
                    &slug,
                    &format!("app-{slug}"),
                    "web",
                    "u1",
                ),
            ],
            providers: vec![provider(1, "web")],
            applications: vec![application(&slug, "web", 1)],
            flows: BTreeMap::from([
                (
                    DEFAULT_AUTHORIZATION_FLOW.to_owned(),
                    Some(AUTHZ.to_owned()),
                ),
                (DEFAULT_INVALIDATION_FLOW.to_owned(), Some(INVAL.to_owned())),
            ]),
            outposts: BTreeMap::from([(
                DEFAULT_OUTPOST.to_owned(),
                Some(
                    serde_json::from_value(json!({
                        "pk": OUTPOST, "name": "authentik Embedded Outpost", "type": "proxy",
                        "providers": [1]
                    }))
                    .expect("outpost"),
                ),
            )]),
            scope: Some("apps".into()),
            defaults: ControllerDefaults::built_in("test".into()),
        }
    }

    #[test]
    fn a_converged_world_has_no_findings() {
        let verification = evaluate(&converged());
        assert_eq!(verification.findings, vec![]);
        assert_eq!(verification.summary.in_sync, 1);
    }

    #[test]
    fn the_controllers_configured_defaults_are_what_a_spec_without_them_gets() {
        // The controller runs with another default outpost and a cookie domain.
        let mut world = converged();
        let outpost = world.outposts.remove(DEFAULT_OUTPOST).expect("outpost");
        world.outposts.insert("lan".into(), outpost);
        world.defaults.outpost = "lan".into();
        world.defaults.cookie_domain = Some("example.com".into());
        world.providers[0].cookie_domain = Some("example.com".into());
        let verification = evaluate(&world);
        assert_eq!(
            verification.findings,
            vec![],
            "in sync with the controller's defaults"
        );

        // Compared with the built-in defaults instead, the same objects look wrong.
        world.defaults = ControllerDefaults::built_in("test".into());
        let findings = evaluate(&world).findings;
        assert!(
            findings
                .iter()
                .any(|f| matches!(f, Finding::Unresolved { .. })),
            "{findings:?}"
        );
    }

    #[test]
    fn drift_names_the_field_with_both_values() {
        let mut world = converged();
        world.providers[0].skip_path_regex = Some("^/health$".into());
        let findings = evaluate(&world).findings;
        let [Finding::DriftedProvider { differences, .. }] = findings.as_slice() else {
            panic!("one drift expected: {findings:?}");
        };
        assert_eq!(differences[0].field, "skip_path_regex");
        assert!(differences[0].have.contains("^/health$"));
        assert!(differences[0].want.contains("^/api/.*$"));
    }

    #[test]
    fn missing_outpost_orphan_and_foreign_are_each_found() {
        let mut world = converged();
        world.providers.clear();
        let findings = evaluate(&world).findings;
        assert!(
            findings
                .iter()
                .any(|f| matches!(f, Finding::MissingProvider { .. })),
            "{findings:?}"
        );

        let mut world = converged();
        world
            .outposts
            .values_mut()
            .flatten()
            .for_each(|o| o.providers = vec![1, 9]);
        world.providers.push(provider(9, "someone-elses"));
        world.records.push(record(
            AuthentikKind::Provider,
            "gone",
            "5",
            "gone",
            "u-dead",
        ));
        world
            .records
            .push(record(AuthentikKind::Provider, "other-ns", "6", "x", "u-x"));
        world
            .records
            .last_mut()
            .expect("record")
            .spec
            .claimed_by
            .namespace = "other".into();
        let verification = evaluate(&world);
        assert_eq!(
            verification.summary.orphaned, 1,
            "{:?}",
            verification.findings
        );
        assert_eq!(
            verification.summary.foreign, 1,
            "{:?}",
            verification.findings
        );
        assert!(
            verification
                .findings
                .iter()
                .any(|f| matches!(f, Finding::ForeignProvider { pk: 9, .. }))
        );

        let mut world = converged();
        world
            .outposts
            .values_mut()
            .flatten()
            .for_each(|o| o.providers.clear());
        assert_eq!(evaluate(&world).summary.not_in_outpost, 1);
    }

    #[test]
    fn disabled_and_invalid_specs_are_skipped_with_a_reason() {
        let mut world = converged();
        world.proxyconfigs[0].spec.authentik_config.enabled = false;
        let verification = evaluate(&world);
        assert_eq!(verification.skipped.len(), 1);
        assert!(verification.skipped[0].reason.contains("enabled is false"));
    }
}

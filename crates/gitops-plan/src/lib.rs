//! What authentik should hold for a ProxyConfig, and what differs from what it holds: pure
//! functions shared by the service-discovery controller (to converge) and the CLI (to verify).
//!
//! Fields authentik rewrites by itself (`property_mappings`, `redirect_uris`) are never
//! compared, so a converged object never churns.

pub mod exposure;
pub mod forward_auth;
pub mod ownership;

use std::collections::BTreeSet;

use gitops_authentik::{
    Application, ApplicationPatch, ApplicationRequest, PolicyBinding, PolicyEngineMode,
    ProxyMode as WireMode, ProxyProvider, ProxyProviderPatch, ProxyProviderRequest,
};
use gitops_crd::validate::{CheckedSpec, derive_application_slug};
use gitops_crd::{ProxyConfigSpec, ProxyMode};

/// Settings from the controller's configuration that a spec may leave out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Defaults {
    /// Cookie domain for providers whose spec sets none.
    pub cookie_domain: Option<String>,
}

/// Flow UUIDs resolved from the spec's slugs (or the configured defaults).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flows {
    pub authorization: String,
    pub invalidation: String,
}

/// The proxy provider a spec asks for.
pub fn desired_provider(
    spec: &ProxyConfigSpec,
    checked: &CheckedSpec,
    flows: &Flows,
    defaults: &Defaults,
) -> ProxyProviderRequest {
    let config = &spec.authentik_config;
    let mut request = ProxyProviderRequest::new(
        config.provider_name.clone(),
        flows.authorization.clone(),
        flows.invalidation.clone(),
        checked.external_url.clone(),
    );
    request.internal_host = checked.internal.url.clone();
    request.internal_host_ssl_validation = config.internal_host_ssl_validation;
    request.skip_path_regex = config.skip_path_regex.clone();
    request.basic_auth_enabled = config.basic_auth_enabled;
    request.basic_auth_user_attribute =
        config.basic_auth_user_attribute.clone().unwrap_or_default();
    request.basic_auth_password_attribute = config
        .basic_auth_password_attribute
        .clone()
        .unwrap_or_default();
    request.mode = wire_mode(config.mode);
    request.intercept_header_auth = config.intercept_header_auth.unwrap_or(true);
    request.cookie_domain = config
        .cookie_domain
        .clone()
        .or_else(|| defaults.cookie_domain.clone())
        .unwrap_or_default();
    request.access_token_validity = config.access_token_validity.clone();
    request
}

fn wire_mode(mode: ProxyMode) -> WireMode {
    match mode {
        ProxyMode::ForwardSingle => WireMode::ForwardSingle,
        ProxyMode::ForwardDomain => WireMode::ForwardDomain,
        ProxyMode::Proxy => WireMode::Proxy,
    }
}

/// One field whose value in authentik differs from the spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldDiff {
    pub field: &'static str,
    pub want: String,
    pub have: String,
}

impl std::fmt::Display for FieldDiff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {:?} → {:?}", self.field, self.have, self.want)
    }
}

/// Compares one field and, when it differs, records it and sets it on the patch.
fn compare<T: PartialEq + std::fmt::Debug + Clone>(
    diffs: &mut Vec<FieldDiff>,
    field: &'static str,
    want: &T,
    have: &T,
    mut set: impl FnMut(T),
) {
    if want != have {
        diffs.push(FieldDiff {
            field,
            want: format!("{want:?}"),
            have: format!("{have:?}"),
        });
        set(want.clone());
    }
}

/// The changes that make `observed` match `desired`: a PATCH carrying exactly the differing
/// fields (plus `mode`, which authentik needs on every PATCH), or `None` when they match.
/// Missing response fields count as authentik's model defaults, so older servers that omit a
/// field do not cause an update every resync.
pub fn provider_changes(
    desired: &ProxyProviderRequest,
    observed: &ProxyProvider,
) -> Option<(ProxyProviderPatch, Vec<FieldDiff>)> {
    let mut patch = ProxyProviderPatch::new(desired.mode);
    let mut diffs = Vec::new();
    let have_mode = observed.mode.unwrap_or(WireMode::Proxy);
    compare(&mut diffs, "mode", &desired.mode, &have_mode, |_| {});
    compare(&mut diffs, "name", &desired.name, &observed.name, |v| {
        patch.name = Some(v)
    });
    compare(
        &mut diffs,
        "authorization_flow",
        &desired.authorization_flow,
        &observed.authorization_flow,
        |v| patch.authorization_flow = Some(v),
    );
    compare(
        &mut diffs,
        "invalidation_flow",
        &Some(desired.invalidation_flow.clone()),
        &observed.invalidation_flow,
        |v| patch.invalidation_flow = v,
    );
    compare(
        &mut diffs,
        "external_host",
        &desired.external_host,
        &observed.external_host.trim_end_matches('/').to_owned(),
        |v| patch.external_host = Some(v),
    );
    compare(
        &mut diffs,
        "internal_host",
        &desired.internal_host,
        &observed.internal_host.clone().unwrap_or_default(),
        |v| patch.internal_host = Some(v),
    );
    compare(
        &mut diffs,
        "internal_host_ssl_validation",
        &desired.internal_host_ssl_validation,
        &observed.internal_host_ssl_validation.unwrap_or(true),
        |v| patch.internal_host_ssl_validation = Some(v),
    );
    compare(
        &mut diffs,
        "skip_path_regex",
        &normalize_lines(&desired.skip_path_regex),
        &normalize_lines(observed.skip_path_regex.as_deref().unwrap_or_default()),
        |_| patch.skip_path_regex = Some(desired.skip_path_regex.clone()),
    );
    compare(
        &mut diffs,
        "basic_auth_enabled",
        &desired.basic_auth_enabled,
        &observed.basic_auth_enabled.unwrap_or(false),
        |v| patch.basic_auth_enabled = Some(v),
    );
    compare(
        &mut diffs,
        "basic_auth_user_attribute",
        &desired.basic_auth_user_attribute,
        &observed
            .basic_auth_user_attribute
            .clone()
            .unwrap_or_default(),
        |v| patch.basic_auth_user_attribute = Some(v),
    );
    compare(
        &mut diffs,
        "basic_auth_password_attribute",
        &desired.basic_auth_password_attribute,
        &observed
            .basic_auth_password_attribute
            .clone()
            .unwrap_or_default(),
        |v| patch.basic_auth_password_attribute = Some(v),
    );
    compare(
        &mut diffs,
        "intercept_header_auth",
        &desired.intercept_header_auth,
        &observed.intercept_header_auth.unwrap_or(true),
        |v| patch.intercept_header_auth = Some(v),
    );
    compare(
        &mut diffs,
        "cookie_domain",
        &desired.cookie_domain,
        &observed.cookie_domain.clone().unwrap_or_default(),
        |v| patch.cookie_domain = Some(v),
    );
    if desired.access_token_validity.is_some() {
        compare(
            &mut diffs,
            "access_token_validity",
            &desired.access_token_validity,
            &observed.access_token_validity,
            |v| patch.access_token_validity = v,
        );
    }
    if diffs.is_empty() {
        return None;
    }
    // authentik validates the payload alone: a proxy-mode PATCH must carry internal_host,
    // and enabling basic auth must carry both attributes.
    if desired.mode == WireMode::Proxy {
        patch.internal_host = Some(desired.internal_host.clone());
    }
    if desired.basic_auth_enabled {
        patch.basic_auth_enabled = Some(true);
        patch.basic_auth_user_attribute = Some(desired.basic_auth_user_attribute.clone());
        patch.basic_auth_password_attribute = Some(desired.basic_auth_password_attribute.clone());
    }
    Some((patch, diffs))
}

/// Line endings and trailing blank lines are not a difference users care about.
fn normalize_lines(text: &str) -> String {
    text.lines()
        .map(|line| line.trim_end_matches('\r'))
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end()
        .to_owned()
}

/// The application slug of a ProxyConfig: the spec's, or one derived from namespace and name.
pub fn application_slug(spec: &ProxyConfigSpec, namespace: &str, name: &str) -> String {
    spec.authentik_config
        .application_slug
        .clone()
        .unwrap_or_else(|| derive_application_slug(namespace, name))
}

/// The application a spec asks for, bound to `provider_pk`.
pub fn desired_application(
    spec: &ProxyConfigSpec,
    slug: String,
    provider_pk: i64,
) -> ApplicationRequest {
    let config = &spec.authentik_config;
    let annotation = |key: &str| {
        spec.annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .cloned()
            .unwrap_or_default()
    };
    ApplicationRequest {
        name: config
            .application_name
            .clone()
            .unwrap_or_else(|| config.provider_name.clone()),
        slug,
        provider: Some(provider_pk),
        meta_launch_url: config.launch_url.clone().unwrap_or_default(),
        meta_description: annotation("description"),
        meta_publisher: annotation("publisher"),
        group: config.group.clone().unwrap_or_default(),
        open_in_new_tab: false,
        policy_engine_mode: PolicyEngineMode::Any,
    }
}

/// The changes that make `observed` match `desired`, or `None`. `open_in_new_tab` is left to
/// people: the spec has no field for it.
pub fn application_changes(
    desired: &ApplicationRequest,
    observed: &Application,
) -> Option<(ApplicationPatch, Vec<FieldDiff>)> {
    let mut patch = ApplicationPatch::default();
    let mut diffs = Vec::new();
    compare(&mut diffs, "name", &desired.name, &observed.name, |v| {
        patch.name = Some(v)
    });
    compare(
        &mut diffs,
        "provider",
        &desired.provider,
        &observed.provider,
        |v| patch.provider = Some(v),
    );
    compare(
        &mut diffs,
        "meta_launch_url",
        &desired.meta_launch_url,
        &observed.meta_launch_url.clone().unwrap_or_default(),
        |v| patch.meta_launch_url = Some(v),
    );
    compare(
        &mut diffs,
        "meta_description",
        &desired.meta_description,
        &observed.meta_description.clone().unwrap_or_default(),
        |v| patch.meta_description = Some(v),
    );
    compare(
        &mut diffs,
        "meta_publisher",
        &desired.meta_publisher,
        &observed.meta_publisher.clone().unwrap_or_default(),
        |v| patch.meta_publisher = Some(v),
    );
    compare(
        &mut diffs,
        "group",
        &desired.group,
        &observed.group.clone().unwrap_or_default(),
        |v| patch.group = Some(v),
    );
    compare(
        &mut diffs,
        "policy_engine_mode",
        &desired.policy_engine_mode,
        &observed.policy_engine_mode.unwrap_or_default(),
        |v| patch.policy_engine_mode = Some(v),
    );
    (!diffs.is_empty()).then_some((patch, diffs))
}

/// Group bindings to add and remove so that exactly `wanted_groups` (group UUIDs) are bound.
/// Bindings of policies or users are people's business and stay; duplicates of a wanted group
/// are removed so that each group is bound once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BindingChanges {
    /// Group UUIDs to bind, with the order to give each.
    pub create: Vec<(String, i64)>,
    /// Binding UUIDs to delete.
    pub delete: Vec<String>,
}

impl BindingChanges {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.delete.is_empty()
    }
}

pub fn binding_changes(wanted_groups: &[String], existing: &[PolicyBinding]) -> BindingChanges {
    let wanted: BTreeSet<&str> = wanted_groups.iter().map(String::as_str).collect();
    let mut bound: BTreeSet<&str> = BTreeSet::new();
    let mut changes = BindingChanges::default();
    for binding in existing {
        let Some(group) = binding.group.as_deref() else {
            continue;
        };
        if wanted.contains(group) && bound.insert(group) {
            continue;
        }
        changes.delete.push(binding.pk.clone());
    }
    let mut order = existing.iter().map(|b| b.order).max().map_or(0, |o| o + 1);
    for group in wanted_groups {
        if bound.insert(group.as_str()) {
            changes.create.push((group.clone(), order));
            order += 1;
        }
    }
    changes
}

#[cfg(test)]
mod tests;

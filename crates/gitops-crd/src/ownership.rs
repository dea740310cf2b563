//! `AuthentikObject` (`authentikobjects.gitops.io/v1`, cluster-scoped): the durable, Kubernetes-side
//! proof that this product created (or was told to adopt) a proxy provider, and the application
//! bound to it.
//!
//! authentik providers carry no metadata we could mark, so ownership lives here. The
//! service-discovery controller creates the record *before* it asks authentik to create the
//! provider (an intent that survives a lost response or a crash), fills in the provider's id and
//! the application's slug and UUID once both creates are confirmed, and deletes the record after
//! deleting the objects. An application needs no intent of its own: authentik binds a provider to
//! at most one application, so the application bound to our provider is ours even before the
//! record names it. The record is not owned by the ProxyConfig, so it outlives one whose
//! finalizer was bypassed; the cleanup controller then finds it unclaimed and, after a grace
//! period, deletes the objects it names. See `docs/design/ownership.md`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One authentik proxy provider this product is responsible for, and the application bound to it
/// (records of earlier builds may name an application alone).
// Each printcolumn(...) repeats `type_ = "string"`, which clippy takes for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[kube(
    group = "gitops.io",
    version = "v1",
    kind = "AuthentikObject",
    plural = "authentikobjects",
    singular = "authentikobject",
    shortname = "ako",
    category = "gitops",
    status = "AuthentikObjectStatus",
    derive = "PartialEq",
    doc = "Record that gitops-lifecycle-management created (or adopted) one authentik proxy provider and the application bound to it. Managed by the controllers; deleting it hands them back to people.",
    printcolumn(name = "Kind", type_ = "string", json_path = ".spec.kind"),
    printcolumn(
        name = "authentik Name",
        type_ = "string",
        json_path = ".spec.authentikName"
    ),
    printcolumn(name = "ID", type_ = "string", json_path = ".spec.authentikId"),
    printcolumn(
        name = "Claimed By",
        type_ = "string",
        json_path = ".spec.claimedBy.name"
    ),
    printcolumn(
        name = "Orphaned Since",
        type_ = "date",
        json_path = ".status.orphanedSince"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AuthentikObjectSpec {
    pub kind: AuthentikKind,
    /// authentik's unique key: the provider name or the application slug.
    pub authentik_name: String,
    /// Provider pk or application UUID; absent while the create is not yet confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentik_id: Option<String>,
    /// The ProxyConfig this object serves.
    pub claimed_by: ProxyConfigRef,
    /// How the product came to own it.
    pub origin: Origin,
    /// In a provider record: the application bound to the provider, once its create (or
    /// adoption) is confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<BoundApplication>,
}

/// The application a provider record also owns.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BoundApplication {
    /// The application's slug: authentik's unique key for it.
    pub slug: String,
    /// The application's UUID.
    pub id: String,
    /// How the product came to own it.
    pub origin: Origin,
}

/// Written by the cleanup controller only.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthentikObjectStatus {
    /// When the cleanup controller first found no ProxyConfig claiming this object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orphaned_since: Option<Time>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub enum AuthentikKind {
    /// A proxy provider, and (in `application`) the application bound to it.
    Provider,
    /// An application on its own: written only by earlier builds, which kept one record per
    /// authentik object. The service-discovery controller folds each into its provider's record.
    Application,
}

impl AuthentikKind {
    fn prefix(self) -> &'static str {
        match self {
            AuthentikKind::Provider => "provider",
            AuthentikKind::Application => "application",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum Origin {
    /// Created by the service-discovery controller.
    Created,
    /// Pre-existing, taken over because the ProxyConfig carried `gitops.io/adopt: "true"`.
    Adopted,
}

/// Identifies one ProxyConfig incarnation: a re-created ProxyConfig of the same name has a new uid.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub struct ProxyConfigRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl ProxyConfigRef {
    /// The reference a record holds to claim an object for `proxyconfig`.
    pub fn of(proxyconfig: &crate::ProxyConfig) -> Self {
        use kube::ResourceExt;
        Self {
            namespace: proxyconfig.namespace().unwrap_or_default(),
            name: proxyconfig.name_any(),
            uid: proxyconfig.uid().unwrap_or_default(),
        }
    }
}

/// The record's Kubernetes name, derived from authentik's unique key so that exactly one record
/// can exist per authentik object: creating it doubles as a lock. Readable prefix, then a hash
/// of the exact name (authentik names are case-insensitive-unique, so the hash uses lowercase).
pub fn record_name(kind: AuthentikKind, authentik_name: &str) -> String {
    let lowered = authentik_name.to_lowercase();
    let digest = Sha256::digest(lowered.as_bytes());
    let hash: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    let readable: String = lowered
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    let readable = readable.trim_matches('-');
    if readable.is_empty() {
        format!("{}-{hash}", kind.prefix())
    } else {
        format!("{}-{readable}-{hash}", kind.prefix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_dns_subdomain(name: &str) -> bool {
        name.len() <= 253
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.ends_with(|c: char| c.is_ascii_alphanumeric())
    }

    #[test]
    fn record_names_are_valid_stable_and_case_insensitive() {
        let a = record_name(AuthentikKind::Provider, "grafana-proxy");
        assert!(a.starts_with("provider-grafana-proxy-"), "{a}");
        assert_eq!(a, record_name(AuthentikKind::Provider, "Grafana-Proxy"));
        assert_ne!(a, record_name(AuthentikKind::Application, "grafana-proxy"));
        assert_ne!(a, record_name(AuthentikKind::Provider, "grafana_proxy"));
        for name in [
            "grafana-proxy",
            "Ünïcode name!",
            "---",
            &"x".repeat(300),
            " ",
        ] {
            let record = record_name(AuthentikKind::Application, name);
            assert!(is_dns_subdomain(&record), "{name:?} gave {record}");
        }
    }
}

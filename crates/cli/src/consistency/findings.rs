//! What `verify` reports: findings, skipped ProxyConfigs and their counts.

use gitops_plan::FieldDiff;
use serde::Serialize;

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
    /// The provider or application of that name is not this ProxyConfig's (created by someone
    /// else, replaced, or claimed by another ProxyConfig): the controller leaves it alone and
    /// reports the ProxyConfig `Failed`, so nothing here is drift to fix.
    Conflict {
        proxy_config: String,
        reason: String,
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
            Finding::Conflict { .. } => "conflict",
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
            Finding::Conflict {
                proxy_config,
                reason,
            }
            | Finding::Unresolved {
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
    pub conflicts: usize,
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

//! Finding flows, outposts and groups the way a ProxyConfig names them (a slug, name or UUID),
//! with "not found" as a value. The controller and `kubectl gitops verify` both resolve
//! through these, so they cannot disagree on what a name means.

use crate::client::AuthentikClient;
use crate::error::Error;
use crate::models::{FlowDesignation, Outpost};

/// Which outpost a ProxyConfig's providers are assigned to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OutpostSelector {
    /// authentik's embedded outpost, however it is named.
    Embedded,
    /// An outpost name (exact) or UUID.
    Named(String),
}

impl OutpostSelector {
    /// The word that selects the embedded outpost (any case).
    pub const EMBEDDED: &str = "embedded";

    pub fn parse(value: &str) -> Self {
        if value.eq_ignore_ascii_case(Self::EMBEDDED) {
            OutpostSelector::Embedded
        } else {
            OutpostSelector::Named(value.to_owned())
        }
    }
}

impl std::fmt::Display for OutpostSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutpostSelector::Embedded => f.write_str(Self::EMBEDDED),
            OutpostSelector::Named(name) => f.write_str(name),
        }
    }
}

/// `Ok(None)` for a 404, so "not found" is a value and not an error.
pub fn not_found_as_none<T>(result: Result<T, Error>) -> Result<Option<T>, Error> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error),
    }
}

/// Whether a reference is a UUID rather than a slug or name: authentik's canonical 8-4-4-4-12
/// hex form, in either case. Other spellings (braces, `urn:uuid:`, 32 bare digits) are taken as
/// slugs and names, since authentik returns and matches UUIDs only in the canonical form.
pub fn looks_like_uuid(value: &str) -> bool {
    value.len() == 36
        && value.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

impl AuthentikClient {
    /// The UUID of the flow a slug or UUID names (`None`: no such flow). With `fallback`, a
    /// flow that is not found is replaced by the first flow of that designation by slug (for a
    /// configured default that was renamed or deleted), so every run picks the same one.
    pub async fn resolve_flow(
        &self,
        key: &str,
        fallback: Option<FlowDesignation>,
    ) -> Result<Option<String>, Error> {
        let found = if looks_like_uuid(key) {
            self.find_flow_by_uuid(key).await?
        } else {
            not_found_as_none(self.get_flow(key).await)?
        };
        match (found, fallback) {
            (Some(flow), _) => Ok(Some(flow.pk)),
            (None, None) => Ok(None),
            (None, Some(designation)) => Ok(self
                .list_flows_by_designation(designation)
                .await?
                .into_iter()
                .next()
                .map(|f| f.pk)),
        }
    }

    /// The outpost a selector names (`None`: no such outpost).
    pub async fn resolve_outpost(
        &self,
        selector: &OutpostSelector,
    ) -> Result<Option<Outpost>, Error> {
        match selector {
            OutpostSelector::Embedded => self.find_embedded_outpost().await,
            OutpostSelector::Named(key) if looks_like_uuid(key) => {
                not_found_as_none(self.get_outpost(key).await)
            }
            OutpostSelector::Named(name) => self.find_outpost_by_name(name).await,
        }
    }

    /// The UUID of the group with exactly this name (`None`: no such group).
    pub async fn resolve_group(&self, name: &str) -> Result<Option<String>, Error> {
        Ok(self.find_group_by_name(name).await?.map(|g| g.pk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_canonical_uuid_form_is_a_uuid() {
        // The controller and the CLI once disagreed here: the CLI took every spelling the
        // `uuid` crate parses as a UUID, the controller only the canonical one.
        assert!(looks_like_uuid("4a8f6ea7-1c4f-4a8e-9a33-2f1d1f0f6a11"));
        assert!(looks_like_uuid("4A8F6EA7-1C4F-4A8E-9A33-2F1D1F0F6A11"));
        for slug in [
            "default-provider-invalidation-flow",
            "4a8f6ea7x1c4f-4a8e-9a33-2f1d1f0f6a11",
            "4a8f6ea71c4f4a8e9a332f1d1f0f6a11",
            "{4a8f6ea7-1c4f-4a8e-9a33-2f1d1f0f6a11}",
            "urn:uuid:4a8f6ea7-1c4f-4a8e-9a33-2f1d1f0f6a11",
            "",
        ] {
            assert!(!looks_like_uuid(slug), "{slug}");
        }
    }

    #[test]
    fn embedded_is_a_word_in_any_case() {
        assert_eq!(
            OutpostSelector::parse("Embedded"),
            OutpostSelector::Embedded
        );
        assert_eq!(
            OutpostSelector::parse("lan"),
            OutpostSelector::Named("lan".into())
        );
        assert_eq!(OutpostSelector::Embedded.to_string(), "embedded");
    }
}

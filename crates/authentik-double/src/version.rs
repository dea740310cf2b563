//! The authentik release the double imitates, and that release's contract as derived from its
//! official client package (`contract/versions/<minor>.json`, written by
//! `contract/derive_version_facts.py`; see `docs/authentik-versions.md`).
//!
//! The handlers render the newest release's shapes; for an older release the response is
//! conformed to that release's models (fields it did not have are dropped, required fields it
//! had and the newest does not are filled with the type's empty value, `redirect_uris` becomes
//! the newline-joined string of 2024.10), and request fields the release did not know are
//! ignored, as DRF ignores unknown input.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The committed facts, oldest first. `tests/version_facts.rs` checks the list against the
/// directory.
const FACT_FILES: [&str; 11] = [
    include_str!("../contract/versions/2024.10.json"),
    include_str!("../contract/versions/2024.12.json"),
    include_str!("../contract/versions/2025.2.json"),
    include_str!("../contract/versions/2025.4.json"),
    include_str!("../contract/versions/2025.6.json"),
    include_str!("../contract/versions/2025.8.json"),
    include_str!("../contract/versions/2025.10.json"),
    include_str!("../contract/versions/2025.12.json"),
    include_str!("../contract/versions/2026.2.json"),
    include_str!("../contract/versions/2026.5.json"),
    include_str!("../contract/versions/2026.8.json"),
];

/// One release's facts (the parts the double uses).
#[derive(Debug, Deserialize)]
struct Facts {
    minor: String,
    package_version: String,
    schema_version: String,
    endpoints: BTreeMap<String, Endpoint>,
    models: BTreeMap<String, ModelShape>,
}

#[derive(Debug, Deserialize)]
struct Endpoint {
    responses: BTreeMap<String, Option<String>>,
}

/// Fields of a model, each with its type (`str`, `list[RedirectURI]`, `Provider | null`, …).
#[derive(Debug, Deserialize)]
struct ModelShape {
    required: BTreeMap<String, String>,
    optional: BTreeMap<String, String>,
}

impl ModelShape {
    fn field(&self, name: &str) -> Option<&str> {
        self.required
            .get(name)
            .or_else(|| self.optional.get(name))
            .map(String::as_str)
    }
}

static FACTS: LazyLock<Vec<Facts>> = LazyLock::new(|| {
    FACT_FILES
        .iter()
        .map(|text| serde_json::from_str(text).expect("committed version facts parse"))
        .collect()
});

/// Which authentik release the double imitates: one of the supported minors (2024.10 …
/// 2026.8). The default is the newest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion(usize);

impl ApiVersion {
    /// Every supported release, oldest first.
    pub fn all() -> impl Iterator<Item = ApiVersion> {
        (0..FACT_FILES.len()).map(ApiVersion)
    }

    /// The oldest supported release (2024.10).
    pub fn oldest() -> Self {
        ApiVersion(0)
    }

    /// The newest supported release.
    pub fn newest() -> Self {
        ApiVersion(FACT_FILES.len() - 1)
    }

    fn facts(self) -> &'static Facts {
        &FACTS[self.0]
    }

    /// The minor release, e.g. `2024.10`.
    pub fn minor(self) -> &'static str {
        &self.facts().minor
    }

    /// `version_current` reported by `/admin/version/` (the schema version of the release's
    /// client package, e.g. `2025.12.6`).
    pub fn version_string(self) -> &'static str {
        &self.facts().schema_version
    }

    /// The release's official `authentik-client` package version the facts come from.
    pub fn client_package_version(self) -> &'static str {
        &self.facts().package_version
    }

    /// Whether paginated list envelopes carry `autocomplete` (2025.8+).
    pub fn has_autocomplete(self) -> bool {
        self.facts()
            .models
            .get("PaginatedProxyProviderList")
            .is_some_and(|m| m.field("autocomplete").is_some())
    }

    /// Whether `field` is part of `model` (a request model such as `ProxyProviderRequest`) in
    /// this release. Models the facts do not cover accept everything.
    pub(crate) fn accepts(self, model: &str, field: &str) -> bool {
        self.facts()
            .models
            .get(model)
            .is_none_or(|m| m.field(field).is_some())
    }

    /// `body` without the fields `model` does not have in this release (DRF ignores them).
    pub(crate) fn known_fields(self, model: &str, body: &Value) -> Value {
        match body {
            Value::Object(map) if self.facts().models.contains_key(model) => Value::Object(
                map.iter()
                    .filter(|(k, _)| self.accepts(model, k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// The success response model of `method` on the route `template` (path parameters in
    /// braces, without `/api/v3`), if the facts cover that endpoint.
    pub(crate) fn response_model(self, method: &str, template: &str) -> Option<&'static str> {
        let mut path = String::with_capacity(template.len());
        let mut in_param = false;
        for c in template.chars() {
            match c {
                '{' => {
                    in_param = true;
                    path.push_str("{}");
                }
                '}' => in_param = false,
                c if !in_param => path.push(c),
                _ => {}
            }
        }
        let endpoint = self.facts().endpoints.get(&format!("{method} {path}"))?;
        endpoint
            .responses
            .iter()
            .find(|(code, _)| code.starts_with('2'))
            .and_then(|(_, model)| model.as_deref())
    }

    /// `value` (rendered in the newest release's shape) as this release answers it.
    pub(crate) fn conform(self, model: &str, value: Value) -> Value {
        if self == Self::newest() {
            return value;
        }
        conform_type(&self.facts().models, model, value)
    }
}

/// Conform `value` to the type `typ` (a model name, `list[X]`, a scalar, `X | null`).
fn conform_type(models: &BTreeMap<String, ModelShape>, typ: &str, value: Value) -> Value {
    let typ = typ.strip_suffix(" | null").unwrap_or(typ);
    if let Some(item) = typ.strip_prefix("list[").and_then(|t| t.strip_suffix(']')) {
        return match value {
            Value::Array(items) => Value::Array(
                items
                    .into_iter()
                    .map(|v| conform_type(models, item, v))
                    .collect(),
            ),
            other => other,
        };
    }
    match (models.get(typ), value) {
        (Some(shape), Value::Object(mut map)) => {
            let mut out = Map::new();
            for (field, ftype) in shape.required.iter().chain(&shape.optional) {
                match map.remove(field) {
                    Some(v) => {
                        out.insert(field.clone(), conform_type(models, ftype, v));
                    }
                    None if shape.required.contains_key(field) => {
                        out.insert(field.clone(), empty_value(ftype));
                    }
                    None => {}
                }
            }
            Value::Object(out)
        }
        // 2024.10: `redirect_uris` was one string, a URI per line.
        (None, Value::Array(items)) if typ == "str" => Value::String(
            items
                .iter()
                .filter_map(|i| i.get("url").and_then(Value::as_str).map(str::to_owned))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        (_, other) => other,
    }
}

/// The value an older release had for a required field the newest one dropped.
fn empty_value(typ: &str) -> Value {
    if typ.ends_with(" | null") {
        return Value::Null;
    }
    match typ {
        "str" => Value::String(String::new()),
        "bool" => Value::Bool(false),
        "int" | "number" => Value::from(0),
        "object" | "any" => Value::Object(Map::new()),
        t if t.starts_with("list[") => Value::Array(Vec::new()),
        _ => Value::Null,
    }
}

impl Default for ApiVersion {
    fn default() -> Self {
        Self::newest()
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.minor())
    }
}

impl fmt::Debug for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiVersion({})", self.minor())
    }
}

impl std::str::FromStr for ApiVersion {
    type Err = String;

    /// `2024.10` or a full version such as `2024.10.5` (its minor is used).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.trim().split('.');
        let minor = match (parts.next(), parts.next()) {
            (Some(y), Some(m)) => format!("{y}.{m}"),
            _ => String::new(),
        };
        Self::all().find(|v| v.minor() == minor).ok_or_else(|| {
            let supported: Vec<_> = Self::all().map(ApiVersion::minor).collect();
            format!(
                "unsupported authentik version {s:?} (supported: {})",
                supported.join(", ")
            )
        })
    }
}

impl Serialize for ApiVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.minor())
    }
}

impl<'de> Deserialize<'de> for ApiVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_parse_by_minor_and_reject_others() {
        assert_eq!("2024.10".parse::<ApiVersion>(), Ok(ApiVersion::oldest()));
        assert_eq!("2024.10.5".parse::<ApiVersion>(), Ok(ApiVersion::oldest()));
        assert_eq!(ApiVersion::default(), ApiVersion::newest());
        let err = "2023.8".parse::<ApiVersion>().expect_err("unsupported");
        assert!(err.contains("2024.10") && err.contains("2026.8"), "{err}");
        assert!("garbage".parse::<ApiVersion>().is_err());
    }

    #[test]
    fn autocomplete_arrives_in_2025_8() {
        let with: Vec<_> = ApiVersion::all()
            .filter(|v| v.has_autocomplete())
            .map(ApiVersion::minor)
            .collect();
        assert_eq!(with.first(), Some(&"2025.8"));
        assert!(!ApiVersion::oldest().has_autocomplete());
    }

    #[test]
    fn response_model_by_route_template() {
        let v = ApiVersion::newest();
        assert_eq!(
            v.response_model("GET", "/providers/proxy/{id}/"),
            Some("ProxyProvider")
        );
        assert_eq!(
            v.response_model("POST", "/providers/proxy/"),
            Some("ProxyProvider")
        );
        assert_eq!(
            v.response_model("GET", "/outposts/instances/"),
            Some("PaginatedOutpostList")
        );
        assert_eq!(v.response_model("DELETE", "/providers/proxy/{id}/"), None);
        assert_eq!(v.response_model("GET", "/root/config/"), None);
    }

    #[test]
    fn conform_drops_new_fields_fills_old_ones_and_joins_redirect_uris() {
        let old = ApiVersion::oldest();
        let provider = json!({
            "pk": 1, "name": "p", "redirect_uris": [
                {"matching_mode": "strict", "url": "https://a/cb"},
                {"matching_mode": "strict", "url": "https://a"}],
            "jwt_federation_sources": [], "not_a_field": 1,
        });
        let out = old.conform("ProxyProvider", provider);
        assert_eq!(out["redirect_uris"], json!("https://a/cb\nhttps://a"));
        assert!(out.get("jwt_federation_sources").is_none());
        assert!(out.get("not_a_field").is_none());
        // Required in 2024.10 and missing from the rendering: filled with the empty value.
        assert_eq!(out["outpost_set"], json!([]));
        let newest = ApiVersion::newest();
        assert_eq!(
            newest.conform("ProxyProvider", json!({"x": 1})),
            json!({"x": 1})
        );
    }

    #[test]
    fn request_fields_a_release_lacks_are_dropped() {
        let body = json!({"name": "a", "slug": "a", "meta_hide": true, "meta_icon": "x"});
        let v2024 = ApiVersion::oldest().known_fields("ApplicationRequest", &body);
        assert_eq!(v2024, json!({"name": "a", "slug": "a"}));
        let newest = ApiVersion::newest().known_fields("ApplicationRequest", &body);
        assert_eq!(newest, body);
    }
}

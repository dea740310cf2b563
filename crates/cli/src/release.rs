//! The Helm release as `helm` stores it (Helm v3): Secrets `sh.helm.release.v1.<name>.v<N>`
//! labelled `owner=helm,name=<name>`, whose `release` key holds base64(gzip(JSON)).

use std::io::Read;

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use serde::Serialize;
use serde_json::Value;

use crate::error::{describe_kube, is_status};

/// The latest revision of a release.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmRelease {
    pub name: String,
    pub revision: i64,
    /// `deployed`, `failed`, `pending-upgrade`, …
    pub status: String,
    /// `<chart>-<version>`.
    pub chart: String,
    /// The user-supplied values (what `helm get values` prints).
    #[serde(skip)]
    pub values: Value,
}

/// What looking for the release found.
#[derive(Debug, Clone)]
pub enum Lookup {
    Found(HelmRelease),
    NotFound,
    /// Not permitted, or not decodable: reported, never fatal.
    Unreadable(String),
}

pub async fn latest(client: &kube::Client, namespace: &str, name: &str) -> Lookup {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let params = ListParams::default().labels(&format!("owner=helm,name={name}"));
    let list = match secrets.list(&params).await {
        Ok(list) => list.items,
        Err(error) if is_status(&error, 403) => {
            return Lookup::Unreadable(format!(
                "not permitted to read Helm's release Secrets in {namespace} ({})",
                describe_kube(&error)
            ));
        }
        Err(error) => return Lookup::Unreadable(describe_kube(&error)),
    };
    let revision = |secret: &Secret| {
        secret
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("version"))
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let Some(secret) = list.iter().max_by_key(|s| revision(s)) else {
        return Lookup::NotFound;
    };
    let stored = secret
        .data
        .as_ref()
        .and_then(|d| d.get("release"))
        .map(|b| b.0.as_slice())
        .unwrap_or_default();
    match decode(stored) {
        Ok(document) => Lookup::Found(from_document(name, revision(secret), &document)),
        Err(reason) => Lookup::Unreadable(format!("release Secret of {name}: {reason}")),
    }
}

/// The release document from the Secret's `release` value (base64 text, gzip-compressed JSON;
/// Helm also accepts it uncompressed).
pub fn decode(stored: &[u8]) -> Result<Value, String> {
    let compressed = base64::engine::general_purpose::STANDARD
        .decode(stored.trim_ascii())
        .map_err(|error| format!("not base64: {error}"))?;
    let mut json = Vec::new();
    if compressed.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(compressed.as_slice())
            .read_to_end(&mut json)
            .map_err(|error| format!("not gzip: {error}"))?;
    } else {
        json = compressed;
    }
    serde_json::from_slice(&json).map_err(|error| format!("not a Helm release: {error}"))
}

fn from_document(name: &str, revision: i64, document: &Value) -> HelmRelease {
    let text = |pointer: &str| {
        document
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    HelmRelease {
        name: name.to_owned(),
        revision,
        status: text("/info/status"),
        chart: format!(
            "{}-{}",
            text("/chart/metadata/name"),
            text("/chart/metadata/version")
        ),
        values: document.get("config").cloned().unwrap_or(Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// What Helm writes into the Secret's `release` key.
    fn encode(document: &Value) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(document.to_string().as_bytes()).expect("gzip");
        let compressed = gz.finish().expect("gzip");
        base64::engine::general_purpose::STANDARD
            .encode(compressed)
            .into_bytes()
    }

    #[test]
    fn decodes_what_helm_stores() {
        let document = serde_json::json!({
            "name": "gitops-lifecycle-management",
            "info": {"status": "deployed"},
            "chart": {"metadata": {"name": "gitops-lifecycle-management", "version": "0.1.0"}},
            "config": {"serviceDiscovery": {"replicas": 2}}
        });
        let decoded = decode(&encode(&document)).expect("decodes");
        let release = from_document("gitops-lifecycle-management", 3, &decoded);
        assert_eq!(release.status, "deployed");
        assert_eq!(release.chart, "gitops-lifecycle-management-0.1.0");
        assert_eq!(release.values["serviceDiscovery"]["replicas"], 2);
        assert!(decode(b"%%%").expect_err("garbage").contains("base64"));
    }
}

//! API-server requests, counted by the kube-apiserver itself (`apiserver_request_total` on its
//! `/metrics`): kube-rs has no request counter, and this also sees what the controllers' watches
//! and the garbage collector do. Counts are diffed around a measurement and narrowed to the
//! resources the product touches, then the bench's own requests are subtracted.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use kube::Client;
use serde::Serialize;

/// Resources whose requests are attributed to the controllers under test (leases are left out:
/// leader election is off, and the API server renews its own identity lease).
const RESOURCES: &[&str] = &[
    "proxyconfigs",
    "authentikobjects",
    "services",
    "events",
    "jobs",
    "pods",
];

/// Verbs that change state.
const WRITE_VERBS: &[&str] = &[
    "POST",
    "PUT",
    "PATCH",
    "APPLY",
    "DELETE",
    "DELETECOLLECTION",
];

/// Request counts keyed `"VERB resource[/subresource]"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Requests(pub BTreeMap<String, u64>);

impl Requests {
    pub async fn scrape(client: &Client) -> Result<Self> {
        let request = http::Request::get("/metrics")
            .body(Vec::new())
            .context("building the /metrics request")?;
        let text = client
            .request_text(request)
            .await
            .context("reading the kube-apiserver's /metrics")?;
        Ok(Self::parse(&text))
    }

    fn parse(text: &str) -> Self {
        let mut counts = BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once("} ") else {
                continue;
            };
            let label = |name: &str| -> &str {
                labels
                    .split(',')
                    .find_map(|pair| pair.strip_prefix(name)?.strip_prefix("=\""))
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or_default()
            };
            let resource = label("resource");
            if !RESOURCES.contains(&resource) {
                continue;
            }
            let subresource = label("subresource");
            let key = if subresource.is_empty() {
                format!("{} {resource}", label("verb"))
            } else {
                format!("{} {resource}/{subresource}", label("verb"))
            };
            // Counters print as integers or floats; sum the status codes of one key.
            let value = value.trim().parse::<f64>().unwrap_or(0.0) as u64;
            *counts.entry(key).or_insert(0) += value;
        }
        Self(counts)
    }

    /// `self - earlier - own`, dropping zeroes: what others (the controllers) did in between.
    pub fn since(&self, earlier: &Requests, own: &Requests) -> Requests {
        let mut diff = BTreeMap::new();
        for (key, after) in &self.0 {
            let before = earlier.0.get(key).copied().unwrap_or(0);
            let mine = own.0.get(key).copied().unwrap_or(0);
            let theirs = after.saturating_sub(before).saturating_sub(mine);
            if theirs > 0 {
                diff.insert(key.clone(), theirs);
            }
        }
        Requests(diff)
    }

    /// Records a request the bench itself made, to be subtracted.
    pub fn add(&mut self, key: &str, count: u64) {
        *self.0.entry(key.to_owned()).or_insert(0) += count;
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    pub fn writes(&self) -> u64 {
        self.0
            .iter()
            .filter(|(key, _)| {
                key.split_once(' ')
                    .is_some_and(|(verb, _)| WRITE_VERBS.contains(&verb))
            })
            .map(|(_, count)| count)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_filters_and_diffs() {
        let before = Requests::parse(concat!(
            "# HELP apiserver_request_total x\n",
            "apiserver_request_total{code=\"201\",component=\"apiserver\",dry_run=\"\",group=\"gitops.io\",resource=\"proxyconfigs\",scope=\"resource\",subresource=\"\",verb=\"POST\",version=\"v1\"} 5\n",
            "apiserver_request_total{code=\"200\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"nodes\",scope=\"cluster\",subresource=\"\",verb=\"LIST\",version=\"v1\"} 9\n",
        ));
        assert_eq!(before.total(), 5, "nodes are not ours");
        let after = Requests::parse(concat!(
            "apiserver_request_total{code=\"201\",group=\"gitops.io\",resource=\"proxyconfigs\",subresource=\"\",verb=\"POST\"} 15\n",
            "apiserver_request_total{code=\"200\",group=\"gitops.io\",resource=\"proxyconfigs\",subresource=\"status\",verb=\"APPLY\"} 10\n",
            "apiserver_request_total{code=\"409\",group=\"gitops.io\",resource=\"proxyconfigs\",subresource=\"status\",verb=\"APPLY\"} 2\n",
            "apiserver_request_total{code=\"200\",group=\"gitops.io\",resource=\"proxyconfigs\",subresource=\"\",verb=\"WATCH\"} 1\n",
        ));
        let mut own = Requests::default();
        own.add("POST proxyconfigs", 10);
        let theirs = after.since(&before, &own);
        assert_eq!(
            theirs.0,
            BTreeMap::from([
                ("APPLY proxyconfigs/status".to_owned(), 12),
                ("WATCH proxyconfigs".to_owned(), 1),
            ])
        );
        assert_eq!(theirs.writes(), 12);
        assert_eq!(theirs.total(), 13);
    }
}

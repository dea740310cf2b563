//! The controllers' logs: error lines counted (daily check) and grouped into patterns (weekly
//! review), as the runbook's `kubectl logs … | grep -i error` did.

use std::collections::BTreeMap;
use std::time::Duration;

use gitops_crd::names::labels;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, LogParams};
use serde::Serialize;
use serde_json::Value;

use crate::error::describe_kube;

/// The `app.kubernetes.io/component` values of the two controllers' Pods.
const COMPONENTS: [&str; 2] = ["service-discovery-controller", "cleanup-controller"];
/// The controllers' container name (SPEC §6).
const CONTAINER: &str = "controller";

/// Log lines of every controller Pod that could be read, and why others could not.
#[derive(Debug, Default)]
pub struct ControllerLogs {
    pub pods: usize,
    pub error_lines: Vec<String>,
    /// Pods (or the Pod list) whose logs could not be read, with the reason.
    pub unreadable: Vec<String>,
}

impl ControllerLogs {
    /// Whether at least one Pod's logs were read, so the count means something.
    pub fn readable(&self) -> bool {
        self.pods > self.unreadable.len()
    }
}

pub async fn read(client: &kube::Client, namespace: &str, since: Duration) -> ControllerLogs {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = format!("{} in ({})", labels::COMPONENT, COMPONENTS.join(","));
    let mut logs = ControllerLogs::default();
    let list = match pods.list(&ListParams::default().labels(&selector)).await {
        Ok(list) => list.items,
        Err(error) => {
            logs.unreadable.push(format!(
                "listing controller Pods: {}",
                describe_kube(&error)
            ));
            return logs;
        }
    };
    logs.pods = list.len();
    let params = LogParams {
        container: Some(CONTAINER.to_owned()),
        since_seconds: Some(i64::try_from(since.as_secs()).unwrap_or(i64::MAX).max(1)),
        ..LogParams::default()
    };
    for pod in list {
        match pods.logs(&pod.name_any(), &params).await {
            Ok(text) => logs
                .error_lines
                .extend(text.lines().filter(|l| is_error_line(l)).map(str::to_owned)),
            Err(error) => {
                logs.unreadable
                    .push(format!("{}: {}", pod.name_any(), describe_kube(&error)))
            }
        }
    }
    logs
}

/// JSON logs count by level; other lines when they contain "error" in any case (the runbook's
/// `grep -i error`).
pub fn is_error_line(line: &str) -> bool {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(record)) if record.contains_key("level") => record["level"]
            .as_str()
            .is_some_and(|level| level.eq_ignore_ascii_case("error")),
        _ => line.to_ascii_lowercase().contains("error"),
    }
}

/// An error line without what varies between occurrences (time stamps, numbers, ids), so
/// repeats of one problem group together.
pub fn pattern(line: &str) -> String {
    let text = match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(record)) => {
            let field = |key: &str| {
                record
                    .get("fields")
                    .and_then(|f| f.get(key))
                    .or_else(|| record.get(key))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let (message, error) = (field("message"), field("error"));
            if error.is_empty() {
                message
            } else {
                format!("{message}: {error}")
            }
        }
        // Text logs start with a time stamp.
        _ => match line.split_once(' ') {
            Some((first, rest)) if first.starts_with(|c: char| c.is_ascii_digit()) => {
                rest.to_owned()
            }
            _ => line.to_owned(),
        },
    };
    let mut out = String::new();
    let mut in_number = false;
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('N');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

/// One recurring error and how often it occurred.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pattern {
    pub count: usize,
    pub pattern: String,
}

/// The `limit` most frequent patterns, most frequent first (ties by text).
pub fn top_patterns(lines: &[String], limit: usize) -> Vec<Pattern> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for line in lines {
        *counts.entry(pattern(line)).or_default() += 1;
    }
    let mut patterns: Vec<Pattern> = counts
        .into_iter()
        .map(|(pattern, count)| Pattern { count, pattern })
        .collect();
    patterns.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.pattern.cmp(&b.pattern))
    });
    patterns.truncate(limit);
    patterns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_by_level_in_json_and_by_word_in_text() {
        assert!(is_error_line(
            r#"{"level":"ERROR","fields":{"message":"boom"}}"#
        ));
        assert!(!is_error_line(
            r#"{"level":"INFO","fields":{"message":"0 errors"}}"#
        ));
        assert!(is_error_line(
            "2025-01-01T00:00:00Z WARN reconcile Error: timeout"
        ));
        assert!(!is_error_line("2025-01-01T00:00:00Z INFO all good"));
    }

    #[test]
    fn repeats_of_one_problem_group_together() {
        let lines = vec![
            r#"{"level":"ERROR","fields":{"message":"authentik request failed","error":"timeout after 15s"}}"#.to_owned(),
            r#"{"level":"ERROR","fields":{"message":"authentik request failed","error":"timeout after 30s"}}"#.to_owned(),
            "2025-01-01T00:00:01Z ERROR reconcile failed for pc-7".to_owned(),
        ];
        let top = top_patterns(&lines, 10);
        assert_eq!(
            top[0],
            Pattern {
                count: 2,
                pattern: "authentik request failed: timeout after Ns".into()
            }
        );
        assert_eq!(top[1].pattern, "ERROR reconcile failed for pc-N");
        assert_eq!(top_patterns(&lines, 1).len(), 1);
    }
}

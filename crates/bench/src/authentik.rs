//! What the authentik double saw: requests by kind, outpost writes, time spent answering.

use std::collections::BTreeMap;

use authentik_double::RequestRecord;

/// `"METHOD template"` → count, e.g. `"POST /api/v3/providers/proxy/"`.
pub fn by_kind(records: &[RequestRecord]) -> BTreeMap<String, usize> {
    let mut kinds = BTreeMap::new();
    for record in records {
        *kinds
            .entry(format!("{} {}", record.method, record.template))
            .or_insert(0) += 1;
    }
    kinds
}

/// Writes of outpost provider lists (PATCH/PUT of an outpost instance).
pub fn outpost_writes(records: &[RequestRecord]) -> usize {
    records
        .iter()
        .filter(|r| {
            matches!(r.method.as_str(), "PATCH" | "PUT")
                && r.template.starts_with("/api/v3/outposts/instances/")
        })
        .count()
}

/// Writes of any kind.
pub fn writes(records: &[RequestRecord]) -> usize {
    records
        .iter()
        .filter(|r| matches!(r.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE"))
        .count()
}

/// Sum of the time the double spent on each request (modelled latency included), seconds.
pub fn total_seconds(records: &[RequestRecord]) -> f64 {
    records.iter().map(|r| ms(r.duration_ms)).sum()
}

/// Wall-clock time during which at least one request was in flight, seconds: the authentik
/// round trips a reconcile could not avoid, counting overlapping requests once.
pub fn busy_seconds(records: &[RequestRecord]) -> f64 {
    let mut spans: Vec<(u64, u64)> = records
        .iter()
        .map(|r| (r.started_ms, r.started_ms + r.duration_ms))
        .collect();
    spans.sort_unstable();
    let mut busy = 0;
    let mut current: Option<(u64, u64)> = None;
    for (start, end) in spans {
        current = match current {
            Some((s, e)) if start <= e => Some((s, e.max(end))),
            Some((s, e)) => {
                busy += e - s;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    if let Some((s, e)) = current {
        busy += e - s;
    }
    ms(busy)
}

fn ms(value: u64) -> f64 {
    value as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use authentik_double::Outcome;

    fn record(method: &str, template: &str, started_ms: u64, duration_ms: u64) -> RequestRecord {
        RequestRecord {
            seq: 0,
            method: method.into(),
            path: template.into(),
            template: template.into(),
            query: None,
            ignored_query: Vec::new(),
            status: Some(200),
            outcome: Outcome::Responded,
            started_ms,
            duration_ms,
        }
    }

    #[test]
    fn busy_time_counts_overlaps_once() {
        let records = [
            record("GET", "/a/", 0, 100),
            record("GET", "/a/", 50, 100),
            record("PATCH", "/api/v3/outposts/instances/{uuid}/", 300, 200),
        ];
        assert!((busy_seconds(&records) - 0.35).abs() < 1e-9);
        assert!((total_seconds(&records) - 0.4).abs() < 1e-9);
        assert_eq!(outpost_writes(&records), 1);
        assert_eq!(writes(&records), 1);
        assert_eq!(by_kind(&records)["GET /a/"], 2);
    }
}

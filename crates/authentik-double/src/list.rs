//! The one list pipeline every collection endpoint shares: declared filters (undeclared query
//! parameters are ignored, as django-filter does), `search`, `ordering`, then page-number
//! pagination in authentik's envelope.
//!
//! Items are the rendered response objects. Filters that need data the response does not
//! carry read "hidden" keys starting with `_`, which are stripped before answering.

use std::cmp::Ordering;

use serde_json::{Map, Value, json};

use crate::error::ApiError;

/// Parsed query string; repeated parameters are kept (`?providers_by_pk=1&providers_by_pk=2`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        Query(
            url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub(crate) fn flag(&self, key: &str) -> bool {
        self.get(key).and_then(parse_bool).unwrap_or(false)
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "True" | "1" => Some(true),
        "false" | "False" | "0" => Some(false),
        _ => None,
    }
}

/// How a filter compares the parameter with the item's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Equal (uuids, slugs, numbers rendered as strings).
    Exact,
    /// Equal ignoring case (`__iexact`).
    IExact,
    /// Contains ignoring case (`__icontains`).
    IContains,
    /// `true`: key is null or an empty list (`__isnull`).
    IsNull,
    /// Boolean equality.
    Bool,
    /// Repeated parameter; matches when the key (or any element of it) equals any value.
    AnyOf,
}

/// One declared filter: query parameter, item key, comparison.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Filter(pub &'static str, pub &'static str, pub Op);

/// What a collection supports.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListSpec {
    pub filters: &'static [Filter],
    /// Keys searched case-insensitively by `search`.
    pub search: &'static [&'static str],
    /// Keys accepted by `ordering`; others are ignored as in DRF's `OrderingFilter`.
    pub ordering: &'static [&'static str],
    pub default_ordering: &'static [&'static str],
}

/// Envelope options that do not depend on the collection.
#[derive(Debug, Clone)]
pub(crate) struct ListOpts {
    /// `Some` emits `autocomplete` (2025.8+); `None` omits it (2024.10).
    pub autocomplete: Option<Value>,
    pub max_page_size: usize,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The key's value, or each element when it is a list.
fn texts(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items.iter().filter_map(text).collect(),
        Some(v) => text(v).into_iter().collect(),
        None => Vec::new(),
    }
}

fn filter_matches(item: &Value, Filter(param, key, op): &Filter, query: &Query) -> bool {
    let values = query.all(param);
    let Some(first) = values.first().copied() else {
        return true;
    };
    let field = item.get(*key);
    match op {
        Op::Exact => texts(field).iter().any(|t| t == first),
        Op::IExact => texts(field)
            .iter()
            .any(|t| t.to_lowercase() == first.to_lowercase()),
        Op::IContains => texts(field)
            .iter()
            .any(|t| t.to_lowercase().contains(&first.to_lowercase())),
        Op::IsNull => parse_bool(first).is_none_or(|want| {
            let is_null = matches!(field, None | Some(Value::Null))
                || field.and_then(Value::as_array).is_some_and(Vec::is_empty);
            is_null == want
        }),
        Op::Bool => {
            parse_bool(first).is_none_or(|want| field.and_then(Value::as_bool) == Some(want))
        }
        Op::AnyOf => {
            let have = texts(field);
            values.iter().any(|v| have.iter().any(|h| h == v))
        }
    }
}

fn search_matches(item: &Value, keys: &[&str], term: &str) -> bool {
    let term = term.to_lowercase();
    keys.iter().any(|k| {
        texts(item.get(*k))
            .iter()
            .any(|t| t.to_lowercase().contains(&term))
    })
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        // Nulls sort last, as PostgreSQL orders them ascending.
        (None | Some(Value::Null), None | Some(Value::Null)) => Ordering::Equal,
        (None | Some(Value::Null), _) => Ordering::Greater,
        (_, None | Some(Value::Null)) => Ordering::Less,
        _ => Ordering::Equal,
    }
}

fn sort(items: &mut [Value], query: &Query, spec: &ListSpec) {
    let requested: Vec<(&str, bool)> = query
        .get("ordering")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter_map(|f| {
            let (name, desc) = f.strip_prefix('-').map_or((f, false), |n| (n, true));
            spec.ordering.contains(&name).then_some((name, desc))
        })
        .collect();
    let keys: Vec<(&str, bool)> = if requested.is_empty() {
        spec.default_ordering.iter().map(|k| (*k, false)).collect()
    } else {
        requested
    };
    items.sort_by(|a, b| {
        keys.iter()
            .map(|(k, desc)| {
                let o = compare(a.get(*k), b.get(*k));
                if *desc { o.reverse() } else { o }
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    });
}

fn strip_hidden(item: Value) -> Value {
    match item {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| !k.starts_with('_'))
                .collect::<Map<_, _>>(),
        ),
        other => other,
    }
}

/// Parameters a view reads itself besides its declared filters (DRF pagination, search and
/// ordering; authentik's application list flags).
const VIEW_PARAMETERS: &[&str] = &[
    "page",
    "page_size",
    "search",
    "ordering",
    "superuser_full_list",
    "for_user",
    "only_with_launch_url",
];

/// Query parameters `spec` does not declare: django-filter ignores them, so the request
/// meant a filter the server never applied. Recorded in the request log for tests.
pub(crate) fn ignored_parameters(query: &Query, spec: &ListSpec) -> Vec<String> {
    let mut ignored: Vec<String> = query
        .0
        .iter()
        .map(|(name, _)| name)
        .filter(|name| {
            !VIEW_PARAMETERS.contains(&name.as_str())
                && !spec.filters.iter().any(|Filter(param, ..)| param == name)
        })
        .cloned()
        .collect();
    ignored.dedup();
    ignored
}

fn positive(raw: Option<&str>) -> Option<usize> {
    raw.and_then(|s| s.parse::<usize>().ok()).filter(|n| *n > 0)
}

/// Filter, search, order and paginate `items` into authentik's envelope.
pub(crate) fn paginate(
    items: Vec<Value>,
    query: &Query,
    spec: &ListSpec,
    opts: &ListOpts,
) -> Result<Value, ApiError> {
    let mut items: Vec<Value> = items
        .into_iter()
        .filter(|item| spec.filters.iter().all(|f| filter_matches(item, f, query)))
        .filter(|item| {
            query
                .get("search")
                .filter(|t| !t.is_empty())
                .is_none_or(|t| search_matches(item, spec.search, t))
        })
        .collect();
    sort(&mut items, query, spec);

    // DRF: an unparsable or non-positive page_size falls back to the default.
    let page_size = positive(query.get("page_size"))
        .unwrap_or(100)
        .min(opts.max_page_size.max(1));
    let count = items.len();
    let total_pages = count.div_ceil(page_size).max(1);
    let current = match query.get("page") {
        None => 1,
        Some(raw) => positive(Some(raw)).ok_or_else(ApiError::invalid_page)?,
    };
    if current > total_pages {
        return Err(ApiError::invalid_page());
    }
    let start = (current - 1) * page_size;
    let results: Vec<Value> = items
        .into_iter()
        .skip(start)
        .take(page_size)
        .map(strip_hidden)
        .collect();
    let (start_index, end_index) = if results.is_empty() {
        (0, 0)
    } else {
        (start + 1, start + results.len())
    };
    let mut envelope = json!({
        "pagination": {
            "next": if current < total_pages { current + 1 } else { 0 },
            "previous": current.saturating_sub(1),
            "count": count,
            "current": current,
            "total_pages": total_pages,
            "start_index": start_index,
            "end_index": end_index,
        },
        "results": results,
    });
    if let (Some(ac), Some(obj)) = (&opts.autocomplete, envelope.as_object_mut()) {
        obj.insert("autocomplete".to_owned(), ac.clone());
    }
    Ok(envelope)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: ListSpec = ListSpec {
        filters: &[
            Filter("name__iexact", "name", Op::IExact),
            Filter("ids", "_ids", Op::AnyOf),
            Filter("gone__isnull", "_gone", Op::IsNull),
        ],
        search: &["name"],
        ordering: &["name", "pk"],
        default_ordering: &["name"],
    };

    fn opts() -> ListOpts {
        ListOpts {
            autocomplete: Some(json!({})),
            max_page_size: 100,
        }
    }

    fn items(n: usize) -> Vec<Value> {
        (0..n)
            .map(|i| json!({"pk": i, "name": format!("item-{i:03}"), "_ids": [i, i + 100], "_gone": null}))
            .collect()
    }

    fn q(s: &str) -> Query {
        Query::parse(Some(s))
    }

    #[test]
    fn envelope_for_middle_page_and_hidden_keys_stripped() {
        let page = paginate(items(230), &q("page=2"), &SPEC, &opts()).expect("page");
        assert_eq!(
            page["pagination"],
            json!({"next": 3, "previous": 1, "count": 230, "current": 2, "total_pages": 3, "start_index": 101, "end_index": 200})
        );
        assert!(page["results"][0].get("_ids").is_none());
        assert_eq!(page["autocomplete"], json!({}));
    }

    #[test]
    fn empty_list_and_page_past_end() {
        let page = paginate(vec![], &q(""), &SPEC, &opts()).expect("page");
        assert_eq!(
            page["pagination"],
            json!({"next": 0, "previous": 0, "count": 0, "current": 1, "total_pages": 1, "start_index": 0, "end_index": 0})
        );
        assert_eq!(
            paginate(items(3), &q("page=2"), &SPEC, &opts()),
            Err(ApiError::invalid_page())
        );
        assert_eq!(
            paginate(items(3), &q("page=abc"), &SPEC, &opts()),
            Err(ApiError::invalid_page())
        );
    }

    #[test]
    fn unknown_params_are_ignored_and_filters_apply() {
        assert_eq!(
            paginate(items(5), &q("name=item-001"), &SPEC, &opts()).expect("p")["pagination"]["count"],
            5
        );
        assert_eq!(
            paginate(items(5), &q("name__iexact=ITEM-001"), &SPEC, &opts()).expect("p")["pagination"]
                ["count"],
            1
        );
        assert_eq!(
            paginate(items(5), &q("ids=101&ids=3"), &SPEC, &opts()).expect("p")["pagination"]["count"],
            2
        );
        assert_eq!(
            paginate(items(5), &q("gone__isnull=false"), &SPEC, &opts()).expect("p")["pagination"]
                ["count"],
            0
        );
        assert_eq!(
            paginate(items(15), &q("search=M-01"), &SPEC, &opts()).expect("p")["pagination"]["count"],
            5
        );
    }

    #[test]
    fn undeclared_parameters_are_named() {
        assert_eq!(
            ignored_parameters(
                &q("name=x&name__iexact=x&page=2&ids=1&ids=2&bogus=1"),
                &SPEC
            ),
            vec!["name", "bogus"]
        );
    }

    #[test]
    fn ordering_descending_and_unknown_field_falls_back() {
        let page = paginate(items(3), &q("ordering=-pk"), &SPEC, &opts()).expect("p");
        assert_eq!(page["results"][0]["pk"], 2);
        let page = paginate(items(3), &q("ordering=bogus"), &SPEC, &opts()).expect("p");
        assert_eq!(page["results"][0]["pk"], 0);
    }

    #[test]
    fn page_size_is_capped_and_autocomplete_optional() {
        let o = ListOpts {
            autocomplete: None,
            max_page_size: 10,
        };
        let page = paginate(items(25), &q("page_size=1000"), &SPEC, &o).expect("p");
        assert_eq!(page["pagination"]["total_pages"], 3);
        assert!(page.get("autocomplete").is_none());
    }
}

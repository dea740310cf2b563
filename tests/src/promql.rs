//! Metric names in a PromQL expression (enough PromQL for alert rules and dashboards: selectors,
//! functions, aggregations with by/without, binary operators with on/ignoring/group_*, ranges,
//! offsets, numbers, strings).

use std::collections::BTreeSet;

/// Keywords followed by a parenthesised label list.
const LABEL_CLAUSES: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Words that are PromQL syntax, never metric names (besides [`LABEL_CLAUSES`]).
const KEYWORDS: &[&str] = &[
    "bool", "and", "or", "unless", "offset", "inf", "nan", "atan2",
];

/// The metric names `expr` selects.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let cleaned = strip_clauses(&strip_delimited(&strip_strings(expr)));
    let chars: Vec<char> = cleaned.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            // A number or a duration (5m, 1.5e3, 0x1f): skip it whole.
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c == '$' {
            // A dashboard variable ($__rate_interval).
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            let is_call = next == Some(&'(');
            let lower = word.to_ascii_lowercase();
            let keyword =
                KEYWORDS.contains(&lower.as_str()) || LABEL_CLAUSES.contains(&lower.as_str());
            if !is_call && !keyword {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Replaces string literals with `""`.
fn strip_strings(expr: &str) -> String {
    let mut out = String::new();
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        if c == '"' || c == '\'' || c == '`' {
            let quote = c;
            while let Some(inner) = chars.next() {
                if inner == '\\' && quote != '`' {
                    chars.next();
                } else if inner == quote {
                    break;
                }
            }
            out.push_str("\"\"");
        } else {
            out.push(c);
        }
    }
    out
}

/// Removes label matchers `{…}` and ranges / subqueries `[…]`.
fn strip_delimited(expr: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for c in expr.chars() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Removes `by (…)`, `without (…)`, `on (…)`, `ignoring (…)`, `group_left (…)`,
/// `group_right (…)`: label lists, not metrics.
fn strip_clauses(expr: &str) -> String {
    let mut out = expr.to_owned();
    for keyword in LABEL_CLAUSES {
        while let Some(start) = find_clause(&out, keyword) {
            let open = start + out[start..].find('(').expect("clause has a parenthesis");
            let close = open + out[open..].find(')').unwrap_or(out.len() - open - 1);
            out.replace_range(start..=close, " ");
        }
    }
    out
}

/// Position of `keyword` as a whole word followed by `(`.
fn find_clause(expr: &str, keyword: &str) -> Option<usize> {
    let bytes = expr.as_bytes();
    let mut from = 0;
    while let Some(offset) = expr[from..].find(keyword) {
        let start = from + offset;
        let end = start + keyword.len();
        let before_ok =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let after = expr[end..].trim_start();
        let after_ok = after.starts_with('(')
            && !(bytes
                .get(end)
                .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_'));
        if before_ok && after_ok {
            return Some(start);
        }
        from = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::metric_names;

    fn names(expr: &str) -> Vec<String> {
        metric_names(expr).into_iter().collect()
    }

    #[test]
    fn finds_metrics_and_nothing_else() {
        assert_eq!(
            names(
                r#"sum by (job, le) (rate(a_bucket{job="x", le!="y"}[5m])) / on (job) group_left(team) b offset 1h > 0.5"#
            ),
            ["a_bucket", "b"]
        );
        assert_eq!(names(r#"absent(up{job="x"} == 1)"#), ["up"]);
        assert_eq!(
            names("time() - max by (job) (last_run) > 10800 and bool ignoring(x) c"),
            ["c", "last_run"]
        );
        assert_eq!(
            names(r#"histogram_quantile(0.95, sum(rate(d_bucket[$__rate_interval])) by (le))"#),
            ["d_bucket"]
        );
        assert_eq!(names("e or f * 0 unless g"), ["e", "f", "g"]);
        assert_eq!(
            names(r#"label_replace(h, "dst", "$1", "src", "(.*)")"#),
            ["h"]
        );
    }
}

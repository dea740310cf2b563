//! The metric names the controllers export, read from their sources: every `"gitops_…"` string
//! literal in `crates/*/src/**/*.rs` (the metric-name constants and any literal passed to a
//! `metrics` macro), plus the series a histogram renders as.
//!
//! `gitops_runtime` configures buckets for every metric ending in `duration_seconds`: those
//! render as Prometheus histograms (`_bucket`, `_sum`, `_count`); other histograms render as
//! summaries (`name{quantile}`, `_sum`, `_count`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Crates that are test support, not controllers.
const NOT_CONTROLLERS: &[&str] = &["testenv", "authentik-double"];

/// Every series name the controllers can export.
pub fn exported_metrics(root: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let crates = std::fs::read_dir(root.join("crates")).expect("crates/");
    for entry in crates.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if NOT_CONTROLLERS.contains(&name.as_str()) {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&entry.path().join("src"), &mut files);
        let texts: Vec<String> = files
            .iter()
            .map(|f| std::fs::read_to_string(f).expect("source file"))
            .collect();
        let mut constants = BTreeMap::new();
        let mut literals = BTreeSet::new();
        for text in &texts {
            for (ident, value) in constants_in(text) {
                constants.insert(ident, value);
            }
            literals.extend(gitops_literals(text));
        }
        let histograms: BTreeSet<String> = texts
            .iter()
            .flat_map(|t| histogram_arguments(t))
            .filter_map(|argument| {
                if let Some(literal) = argument.strip_prefix('"') {
                    Some(literal.trim_end_matches('"').to_owned())
                } else {
                    let ident = argument.rsplit("::").next().unwrap_or(&argument).to_owned();
                    constants.get(&ident).cloned()
                }
            })
            .collect();
        for literal in literals {
            if histograms.contains(&literal) {
                if literal.ends_with("duration_seconds") {
                    names.insert(format!("{literal}_bucket"));
                } else {
                    names.insert(literal.clone());
                }
                names.insert(format!("{literal}_sum"));
                names.insert(format!("{literal}_count"));
            } else {
                names.insert(literal);
            }
        }
    }
    names
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `const IDENT: &str = "gitops_…";` declarations.
fn constants_in(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let rest = line
                .trim()
                .trim_start_matches("pub ")
                .trim_start_matches("pub(crate) ");
            let rest = rest.strip_prefix("const ")?;
            let (ident, value) = rest.split_once(':')?;
            let value = value.split_once('=')?.1.trim().trim_end_matches(';').trim();
            let value = value.strip_prefix('"')?.strip_suffix('"')?;
            value
                .starts_with("gitops_")
                .then(|| (ident.trim().to_owned(), value.to_owned()))
        })
        .collect()
}

/// String literals that look like metric names.
fn gitops_literals(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.starts_with("gitops_")
                && s.len() > "gitops_".len()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_owned)
        .collect()
}

/// First arguments of `histogram!(…)` macro calls (a path or a string literal).
fn histogram_arguments(text: &str) -> Vec<String> {
    text.match_indices("histogram!(")
        .map(|(at, m)| {
            let rest = text[at + m.len()..].trim_start();
            rest.split([',', ')'])
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_constants_literals_and_histograms() {
        let text = r#"
            pub const A: &str = "gitops_a_duration_seconds";
            pub const B: &str = "gitops_b_total";
            const C: &str = "gitops_c_size";
            fn f() { metrics::histogram!(names::A).record(1.0); metrics::histogram!(
                C).record(2.0); metrics::counter!("gitops_d_total").increment(1); }
        "#;
        assert_eq!(constants_in(text).len(), 3);
        assert_eq!(
            gitops_literals(text),
            [
                "gitops_a_duration_seconds",
                "gitops_b_total",
                "gitops_c_size",
                "gitops_d_total"
            ]
        );
        assert_eq!(histogram_arguments(text), ["names::A", "C"]);
    }
}

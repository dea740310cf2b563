//! The values a chart documents: a `# -- description` comment (helm-docs convention) right
//! above a key documents that key's dotted path; the chart README must list exactly those.

use std::collections::BTreeSet;

use serde_json::Value;

/// Dotted paths of the keys that carry a `# --` comment in `values.yaml`.
pub fn documented_paths(values_yaml: &str) -> BTreeSet<String> {
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut documented = BTreeSet::new();
    let mut pending = false;
    for line in values_yaml.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.starts_with("# --") {
            pending = true;
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('-') {
            continue;
        }
        let Some((key, _)) = trimmed.split_once(':') else {
            continue;
        };
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, key.trim().trim_matches('"').to_owned()));
        if pending {
            documented.insert(
                stack
                    .iter()
                    .map(|(_, k)| k.as_str())
                    .collect::<Vec<_>>()
                    .join("."),
            );
            pending = false;
        }
    }
    documented
}

/// Dotted paths of every leaf value (scalars, lists and empty maps are leaves).
pub fn leaf_paths(values: &Value) -> BTreeSet<String> {
    fn walk(value: &Value, path: &str, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, child) in map {
                    let child_path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    walk(child, &child_path, out);
                }
            }
            _ => {
                out.insert(path.to_owned());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(values, "", &mut out);
    out
}

/// Paths in the first column of the README's `## Values` table: rows like ``| `a.b` | … |``.
pub fn readme_paths(readme: &str) -> BTreeSet<String> {
    readme
        .lines()
        .skip_while(|line| line.trim() != "## Values")
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(path, _)| path.to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_paths_follow_indentation() {
        let text = "# -- top\na: 1\nb:\n  # -- nested\n  # more\n  c: 2\n  d:\n    # -- deep\n    e: []\n# -- f\nf: {}\n";
        let paths: Vec<String> = documented_paths(text).into_iter().collect();
        assert_eq!(paths, ["a", "b.c", "b.d.e", "f"]);
    }
}

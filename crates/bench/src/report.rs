//! Tables for people, JSON for docs and comparisons.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::{Value, json};

/// `GITOPS_BENCH_OUT`, else `<workspace>/target/bench`.
pub fn out_dir() -> PathBuf {
    std::env::var_os("GITOPS_BENCH_OUT").map_or_else(
        || {
            // crates/bench → the workspace root.
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
            manifest
                .ancestors()
                .nth(2)
                .unwrap_or(manifest)
                .join("target/bench")
        },
        PathBuf::from,
    )
}

/// A plain-text table, columns padded to their widest cell.
#[derive(Debug)]
pub struct Table {
    title: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(title: impl Into<String>, header: &[&str]) -> Self {
        Self {
            title: title.into(),
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|c| {
                std::iter::once(&self.header)
                    .chain(&self.rows)
                    .filter_map(|row| row.get(c))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |row: &Vec<String>| {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            format!("| {} |", cells.join(" | "))
        };
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        let mut out = format!(
            "\n{}\n{}\n|-{}-|\n",
            self.title,
            line(&self.header),
            rule.join("-|-")
        );
        for row in &self.rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        out
    }
}

/// Seconds with three decimals, for table cells.
pub fn secs(value: f64) -> String {
    format!("{value:.3}")
}

/// The machine, as docs/benchmarks.md quotes it.
fn machine() -> Value {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_total_kib: Option<u64> = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok());
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned());
    json!({
        "cores": std::thread::available_parallelism().map_or(0, usize::from),
        "memory_gib": mem_total_kib.map(|k| (k as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0),
        "cpu": cpu_model,
        "load_average_at_start": std::fs::read_to_string("/proc/loadavg").ok().map(|s| s.trim().to_owned()),
    })
}

/// Prints the tables and writes `<out>/<scenario>.json` with the command, machine and date.
pub fn publish<T: Serialize>(scenario: &str, tables: &[Table], results: &T) -> Result<PathBuf> {
    for table in tables {
        println!("{}", table.render());
    }
    let document = json!({
        "scenario": scenario,
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "date": k8s_openapi::jiff::Timestamp::now().to_string(),
        "machine": machine(),
        "results": results,
        "tables": tables.iter().map(Table::render).collect::<Vec<_>>(),
    });
    let dir = out_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{scenario}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(&document)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("results: {}", path.display());
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_columns() {
        let mut table = Table::new("t", &["a", "long header"]);
        table.row(vec!["wide cell".into(), "1".into()]);
        let text = table.render();
        assert!(text.contains("| a         | long header |"), "{text}");
        assert!(text.contains("| wide cell | 1           |"), "{text}");
    }
}

//! `kubectl gitops verify`: ProxyConfigs against authentik, read-only.

use crate::args::Global;
use crate::consistency::{self, Verification};
use crate::error::CliError;
use crate::output::{Format, Table, print_json};
use crate::{Outcome, authentik, cluster};

pub async fn run(global: &Global) -> Result<Outcome, CliError> {
    let authentik = authentik::required(global)?;
    let cluster = cluster::connect(global).await?;
    let world =
        consistency::gather(&cluster.client, &authentik, global.namespace.as_deref()).await?;
    let verification = consistency::evaluate(&world);
    match global.output {
        Format::Json => print_json(&verification)?,
        Format::Table => print!("{}", render(&verification)),
    }
    Ok(Outcome::from_problems(!verification.findings.is_empty()))
}

fn render(verification: &Verification) -> String {
    let mut out = String::new();
    let mut findings = Table::new(&["FINDING", "OBJECT", "DETAIL"]);
    for finding in &verification.findings {
        let (object, detail) = finding.describe();
        findings.row(vec![finding.label().to_owned(), object, detail]);
    }
    if !findings.is_empty() {
        out.push_str(&findings.render());
        out.push('\n');
    }
    for skipped in &verification.skipped {
        out.push_str(&format!(
            "skipped {}: {}\n",
            skipped.proxy_config, skipped.reason
        ));
    }
    let s = &verification.summary;
    out.push_str(&format!(
        "{} ProxyConfigs: {} in sync, {} skipped; findings: {} missing, {} drifted, {} not in outpost, {} unresolved, {} orphaned, {} foreign\n",
        s.proxy_configs, s.in_sync, s.skipped, s.missing, s.drifted, s.not_in_outpost, s.unresolved, s.orphaned, s.foreign
    ));
    out
}

//! `kubectl gitops verify`: ProxyConfigs against authentik, read-only.

use crate::args::Global;
use crate::consistency::{self, Verification};
use crate::error::CliError;
use crate::output::{Format, Table, print_json};
use crate::settings::{self, ControllerDefaults};
use crate::{Outcome, authentik, cluster};
use serde::Serialize;

pub async fn run(global: &Global) -> Result<Outcome, CliError> {
    let authentik = authentik::required(global)?;
    let cluster = cluster::connect(global).await?;
    let defaults =
        settings::read(&cluster.client, &global.release_namespace, &global.release).await;
    let observed = consistency::gather(
        &cluster.client,
        &authentik,
        global.namespace.as_deref(),
        defaults,
    )
    .await?;
    let verification = consistency::evaluate(&observed);
    match global.output {
        Format::Json => print_json(&VerifyOutput {
            verification: &verification,
            defaults: &observed.defaults,
        })?,
        Format::Table => print!("{}", render(&verification, &observed.defaults)),
    }
    Ok(Outcome::from_problems(!verification.findings.is_empty()))
}

/// The findings, and the controller defaults they were judged against.
#[derive(Serialize)]
struct VerifyOutput<'a> {
    #[serde(flatten)]
    verification: &'a Verification,
    defaults: &'a ControllerDefaults,
}

fn render(verification: &Verification, defaults: &ControllerDefaults) -> String {
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
        "{} ProxyConfigs: {} in sync, {} skipped; findings: {} missing, {} drifted, {} not in outpost, {} conflict, {} unresolved, {} orphaned, {} foreign\n",
        s.proxy_configs, s.in_sync, s.skipped, s.missing, s.drifted, s.not_in_outpost, s.conflicts, s.unresolved, s.orphaned, s.foreign
    ));
    out.push_str(&format!(
        "defaults (flows {} / {}, outpost {}, cookie domain {}) from {}\n",
        defaults.authorization_flow,
        defaults.invalidation_flow,
        defaults.outpost,
        defaults.cookie_domain.as_deref().unwrap_or("none"),
        defaults.source
    ));
    out
}

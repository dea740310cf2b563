//! `kubectl gitops verify`: ProxyConfigs against authentik, and the routes that serve their
//! hosts without forward auth (as the controller's `Protected` condition found them),
//! read-only.

use crate::args::Global;
use crate::consistency::{self, Verification};
use crate::error::CliError;
use crate::output::{Format, Table, print_json};
use crate::settings::{self, ControllerDefaults};
use crate::{Outcome, authentik, cluster};
use gitops_crd::ProxyConfig;
use kube::ResourceExt;
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
    let exposed = exposed_routes(&observed.proxyconfigs);
    match global.output {
        Format::Json => print_json(&VerifyOutput {
            verification: &verification,
            exposed: &exposed,
            defaults: &observed.defaults,
        })?,
        Format::Table => print!(
            "{}{}",
            render_exposed(&exposed),
            render(&verification, &observed.defaults)
        ),
    }
    Ok(Outcome::from_problems(
        !verification.findings.is_empty() || !exposed.is_empty(),
    ))
}

/// A route serving a ProxyConfig's host without forward auth to the outpost.
#[derive(Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
struct ExposedRoute {
    route: String,
    proxy_config: String,
    host: String,
}

fn exposed_routes(proxyconfigs: &[ProxyConfig]) -> Vec<ExposedRoute> {
    proxyconfigs
        .iter()
        .flat_map(|pc| {
            let routes = pc
                .status
                .as_ref()
                .map(|s| s.exposed_routes.clone())
                .unwrap_or_default();
            routes.into_iter().map(move |route| ExposedRoute {
                route,
                proxy_config: format!("{}/{}", pc.namespace().unwrap_or_default(), pc.name_any()),
                host: pc.spec.external_host.clone(),
            })
        })
        .collect()
}

fn render_exposed(exposed: &[ExposedRoute]) -> String {
    if exposed.is_empty() {
        return String::new();
    }
    let mut table = Table::new(&["EXPOSED ROUTE", "PROXYCONFIG", "HOST"]);
    for e in exposed {
        table.row(vec![
            e.route.clone(),
            e.proxy_config.clone(),
            e.host.clone(),
        ]);
    }
    format!(
        "{}{} route(s) serve a protected host without forward auth to the outpost\n\n",
        table.render(),
        exposed.len()
    )
}

/// The findings, and the controller defaults they were judged against.
#[derive(Serialize)]
struct VerifyOutput<'a> {
    #[serde(flatten)]
    verification: &'a Verification,
    /// Routes serving a ProxyConfig's host without forward auth.
    exposed: &'a [ExposedRoute],
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exposed_routes_come_from_the_status_and_are_listed() {
        let pc = |name: &str, exposed: serde_json::Value| -> ProxyConfig {
            serde_json::from_value(json!({
                "apiVersion": "gitops.io/v1", "kind": "ProxyConfig",
                "metadata": {"name": name, "namespace": "apps"},
                "spec": {
                    "serviceName": name, "serviceNamespace": "apps",
                    "externalHost": format!("{name}.example.com"),
                    "internalHost": format!("http://{name}.apps.svc:80"),
                    "authentikConfig": {"providerName": name},
                },
                "status": {"exposedRoutes": exposed},
            }))
            .expect("ProxyConfig")
        };
        let exposed = exposed_routes(&[
            pc("safe", json!([])),
            pc("web", json!(["Ingress apps/web-direct"])),
        ]);
        assert_eq!(
            exposed,
            vec![ExposedRoute {
                route: "Ingress apps/web-direct".into(),
                proxy_config: "apps/web".into(),
                host: "web.example.com".into(),
            }]
        );
        let table = render_exposed(&exposed);
        assert!(table.contains("Ingress apps/web-direct"), "{table}");
        assert!(table.contains("1 route(s)"), "{table}");
        assert_eq!(render_exposed(&[]), "");
    }
}

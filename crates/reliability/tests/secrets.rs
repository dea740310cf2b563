//! Scenario 7: the authentik token never appears in logs (at any level), Events, status or
//! ownership records — not with the right token, not with a wrong one, not through errors.

use std::time::Duration;

use authentik_double::{DoubleConfig, Fault};
use gitops_crd::Phase;
use gitops_crd::ownership::AuthentikObject;
use gitops_harness::{Harness, eventually, workspace_binary};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use serde_json::json;

const TOKEN: &str = "s3cr3t-TOKEN-7c1e9b44d0";
const WRONG_TOKEN: &str = "wr0ng-TOKEN-aa91f03e6b";

#[tokio::test]
async fn the_token_never_leaks_into_logs_events_status_or_records() {
    let mut h = Harness::with_double(
        "chaos-secrets",
        workspace_binary("gitops-service-discovery"),
        DoubleConfig::default().with_token(TOKEN),
    )
    .await;
    let verbose = [
        "--leader-election",
        "false",
        "--log-filter",
        "trace",
        "--log-format",
        "json",
    ];
    let right = h.start_controller(&verbose);

    // Success, validation errors, rejected writes, rate limits, resets and an outage.
    h.apply(h.proxyconfig("ok")).await;
    let mut invalid = h.proxyconfig("invalid");
    invalid["spec"]["authentikConfig"]["skipPathRegex"] = json!("(");
    h.apply(invalid).await;
    let mut unknown_flow = h.proxyconfig("flowless");
    unknown_flow["spec"]["authentikConfig"]["authorizationFlow"] = json!("no-such-flow");
    h.apply(unknown_flow).await;
    h.wait_phase("ok", Phase::Ready).await;
    h.double().inject(Fault::rate_limit_next(2, 1));
    h.double().inject(Fault::fail_next(2, 500));
    h.double().inject(Fault::reset_next(2));
    h.apply(h.proxyconfig("faulty")).await;
    h.wait_phase("faulty", Phase::Ready).await;
    h.double().set_down(true);
    tokio::time::sleep(Duration::from_secs(3)).await;
    h.double().set_down(false);
    h.kill_controller(right).await;

    // A wrong token: every call is refused, and the refusal is reported.
    let mut wrong = verbose.to_vec();
    wrong.extend(["--authentik-token", WRONG_TOKEN]);
    h.start_controller(&wrong);
    h.apply(h.proxyconfig("refused")).await;
    let refused = h.wait_phase("refused", Phase::Failed).await;
    let ready = refused
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .expect("Ready condition");
    assert_eq!(ready.reason, "AuthentikUnauthorized");
    assert!(
        ready.message.contains("token"),
        "the message says what to check: {}",
        ready.message
    );
    eventually("the refusal to be logged", || async {
        h.logs().contains("AuthentikUnauthorized").then_some(())
    })
    .await
    .expect("logged");

    let logs = h.logs();
    assert!(
        logs.lines().count() > 50,
        "trace logging really ran ({} lines)",
        logs.lines().count()
    );
    let events: Vec<String> = Api::<Event>::namespaced(h.client.clone(), h.namespace())
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .map(|e| serde_json::to_string(&e).expect("json"))
        .collect();
    assert!(!events.is_empty());
    let statuses = serde_json::to_string(
        &h.proxyconfigs()
            .list(&ListParams::default())
            .await
            .expect("list")
            .items,
    )
    .expect("json");
    let records = serde_json::to_string(
        &Api::<AuthentikObject>::all(h.client.clone())
            .list(&ListParams::default())
            .await
            .expect("records")
            .items,
    )
    .expect("json");
    for (place, text) in [
        ("logs", logs.as_str()),
        ("events", &events.join("\n")),
        ("status", &statuses),
        ("records", &records),
    ] {
        for token in [TOKEN, WRONG_TOKEN] {
            assert!(!text.contains(token), "the token leaked into {place}");
        }
    }
}

#[tokio::test]
async fn start_up_errors_do_not_echo_the_token() {
    let output = tokio::process::Command::new(workspace_binary("gitops-service-discovery"))
        .env_clear()
        .args([
            "--authentik-host",
            "http://127.0.0.1:1",
            "--authentik-token",
            TOKEN,
            "--resync-interval",
            "soon",
        ])
        .output()
        .await
        .expect("runs");
    assert!(!output.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("soon"), "the bad value is named: {text}");
    assert!(
        !text.contains(TOKEN),
        "the token leaked into a start-up error: {text}"
    );
    assert!(
        text.lines().filter(|l| !l.trim().is_empty()).count() <= 3,
        "one clear line: {text}"
    );
}

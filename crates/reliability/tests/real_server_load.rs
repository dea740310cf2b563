//! Scenario 9: what a real authentik 2025.12.4 did under load (issue 16, 5). Kept-alive
//! connections expire after 2 s (a request reusing one is answered 405 with an empty body),
//! workers are recycled (their connections reset), outpost PATCHes meet more empty 405s in a
//! row than the client retries, and another client deletes providers that are in the outpost
//! just before the controller writes it (`400 Invalid pk "…" - object does not exist.`).
//! Everything converges, and no ProxyConfig ever goes Failed on the way (26 of 40 did against
//! the real server).

use authentik_double::{Fault, Outcome, ServerBehaviour};
use gitops_harness::{Harness, workspace_binary};
use gitops_reliability::{Expected, Scale, assert_converged, foreign_provider};

const OUTPOST_WRITES: &str = "/api/v3/outposts/";

#[tokio::test]
async fn the_controller_rides_out_what_a_real_server_does_under_load() {
    if gitops_harness::skip_in_contract_mode(
        "imitates a real server's keep-alive expiry and worker recycling",
    ) {
        return;
    }
    let scale = Scale::from_env();
    let mut h = Harness::new(
        "chaos-real-server",
        workspace_binary("gitops-service-discovery"),
    )
    .await;
    h.double()
        .set_server_behaviour(ServerBehaviour::authentik(25));
    // More empty 405s in a row than the client's 4 attempts: a reconcile sees one.
    h.double()
        .inject(Fault::fail_next_empty(6, 405).only("PATCH", OUTPOST_WRITES));
    // Then another client deletes its providers, one before each of the next outpost writes.
    let mut doomed = Vec::new();
    for index in 0..3 {
        let name = format!("doomed-{index}-{}", h.namespace());
        doomed.push(foreign_provider(&h, &name, true).await.pk);
    }
    for pk in &doomed {
        h.double()
            .inject(Fault::delete_providers_first(vec![*pk]).only("PATCH", OUTPOST_WRITES));
    }
    h.start_single();
    for object in 0..scale.objects {
        h.apply(h.proxyconfig(&format!("app-{object}"))).await;
    }
    assert_converged(&h, &Expected::default()).await;

    // The model really did all of it.
    assert!(
        h.double().faults().is_empty(),
        "left: {:?}",
        h.double().faults()
    );
    let stale_rejections = h
        .double()
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.starts_with(OUTPOST_WRITES))
        .filter(|r| r.status == Some(400))
        .count();
    assert_eq!(stale_rejections, doomed.len());
    assert!(h.double().count_outcome(Outcome::WorkerRecycled) > 0);
    // The client drops idle connections before the server does.
    assert_eq!(h.double().count_outcome(Outcome::KeepAliveExpired), 0);
    // And no ProxyConfig ever went Failed on the way (every phase transition is logged).
    let logs = h.logs();
    let failed: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("ProxyConfig failed"))
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

//! Scenario 2: authentik misbehaves — down for a while, 5xx bursts, 429 with Retry-After,
//! connection resets, writes applied but their responses lost, slow responses — during
//! onboarding and during deletion. Everything converges, nothing is duplicated or left behind.

use std::time::Duration;

use authentik_double::Fault;
use gitops_harness::{Harness, workspace_binary};
use gitops_reliability::{Expected, Scale, assert_converged, foreign_provider};

fn inject_mixed_faults(h: &Harness) {
    h.double().inject(Fault::fail_next(6, 503));
    h.double()
        .inject(Fault::fail_next(2, 502).only("PATCH", "/api/v3/outposts/"));
    h.double().inject(Fault::rate_limit_next(3, 1));
    h.double().inject(Fault::reset_next(3));
    h.double()
        .inject(Fault::drop_response_after_write(2).only("POST", "/api/v3/providers/proxy/"));
    h.double()
        .inject(Fault::drop_response_after_write(2).only("POST", "/api/v3/core/applications/"));
    h.double()
        .inject(Fault::drop_response_after_write(1).only("PATCH", "/api/v3/outposts/"));
    h.double()
        .inject(Fault::drop_response_after_write(2).only("DELETE", "/api/v3/"));
    h.double()
        .inject(Fault::latency(Duration::from_millis(150)).only("GET", "/api/v3/outposts/"));
}

#[tokio::test]
async fn onboarding_and_deletion_survive_every_kind_of_authentik_fault() {
    if gitops_harness::skip_in_contract_mode("injects authentik faults") {
        return;
    }
    let scale = Scale::from_env();
    let mut h = Harness::new("chaos-faults", workspace_binary("gitops-service-discovery")).await;
    let foreign = foreign_provider(&h, &format!("foreign-{}", h.namespace()), true).await;
    h.start_single();

    // Onboarding under faults, then a full outage in the middle of it.
    inject_mixed_faults(&h);
    let names: Vec<String> = (0..scale.objects).map(|i| format!("app-{i}")).collect();
    for name in &names[..names.len() / 2] {
        h.apply(h.proxyconfig(name)).await;
    }
    h.double().set_down(true);
    for name in &names[names.len() / 2..] {
        h.apply(h.proxyconfig(name)).await;
    }
    tokio::time::sleep(scale.outage).await;
    h.double().set_down(false);
    assert_converged(
        &h,
        &Expected {
            foreign: vec![foreign.clone()],
            foreign_in_outpost: vec![foreign.pk],
            ..Expected::default()
        },
    )
    .await;

    // Deletion under faults and an outage.
    h.double().clear_faults();
    inject_mixed_faults(&h);
    let doomed = &names[..names.len() / 2];
    for name in doomed {
        h.delete(name).await;
    }
    h.double().set_down(true);
    tokio::time::sleep(scale.outage).await;
    h.double().set_down(false);
    for name in doomed {
        h.wait_gone(name).await;
    }
    assert_converged(
        &h,
        &Expected {
            foreign: vec![foreign.clone()],
            foreign_in_outpost: vec![foreign.pk],
            ..Expected::default()
        },
    )
    .await;
    for name in doomed {
        assert!(
            h.double()
                .provider_by_name(&h.provider_name(name))
                .is_none(),
            "{name} left behind"
        );
    }
}

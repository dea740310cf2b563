//! Scenario 1: the service-discovery controller is killed with SIGKILL at random moments while
//! ProxyConfigs are created, changed and deleted; each time it is restarted. Nothing may be
//! duplicated, lost or left behind.

use std::time::Duration;

use gitops_harness::{Harness, workspace_binary};
use gitops_reliability::{Expected, Scale, assert_converged, foreign_provider};
use rand::RngExt;
use serde_json::json;

#[tokio::test]
async fn sigkill_during_onboarding_updates_and_deletions_loses_nothing() {
    if gitops_harness::skip_in_contract_mode(
        "reads the double's whole state to prove nothing was duplicated or left",
    ) {
        return;
    }
    let scale = Scale::from_env();
    let mut h = Harness::new("chaos-kill9", workspace_binary("gitops-service-discovery")).await;
    let foreign = foreign_provider(&h, &format!("foreign-{}", h.namespace()), true).await;

    let names: Vec<String> = (0..scale.objects).map(|i| format!("svc-{i}")).collect();
    for name in &names {
        h.apply(h.proxyconfig(name)).await;
    }
    let mut deleted = Vec::new();
    let mut rng = rand::rng();
    for kill in 0..scale.kills {
        let controller = h.start_single();
        tokio::time::sleep(Duration::from_millis(rng.random_range(150..1500))).await;
        // Work arrives while the controller may be mid-reconcile.
        match kill % 3 {
            0 => {
                let name = &names[kill % names.len()];
                if !deleted.contains(name) {
                    let mut changed = h.proxyconfig(name);
                    changed["spec"]["authentikConfig"]["skipPathRegex"] =
                        json!(format!("^/v{kill}/.*$"));
                    h.apply(changed).await;
                }
            }
            1 => {
                let name = names[(kill * 7) % names.len()].clone();
                if !deleted.contains(&name) && deleted.len() < names.len() / 3 {
                    h.delete(&name).await;
                    deleted.push(name);
                }
            }
            _ => {
                let name = format!("late-{kill}");
                h.apply(h.proxyconfig(&name)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..400))).await;
        h.kill_controller(controller).await;
    }
    h.start_single();
    for name in &deleted {
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
    eprintln!(
        "kill -9 scenario: {} kills, {} objects, {} deleted",
        scale.kills,
        names.len(),
        deleted.len()
    );
}

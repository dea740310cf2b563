//! Scenario 4: two replicas contend for the Lease; the leader is killed again and again while
//! work arrives. Measures the gap without a leader and shows that no object is written twice.

use std::time::{Duration, Instant};

use gitops_harness::{Harness, eventually, workspace_binary};
use gitops_reliability::{Expected, Scale, assert_converged};

async fn is_leader(h: &Harness, index: usize) -> Option<bool> {
    let port = h.controller(index).metrics_port;
    let text = reqwest_text(port).await?;
    let line = text.lines().find(|l| l.starts_with("gitops_leader "))?;
    Some(line.ends_with(" 1"))
}

async fn reqwest_text(port: u16) -> Option<String> {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()
}

#[tokio::test]
async fn killing_the_leader_repeatedly_hands_over_without_double_writes() {
    if gitops_harness::skip_in_contract_mode("counts the double's requests") {
        return;
    }
    let scale = Scale::from_env();
    let mut h = Harness::new("chaos-leader", workspace_binary("gitops-service-discovery")).await;
    let lease = format!("sd-{}", h.namespace());
    let args = ["--leader-election", "true", "--lease-name", lease.as_str()];
    let mut replicas = [h.start_controller(&args), h.start_controller(&args)];

    let mut created = 0;
    let mut gaps = Vec::new();
    for round in 0..scale.failovers {
        h.apply(h.proxyconfig(&format!("round-{round}"))).await;
        created += 1;
        h.wait_phase(&format!("round-{round}"), gitops_crd::Phase::Ready)
            .await;
        let leader = eventually("a leader", || async {
            for (slot, index) in replicas.iter().enumerate() {
                if is_leader(&h, *index).await == Some(true) {
                    return Some(slot);
                }
            }
            None
        })
        .await
        .expect("one replica leads");
        let standby = replicas[1 - leader];
        h.kill_controller(replicas[leader]).await;
        let killed_at = Instant::now();
        eventually("the standby to take over", || async {
            (is_leader(&h, standby).await == Some(true)).then_some(())
        })
        .await
        .expect("failover");
        gaps.push(killed_at.elapsed());
        replicas[leader] = h.start_controller(&args);
    }
    h.apply(h.proxyconfig("after")).await;
    created += 1;
    assert_converged(&h, &Expected::default()).await;
    assert_eq!(
        h.double().count("POST", "/api/v3/providers/proxy/"),
        created,
        "every provider was created exactly once across all leaders"
    );
    let worst = gaps.iter().max().copied().unwrap_or_default();
    eprintln!(
        "leader failover: {} handovers, gaps {gaps:?}, worst {worst:?}",
        gaps.len()
    );
    assert!(
        worst < Duration::from_secs(30),
        "a standby takes over within the Lease duration"
    );
}

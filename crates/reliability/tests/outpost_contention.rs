//! Scenario 5: another client rewrites the outpost's provider list (read, modify, write the
//! whole list, as authentik's API forces everyone to) while the controller assigns providers.
//! Neither side's providers may be lost for good.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gitops_harness::{Harness, eventually, workspace_binary};
use gitops_reliability::{Expected, Scale, assert_converged, foreign_provider};

#[tokio::test]
async fn concurrent_outpost_rewrites_lose_no_provider() {
    if gitops_harness::skip_in_contract_mode(
        "rewrites the double's outpost behind the controller's back",
    ) {
        return;
    }
    let scale = Scale::from_env();
    let mut h = Harness::new(
        "chaos-outpost",
        workspace_binary("gitops-service-discovery"),
    )
    .await;
    let mut theirs = Vec::new();
    for i in 0..3 {
        theirs.push(foreign_provider(&h, &format!("theirs-{i}-{}", h.namespace()), false).await);
    }
    let their_pks: Vec<i64> = theirs.iter().map(|p| p.pk).collect();

    // The other tool: keeps its providers in the outpost with its own read-modify-write loop,
    // through the API, racing the controller.
    let stop = Arc::new(AtomicBool::new(false));
    let other = {
        let client = h.authentik.client().clone();
        let outpost = h.double().embedded_outpost_uuid().to_string();
        let stop = stop.clone();
        let wanted = their_pks.clone();
        tokio::spawn(async move {
            let mut writes = 0usize;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(current) = client.get_outpost(&outpost).await {
                    let mut list = current.providers.clone();
                    for pk in &wanted {
                        if !list.contains(pk) {
                            list.push(*pk);
                        }
                    }
                    // Stale on purpose: think a little between read and write.
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    if client.set_outpost_providers(&outpost, &list).await.is_ok() {
                        writes += 1;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // Like any reconciling tool, it makes sure of its own providers once more at the end.
            if let Ok(current) = client.get_outpost(&outpost).await {
                let mut list = current.providers.clone();
                list.extend(wanted.iter().filter(|pk| !current.providers.contains(pk)));
                let _ = client.set_outpost_providers(&outpost, &list).await;
            }
            writes
        })
    };

    h.start_single();
    for i in 0..scale.objects {
        h.apply(h.proxyconfig(&format!("ours-{i}"))).await;
    }
    // Let both sides fight through several resyncs.
    tokio::time::sleep(Duration::from_secs(6)).await;
    stop.store(true, Ordering::Relaxed);
    let their_writes = other.await.expect("the other tool ran");
    assert!(
        their_writes > 10,
        "the other tool really raced us ({their_writes} writes)"
    );

    // After the other tool stops, the controller's resync restores anything of ours it dropped.
    let ours = scale.objects;
    eventually("our providers to be back in the outpost", || async {
        let outpost = h.double().embedded_outpost_providers();
        let claimed = h
            .double()
            .providers()
            .into_iter()
            .filter(|p| p.name.starts_with("ours-") && outpost.contains(&p.pk))
            .count();
        (claimed == ours).then_some(())
    })
    .await
    .expect("resync restores our providers");
    assert_converged(
        &h,
        &Expected {
            foreign: theirs.clone(),
            foreign_in_outpost: their_pks,
            ..Expected::default()
        },
    )
    .await;
}

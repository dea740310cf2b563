//! Opt-in Pod cleanup (finished orphan Pods, Pods stuck terminating) and leader election.

mod common;

use std::time::Duration;

use common::{Harness, ago};
use kube::api::DeleteParams;
use serde_json::{Value, json};

const HOUR: i64 = 3600;

#[tokio::test]
async fn finished_pods_without_a_controller_are_deleted_after_their_ttl() {
    let mut h = Harness::new("orphan-pods").await;
    let owner = h
        .create_pod("owner", Value::Null, Value::Null)
        .await
        .metadata
        .uid
        .expect("uid");
    let controlled = json!({"ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "owner", "uid": owner, "controller": true}]});
    // (name, metadata, finished seconds ago, expected deleted)
    let fixtures: Vec<(&str, Value, Option<i64>, bool)> = vec![
        ("finished-old", Value::Null, Some(2 * HOUR), true),
        ("finished-recent", Value::Null, Some(60), false),
        ("controlled", controlled, Some(2 * HOUR), false),
        (
            "opted-out",
            json!({"annotations": {"gitops.io/cleanup": "false"}}),
            Some(2 * HOUR),
            false,
        ),
        ("pending", Value::Null, None, false),
    ];
    for (name, metadata, finished, _) in &fixtures {
        h.create_pod(name, metadata.clone(), Value::Null).await;
        if let Some(seconds) = finished {
            h.finish_pod(name, ago(*seconds)).await;
        }
    }

    let c = h.start(&[
        ("POD_CLEANUP", "true"),
        ("ORPHAN_POD_TTL", "1h"),
        ("CLEANUP_INTERVAL", "1s"),
    ]);
    h.wait_until("the old finished Pod to be deleted", || async {
        (!h.pod_exists("finished-old").await).then_some(())
    })
    .await;
    h.wait_metric(c, "gitops_cleanup_pods_cleaned_total", 1.0)
        .await;
    h.wait_more_sweeps(c, 2).await;
    for (name, .., deleted) in &fixtures {
        assert_eq!(
            !h.pod_exists(name).await,
            *deleted,
            "{name}: deleted = {deleted} expected"
        );
    }
    assert_eq!(
        h.metric(c, "gitops_cleanup_pods_cleaned_total").await,
        Some(1.0)
    );
}

/// A Pod bound to a node that does not exist never finishes terminating: nobody confirms it.
/// (kube-controller-manager's Pod GC would remove it too, but only after a 40 s quarantine;
/// this test is done well before.)
#[tokio::test]
async fn pods_stuck_terminating_are_force_deleted_only_in_allowlisted_namespaces() {
    let mut h = Harness::new("stuck-pods").await;
    h.create_pod("stuck", Value::Null, json!({"nodeName": "no-such-node"}))
        .await;
    h.pods()
        .delete("stuck", &DeleteParams::default().grace_period(1))
        .await
        .expect("delete accepted");
    assert!(h.pod_exists("stuck").await, "terminating, not gone");

    let c = h.start(&[
        ("STUCK_POD_CLEANUP", "true"),
        ("STUCK_POD_NAMESPACES", "some-other-namespace"),
        ("STUCK_POD_AFTER", "1s"),
        ("CLEANUP_INTERVAL", "1s"),
    ]);
    h.wait_first_sweep(c).await;
    // Sweeps that began after STUCK_POD_AFTER (1s) had passed for the Pod.
    h.wait_more_sweeps(c, 3).await;
    assert!(
        h.pod_exists("stuck").await,
        "not allowlisted: never force-deleted"
    );
    assert_eq!(
        h.metric(c, "gitops_cleanup_stuck_resources_cleaned_total")
            .await,
        Some(0.0)
    );
    h.kill(c).await;

    let ns = h.namespace().to_owned();
    let c = h.start(&[
        ("STUCK_POD_CLEANUP", "true"),
        ("STUCK_POD_NAMESPACES", &ns),
        ("STUCK_POD_AFTER", "1s"),
        ("CLEANUP_INTERVAL", "1s"),
    ]);
    h.wait_until("the stuck Pod to be force-deleted", || async {
        (!h.pod_exists("stuck").await).then_some(())
    })
    .await;
    assert_eq!(
        h.metric(c, "gitops_cleanup_stuck_resources_cleaned_total")
            .await,
        Some(1.0)
    );
    assert_eq!(h.events_about(&ns, "stuck", "ForceDeleted").await.len(), 1);
}

#[tokio::test]
async fn of_two_replicas_one_cleans_up_and_the_other_takes_over_when_it_dies() {
    let mut h = Harness::new("two-replicas").await;
    let lease = [
        ("LEADER_ELECTION", "true"),
        ("LEASE_NAME", "gitops-cleanup-test"),
    ];
    let replicas = [h.start(&lease), h.start(&lease)];
    let leader = h
        .wait_until("exactly one leader", || async {
            let a = h.metric(replicas[0], "gitops_leader").await?;
            let b = h.metric(replicas[1], "gitops_leader").await?;
            match (a, b) {
                (1.0, 0.0) => Some(replicas[0]),
                (0.0, 1.0) => Some(replicas[1]),
                _ => None,
            }
        })
        .await;
    let standby = if leader == replicas[0] {
        replicas[1]
    } else {
        replicas[0]
    };

    h.create_job("first", Value::Null, Value::Null).await;
    h.complete_job("first", ago(2 * HOUR)).await;
    h.wait_job_gone("first", Duration::from_secs(30)).await;
    let cleaned = r#"gitops_cleanup_jobs_cleaned_total{type="completed"}"#;
    h.wait_metric(leader, cleaned, 1.0).await;
    assert_eq!(
        h.metric(standby, cleaned).await,
        Some(0.0),
        "the standby did nothing"
    );
    assert_eq!(h.metric(standby, "gitops_leader").await, Some(0.0));

    h.kill(leader).await;
    h.wait_metric(standby, "gitops_leader", 1.0).await;
    h.create_job("second", Value::Null, Value::Null).await;
    h.complete_job("second", ago(2 * HOUR)).await;
    h.wait_job_gone("second", Duration::from_secs(30)).await;
    h.wait_metric(standby, cleaned, 1.0).await;
}

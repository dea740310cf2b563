//! Finished Jobs against the real API server: every rule and exemption, Jobs that existed
//! before start-up, deletion on time, Pods going with their Job, scope settings, dry run.

mod common;

use std::time::{Duration, SystemTime};

use common::{Harness, ago};
use k8s_openapi::api::batch::v1::CronJob;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

const HOUR: i64 = 3600;

/// (name, metadata, spec, finished: `Some((completed?, seconds ago))`, expected deleted)
type Fixture = (&'static str, Value, Value, Option<(bool, i64)>, bool);

#[tokio::test]
async fn expired_jobs_that_existed_before_start_up_are_deleted_and_every_exemption_is_kept() {
    let mut h = Harness::new("job-rules").await;
    let cronjob: CronJob = serde_json::from_value(json!({
        "metadata": {"name": "nightly"},
        "spec": {"schedule": "0 3 * * *", "suspend": true, "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}
    }))
    .expect("cronjob");
    let cronjob = Api::<CronJob>::namespaced(h.client.clone(), h.namespace())
        .create(&PostParams::default(), &cronjob)
        .await
        .expect("CronJob created");
    let cronjob_owner = json!({"ownerReferences": [{
        "apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly",
        "uid": cronjob.metadata.uid.expect("uid"), "controller": true
    }]});

    let fixtures: Vec<Fixture> = vec![
        (
            "completed-expired",
            Value::Null,
            Value::Null,
            Some((true, 2 * HOUR)),
            true,
        ),
        (
            "failed-expired",
            Value::Null,
            Value::Null,
            Some((false, 25 * HOUR)),
            true,
        ),
        (
            "completed-recent",
            Value::Null,
            Value::Null,
            Some((true, 10 * 60)),
            false,
        ),
        (
            "failed-recent",
            Value::Null,
            Value::Null,
            Some((false, 2 * HOUR)),
            false,
        ),
        ("running", Value::Null, Value::Null, None, false),
        (
            "own-ttl",
            Value::Null,
            json!({"ttlSecondsAfterFinished": 864000}),
            Some((true, 2 * HOUR)),
            false,
        ),
        (
            "cronjob-owned",
            cronjob_owner,
            Value::Null,
            Some((true, 2 * HOUR)),
            false,
        ),
        (
            "helm-hook",
            json!({"labels": {"helm.sh/hook": "post-install"}}),
            Value::Null,
            Some((true, 2 * HOUR)),
            false,
        ),
        (
            "opted-out",
            json!({"annotations": {"gitops.io/cleanup": "false"}}),
            Value::Null,
            Some((true, 2 * HOUR)),
            false,
        ),
    ];
    for (name, metadata, spec, finished, _) in &fixtures {
        h.create_job(name, metadata.clone(), spec.clone()).await;
        match finished {
            Some((true, seconds)) => drop(h.complete_job(name, ago(*seconds)).await),
            Some((false, seconds)) => drop(h.fail_job(name, ago(*seconds)).await),
            None => {}
        }
    }

    let started = std::time::Instant::now();
    let c = h.start(&[]); // defaults: 1h / 24h TTLs, helm.sh/hook excluded, interval 1h
    for (name, .., deleted) in &fixtures {
        if *deleted {
            h.wait_job_gone(name, Duration::from_secs(30)).await;
        }
    }
    let took = started.elapsed();
    // The first full sweep judged every Job in the cache: any wrongly due one is gone by now.
    h.wait_first_sweep(c).await;
    for (name, .., deleted) in &fixtures {
        assert_eq!(
            !h.job_exists(name).await,
            *deleted,
            "{name}: deleted = {deleted} expected"
        );
    }
    assert_eq!(
        h.metric(c, r#"gitops_cleanup_jobs_cleaned_total{type="completed"}"#)
            .await,
        Some(1.0)
    );
    assert_eq!(
        h.metric(c, r#"gitops_cleanup_jobs_cleaned_total{type="failed"}"#)
            .await,
        Some(1.0)
    );
    eprintln!("Jobs that existed before start-up were deleted {took:?} after start-up");
}

#[tokio::test]
async fn jobs_are_deleted_within_seconds_of_their_expiry_without_waiting_for_the_sweep() {
    let mut h = Harness::new("job-on-time").await;
    let c = h.start(&[
        ("COMPLETED_JOBS_TTL", "4s"),
        ("FAILED_JOBS_TTL", "6s"),
        ("CLEANUP_INTERVAL", "1h"),
    ]);
    h.wait_until("the controller to be ready", || async {
        h.ready(c).await.then_some(())
    })
    .await;

    let mut lags = Vec::new();
    for (name, completed, ttl) in [("completes", true, 4), ("fails", false, 6)] {
        h.create_job(name, Value::Null, Value::Null).await;
        let job = if completed {
            h.complete_job(name, k8s_openapi::jiff::Timestamp::now())
                .await
        } else {
            h.fail_job(name, k8s_openapi::jiff::Timestamp::now()).await
        };
        // The API server keeps whole seconds; expiry counts from what it stored.
        let status = job.status.expect("status");
        let finished = if completed {
            status.completion_time.expect("completionTime").0
        } else {
            status
                .conditions
                .expect("conditions")
                .into_iter()
                .find(|c| c.type_ == "Failed")
                .expect("Failed")
                .last_transition_time
                .expect("time")
                .0
        };
        let expiry = SystemTime::from(finished) + Duration::from_secs(ttl);

        let before = expiry
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .saturating_sub(Duration::from_millis(700));
        tokio::time::sleep(before).await;
        assert!(
            h.job_exists(name).await,
            "{name} must not be deleted before its expiry"
        );

        let gone = h.wait_job_gone(name, Duration::from_secs(30)).await;
        let lag = gone.duration_since(expiry).unwrap_or_default();
        lags.push(lag);
        eprintln!("{name}: deleted {lag:?} after expiry");
        assert!(
            lag < Duration::from_secs(3),
            "{name} deleted {lag:?} after its expiry"
        );
    }
    let count = h
        .metric(c, "gitops_cleanup_job_deletion_lag_seconds_count")
        .await;
    let sum = h
        .metric(c, "gitops_cleanup_job_deletion_lag_seconds_sum")
        .await;
    assert_eq!(count, Some(2.0));
    eprintln!(
        "deletion lag measured by the test: {lags:?}; by the controller: sum {sum:?} s over {count:?} Jobs"
    );
    assert_eq!(
        h.metric(c, "gitops_cleanup_last_run_timestamp_seconds")
            .await
            .map(|v| v > 0.0),
        Some(true)
    );
}

#[tokio::test]
async fn pods_are_removed_with_their_job() {
    let mut h = Harness::new("job-pods").await;
    let job = h.create_job("with-pod", Value::Null, Value::Null).await;
    // No kubelet here; the Pod its Job controller would have made, owned the same way.
    h.create_pod(
        "with-pod-abcde",
        json!({"ownerReferences": [{
            "apiVersion": "batch/v1", "kind": "Job", "name": "with-pod",
            "uid": job.metadata.uid.expect("uid"), "controller": true, "blockOwnerDeletion": true
        }]}),
        Value::Null,
    )
    .await;
    h.complete_job("with-pod", ago(2 * HOUR)).await;

    h.start(&[]);
    h.wait_job_gone("with-pod", Duration::from_secs(30)).await;
    h.wait_until("the garbage collector to remove the Job's Pod", || async {
        (!h.pod_exists("with-pod-abcde").await).then_some(())
    })
    .await;
}

#[tokio::test]
async fn scope_settings_narrow_what_is_deleted() {
    let mut h = Harness::new("job-scope").await;
    let cronjob: CronJob = serde_json::from_value(json!({
        "metadata": {"name": "hourly"},
        "spec": {"schedule": "0 * * * *", "suspend": true, "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}
    }))
    .expect("cronjob");
    let uid = Api::<CronJob>::namespaced(h.client.clone(), h.namespace())
        .create(&PostParams::default(), &cronjob)
        .await
        .expect("CronJob created")
        .metadata
        .uid
        .expect("uid");
    let owned = json!({"labels": {"team": "a"}, "ownerReferences": [{
        "apiVersion": "batch/v1", "kind": "CronJob", "name": "hourly", "uid": uid, "controller": true
    }]});
    for (name, metadata) in [
        ("team-a", json!({"labels": {"team": "a"}})),
        ("team-b", json!({"labels": {"team": "b"}})),
        ("from-cronjob", owned),
    ] {
        h.create_job(name, metadata, Value::Null).await;
        h.complete_job(name, ago(2 * HOUR)).await;
    }
    let ns = h.namespace().to_owned();

    // Excluded namespace: nothing.
    let c = h.start(&[("NAMESPACES_EXCLUDE", &ns)]);
    h.wait_first_sweep(c).await;
    for name in ["team-a", "team-b", "from-cronjob"] {
        assert!(
            h.job_exists(name).await,
            "{name} is in an excluded namespace"
        );
    }
    h.kill(c).await;

    // Included namespace, label selector team=a: only team-a (the CronJob's is exempt).
    let c = h.start(&[
        ("NAMESPACES_INCLUDE", &format!("other,{ns}")),
        ("JOB_LABEL_SELECTOR", "team=a"),
    ]);
    h.wait_job_gone("team-a", Duration::from_secs(30)).await;
    h.wait_first_sweep(c).await;
    assert!(h.job_exists("team-b").await, "outside the label selector");
    assert!(
        h.job_exists("from-cronjob").await,
        "CronJob Jobs are exempt by default"
    );
    h.kill(c).await;

    // CLEANUP_CRONJOB_JOBS: the CronJob's too.
    h.start(&[
        ("JOB_LABEL_SELECTOR", "team=a"),
        ("CLEANUP_CRONJOB_JOBS", "true"),
    ]);
    h.wait_job_gone("from-cronjob", Duration::from_secs(30))
        .await;
    assert!(
        h.job_exists("team-b").await,
        "still outside the label selector"
    );
}

#[tokio::test]
async fn dry_run_deletes_nothing_and_reports_what_it_would_delete() {
    let mut h = Harness::new("dry-run").await;
    h.create_job("expired", Value::Null, Value::Null).await;
    h.complete_job("expired", ago(2 * HOUR)).await;
    h.create_pod("finished", Value::Null, Value::Null).await;
    h.finish_pod("finished", ago(2 * HOUR)).await;
    let name = h.unique("orphan");
    let pk = h.create_provider(&name).await;
    let record = h
        .create_record(
            gitops_crd::ownership::AuthentikKind::Provider,
            &name,
            Some(&pk.to_string()),
            "no-such-uid",
        )
        .await;

    let c = h.start_with_authentik(&[
        ("DRY_RUN", "true"),
        ("POD_CLEANUP", "true"),
        ("ORPHANED_PROVIDERS_MAX_AGE", "1s"),
        ("CLEANUP_INTERVAL", "1s"),
    ]);
    for resource in ["completed_job", "finished_pod", "provider"] {
        let series = format!(r#"gitops_cleanup_dry_run_deletions_total{{resource="{resource}"}}"#);
        h.wait_metric(c, &series, 1.0).await;
    }
    // Several more sweeps: still nothing deleted, and each object reported once.
    h.wait_more_sweeps(c, 3).await;
    assert!(h.job_exists("expired").await);
    assert!(h.pod_exists("finished").await);
    assert!(h.authentik.provider(pk).await.is_some());
    assert!(h.record(&record).await.is_some());
    if let Some(double) = h.authentik.as_double() {
        assert_eq!(double.count("DELETE", "/api/v3/"), 0, "no authentik delete");
    }
    assert_eq!(
        h.metric(
            c,
            r#"gitops_cleanup_dry_run_deletions_total{resource="completed_job"}"#
        )
        .await,
        Some(1.0)
    );
    assert_eq!(
        h.metric(c, r#"gitops_cleanup_jobs_cleaned_total{type="completed"}"#)
            .await,
        Some(0.0)
    );

    let ns = h.namespace().to_owned();
    assert_eq!(
        h.events_about(&ns, "expired", "WouldDelete").await.len(),
        1,
        "an Event on the Job"
    );
    assert_eq!(
        h.events_about(&ns, "finished", "WouldDelete").await.len(),
        1,
        "an Event on the Pod"
    );
    assert_eq!(
        h.events_about("default", &record, "WouldDelete")
            .await
            .len(),
        1,
        "an Event on the record"
    );
}

#[tokio::test]
async fn a_malformed_setting_stops_start_up_with_one_clear_line() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_gitops-cleanup"))
        .env_clear()
        .env("CLEANUP_INTERVAL", "soon")
        .output()
        .await
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("CLEANUP_INTERVAL") && stderr.contains("soon"),
        "{stderr}"
    );
}

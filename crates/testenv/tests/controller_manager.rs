//! kube-controller-manager really runs: the Job controller creates Pods, and the garbage
//! collector deletes them with their Job.

use std::time::Duration;

use gitops_testenv::{TestEnv, poll_until};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodTemplateSpec};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};

const TIMEOUT: Duration = Duration::from_secs(60);

fn job(name: &str) -> Job {
    Job {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            template: PodTemplateSpec {
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "main".into(),
                        image: Some("busybox:1.37".into()),
                        command: Some(vec!["true".into()]),
                        ..Container::default()
                    }],
                    restart_policy: Some("Never".into()),
                    ..PodSpec::default()
                }),
                ..PodTemplateSpec::default()
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

/// Creates a Job, waits for its Pod, deletes the Job with `delete`, and waits until both are gone.
async fn job_pod_is_collected_with_its_job(purpose: &str, delete: DeleteParams) {
    let env = TestEnv::shared().expect("test environment");
    let namespace = env.namespace(purpose).await.expect("namespace");
    let client = env.client().await.expect("client");
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace.name());
    let pods: Api<Pod> = Api::namespaced(client, namespace.name());

    let created = jobs
        .create(&PostParams::default(), &job("hello"))
        .await
        .expect("Job created");
    let job_uid = created.metadata.uid.expect("uid");
    let selector = ListParams::default().labels("batch.kubernetes.io/job-name=hello");

    // No scheduler or kubelet: the Pod stays Pending, but the Job controller creates it.
    let pod = poll_until("the Job controller to create a Pod", TIMEOUT, || async {
        Ok(pods.list(&selector).await?.items.into_iter().next())
    })
    .await
    .expect("Pod created by kube-controller-manager");
    let owner = pod
        .metadata
        .owner_references
        .unwrap_or_default()
        .into_iter()
        .find(|owner| owner.controller == Some(true))
        .expect("controller owner reference");
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Job", job_uid.as_str())
    );

    jobs.delete("hello", &delete).await.expect("Job deleted");
    poll_until(
        "the garbage collector to remove Job and Pod",
        TIMEOUT,
        || async {
            let pods_left = pods.list(&selector).await?.items.len();
            let job_left = jobs.get_opt("hello").await?.is_some();
            Ok((pods_left == 0 && !job_left).then_some(()))
        },
    )
    .await
    .expect("cascading delete removes both");
}

#[tokio::test]
async fn background_delete_of_a_job_removes_its_pod() {
    job_pod_is_collected_with_its_job("job-background", DeleteParams::background()).await;
}

#[tokio::test]
async fn foreground_delete_of_a_job_removes_its_pod() {
    job_pod_is_collected_with_its_job("job-foreground", DeleteParams::foreground()).await;
}

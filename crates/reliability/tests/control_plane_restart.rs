//! Scenario 3: kube-apiserver and etcd restart while ProxyConfigs are being applied. The
//! controller's watches resume and no change made around the restarts is missed.

use std::time::Duration;

use gitops_harness::{Harness, workspace_binary};
use gitops_reliability::{Expected, assert_converged};
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

/// Applies `manifest`, retrying while the API server is unavailable.
async fn apply_retrying(h: &Harness, manifest: &Value) {
    let name = manifest["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    for _ in 0..120 {
        let result = h
            .proxyconfigs()
            .patch(
                &name,
                &PatchParams::apply("test").force(),
                &Patch::Apply(manifest),
            )
            .await;
        if result.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("could not apply {name} within 30 s");
}

async fn changes_around(
    h: &Harness,
    round: &str,
    existing: &[String],
) -> (Vec<String>, Vec<String>) {
    let mut created = Vec::new();
    for i in 0..4 {
        let name = format!("{round}-{i}");
        apply_retrying(h, &h.proxyconfig(&name)).await;
        created.push(name);
    }
    for name in &existing[..2] {
        let mut changed = h.proxyconfig(name);
        changed["spec"]["authentikConfig"]["skipPathRegex"] = json!(format!("^/{round}/.*$"));
        apply_retrying(h, &changed).await;
    }
    let deleted = existing[2..4].to_vec();
    for name in &deleted {
        h.delete(name).await;
    }
    (created, deleted)
}

#[tokio::test]
async fn watches_resume_after_api_server_and_etcd_restarts_without_missing_changes() {
    let mut h = Harness::with_private_environment(
        "chaos-restart",
        workspace_binary("gitops-service-discovery"),
    )
    .await;
    h.start_single();
    let mut live: Vec<String> = (0..8).map(|i| format!("base-{i}")).collect();
    for name in &live {
        h.apply(h.proxyconfig(name)).await;
    }
    assert_converged(&h, &Expected::default()).await;

    for (component, round) in [
        ("kube-apiserver", "after-apiserver"),
        ("etcd", "after-etcd"),
    ] {
        // Load while the component goes down: these applies retry until it is back.
        let load = {
            let manifests: Vec<Value> = (0..3)
                .map(|i| h.proxyconfig(&format!("{round}-load-{i}")))
                .collect();
            let api = h.proxyconfigs();
            tokio::spawn(async move {
                for manifest in manifests {
                    let name = manifest["metadata"]["name"]
                        .as_str()
                        .expect("name")
                        .to_owned();
                    while api
                        .patch(
                            &name,
                            &PatchParams::apply("test").force(),
                            &Patch::Apply(&manifest),
                        )
                        .await
                        .is_err()
                    {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            })
        };
        h.env
            .control_plane()
            .restart(component)
            .await
            .expect("restarted");
        load.await.expect("load applied");
        let (created, deleted) = changes_around(&h, round, &live).await;
        for name in &deleted {
            h.wait_gone(name).await;
        }
        live.retain(|n| !deleted.contains(n));
        live.extend(created);
        live.extend((0..3).map(|i| format!("{round}-load-{i}")));
        assert_converged(&h, &Expected::default()).await;
        for name in &live[..2] {
            let provider = h
                .double()
                .provider_by_name(&h.provider_name(name))
                .expect("provider");
            assert_eq!(
                provider.proxy().expect("proxy").skip_path_regex,
                format!("^/{round}/.*$"),
                "{name} update after the {component} restart reached authentik"
            );
        }
        for name in &deleted {
            assert!(
                h.double()
                    .provider_by_name(&h.provider_name(name))
                    .is_none(),
                "{name} deleted after the {component} restart"
            );
        }
    }
}

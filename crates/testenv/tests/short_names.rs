//! Our CRDs' short names against every resource the API server serves (built-ins and the
//! third-party CRDs the chart works with): a short name that is already taken makes
//! `kubectl get <short>` list the other resource and only warn that it "could also match" ours.

use std::collections::BTreeMap;

use gitops_crd::ProxyConfig;
use gitops_crd::ownership::AuthentikObject;
use gitops_testenv::{TestEnv, install_product_crds, install_third_party_crds};
use kube::CustomResourceExt;

/// Every short name served, with the resources (`plural.group`) that use it.
async fn served_short_names(client: &kube::Client) -> BTreeMap<String, Vec<String>> {
    let mut lists = Vec::new();
    for version in client
        .list_core_api_versions()
        .await
        .expect("core versions")
        .versions
    {
        lists.push((
            String::new(),
            client
                .list_core_api_resources(&version)
                .await
                .expect("core resources"),
        ));
    }
    for group in client.list_api_groups().await.expect("groups").groups {
        for version in &group.versions {
            lists.push((
                group.name.clone(),
                client
                    .list_api_group_resources(&version.group_version)
                    .await
                    .expect("group resources"),
            ));
        }
    }
    let mut served: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (group, list) in lists {
        for resource in list.resources {
            let qualified = format!("{}.{group}", resource.name);
            for short in resource.short_names.into_iter().flatten() {
                let users = served.entry(short).or_default();
                if !users.contains(&qualified) {
                    users.push(qualified.clone());
                }
            }
        }
    }
    served
}

#[tokio::test]
async fn our_short_names_are_used_by_no_other_served_resource() {
    let env = TestEnv::shared().expect("test environment");
    let client = env.client().await.expect("client");
    install_product_crds(&client).await.expect("our CRDs");
    install_third_party_crds(&client)
        .await
        .expect("third-party CRDs");
    let served = served_short_names(&client).await;
    assert!(
        served.contains_key("po") && served.contains_key("pc"),
        "built-in short names are seen (Pod `po`, PriorityClass `pc`): {served:?}"
    );

    for crd in [ProxyConfig::crd(), AuthentikObject::crd()] {
        let ours = format!("{}.{}", crd.spec.names.plural, crd.spec.group);
        let short_names = crd.spec.names.short_names.unwrap_or_default();
        assert!(!short_names.is_empty(), "{ours} has a short name");
        for short in short_names {
            let others: Vec<_> = served
                .get(&short)
                .into_iter()
                .flatten()
                .filter(|user| **user != ours)
                .collect();
            assert!(
                others.is_empty(),
                "short name {short:?} of {ours} is also served for {others:?}"
            );
        }
    }
}

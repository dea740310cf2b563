//! Authorization and admission are real: RBAC decides what a ServiceAccount may do (tested
//! through impersonation), and PodSecurity admission enforces namespace levels.

use std::collections::BTreeMap;
use std::time::Duration;

use gitops_crd::ProxyConfig;
use gitops_testenv::{TestEnv, install_proxyconfig_crd, poll_until};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, Namespace, Pod, PodSecurityContext, PodSpec, SeccompProfile,
    SecurityContext, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};

const TIMEOUT: Duration = Duration::from_secs(30);

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    }
}

fn status_code<T: std::fmt::Debug>(result: kube::Result<T>) -> u16 {
    match result {
        Err(kube::Error::Api(status)) => status.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn service_account_may_only_do_what_its_role_grants() {
    let env = TestEnv::shared().expect("test environment");
    let admin = env.client().await.expect("client");
    install_proxyconfig_crd(&admin).await.expect("CRD");
    let namespace = env.namespace("rbac").await.expect("namespace");
    let ns = namespace.name();
    Api::<ServiceAccount>::namespaced(admin.clone(), ns)
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: meta("reader"),
                ..ServiceAccount::default()
            },
        )
        .await
        .expect("ServiceAccount");

    let reader = env
        .client_as_service_account(ns, "reader")
        .await
        .expect("impersonating client");
    let as_reader: Api<ProxyConfig> = Api::namespaced(reader.clone(), ns);
    assert_eq!(
        status_code(as_reader.list(&ListParams::default()).await),
        403,
        "no Role yet"
    );

    Api::<Role>::namespaced(admin.clone(), ns)
        .create(
            &PostParams::default(),
            &Role {
                metadata: meta("proxyconfig-reader"),
                rules: Some(vec![PolicyRule {
                    api_groups: Some(vec!["gitops.io".into()]),
                    resources: Some(vec!["proxyconfigs".into()]),
                    verbs: vec!["get".into(), "list".into(), "watch".into()],
                    ..PolicyRule::default()
                }]),
            },
        )
        .await
        .expect("Role");
    Api::<RoleBinding>::namespaced(admin.clone(), ns)
        .create(
            &PostParams::default(),
            &RoleBinding {
                metadata: meta("proxyconfig-reader"),
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "Role".into(),
                    name: "proxyconfig-reader".into(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: "reader".into(),
                    namespace: Some(ns.to_owned()),
                    ..Subject::default()
                }]),
            },
        )
        .await
        .expect("RoleBinding");

    poll_until("the RoleBinding to take effect", TIMEOUT, || async {
        Ok(as_reader.list(&ListParams::default()).await.ok().map(drop))
    })
    .await
    .expect("listing is allowed once bound");

    // Only what was granted, only where it was granted.
    let example: ProxyConfig = serde_json::from_value(serde_json::json!({
        "apiVersion": "gitops.io/v1", "kind": "ProxyConfig", "metadata": {"name": "x"},
        "spec": {"serviceName": "x", "serviceNamespace": ns, "externalHost": "x.example.com",
                 "internalHost": "http://x", "authentikConfig": {"providerName": "x"}},
    }))
    .expect("ProxyConfig");
    assert_eq!(
        status_code(as_reader.create(&PostParams::default(), &example).await),
        403
    );
    let elsewhere: Api<ProxyConfig> = Api::namespaced(reader, "default");
    assert_eq!(
        status_code(elsewhere.list(&ListParams::default()).await),
        403
    );
}

fn pod(name: &str, security: SecurityContext) -> Pod {
    Pod {
        metadata: meta(name),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "main".into(),
                image: Some("busybox:1.37".into()),
                security_context: Some(security),
                ..Container::default()
            }],
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(65534),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

#[tokio::test]
async fn restricted_namespace_rejects_a_privileged_pod() {
    let env = TestEnv::shared().expect("test environment");
    let client = env.client().await.expect("client");
    let namespace = env.namespace("pod-security").await.expect("namespace");
    let ns = namespace.name();
    Api::<Namespace>::all(client.clone())
        .patch(
            ns,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"labels": BTreeMap::from([
                ("pod-security.kubernetes.io/enforce", "restricted"),
            ])}})),
        )
        .await
        .expect("label namespace");
    // Pods need the namespace's default ServiceAccount, which kube-controller-manager creates.
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    poll_until("the default ServiceAccount", TIMEOUT, || async {
        Ok(accounts.get_opt("default").await?.map(drop))
    })
    .await
    .expect("default ServiceAccount");

    let pods: Api<Pod> = Api::namespaced(client, ns);
    let privileged = SecurityContext {
        privileged: Some(true),
        ..SecurityContext::default()
    };
    match pods
        .create(&PostParams::default(), &pod("privileged", privileged))
        .await
    {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{}", status.message);
            assert!(
                status
                    .message
                    .contains("violates PodSecurity \"restricted:latest\""),
                "{}",
                status.message
            );
            assert!(status.message.contains("privileged"), "{}", status.message);
        }
        other => panic!("privileged Pod must be rejected, got {other:?}"),
    }

    let compliant = SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    };
    pods.create(&PostParams::default(), &pod("compliant", compliant))
        .await
        .expect("a Pod meeting the restricted profile is admitted");
}

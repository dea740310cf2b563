//! The pinned Traefik builds from its Go module and runs as a process against the test API
//! server with its Kubernetes CRD provider: an IngressRoute created in the API server becomes a
//! route Traefik serves.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gitops_testenv::{TestEnv, install_third_party_crds, pins, poll_until};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};

/// Stops Traefik when the test ends, also on panic.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The static admin token and the CA of the environment's kubeconfig (context
/// `gitops-testenv-token`).
fn token_and_ca(env: &TestEnv) -> (String, String) {
    let text = std::fs::read_to_string(env.kubeconfig()).expect("kubeconfig");
    let config: Value = serde_saphyr::from_str(&text).expect("kubeconfig parses");
    let token = config["users"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|u| u["user"]["token"].as_str())
        .expect("a token user")
        .to_owned();
    let ca = config["clusters"][0]["cluster"]["certificate-authority"]
        .as_str()
        .expect("CA file")
        .to_owned();
    (token, ca)
}

#[tokio::test]
async fn traefik_serves_an_ingressroute_read_from_the_api_server() {
    let env = TestEnv::shared().expect("test environment");
    tokio::task::spawn_blocking(|| gitops_testenv::ensure_tools(&["traefik"]))
        .await
        .expect("build task")
        .expect("traefik builds");
    let (client, namespace) = env.prepare("traefik").await.expect("namespace");
    install_third_party_crds(&client)
        .await
        .expect("CRDs install");
    let ns = namespace.name();

    // A route to Traefik's own API, so no backend Pod (there is no kubelet) is needed.
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("traefik.io", "v1alpha1", "IngressRoute"),
        "ingressroutes",
    );
    let route = DynamicObject::new("probe", &resource).data(json!({"spec": {
        "entryPoints": ["web"],
        "routes": [{
            "match": "Host(`probe.example.com`)",
            "kind": "Rule",
            "services": [{"name": "api@internal", "kind": "TraefikService"}],
        }],
    }}));
    Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource)
        .create(&PostParams::default(), &route)
        .await
        .expect("IngressRoute created");

    let (token, ca) = token_and_ca(env);
    let web = free_port();
    let binary = pins::binary("traefik", "traefik").expect("pinned traefik");
    let log = env.control_plane().dir().join(format!("traefik-{ns}.log"));
    let log_file = std::fs::File::create(&log).expect("log file");
    let _traefik = Running(
        Command::new(&binary)
            .args([
                format!("--entryPoints.web.address=127.0.0.1:{web}"),
                "--api=true".to_owned(),
                "--providers.kubernetescrd=true".to_owned(),
                format!(
                    "--providers.kubernetescrd.endpoint={}",
                    env.control_plane().info().server
                ),
                format!("--providers.kubernetescrd.token={token}"),
                format!("--providers.kubernetescrd.certAuthFilePath={ca}"),
                format!("--providers.kubernetescrd.namespaces={ns}"),
                "--log.level=INFO".to_owned(),
            ])
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("traefik starts"),
    );

    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{web}/api/version");
    let version: Value = poll_until(
        "Traefik to serve the IngressRoute",
        Duration::from_secs(60),
        || async {
            let answer = http
                .get(&url)
                .header("Host", "probe.example.com")
                .send()
                .await;
            Ok(match answer {
                Ok(r) if r.status().is_success() => r.json::<Value>().await.ok(),
                _ => None,
            })
        },
    )
    .await
    .unwrap_or_else(|e| {
        let tail = std::fs::read_to_string(&log).unwrap_or_default();
        panic!("{e}; traefik log:\n{tail}")
    });
    assert_eq!(
        version["Version"],
        json!(pins::tool("traefik").expect("pinned").version),
        "{version}"
    );
}

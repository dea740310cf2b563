//! The pinned Traefik as a process of a test, with its Kubernetes CRD provider reading one
//! namespace of the test environment's API server (as the admin token), serving plain HTTP on a
//! free loopback port. ExternalName Services are allowed, so a test can put a backend it runs on
//! loopback behind a route (there are no Pods to send traffic to without a node).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::error::{Error, IoContext, Result};
use crate::harness::TestEnv;
use crate::pins;
use crate::ports::free_port;

/// A running Traefik; stopped when dropped (also on panic).
#[derive(Debug)]
pub struct Traefik {
    child: Child,
    web_port: u16,
    log: PathBuf,
}

impl Traefik {
    /// Builds Traefik once (blocking: call from `spawn_blocking` or before the runtime) and
    /// starts it watching `namespace` of `env`.
    pub fn start(env: &TestEnv, namespace: &str) -> Result<Self> {
        crate::ensure_tools(&["traefik"])?;
        let (token, ca) = token_and_ca(env)?;
        let web_port = free_port()?;
        let binary = pins::binary("traefik", "traefik")?;
        let log = env
            .control_plane()
            .dir()
            .join(format!("traefik-{namespace}.log"));
        let log_file =
            std::fs::File::create(&log).context(|| format!("creating {}", log.display()))?;
        let child = Command::new(&binary)
            .args([
                format!("--entryPoints.web.address=127.0.0.1:{web_port}"),
                "--api=true".to_owned(),
                "--providers.kubernetescrd=true".to_owned(),
                format!(
                    "--providers.kubernetescrd.endpoint={}",
                    env.control_plane().info().server
                ),
                format!("--providers.kubernetescrd.token={token}"),
                format!("--providers.kubernetescrd.certAuthFilePath={ca}"),
                format!("--providers.kubernetescrd.namespaces={namespace}"),
                "--providers.kubernetescrd.allowExternalNameServices=true".to_owned(),
                "--log.level=INFO".to_owned(),
            ])
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .context(|| format!("starting {}", binary.display()))?;
        Ok(Self {
            child,
            web_port,
            log,
        })
    }

    /// `http://127.0.0.1:<port><path>` on the `web` entry point.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.web_port)
    }

    /// Sends `GET <path>` with `headers` until Traefik answers `status` (a route takes a moment
    /// to be read from the API server) and returns that response; redirects are not followed.
    /// The error carries Traefik's log.
    pub async fn get_until(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        status: u16,
    ) -> std::result::Result<reqwest::Response, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("building an HTTP client: {e}"))?;
        let url = self.url(path);
        crate::poll_until(
            &format!("{url} to answer {status}"),
            std::time::Duration::from_secs(60),
            || async {
                let request = headers
                    .iter()
                    .fold(http.get(&url), |request, (name, value)| {
                        request.header(*name, *value)
                    });
                Ok(request
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status().as_u16() == status))
            },
        )
        .await
        .map_err(|e| format!("{e}; traefik log:\n{}", self.log()))
    }

    /// What Traefik logged so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Traefik {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The static admin token and the CA file of the environment's kubeconfig.
fn token_and_ca(env: &TestEnv) -> Result<(String, String)> {
    let path = env.kubeconfig();
    let text = std::fs::read_to_string(&path).context(|| format!("reading {}", path.display()))?;
    let config: Value = serde_saphyr::from_str(&text).map_err(|error| Error::Yaml {
        path: path.clone(),
        message: error.to_string(),
    })?;
    let token = config["users"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|u| u["user"]["token"].as_str());
    let ca = config["clusters"][0]["cluster"]["certificate-authority"].as_str();
    match (token, ca) {
        (Some(token), Some(ca)) => Ok((token.to_owned(), ca.to_owned())),
        _ => Err(Error::CommandOutput {
            command: format!("reading {}", path.display()),
            detail: "no token user or certificate-authority file".into(),
        }),
    }
}

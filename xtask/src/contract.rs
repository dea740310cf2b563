//! Contract mode's own check: a representative subset of the end-to-end tests runs with
//! `GITOPS_TEST_AUTHENTIK_URL`/`_TOKEN` pointing at an authentik double started here as a
//! separate process, so the tests reach it only through authentik's public API (as they would a
//! real server). Before the tests, a bystander provider, application and outpost assignment are
//! made there, as another admin's; afterwards the server must hold exactly those again: every
//! test removed what it made and touched nothing else.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

use crate::run::{RunEnvironment, cargo};

/// `gitops_harness::AUTHENTIK_URL_VARIABLE` / `AUTHENTIK_TOKEN_VARIABLE` (xtask does not link
/// the harness).
pub const URL_VARIABLE: &str = "GITOPS_TEST_AUTHENTIK_URL";
pub const TOKEN_VARIABLE: &str = "GITOPS_TEST_AUTHENTIK_TOKEN";

/// An external authentik named by [`URL_VARIABLE`] and [`TOKEN_VARIABLE`].
pub struct External {
    pub url: String,
    pub token: String,
}

/// The external authentik the variables name (contract mode); `None` without them. One of the
/// two alone is a mistake, not a reason to fall back to the double.
pub fn external_authentik() -> Result<Option<External>> {
    let read = |name| {
        std::env::var(name)
            .ok()
            .filter(|v: &String| !v.trim().is_empty())
    };
    match (read(URL_VARIABLE), read(TOKEN_VARIABLE)) {
        (None, None) => Ok(None),
        (Some(url), Some(token)) => Ok(Some(External {
            url: url.trim_end_matches('/').to_owned(),
            token,
        })),
        _ => bail!(
            "contract mode needs both {URL_VARIABLE} and {TOKEN_VARIABLE}; set both, or neither"
        ),
    }
}
const TOKEN: &str = "gitops-contract-token";

/// The test binaries of the subset (of gitops-service-discovery, gitops-cleanup and
/// kubectl-gitops).
const TEST_TARGETS: [&str; 4] = ["lifecycle", "ownership", "orphans", "commands"];
/// A test target of the authentik-double package: building it builds the `authentik-double`
/// binary with the features `cargo test --workspace` gives it, so nothing is rebuilt twice.
const DOUBLE_TEST_TARGET: &str = "server_behaviour";
/// Test names (substrings) of the subset: lifecycle, drift, deletion next to a foreign
/// provider, allowed groups, a foreign provider of our name, the orphan sweep, CLI verify and
/// backup/restore — and one test that needs fault injection, to show its skip line.
const TESTS: [&str; 9] = [
    "create_reaches_ready_with_exactly_the_expected_objects",
    "hand_edits_are_reverted_and_outpost_removal_is_undone",
    "delete_removes_everything_it_created",
    "allowed_groups_become_bindings_and_are_removed_with_the_list",
    "authentik_outage_is_pending_then_recovers_by_itself",
    "foreign_provider_of_the_same_name_is_a_conflict_and_untouched_until_adopted",
    "with_zero_proxyconfigs_only_recorded_orphans_are_deleted_after_their_grace_period",
    "verify_finds_drift_missing_orphaned_and_foreign",
    "backup_delete_restore_is_ready_again_without_new_authentik_objects",
];

/// `cargo xtask contract`: the subset on a test environment of its own (or the kept-up one).
pub fn standalone(root: &Path) -> Result<()> {
    let environment = RunEnvironment::acquire("test environment")?;
    run(root, environment.variable()?)
}

/// Runs the subset against a double of its own; `environment` is the test environment's
/// variable (`GITOPS_TESTENV_DIR`).
pub fn run(root: &Path, environment: (&str, &str)) -> Result<()> {
    let started = Instant::now();
    let mut args = vec!["test", "--locked", "--workspace"];
    for test in TEST_TARGETS {
        args.extend(["--test", test]);
    }
    // Everything built first (nothing to do after `cargo test --workspace`), the double too.
    let mut build = args.clone();
    build.extend(["--test", DOUBLE_TEST_TARGET, "--no-run"]);
    cargo(root, &build, &[environment])?;
    let addr = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?;
    let mut double = Double::start(root, addr)?;
    let bystander = Bystander::create(addr).context("making the bystander objects")?;

    let url = format!("http://{addr}");
    args.push("--");
    args.extend(TESTS);
    let tests = cargo(
        root,
        &args,
        &[environment, (URL_VARIABLE, &url), (TOKEN_VARIABLE, TOKEN)],
    );
    let left = bystander.check_alone(addr);
    double.stop();
    tests.context("end-to-end tests in contract mode failed")?;
    left.context("after the contract-mode tests")?;
    eprintln!(
        "==> contract mode (an external authentik double): passed in {}s",
        started.elapsed().as_secs()
    );
    Ok(())
}

/// The `authentik-double` binary as a process of its own.
struct Double(Option<Child>);

impl Double {
    fn start(root: &Path, addr: SocketAddr) -> Result<Self> {
        let binary = root.join("target/debug/authentik-double");
        ensure!(binary.exists(), "{} is not built", binary.display());
        let child = Command::new(&binary)
            .args(["--listen", &addr.to_string(), "--token", TOKEN])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let double = Self(Some(child));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline {
                bail!("the authentik double does not listen on {addr} after 20s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(double)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Double {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Another admin's provider, application and outpost assignment on the external server.
struct Bystander {
    provider: Value,
    application: Value,
}

impl Bystander {
    fn create(addr: SocketAddr) -> Result<Self> {
        let flow = |slug: &str| -> Result<Value> {
            Ok(api(
                addr,
                "GET",
                &format!("/api/v3/flows/instances/{slug}/"),
                None,
            )?["pk"]
                .clone())
        };
        let provider = api(
            addr,
            "POST",
            "/api/v3/providers/proxy/",
            Some(&json!({
                "name": "bystander",
                "authorization_flow": flow("default-provider-authorization-implicit-consent")?,
                "invalidation_flow": flow("default-provider-invalidation-flow")?,
                "external_host": "https://bystander.example.com",
                "mode": "forward_single"
            })),
        )?;
        api(
            addr,
            "POST",
            "/api/v3/core/applications/",
            Some(&json!({"name": "Bystander", "slug": "bystander", "provider": provider["pk"]})),
        )?;
        let outpost = embedded_outpost(addr)?;
        api(
            addr,
            "PATCH",
            &format!(
                "/api/v3/outposts/instances/{}/",
                outpost["pk"].as_str().unwrap_or_default()
            ),
            Some(&json!({"providers": [provider["pk"]]})),
        )?;
        Ok(Self {
            provider: proxy_provider(addr, &provider["pk"])?,
            application: api(addr, "GET", "/api/v3/core/applications/bystander/", None)?,
        })
    }

    /// The server holds the bystander's objects, unchanged, and nothing else.
    fn check_alone(&self, addr: SocketAddr) -> Result<()> {
        let providers = api(addr, "GET", "/api/v3/providers/all/?page_size=1000", None)?;
        let provider_names = names(&providers, "name");
        ensure!(
            provider_names == ["bystander"],
            "providers left or deleted by the tests: {provider_names:?}"
        );
        let applications = api(
            addr,
            "GET",
            "/api/v3/core/applications/?superuser_full_list=true&page_size=1000",
            None,
        )?;
        let slugs = names(&applications, "slug");
        ensure!(
            slugs == ["bystander"],
            "applications left or deleted by the tests: {slugs:?}"
        );
        let outpost = embedded_outpost(addr)?;
        ensure!(
            outpost["providers"] == json!([self.provider["pk"]]),
            "the embedded outpost holds {} instead of only the bystander",
            outpost["providers"]
        );
        ensure!(
            proxy_provider(addr, &self.provider["pk"])? == self.provider,
            "the bystander provider was changed"
        );
        ensure!(
            api(addr, "GET", "/api/v3/core/applications/bystander/", None)? == self.application,
            "the bystander application was changed"
        );
        Ok(())
    }
}

fn names(page: &Value, key: &str) -> Vec<String> {
    let results = page["results"].as_array().cloned().unwrap_or_default();
    results
        .iter()
        .map(|item| item[key].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn proxy_provider(addr: SocketAddr, pk: &Value) -> Result<Value> {
    api(addr, "GET", &format!("/api/v3/providers/proxy/{pk}/"), None)
}

fn embedded_outpost(addr: SocketAddr) -> Result<Value> {
    let page = api(
        addr,
        "GET",
        "/api/v3/outposts/instances/?managed__iexact=goauthentik.io/outposts/embedded",
        None,
    )?;
    Ok(page["results"][0].clone())
}

/// One request to the double's public API (HTTP/1.0: the server closes when done); the JSON
/// answer of a 2xx, an error otherwise.
fn api(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, answer) = response
        .split_once("\r\n\r\n")
        .with_context(|| format!("{method} {path}: no body in the answer"))?;
    let status = head.split_whitespace().nth(1).unwrap_or_default();
    ensure!(
        status.starts_with('2'),
        "{method} {path}: {status} {answer}"
    );
    serde_json::from_str(answer).with_context(|| format!("{method} {path}: not JSON: {answer}"))
}

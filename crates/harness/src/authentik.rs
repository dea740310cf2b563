//! The authentik an end-to-end test talks to: the in-process double (the default, hermetic), or
//! an external authentik named by [`AUTHENTIK_URL_VARIABLE`] and [`AUTHENTIK_TOKEN_VARIABLE`]
//! ("contract mode").
//!
//! In contract mode a test sees the server only through its public API, as the product does.
//! Everything a test makes there carries its mark (the test's namespace name, which ends in 32
//! random bits): provider names `<base>-<namespace>`, application slugs `<namespace>-<base>`.
//! When the test ends, [`TestAuthentik`] deletes exactly the providers and applications whose
//! name carries the mark and takes their pks out of the embedded outpost; nothing else on the
//! server is written by the harness.

use std::io::Write as _;
use std::sync::Mutex;

use authentik_double::{AuthentikDouble, DoubleConfig, DoubleHandle};
use gitops_authentik::{
    ApiToken, Application, AuthentikClient, ClientConfig, Outpost, ProxyMode, ProxyProvider,
    ProxyProviderRequest, not_found_as_none,
};
use serde_json::json;

/// Base URL of an external authentik (`https://authentik.example.com`, without `/api/v3`).
/// With [`AUTHENTIK_TOKEN_VARIABLE`], the end-to-end tests that need no fault injection run
/// against it instead of the double; the others are skipped, each with a line saying so.
pub const AUTHENTIK_URL_VARIABLE: &str = "GITOPS_TEST_AUTHENTIK_URL";
/// An API token of that authentik (a superuser's: the tests create and delete providers,
/// applications and outpost assignments, and read flows and groups).
pub const AUTHENTIK_TOKEN_VARIABLE: &str = "GITOPS_TEST_AUTHENTIK_TOKEN";

/// The external authentik contract mode runs against.
#[derive(Clone)]
struct External {
    base_url: String,
    token: String,
}

impl std::fmt::Debug for External {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("External")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// The external authentik the variables name; `None` without them (hermetic run). Setting only
/// one of the two is a mistake worth stopping for, not a silent fallback to the double.
fn external() -> Option<External> {
    let read = |name| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    match (read(AUTHENTIK_URL_VARIABLE), read(AUTHENTIK_TOKEN_VARIABLE)) {
        (None, None) => None,
        (Some(base_url), Some(token)) => Some(External {
            base_url: base_url.trim_end_matches('/').to_owned(),
            token,
        }),
        _ => panic!(
            "contract mode needs both {AUTHENTIK_URL_VARIABLE} and {AUTHENTIK_TOKEN_VARIABLE}; \
             set both, or neither for the authentik double"
        ),
    }
}

/// Whether this run talks to an external authentik (contract mode).
pub fn contract_mode() -> bool {
    external().is_some()
}

/// For a test that needs the double (fault injection, latency, its request log or state):
/// in contract mode prints one line naming the test and `needs`, and returns `true` — the test
/// then returns. The line goes straight to stderr, past the test runner's output capture, so a
/// skipped test is visible and never reads as a silent pass.
pub fn skip_in_contract_mode(needs: &str) -> bool {
    if !contract_mode() {
        return false;
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIPPED {test}: needs the authentik double ({needs}); {AUTHENTIK_URL_VARIABLE} is set"
    );
    true
}

/// In contract mode the tests of one binary take turns: they share the server's embedded
/// outpost, and authentik's API changes its provider list only by read-modify-write (no
/// preconditions), so two tests' controllers writing it at once would lose each other's
/// entries. Against the double every test has a server of its own and none waits.
static CONTRACT_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

enum Backend {
    Double(DoubleHandle),
    External(External),
}

/// The authentik of one test, and what it has made there.
pub struct TestAuthentik {
    backend: Backend,
    /// The test's mark (its namespace name): every name it makes in authentik contains it.
    mark: String,
    client: AuthentikClient,
    /// Providers of other types the test made by hand, deleted at its end in contract mode.
    other_providers: Mutex<Vec<i64>>,
    /// Contract mode's turn, held until the test's objects are removed (fields drop after
    /// `Drop::drop`).
    _turn: Option<tokio::sync::MutexGuard<'static, ()>>,
}

impl std::fmt::Debug for TestAuthentik {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestAuthentik")
            .field("base_url", &self.base_url())
            .field("mark", &self.mark)
            .finish_non_exhaustive()
    }
}

impl TestAuthentik {
    /// The external authentik in contract mode, else a double configured by `double`.
    /// `mark`: what every name this test makes in authentik contains.
    pub async fn start(mark: &str, double: DoubleConfig) -> Self {
        match external() {
            Some(external) => {
                let mut authentik = Self::with_backend(mark, Backend::External(external));
                authentik._turn = Some(CONTRACT_TURN.lock().await);
                authentik
            }
            None => Self::double(mark, double).await,
        }
    }

    /// Always the double, for tests that need it whatever the run's mode.
    pub async fn double(mark: &str, double: DoubleConfig) -> Self {
        let handle = AuthentikDouble::start(double).await.expect("double starts");
        Self::with_backend(mark, Backend::Double(handle))
    }

    fn with_backend(mark: &str, backend: Backend) -> Self {
        let (base_url, token) = match &backend {
            Backend::Double(double) => (double.base_url(), double.token().to_owned()),
            Backend::External(external) => (external.base_url.clone(), external.token.clone()),
        };
        let client = AuthentikClient::new(ClientConfig::new(base_url, ApiToken::new(token)))
            .expect("authentik client");
        Self {
            backend,
            mark: mark.to_owned(),
            client,
            other_providers: Mutex::new(Vec::new()),
            _turn: None,
        }
    }

    /// The double, when this test runs against one.
    pub fn as_double(&self) -> Option<&DoubleHandle> {
        match &self.backend {
            Backend::Double(double) => Some(double),
            Backend::External(_) => None,
        }
    }

    /// The double; for tests that returned early on [`skip_in_contract_mode`].
    pub fn expect_double(&self) -> &DoubleHandle {
        self.as_double().expect(
            "this test reads or changes the double's state: call skip_in_contract_mode first",
        )
    }

    /// Base URL (`AUTHENTIK_HOST` for the controllers and the CLI).
    pub fn base_url(&self) -> String {
        match &self.backend {
            Backend::Double(double) => double.base_url(),
            Backend::External(external) => external.base_url.clone(),
        }
    }

    /// The API token (`AUTHENTIK_TOKEN`).
    pub fn token(&self) -> &str {
        match &self.backend {
            Backend::Double(double) => double.token(),
            Backend::External(external) => &external.token,
        }
    }

    /// What every name this test makes in authentik contains.
    pub fn mark(&self) -> &str {
        &self.mark
    }

    /// A client acting as a person with the token (another admin, a hand edit).
    pub fn client(&self) -> &AuthentikClient {
        &self.client
    }

    // ---- reading, through the public API

    /// The proxy providers named exactly `name` (more than one would be a duplicate).
    pub async fn providers_named(&self, name: &str) -> Vec<ProxyProvider> {
        let all = self.client.list_proxy_providers().await;
        all.expect("list proxy providers")
            .into_iter()
            .filter(|p| p.name == name)
            .collect()
    }

    /// The proxy provider named exactly `name`.
    pub async fn provider_named(&self, name: &str) -> Option<ProxyProvider> {
        self.providers_named(name).await.into_iter().next()
    }

    /// A proxy provider by pk (`None`: it does not exist).
    pub async fn provider(&self, pk: i64) -> Option<ProxyProvider> {
        not_found_as_none(self.client.get_proxy_provider(pk).await).expect("get proxy provider")
    }

    /// The applications whose provider is `pk`.
    pub async fn applications_of(&self, pk: i64) -> Vec<Application> {
        let all = self.client.list_applications().await;
        all.expect("list applications")
            .into_iter()
            .filter(|a| a.provider == Some(pk))
            .collect()
    }

    /// An application by slug.
    pub async fn application(&self, slug: &str) -> Option<Application> {
        not_found_as_none(self.client.get_application(slug).await).expect("get application")
    }

    /// The embedded outpost (authentik's own, which the controller uses by default).
    pub async fn embedded_outpost(&self) -> Outpost {
        let found = self.client.find_embedded_outpost().await;
        found.expect("read outposts").expect("an embedded outpost")
    }

    /// The embedded outpost's providers.
    pub async fn embedded_outpost_providers(&self) -> Vec<i64> {
        self.embedded_outpost().await.providers
    }

    /// Changes the embedded outpost's provider list as another admin would; a read-modify-write
    /// that touches no pk but those `change` adds or removes.
    pub async fn change_embedded_outpost(&self, change: impl FnOnce(&mut Vec<i64>)) {
        let outpost = self.embedded_outpost().await;
        let mut providers = outpost.providers.clone();
        change(&mut providers);
        self.client
            .set_outpost_providers(&outpost.pk, &providers)
            .await
            .expect("outpost written");
    }

    /// A flow's pk by slug.
    pub async fn flow_pk(&self, slug: &str) -> String {
        let flow = self.client.get_flow(slug).await;
        flow.unwrap_or_else(|e| panic!("flow {slug}: {e}")).pk
    }

    // ---- writing as a person would

    /// A forward-auth provider request as a person would make it in authentik's UI.
    pub async fn provider_request(&self, name: &str, host: &str) -> ProxyProviderRequest {
        let mut request = ProxyProviderRequest::new(
            name,
            self.flow_pk("default-provider-authorization-implicit-consent")
                .await,
            self.flow_pk("default-provider-invalidation-flow").await,
            host,
        );
        request.mode = ProxyMode::ForwardSingle;
        request
    }

    /// Creates a proxy provider by hand. `name` must carry the test's mark, so the end of the
    /// test removes it.
    pub async fn create_proxy_provider(&self, name: &str, host: &str) -> ProxyProvider {
        self.assert_marked(name);
        let request = self.provider_request(name, host).await;
        self.client
            .create_proxy_provider(&request)
            .await
            .expect("a person creates a proxy provider")
    }

    /// Creates an OAuth2 provider named `name` (a provider of another type); returns its pk.
    pub async fn create_oauth2_provider(&self, name: &str) -> i64 {
        self.assert_marked(name);
        let body = json!({
            "name": name,
            "authorization_flow": self.flow_pk("default-provider-authorization-implicit-consent").await,
            "invalidation_flow": self.flow_pk("default-provider-invalidation-flow").await,
        });
        let response = reqwest::Client::new()
            .post(format!("{}/api/v3/providers/oauth2/", self.base_url()))
            .bearer_auth(self.token())
            .json(&body)
            .send()
            .await
            .expect("POST /providers/oauth2/");
        let status = response.status();
        let created: serde_json::Value = response.json().await.expect("a JSON answer");
        assert!(status.is_success(), "OAuth2 provider: {status} {created}");
        let pk = created["pk"].as_i64().expect("pk");
        self.other_providers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(pk);
        pk
    }

    fn assert_marked(&self, name: &str) {
        assert!(
            name.contains(&self.mark),
            "{name:?} must contain the test's mark {:?} to be cleaned up",
            self.mark
        );
    }
}

impl Drop for TestAuthentik {
    fn drop(&mut self) {
        let Backend::External(external) = &self.backend else {
            return;
        };
        let (external, mark) = (external.clone(), self.mark.clone());
        let sweep_mark = mark.clone();
        let others = std::mem::take(
            &mut *self
                .other_providers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        // Drop cannot await, and may run while a panic unwinds the test's runtime: clean up
        // from a helper thread with its own runtime and client.
        let outcome = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(remove_marked(&external, &sweep_mark, &others))
        })
        .join();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                eprintln!(
                    "harness: could not remove this test's authentik objects ({mark}): {error}"
                );
            }
            Err(_) => {
                eprintln!("harness: removing this test's authentik objects ({mark}) panicked")
            }
        }
    }
}

/// Deletes the applications and proxy providers whose name carries `mark` (after taking those
/// providers out of the embedded outpost), and the providers of other types in `others`.
async fn remove_marked(external: &External, mark: &str, others: &[i64]) -> Result<(), String> {
    let client = AuthentikClient::new(ClientConfig::new(
        external.base_url.clone(),
        ApiToken::new(external.token.clone()),
    ))
    .map_err(|e| e.to_string())?;
    let providers: Vec<i64> = client
        .list_proxy_providers()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|p| p.name.contains(mark))
        .map(|p| p.pk)
        .collect();
    if let Some(outpost) = client
        .find_embedded_outpost()
        .await
        .map_err(|e| e.to_string())?
    {
        let kept: Vec<i64> = outpost
            .providers
            .iter()
            .copied()
            .filter(|pk| !providers.contains(pk))
            .collect();
        if kept.len() != outpost.providers.len() {
            client
                .set_outpost_providers(&outpost.pk, &kept)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    let applications = client
        .list_applications()
        .await
        .map_err(|e| e.to_string())?;
    for application in applications.iter().filter(|a| a.slug.contains(mark)) {
        not_found_as_none(client.delete_application(&application.slug).await)
            .map_err(|e| e.to_string())?;
    }
    for pk in providers {
        not_found_as_none(client.delete_proxy_provider(pk).await).map_err(|e| e.to_string())?;
    }
    let http = reqwest::Client::new();
    for pk in others {
        http.delete(format!(
            "{}/api/v3/providers/oauth2/{pk}/",
            external.base_url
        ))
        .bearer_auth(&external.token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

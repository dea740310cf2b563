//! The client handle and the one request path every endpoint goes through.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;
use url::Url;

use crate::config::{ClientConfig, normalise_base_url};
use crate::error::{Error, parse_retry_after};
use crate::metrics::{record_request, record_retried_outcome, record_retry};
use crate::models::Paginated;
use crate::retry::RetryPolicy;
use crate::token::ApiToken;

/// Page size for list calls: authentik's default and the documented safe maximum.
const PAGE_SIZE: &str = "100";

/// A runaway-pagination guard: 1000 pages of 100 are far beyond any real installation.
const MAX_PAGES: u32 = 1000;

/// Connecting should never take long; a slow connect is a dead endpoint.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An async client for the authentik API.
///
/// Cheap to clone: clones share one connection pool. `Debug` shows the base URL and the
/// settings, never the token.
#[derive(Clone)]
pub struct AuthentikClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    auth: HeaderValue,
    token: ApiToken,
    timeout: Duration,
    outpost_write_timeout: Duration,
    retry: RetryPolicy,
}

impl fmt::Debug for AuthentikClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthentikClient")
            .field("base_url", &self.inner.base.as_str())
            .field("token", &self.inner.token)
            .field("request_timeout", &self.inner.timeout)
            .field("outpost_write_timeout", &self.inner.outpost_write_timeout)
            .field("retry", &self.inner.retry)
            .finish()
    }
}

/// One API call: an endpoint template (relative to `/api/v3`, e.g. `/providers/proxy/{id}/`)
/// and the value of its `{id}`, if any. The template is the metrics label; the filled-in path
/// is what is requested and what errors show.
pub(crate) struct Call<'a> {
    method: Method,
    template: &'static str,
    id: Option<&'a str>,
    query: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    slow: bool,
}

impl<'a> Call<'a> {
    pub(crate) fn new(method: Method, template: &'static str) -> Self {
        Self {
            method,
            template,
            id: None,
            query: Vec::new(),
            body: None,
            slow: false,
        }
    }

    pub(crate) fn get(template: &'static str) -> Self {
        Self::new(Method::GET, template)
    }

    /// Fills the template's `{id}`.
    pub(crate) fn id(mut self, id: &'a str) -> Self {
        self.id = Some(id);
        self
    }

    pub(crate) fn query(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.query.push((name, value.into()));
        self
    }

    /// A JSON body; a body that does not encode is an [`Error::InvalidRequest`].
    pub(crate) fn json(mut self, body: &impl Serialize) -> Result<Self, Error> {
        let encoded = serde_json::to_vec(body).map_err(|e| Error::InvalidRequest {
            endpoint: self.label(),
            reason: format!("body does not encode: {e}"),
        })?;
        self.body = Some(encoded);
        Ok(self)
    }

    /// Marks a call known to be slow (outpost writes): it gets the outpost write timeout.
    pub(crate) fn slow(mut self) -> Self {
        self.slow = true;
        self
    }

    /// `"<METHOD> <template>"`, also the `operation` label of the retry metrics (prefixed).
    fn label(&self) -> String {
        format!("{} {}", self.method, self.template)
    }
}

/// A successful response: status and body.
pub(crate) struct Response {
    status: StatusCode,
    body: Vec<u8>,
}

impl AuthentikClient {
    /// Builds a client. Fails on an unusable base URL or an empty or non-header-safe token;
    /// it does not contact the server (use [`current_user`](Self::current_user) for that).
    pub fn new(config: ClientConfig) -> Result<Self, Error> {
        let base = normalise_base_url(&config.base_url)?;
        if config.token.is_empty() {
            return Err(Error::Config {
                reason: "the API token is empty".to_owned(),
            });
        }
        let mut auth =
            HeaderValue::try_from(format!("Bearer {}", config.token.expose())).map_err(|_| {
                Error::Config {
                    reason: "the API token contains characters not allowed in an HTTP header"
                        .to_owned(),
                }
            })?;
        // Keeps the header out of any Debug output of reqwest/hyper internals.
        auth.set_sensitive(true);

        // reqwest is built with `rustls-no-provider`, so rustls needs a process-wide crypto
        // provider before the first TLS client is built; ring is the one provider in this
        // build (aws-lc-rs is deliberately absent). Installing is idempotent: an error only
        // means a provider (the binary's own, or ours from an earlier client) is already set.
        let _ = rustls::crypto::ring::default_provider().install_default();

        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(MAX_CONNECT_TIMEOUT))
            .pool_idle_timeout(config.idle_connection_timeout)
            // A redirect would be a wrong base URL; following it could turn a POST into a
            // GET. Surfacing it as an error is clearer.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "gitops-lifecycle-management/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| Error::Config {
                reason: format!("cannot build the HTTP client: {e}"),
            })?;

        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                auth,
                token: config.token,
                timeout: config.request_timeout,
                outpost_write_timeout: config.outpost_write_timeout,
                retry: config.retry,
            }),
        })
    }

    /// The normalised API root, ending in `/api/v3/`.
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// Sends a call and decodes its JSON response.
    pub(crate) async fn send_json<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, Error> {
        let label = call.label();
        let response = self.send(call).await?;
        serde_json::from_slice(&response.body).map_err(|e| {
            Error::decode(
                label,
                response.status,
                &e,
                &response.body,
                &self.inner.token,
            )
        })
    }

    /// Fetches every page of a list call (`page_size=100`) and concatenates the results.
    pub(crate) async fn list_all<T: DeserializeOwned>(
        &self,
        call: Call<'_>,
    ) -> Result<Vec<T>, Error> {
        let mut items = Vec::new();
        let mut page: u32 = 1;
        loop {
            let this_page = Call {
                query: call
                    .query
                    .iter()
                    .cloned()
                    .chain([
                        ("page_size", PAGE_SIZE.to_owned()),
                        ("page", page.to_string()),
                    ])
                    .collect(),
                ..Call::get(call.template)
            };
            let response: Paginated<T> = self.send_json(this_page).await?;
            items.extend(response.results);
            match response.pagination.next_page() {
                None => return Ok(items),
                // Page numbers must move forward, or a misbehaving server would loop us forever.
                Some(next) if next > page && next <= MAX_PAGES => page = next,
                Some(next) => {
                    return Err(Error::Decode {
                        endpoint: call.label(),
                        status: 200,
                        reason: format!("pagination went from page {page} to page {next}"),
                        body_prefix: String::new(),
                    });
                }
            }
        }
    }

    /// The first item of a filtered list that `matches`. List filters such as `name__iexact`
    /// or `search` are looser than the lookup the caller means, so the exact test is ours.
    pub(crate) async fn find_first<T: DeserializeOwned>(
        &self,
        call: Call<'_>,
        matches: impl Fn(&T) -> bool,
    ) -> Result<Option<T>, Error> {
        let items: Vec<T> = self.list_all(call).await?;
        Ok(items.into_iter().find(|item| matches(item)))
    }

    /// Sends a call, retrying it under the [`RetryPolicy`] when that is safe.
    pub(crate) async fn send(&self, call: Call<'_>) -> Result<Response, Error> {
        let url = self.url(&call)?;
        // Errors show the path below the API root, ids included: `GET /providers/proxy/12/`.
        let path = url.path();
        let relative = path.strip_prefix(self.inner.base.path()).unwrap_or(path);
        let endpoint = format!("{} /{relative}", call.method);
        let operation = format!("authentik {}", call.label());
        let started = Instant::now();
        let mut attempt: u32 = 1;
        loop {
            let result = self.attempt(&call, &url, &endpoint, attempt).await;
            let err = match result {
                Ok(response) => {
                    if attempt > 1 {
                        record_retried_outcome(&operation, true, started.elapsed());
                    }
                    return Ok(response);
                }
                // A retried DELETE that meets 404 is done: the earlier attempt deleted the
                // object and its response was lost.
                Err(err) if call.method == Method::DELETE && attempt > 1 && err.is_not_found() => {
                    record_retried_outcome(&operation, true, started.elapsed());
                    return Ok(Response {
                        status: StatusCode::NO_CONTENT,
                        body: Vec::new(),
                    });
                }
                Err(err) => err,
            };
            let Some(delay) =
                self.inner
                    .retry
                    .delay_before_retry(&call.method, attempt, started.elapsed(), &err)
            else {
                if attempt > 1 {
                    record_retried_outcome(&operation, false, started.elapsed());
                }
                return Err(err);
            };
            tracing::debug!(
                endpoint = call.template,
                method = %call.method,
                attempt,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                error = %err,
                "retrying authentik request"
            );
            record_retry(&operation);
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One HTTP exchange, measured and traced.
    async fn attempt(
        &self,
        call: &Call<'_>,
        url: &Url,
        endpoint: &str,
        attempt: u32,
    ) -> Result<Response, Error> {
        let span = tracing::debug_span!(
            "authentik_request",
            method = %call.method,
            endpoint = call.template,
            attempt,
            status = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        let started = Instant::now();
        let (status, result) = self
            .exchange(call, url, endpoint)
            .instrument(span.clone())
            .await;
        let duration = started.elapsed();
        let status = status.map(|s| s.as_u16());
        record_request(call.template, &call.method, status, duration);
        span.record(
            "duration_ms",
            u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        );
        span.record(
            "status",
            status.map_or_else(|| "error".to_owned(), |s| s.to_string()),
        );
        span.in_scope(|| tracing::debug!("authentik request finished"));
        result
    }

    /// Sends the request and reads the response; the status is `None` when none arrived.
    async fn exchange(
        &self,
        call: &Call<'_>,
        url: &Url,
        endpoint: &str,
    ) -> (Option<StatusCode>, Result<Response, Error>) {
        let inner = &self.inner;
        let timeout = if call.slow {
            inner.outpost_write_timeout
        } else {
            inner.timeout
        };
        let transport = |e: reqwest::Error| Error::from_transport(endpoint.to_owned(), &e, timeout);
        let mut request = inner
            .http
            .request(call.method.clone(), url.clone())
            .timeout(timeout)
            .header(AUTHORIZATION, inner.auth.clone())
            .header(ACCEPT, "application/json");
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return (None, Err(transport(e))),
        };
        let status = response.status();
        let retry_after = parse_retry_after(response.headers().get(RETRY_AFTER));
        // The timeout covers reading the body too; a failure here is transient like any other.
        let body = match response.bytes().await {
            Ok(body) => body.to_vec(),
            Err(e) => return (Some(status), Err(transport(e))),
        };
        let result = if status.is_success() {
            Ok(Response { status, body })
        } else {
            Err(Error::from_response(
                endpoint.to_owned(),
                status,
                retry_after,
                &body,
                &inner.token,
            ))
        };
        (Some(status), result)
    }

    /// The call's URL below the API root: template segments with `{id}` filled in and
    /// percent-encoded, a trailing `/`, and the query.
    fn url(&self, call: &Call<'_>) -> Result<Url, Error> {
        let invalid = |reason: &str| Error::InvalidRequest {
            endpoint: call.label(),
            reason: reason.to_owned(),
        };
        let mut url = self.inner.base.clone();
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|()| invalid("the base URL cannot take a path"))?;
            segments.pop_if_empty();
            for segment in call.template.split('/').filter(|s| !s.is_empty()) {
                if segment == "{id}" {
                    match call.id {
                        Some(id) if !id.is_empty() => segments.push(id),
                        _ => return Err(invalid("the object id is empty")),
                    };
                } else {
                    segments.push(segment);
                }
            }
            segments.push("");
        }
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&call.query);
        }
        Ok(url)
    }
}

//! The client against an in-process HTTP server with canned responses: error mapping, retry
//! rules, pagination, request shapes, metrics and secret hygiene.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use gitops_authentik::{
    ApiToken, AuthentikClient, ClientConfig, Error, ErrorCategory, ProxyProviderRequest,
    RetryPolicy, metric_names,
};
use serde_json::{Value, json};

const SECRET: &str = "tok-RECOGNISABLE-5ecret-0123456789";

// --- a canned-response server ---------------------------------------------------------

#[derive(Clone)]
struct Canned {
    status: u16,
    body: String,
    headers: Vec<(&'static str, String)>,
    delay: Duration,
}

fn canned(status: u16, body: impl Into<String>) -> Canned {
    Canned {
        status,
        body: body.into(),
        headers: Vec::new(),
        delay: Duration::ZERO,
    }
}

fn json_reply(status: u16, body: &Value) -> Canned {
    canned(status, body.to_string())
}

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    authorization: String,
    body: String,
}

struct Shared {
    /// Answers in order; the last one repeats.
    replies: Mutex<VecDeque<Canned>>,
    seen: Mutex<Vec<Seen>>,
}

struct Server {
    base_url: String,
    shared: Arc<Shared>,
}

impl Server {
    async fn start(replies: Vec<Canned>) -> Self {
        let shared = Arc::new(Shared {
            replies: Mutex::new(replies.into()),
            seen: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            base_url: format!("http://{addr}"),
            shared,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().expect("lock").clone()
    }

    fn client(&self, retry: RetryPolicy) -> AuthentikClient {
        client_for(&self.base_url, retry, Duration::from_secs(5))
    }
}

async fn answer(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("request body");
    shared.seen.lock().expect("lock").push(Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        authorization: parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let reply = {
        let mut replies = shared.replies.lock().expect("lock");
        if replies.len() > 1 {
            replies.pop_front()
        } else {
            replies.front().cloned()
        }
    }
    .expect("at least one canned reply");
    tokio::time::sleep(reply.delay).await;
    let mut response = Response::builder()
        .status(reply.status)
        .header("content-type", "application/json");
    for (name, value) in reply.headers {
        response = response.header(name, value);
    }
    response.body(Body::from(reply.body)).expect("response")
}

fn client_for(base_url: &str, retry: RetryPolicy, timeout: Duration) -> AuthentikClient {
    let config = ClientConfig {
        request_timeout: timeout,
        retry,
        ..ClientConfig::new(base_url, ApiToken::new(SECRET))
    };
    AuthentikClient::new(config).expect("client builds")
}

/// Fast retries so tests do not sleep for long.
fn quick_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        max_elapsed: Duration::from_secs(10),
        max_retry_after: Duration::from_secs(5),
    }
}

fn provider_json(pk: i64, name: &str) -> Value {
    json!({
        "pk": pk, "name": name, "authorization_flow": "a", "invalidation_flow": "i",
        "external_host": "https://x.example.com", "mode": "forward_single",
        "assigned_application_slug": null, "outpost_set": []
    })
}

fn page(results: Vec<Value>, next: u32) -> Value {
    json!({
        "pagination": {"next": next, "previous": 0, "count": 0, "current": 1,
                       "total_pages": 1, "start_index": 0, "end_index": 0},
        "results": results, "autocomplete": {}
    })
}

// --- error mapping ----------------------------------------------------------------------

#[tokio::test]
async fn validation_errors_keep_the_field_keyed_body() {
    let server = Server::start(vec![json_reply(
        400,
        &json!({"name": ["provider with this name already exists."],
                "non_field_errors": ["Internal host cannot be empty when forward auth is disabled."]}),
    )])
    .await;
    let client = server.client(quick_retries(3));
    let request = ProxyProviderRequest::new("grafana", "a", "i", "https://g.example.com");
    let err = client
        .create_proxy_provider(&request)
        .await
        .expect_err("400");
    assert_eq!(err.category(), ErrorCategory::Invalid);
    assert!(err.is_field_conflict("name"), "{err:?}");
    assert!(err.field_errors("non_field_errors").is_some(), "{err:?}");
    let Error::Validation {
        status, endpoint, ..
    } = &err
    else {
        panic!("expected Validation, got {err:?}");
    };
    assert_eq!(*status, 400);
    assert_eq!(endpoint, "POST /providers/proxy/");
    assert_eq!(server.seen().len(), 1, "a 400 is never retried");
}

#[tokio::test]
async fn statuses_map_to_error_categories() {
    let cases = [
        (401, ErrorCategory::Unauthorized),
        (403, ErrorCategory::Unauthorized),
        (404, ErrorCategory::NotFound),
        (429, ErrorCategory::RateLimited),
        (500, ErrorCategory::Transient),
        (502, ErrorCategory::Transient),
        (503, ErrorCategory::Transient),
        (405, ErrorCategory::Permanent),
    ];
    for (status, category) in cases {
        let server = Server::start(vec![json_reply(status, &json!({"detail": "x"}))]).await;
        let err = server
            .client(RetryPolicy::none())
            .get_proxy_provider(12)
            .await
            .expect_err("error status");
        assert_eq!(err.category(), category, "HTTP {status}: {err:?}");
        assert!(
            err.to_string().contains("GET /providers/proxy/12/"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn forbidden_points_at_the_token_without_revealing_it() {
    let server = Server::start(vec![json_reply(
        403,
        &json!({"detail": "Token invalid/expired"}),
    )])
    .await;
    let err = server
        .client(quick_retries(3))
        .current_user()
        .await
        .expect_err("403");
    let Error::Unauthorized { status, detail, .. } = &err else {
        panic!("expected Unauthorized, got {err:?}");
    };
    assert_eq!((*status, detail.as_str()), (403, "Token invalid/expired"));
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("API token"), "{shown}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert_eq!(server.seen().len(), 1, "a 403 is never retried");
}

#[tokio::test]
async fn rate_limits_carry_retry_after_when_sent() {
    let mut with_header = json_reply(429, &json!({"detail": "Request was throttled."}));
    with_header.headers.push(("retry-after", "17".to_owned()));
    let server = Server::start(vec![with_header]).await;
    let err = server
        .client(RetryPolicy::none())
        .version()
        .await
        .expect_err("429");
    assert_eq!(err.category(), ErrorCategory::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(17)));

    let server = Server::start(vec![canned(429, "{}")]).await;
    let err = server
        .client(RetryPolicy::none())
        .version()
        .await
        .expect_err("429");
    assert!(
        matches!(
            err,
            Error::RateLimited {
                retry_after: None,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn timeouts_are_transient() {
    let mut slow = json_reply(200, &json!({"version_current": "2025.12.4"}));
    slow.delay = Duration::from_secs(3);
    let server = Server::start(vec![slow]).await;
    let client = client_for(
        &server.base_url,
        RetryPolicy::none(),
        Duration::from_millis(200),
    );
    let started = Instant::now();
    let err = client.version().await.expect_err("timeout");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let Error::Transient { reason, .. } = &err else {
        panic!("expected Transient, got {err:?}");
    };
    assert!(reason.contains("timed out"), "{reason}");
}

#[tokio::test]
async fn outpost_writes_have_their_own_longer_timeout() {
    let outpost = json!({"pk": "6f8d2c1e-0000-4000-8000-000000000001", "name": "embedded",
        "providers": [1], "managed": "goauthentik.io/outposts/embedded", "type": "proxy"});
    let mut slow = json_reply(200, &outpost);
    slow.delay = Duration::from_millis(600);
    let server = Server::start(vec![slow]).await;
    let config = ClientConfig {
        request_timeout: Duration::from_millis(200),
        outpost_write_timeout: Duration::from_secs(5),
        retry: RetryPolicy::none(),
        ..ClientConfig::new(&server.base_url, ApiToken::new(SECRET))
    };
    let client = AuthentikClient::new(config).expect("client builds");
    let uuid = "6f8d2c1e-0000-4000-8000-000000000001";
    let written = client.set_outpost_providers(uuid, &[1]).await;
    assert!(written.is_ok(), "{written:?}");
    let err = client
        .get_outpost(uuid)
        .await
        .expect_err("a read keeps the short timeout");
    assert!(err.to_string().contains("timed out after 0.2s"), "{err}");
}

#[tokio::test]
async fn refused_connections_are_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let client = client_for(
        &format!("http://{addr}"),
        RetryPolicy::none(),
        Duration::from_secs(2),
    );
    let err = client.version().await.expect_err("refused");
    let Error::Transient { reason, .. } = &err else {
        panic!("expected Transient, got {err:?}");
    };
    assert!(reason.contains("connection"), "{reason}");
}

#[tokio::test]
async fn invalid_json_is_a_decode_error_with_a_redacted_body_prefix() {
    let server = Server::start(vec![canned(200, format!("<html>oops {SECRET}</html>"))]).await;
    let err = server
        .client(quick_retries(3))
        .version()
        .await
        .expect_err("not JSON");
    assert_eq!(err.category(), ErrorCategory::Permanent);
    let Error::Decode {
        body_prefix,
        status,
        ..
    } = &err
    else {
        panic!("expected Decode, got {err:?}");
    };
    assert_eq!(*status, 200);
    assert!(body_prefix.starts_with("<html>oops"), "{body_prefix}");
    assert!(!format!("{err} {err:?}").contains(SECRET));
    assert_eq!(server.seen().len(), 1, "a decode error is never retried");
}

#[tokio::test]
async fn recorded_error_responses_map_as_expected() {
    let transcripts: Vec<Value> = serde_json::from_str(include_str!(
        "fixtures/authentik-transcripts-2025.12.4.json"
    ))
    .expect("fixture is JSON");
    let errors: Vec<&Value> = transcripts
        .iter()
        .filter(|e| e["response"]["status"].as_u64().is_some_and(|s| s >= 400))
        .collect();
    assert!(
        errors.len() >= 15,
        "fixture has {} error exchanges",
        errors.len()
    );
    for entry in errors {
        let status =
            u16::try_from(entry["response"]["status"].as_u64().expect("status")).expect("u16");
        let body = &entry["response"]["body"];
        let server = Server::start(vec![json_reply(status, body)]).await;
        let err = server
            .client(RetryPolicy::none())
            .version()
            .await
            .expect_err("error status");
        let expected = match status {
            400 => ErrorCategory::Invalid,
            403 => ErrorCategory::Unauthorized,
            404 => ErrorCategory::NotFound,
            other => panic!("unexpected status {other} in fixture"),
        };
        assert_eq!(err.category(), expected, "{}", entry["title"]);
        if status == 400 {
            for field in body.as_object().expect("object body").keys() {
                assert!(err.is_field_conflict(field), "{}: {field}", entry["title"]);
            }
        }
    }
}

// --- retry rules --------------------------------------------------------------------------

#[tokio::test]
async fn get_is_retried_after_503_until_it_succeeds() {
    let server = Server::start(vec![
        canned(503, ""),
        canned(503, ""),
        json_reply(200, &provider_json(12, "p")),
    ])
    .await;
    let provider = server
        .client(quick_retries(4))
        .get_proxy_provider(12)
        .await
        .expect("third attempt succeeds");
    assert_eq!(provider.pk, 12);
    assert_eq!(server.seen().len(), 3);
}

/// Issue 16 (5a): the empty-bodied 405 a real authentik gave outpost PATCHes on kept-alive
/// connections it was closing is transient, so the PATCH is repeated, not failed.
#[tokio::test]
async fn an_outpost_patch_answered_405_without_a_body_is_retried() {
    let uuid = "6f8d2c1e-0000-4000-8000-000000000001";
    let outpost = json!({"pk": uuid, "name": "embedded", "providers": [1],
        "managed": "goauthentik.io/outposts/embedded", "type": "proxy"});
    let server = Server::start(vec![canned(405, ""), json_reply(200, &outpost)]).await;
    let written = server
        .client(quick_retries(3))
        .set_outpost_providers(uuid, &[1])
        .await;
    assert!(written.is_ok(), "{written:?}");
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn post_is_not_retried_after_503() {
    let server = Server::start(vec![
        canned(503, ""),
        json_reply(201, &provider_json(12, "p")),
    ])
    .await;
    let request = ProxyProviderRequest::new("p", "a", "i", "https://x.example.com");
    let err = server
        .client(quick_retries(4))
        .create_proxy_provider(&request)
        .await
        .expect_err("503 surfaces");
    assert_eq!(err.category(), ErrorCategory::Transient);
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn retry_after_is_honoured_before_retrying() {
    let mut throttled = canned(429, r#"{"detail":"Request was throttled."}"#);
    throttled.headers.push(("retry-after", "1".to_owned()));
    let server = Server::start(vec![
        throttled,
        json_reply(200, &json!({"version_current": "2025.12.4"})),
    ])
    .await;
    let started = Instant::now();
    let version = server
        .client(quick_retries(3))
        .version()
        .await
        .expect("retried");
    assert_eq!(version.version_current, "2025.12.4");
    // The backoff alone is at most 20 ms; only Retry-After explains a 1 s wait.
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn retry_after_beyond_the_cap_ends_the_call() {
    let mut throttled = canned(429, "{}");
    throttled.headers.push(("retry-after", "60".to_owned()));
    let server = Server::start(vec![throttled]).await;
    let err = server
        .client(quick_retries(3))
        .version()
        .await
        .expect_err("429");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(60)));
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn retries_stop_at_the_attempt_cap() {
    let server = Server::start(vec![canned(502, "bad gateway")]).await;
    let err = server
        .client(quick_retries(3))
        .list_proxy_providers()
        .await
        .expect_err("always 502");
    assert_eq!(err.category(), ErrorCategory::Transient);
    assert_eq!(server.seen().len(), 3);
}

#[tokio::test]
async fn a_retried_delete_that_meets_404_is_done() {
    let server = Server::start(vec![
        canned(503, ""),
        json_reply(404, &json!({"detail": "gone"})),
    ])
    .await;
    server
        .client(quick_retries(3))
        .delete_proxy_provider(12)
        .await
        .expect("the first attempt deleted it");
    assert_eq!(server.seen().len(), 2);

    let server = Server::start(vec![json_reply(404, &json!({"detail": "gone"}))]).await;
    let err = server
        .client(quick_retries(3))
        .delete_proxy_provider(12)
        .await
        .expect_err("a first-attempt 404 is reported");
    assert!(err.is_not_found());
}

// --- pagination and request shapes ---------------------------------------------------------

#[tokio::test]
async fn lists_follow_next_until_zero() {
    let server = Server::start(vec![
        json_reply(
            200,
            &page(vec![provider_json(1, "Grafana"), provider_json(2, "a")], 2),
        ),
        json_reply(200, &page(vec![provider_json(3, "b")], 3)),
        json_reply(200, &page(vec![provider_json(4, "grafana")], 0)),
    ])
    .await;
    let found = server
        .client(RetryPolicy::none())
        .find_proxy_provider_by_name("grafana")
        .await
        .expect("lists")
        .expect("exact match on page 3");
    assert_eq!(
        found.pk, 4,
        "case-sensitive exact match, not the iexact hit on page 1"
    );
    let seen = server.seen();
    let queries: Vec<&str> = seen.iter().map(|s| s.query.as_str()).collect();
    assert_eq!(
        queries,
        [
            "name__iexact=grafana&page_size=100&page=1",
            "name__iexact=grafana&page_size=100&page=2",
            "name__iexact=grafana&page_size=100&page=3",
        ]
    );
    assert!(seen.iter().all(|s| s.path == "/api/v3/providers/proxy/"));
}

/// authentik answers a filter it does not know with every object: whatever comes back, only
/// flows of the asked designation are used.
#[tokio::test]
async fn flows_of_another_designation_are_never_returned() {
    let flow = |slug: &str, designation: &str| json!({"pk": format!("uuid-{slug}"), "slug": slug, "name": slug, "designation": designation});
    let everything = page(
        vec![
            flow("b-authz", "authorization"),
            flow("a-logout", "invalidation"),
            flow("a-authz", "authorization"),
            flow("login", "authentication"),
        ],
        0,
    );
    let server = Server::start(vec![json_reply(200, &everything)]).await;
    let flows = server
        .client(RetryPolicy::none())
        .list_flows_by_designation(gitops_authentik::FlowDesignation::Authorization)
        .await
        .expect("list");
    let slugs: Vec<&str> = flows.iter().map(|f| f.slug.as_str()).collect();
    assert_eq!(slugs, ["a-authz", "b-authz"]);
    assert!(server.seen()[0].query.contains("designation=authorization"));
}

#[tokio::test]
async fn pagination_that_does_not_advance_is_an_error() {
    let server = Server::start(vec![json_reply(200, &page(vec![], 1))]).await;
    let err = server
        .client(RetryPolicy::none())
        .list_applications()
        .await
        .expect_err("next == current");
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn requests_carry_the_token_paths_and_bodies_the_api_expects() {
    let outpost = json!({"pk": "uuid-1", "name": "o", "type": "proxy", "providers": [12, 13],
                         "managed": null, "config": {"log_level": "info"}});
    let flow = json!({"pk": "f", "slug": "a/b c", "name": "F", "designation": "authorization"});
    let server = Server::start(vec![
        json_reply(200, &outpost),
        json_reply(200, &flow),
        json_reply(201, &provider_json(12, "p")),
    ])
    .await;
    // A base URL already ending in /api/v3 is not doubled.
    let client = client_for(
        &format!("{}/api/v3", server.base_url),
        RetryPolicy::none(),
        Duration::from_secs(5),
    );
    client
        .set_outpost_providers("uuid-1", &[12, 13])
        .await
        .expect("patched");
    client.get_flow("a/b c").await.expect("flow");
    let request = ProxyProviderRequest::new("p", "a", "i", "https://x.example.com");
    client
        .create_proxy_provider(&request)
        .await
        .expect("created");

    let seen = server.seen();
    assert!(
        seen.iter()
            .all(|s| s.authorization == format!("Bearer {SECRET}"))
    );
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("PATCH", "/api/v3/outposts/instances/uuid-1/")
    );
    let patch: Value = serde_json::from_str(&seen[0].body).expect("JSON body");
    assert_eq!(
        patch,
        json!({"providers": [12, 13]}),
        "only the providers list is sent"
    );
    // An id is one percent-encoded path segment, whatever it contains.
    assert_eq!(seen[1].path, "/api/v3/flows/instances/a%2Fb%20c/");
    let create: Value = serde_json::from_str(&seen[2].body).expect("JSON body");
    assert_eq!(create["invalidation_flow"], "i");
    assert!(create.get("property_mappings").is_none(), "{create}");
}

#[tokio::test]
async fn an_empty_id_is_refused_before_sending() {
    let server = Server::start(vec![json_reply(200, &page(vec![], 0))]).await;
    let err = server
        .client(RetryPolicy::none())
        .get_application("")
        .await
        .expect_err("empty slug");
    assert!(matches!(err, Error::InvalidRequest { .. }), "{err:?}");
    assert!(
        server.seen().is_empty(),
        "nothing may reach the list endpoint"
    );
}

// --- metrics ----------------------------------------------------------------------------

mod recorder {
    //! A minimal `metrics` recorder that remembers every registration and counter total.

    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use metrics::{
        Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
        SharedString, Unit,
    };

    /// `name{label=value,...}` → counter total, or number of histogram samples.
    #[derive(Default)]
    pub struct Captured(Mutex<BTreeMap<String, Arc<Cell>>>);

    #[derive(Default)]
    pub struct Cell(AtomicU64);

    impl CounterFn for Cell {
        fn increment(&self, value: u64) {
            self.0.fetch_add(value, Ordering::Relaxed);
        }
        fn absolute(&self, value: u64) {
            self.0.store(value, Ordering::Relaxed);
        }
    }

    impl HistogramFn for Cell {
        fn record(&self, _value: f64) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    impl Captured {
        fn cell(&self, key: &Key) -> Arc<Cell> {
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let id = format!("{}{{{}}}", key.name(), labels.join(","));
            self.0.lock().expect("lock").entry(id).or_default().clone()
        }

        pub fn snapshot(&self) -> BTreeMap<String, u64> {
            self.0
                .lock()
                .expect("lock")
                .iter()
                .map(|(k, v)| (k.clone(), v.0.load(Ordering::Relaxed)))
                .collect()
        }
    }

    impl Recorder for Captured {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(self.cell(key))
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::from_arc(self.cell(key))
        }
    }
}

// `#[tokio::test]` runs on one thread, so the thread-local recorder sees every emission.
#[tokio::test]
async fn metrics_use_endpoint_templates_and_count_retries() {
    let captured = recorder::Captured::default();
    let _guard = metrics::set_default_local_recorder(&captured);
    let server = Server::start(vec![
        canned(503, ""),
        json_reply(200, &provider_json(12, "p")),
    ])
    .await;
    server
        .client(quick_retries(3))
        .get_proxy_provider(12)
        .await
        .expect("second attempt succeeds");

    let got = captured.snapshot();
    let requests = metric_names::REQUESTS_TOTAL;
    let expected = [
        (
            format!("{requests}{{endpoint=/providers/proxy/{{id}}/,method=GET,status=503}}"),
            1,
        ),
        (
            format!("{requests}{{endpoint=/providers/proxy/{{id}}/,method=GET,status=200}}"),
            1,
        ),
        (
            format!(
                "{}{{endpoint=/providers/proxy/{{id}}/,method=GET}}",
                metric_names::REQUEST_DURATION_SECONDS
            ),
            2,
        ),
        (
            format!(
                "{}{{operation=authentik GET /providers/proxy/{{id}}/}}",
                metric_names::RETRY_ATTEMPTS_TOTAL
            ),
            1,
        ),
        (
            format!(
                "{}{{operation=authentik GET /providers/proxy/{{id}}/}}",
                metric_names::RETRY_SUCCESS_TOTAL
            ),
            1,
        ),
        (
            format!(
                "{}{{operation=authentik GET /providers/proxy/{{id}}/}}",
                metric_names::RETRY_DURATION_SECONDS
            ),
            1,
        ),
    ];
    for (key, count) in &expected {
        assert_eq!(got.get(key), Some(count), "{key} in {got:#?}");
    }
    assert_eq!(got.len(), expected.len(), "unexpected series: {got:#?}");
    assert!(
        got.keys().all(|k| !k.contains("12")),
        "an id leaked into a label: {got:#?}"
    );
}

#[tokio::test]
async fn metrics_count_failed_retries_and_transport_errors() {
    let captured = recorder::Captured::default();
    let _guard = metrics::set_default_local_recorder(&captured);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let client = client_for(
        &format!("http://{addr}"),
        quick_retries(2),
        Duration::from_secs(2),
    );
    client.version().await.expect_err("refused");

    let got = captured.snapshot();
    let key = |name: &str, labels: &str| format!("{name}{{{labels}}}");
    assert_eq!(
        got.get(&key(
            metric_names::REQUESTS_TOTAL,
            "endpoint=/admin/version/,method=GET,status=error"
        )),
        Some(&2),
        "{got:#?}"
    );
    let operation = "operation=authentik GET /admin/version/";
    assert_eq!(
        got.get(&key(metric_names::RETRY_FAILURE_TOTAL, operation)),
        Some(&1),
        "{got:#?}"
    );
    assert_eq!(
        got.get(&key(metric_names::RETRY_SUCCESS_TOTAL, operation)),
        None,
        "{got:#?}"
    );
}

// --- secrets ----------------------------------------------------------------------------

#[test]
fn token_config_and_client_never_show_the_token() {
    let token = ApiToken::new(SECRET);
    let config = ClientConfig::new("https://auth.example.com", token.clone());
    let client = AuthentikClient::new(config.clone()).expect("client builds");
    for shown in [
        format!("{token} {token:?}"),
        format!("{config:?} {config:#?}"),
        format!("{client:?} {client:#?}"),
    ] {
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(!shown.contains("5ecret"), "{shown}");
        assert!(shown.contains("ApiToken(***)"), "{shown}");
    }
}

#[test]
fn bad_configurations_are_refused_without_echoing_the_token() {
    let empty = AuthentikClient::new(ClientConfig::new(
        "https://a.example.com",
        ApiToken::new(" \n"),
    ));
    assert!(matches!(empty, Err(Error::Config { .. })), "{empty:?}");

    let bad_header = format!("{SECRET}\u{7f}x");
    let err = AuthentikClient::new(ClientConfig::new(
        "https://a.example.com",
        ApiToken::new(bad_header),
    ))
    .expect_err("control character");
    assert!(!format!("{err} {err:?}").contains(SECRET), "{err}");

    let err = AuthentikClient::new(ClientConfig::new("not a url", ApiToken::new(SECRET)))
        .expect_err("bad URL");
    assert_eq!(err.category(), ErrorCategory::Permanent);
}

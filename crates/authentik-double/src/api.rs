//! Routes under `/api/v3` and their handlers. Handlers only parse the request, call the
//! model under the state lock and wrap the result; the rules live in `model`.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Path, RawQuery, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::config::ApiVersion;
use crate::error::ApiError;
use crate::latency::OutpostWrite;
use crate::list::{Filter, ListSpec, Op, Query};
use crate::model::{Model, ProviderKind};
use crate::state::Shared;

type ApiResult = Result<Response, ApiError>;
type St = State<Arc<Shared>>;

fn ok(v: Value) -> ApiResult {
    Ok(axum::Json(v).into_response())
}

fn created(v: Value) -> ApiResult {
    Ok((StatusCode::CREATED, axum::Json(v)).into_response())
}

fn no_content() -> ApiResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A JSON request body; an empty body reads as `{}` (DRF: every required field missing).
fn body(bytes: &Bytes) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::Detail(StatusCode::BAD_REQUEST, format!("JSON parse error - {e}")))
}

/// Integer path ids that do not parse are simply "not found", as in DRF.
fn int_id(raw: &str, model: &'static str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound(model))
}

// ---------------------------------------------------------------- list specs

const PROXY_LIST: ListSpec = ListSpec {
    filters: &[
        Filter("name__iexact", "name", Op::IExact),
        Filter("external_host__iexact", "external_host", Op::IExact),
        Filter("internal_host__iexact", "internal_host", Op::IExact),
        Filter("mode__iexact", "mode", Op::IExact),
        Filter("cookie_domain__iexact", "cookie_domain", Op::IExact),
        Filter("skip_path_regex__iexact", "skip_path_regex", Op::IExact),
        Filter(
            "authorization_flow__slug__iexact",
            "_authorization_flow_slug",
            Op::IExact,
        ),
        Filter("certificate__kp_uuid__iexact", "certificate", Op::IExact),
        Filter("certificate__name__iexact", "_certificate_name", Op::IExact),
        Filter(
            "basic_auth_enabled__iexact",
            "basic_auth_enabled",
            Op::IExact,
        ),
        Filter(
            "basic_auth_user_attribute__iexact",
            "basic_auth_user_attribute",
            Op::IExact,
        ),
        Filter(
            "basic_auth_password_attribute__iexact",
            "basic_auth_password_attribute",
            Op::IExact,
        ),
        Filter(
            "internal_host_ssl_validation__iexact",
            "internal_host_ssl_validation",
            Op::IExact,
        ),
        Filter("property_mappings__iexact", "property_mappings", Op::AnyOf),
        Filter("application__isnull", "_application", Op::IsNull),
    ],
    search: &["name"],
    ordering: &["name", "pk"],
    default_ordering: &["name"],
};

const ALL_PROVIDERS_LIST: ListSpec = ListSpec {
    filters: &[Filter("application__isnull", "_application", Op::IsNull)],
    search: &["name", "assigned_application_name"],
    ordering: &["name", "pk"],
    default_ordering: &["pk"],
};

const OAUTH2_LIST: ListSpec = ListSpec {
    filters: &[
        Filter("name", "name", Op::Exact),
        Filter("client_id", "client_id", Op::Exact),
    ],
    search: &["name"],
    ordering: &["name", "pk"],
    default_ordering: &["name"],
};

const APPLICATION_LIST: ListSpec = ListSpec {
    filters: &[
        Filter("name", "name", Op::Exact),
        Filter("slug", "slug", Op::Exact),
        Filter("group", "group", Op::Exact),
        Filter("meta_description", "meta_description", Op::Exact),
        Filter("meta_launch_url", "meta_launch_url", Op::Exact),
        Filter("meta_publisher", "meta_publisher", Op::Exact),
    ],
    search: &[
        "name",
        "slug",
        "meta_launch_url",
        "meta_description",
        "meta_publisher",
        "group",
    ],
    ordering: &["name", "slug", "group"],
    default_ordering: &["name"],
};

const OUTPOST_LIST: ListSpec = ListSpec {
    filters: &[
        Filter("managed__iexact", "managed", Op::IExact),
        Filter("managed__icontains", "managed", Op::IContains),
        Filter("name__iexact", "name", Op::IExact),
        Filter("name__icontains", "name", Op::IContains),
        Filter("providers__isnull", "providers", Op::IsNull),
        Filter("providers_by_pk", "providers", Op::AnyOf),
        Filter(
            "service_connection__name__iexact",
            "_service_connection_name",
            Op::IExact,
        ),
        Filter(
            "service_connection__name__icontains",
            "_service_connection_name",
            Op::IContains,
        ),
    ],
    search: &["name", "_provider_names"],
    ordering: &["name"],
    default_ordering: &["name"],
};

const FLOW_LIST: ListSpec = ListSpec {
    filters: &[
        Filter("slug", "slug", Op::Exact),
        Filter("designation", "designation", Op::Exact),
        Filter("name", "name", Op::Exact),
        Filter("flow_uuid", "_flow_uuid", Op::Exact),
        Filter("denied_action", "denied_action", Op::Exact),
    ],
    search: &["slug", "name"],
    ordering: &["slug", "name", "designation"],
    default_ordering: &["slug"],
};

const GROUP_LIST: ListSpec = ListSpec {
    filters: &[
        Filter("name", "name", Op::Exact),
        Filter("is_superuser", "is_superuser", Op::Bool),
    ],
    search: &["name"],
    ordering: &["name"],
    default_ordering: &["name"],
};

const BINDING_LIST: ListSpec = ListSpec {
    filters: &[
        Filter("target", "target", Op::Exact),
        Filter("target_in", "target", Op::AnyOf),
        Filter("enabled", "enabled", Op::Bool),
        Filter("order", "order", Op::Exact),
        Filter("policy", "policy", Op::Exact),
        Filter("policy__isnull", "policy", Op::IsNull),
        Filter("timeout", "timeout", Op::Exact),
    ],
    search: &[],
    ordering: &["target", "order", "pk"],
    default_ordering: &["target", "order"],
};

// ---------------------------------------------------------------- routes

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route("/providers/proxy/", get(proxy_list).post(proxy_create))
        .route(
            "/providers/proxy/{id}/",
            get(proxy_get)
                .put(proxy_put)
                .patch(proxy_patch)
                .delete(proxy_delete),
        )
        .route("/providers/proxy/{id}/used_by/", get(proxy_used_by))
        .route("/providers/oauth2/", get(oauth2_list).post(oauth2_create))
        .route(
            "/providers/oauth2/{id}/",
            get(oauth2_get).delete(oauth2_delete),
        )
        .route("/providers/all/", get(all_providers_list))
        .route(
            "/providers/all/{id}/",
            get(any_provider_get).delete(any_provider_delete),
        )
        .route(
            "/core/applications/",
            get(application_list).post(application_create),
        )
        .route(
            "/core/applications/{slug}/",
            get(application_get)
                .put(application_put)
                .patch(application_patch)
                .delete(application_delete),
        )
        .route("/core/groups/", get(group_list).post(group_create))
        .route("/core/groups/{uuid}/", get(group_get).delete(group_delete))
        .route("/core/users/me/", get(users_me))
        .route(
            "/policies/bindings/",
            get(binding_list).post(binding_create),
        )
        .route(
            "/policies/bindings/{uuid}/",
            get(binding_get).delete(binding_delete),
        )
        .route(
            "/outposts/instances/",
            get(outpost_list).post(outpost_create),
        )
        .route(
            "/outposts/instances/{uuid}/",
            get(outpost_get)
                .put(outpost_put)
                .patch(outpost_patch)
                .delete(outpost_delete),
        )
        .route("/flows/instances/", get(flow_list))
        .route("/flows/instances/{slug}/", get(flow_get))
        .route("/admin/version/", get(version))
        .route("/root/config/", get(root_config))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            conform_response,
        ))
        .route_layer(middleware::from_fn_with_state(shared.clone(), authenticate))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(shared);
    Router::new().nest("/api/v3", api)
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::Detail(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("Method \"{method}\" not allowed."),
    )
}

/// Token check (API doc §1): 403, never 401; `/root/config/` also answers anonymously, but a
/// wrong token fails there too (DRF authenticates before permissions).
async fn authenticate(State(sh): St, req: Request, next: Next) -> Response {
    // Nesting strips `/api/v3` from the URI this middleware sees.
    let anonymous_ok = req.uri().path().ends_with("/root/config/");
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let failure = match header
        .as_deref()
        .map(str::trim)
        .and_then(|h| h.split_once(' ').or(Some((h, ""))))
    {
        None => Some("Authentication credentials were not provided."),
        Some((kind, _)) if !kind.eq_ignore_ascii_case("bearer") => {
            Some("Unsupported authentication type")
        }
        Some((_, cred)) if cred.trim().is_empty() => {
            Some("Authentication credentials were not provided.")
        }
        Some((_, cred)) if cred.trim() == sh.token => None,
        Some(_) => Some("Token invalid/expired"),
    };
    match failure {
        None => next.run(req).await,
        Some("Authentication credentials were not provided.") if anonymous_ok => {
            next.run(req).await
        }
        Some(detail) => ApiError::Detail(StatusCode::FORBIDDEN, detail.to_owned()).into_response(),
    }
}

/// Answers in the imitated release's response shapes (the handlers render the newest).
async fn conform_response(State(sh): St, route: MatchedPath, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_owned();
    let response = next.run(req).await;
    let template = route.as_str();
    let template = template.strip_prefix("/api/v3").unwrap_or(template);
    let model = match sh.version.response_model(&method, template) {
        Some(model) if response.status().is_success() && sh.version != ApiVersion::newest() => {
            model
        }
        _ => return response,
    };
    let (mut parts, body) = response.into_parts();
    let value = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(value) => value,
            Err(_) => return Response::from_parts(parts, Body::from(bytes)),
        },
        Err(e) => {
            return ApiError::Detail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
                .into_response();
        }
    };
    let conformed = serde_json::to_vec(&sh.version.conform(model, value)).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(conformed))
}

// ---------------------------------------------------------------- providers

async fn proxy_list(State(sh): St, RawQuery(q): RawQuery) -> ApiResult {
    let m = sh.model();
    let links = m.provider_links();
    let items = m
        .providers
        .values()
        .filter(|p| p.proxy().is_some())
        .map(|p| m.provider_list_item(p, true, &links))
        .collect();
    sh.list(items, q, &PROXY_LIST, None)
}

fn proxy_view(m: &Model, pk: i64) -> Result<Value, ApiError> {
    m.providers
        .get(&pk)
        .filter(|p| p.proxy().is_some())
        .map(|p| m.render_provider(p, &m.provider_links()))
        .ok_or(ApiError::NotFound("ProxyProvider"))
}

async fn proxy_create(State(sh): St, b: Bytes) -> ApiResult {
    let mut m = sh.model();
    let pk = m.write_proxy_provider(None, &body(&b)?, false)?;
    created(proxy_view(&m, pk)?)
}

async fn proxy_get(State(sh): St, Path(id): Path<String>) -> ApiResult {
    ok(proxy_view(&sh.model(), int_id(&id, "ProxyProvider")?)?)
}

fn proxy_write(sh: &Shared, id: &str, b: &Bytes, partial: bool) -> ApiResult {
    let mut m = sh.model();
    let pk = m.write_proxy_provider(Some(int_id(id, "ProxyProvider")?), &body(b)?, partial)?;
    ok(proxy_view(&m, pk)?)
}

async fn proxy_put(State(sh): St, Path(id): Path<String>, b: Bytes) -> ApiResult {
    proxy_write(&sh, &id, &b, false)
}

async fn proxy_patch(State(sh): St, Path(id): Path<String>, b: Bytes) -> ApiResult {
    proxy_write(&sh, &id, &b, true)
}

async fn proxy_delete(State(sh): St, Path(id): Path<String>) -> ApiResult {
    let mut m = sh.model();
    let pk = int_id(&id, "ProxyProvider")?;
    proxy_view(&m, pk)?;
    m.delete_provider(pk);
    no_content()
}

async fn proxy_used_by(State(sh): St, Path(id): Path<String>) -> ApiResult {
    let m = sh.model();
    let pk = int_id(&id, "ProxyProvider")?;
    proxy_view(&m, pk)?;
    ok(m.provider_used_by(pk))
}

fn oauth2_view(m: &Model, pk: i64) -> Result<Value, ApiError> {
    m.providers
        .get(&pk)
        .filter(|p| matches!(p.kind, ProviderKind::OAuth2(_)))
        .map(|p| m.render_provider(p, &m.provider_links()))
        .ok_or(ApiError::NotFound("OAuth2Provider"))
}

async fn oauth2_list(State(sh): St, RawQuery(q): RawQuery) -> ApiResult {
    let m = sh.model();
    let links = m.provider_links();
    let items = m
        .providers
        .values()
        .filter(|p| matches!(p.kind, ProviderKind::OAuth2(_)))
        .map(|p| m.provider_list_item(p, true, &links))
        .collect();
    sh.list(items, q, &OAUTH2_LIST, None)
}

async fn oauth2_create(State(sh): St, b: Bytes) -> ApiResult {
    let mut m = sh.model();
    let pk = m.write_oauth2_provider(&body(&b)?)?;
    created(oauth2_view(&m, pk)?)
}

async fn oauth2_get(State(sh): St, Path(id): Path<String>) -> ApiResult {
    ok(oauth2_view(&sh.model(), int_id(&id, "OAuth2Provider")?)?)
}

async fn oauth2_delete(State(sh): St, Path(id): Path<String>) -> ApiResult {
    let mut m = sh.model();
    let pk = int_id(&id, "OAuth2Provider")?;
    oauth2_view(&m, pk)?;
    m.delete_provider(pk);
    no_content()
}

async fn all_providers_list(State(sh): St, RawQuery(q): RawQuery) -> ApiResult {
    let m = sh.model();
    let links = m.provider_links();
    let items = m
        .providers
        .values()
        .map(|p| m.provider_list_item(p, false, &links))
        .collect();
    sh.list(items, q, &ALL_PROVIDERS_LIST, None)
}

async fn any_provider_get(State(sh): St, Path(id): Path<String>) -> ApiResult {
    let m = sh.model();
    let p = m
        .providers
        .get(&int_id(&id, "Provider")?)
        .ok_or(ApiError::NotFound("Provider"))?;
    ok(Value::Object(m.render_provider_base(
        p,
        crate::model::BaseView::Typed,
        &m.provider_links(),
    )))
}

async fn any_provider_delete(State(sh): St, Path(id): Path<String>) -> ApiResult {
    let mut m = sh.model();
    let pk = int_id(&id, "Provider")?;
    m.providers.get(&pk).ok_or(ApiError::NotFound("Provider"))?;
    m.delete_provider(pk);
    no_content()
}

// ---------------------------------------------------------------- applications

async fn application_list(State(sh): St, RawQuery(q): RawQuery) -> ApiResult {
    let m = sh.model();
    // Without superuser_full_list the list only has what the user's policies allow.
    let full = Query::parse(q.as_deref()).flag("superuser_full_list");
    let links = m.provider_links();
    let items = m
        .applications
        .iter()
        .map(|a| m.application_list_item(a, &links))
        .filter(|v| full || v["_visible"] == json!(true))
        .collect();
    sh.list(items, q, &APPLICATION_LIST, None)
}

fn application_view(m: &Model, slug: &str) -> Result<Value, ApiError> {
    let i = m.application_index(slug)?;
    Ok(m.render_application(&m.applications[i], &m.provider_links()))
}

async fn application_create(State(sh): St, b: Bytes) -> ApiResult {
    let mut m = sh.model();
    let slug = m.write_application(None, &body(&b)?, false)?;
    created(application_view(&m, &slug)?)
}

async fn application_get(State(sh): St, Path(slug): Path<String>) -> ApiResult {
    ok(application_view(&sh.model(), &slug)?)
}

async fn application_put(State(sh): St, Path(slug): Path<String>, b: Bytes) -> ApiResult {
    let mut m = sh.model();
    let slug = m.write_application(Some(&slug), &body(&b)?, false)?;
    ok(application_view(&m, &slug)?)
}

async fn application_patch(State(sh): St, Path(slug): Path<String>, b: Bytes) -> ApiResult {
    let mut m = sh.model();
    let slug = m.write_application(Some(&slug), &body(&b)?, true)?;
    ok(application_view(&m, &slug)?)
}

async fn application_delete(State(sh): St, Path(slug): Path<String>) -> ApiResult {
    sh.model().delete_application(&slug)?;
    no_content()
}

// ---------------------------------------------------------------- groups, users, bindings

async fn group_list(State(sh): St, RawQuery(q): RawQuery) -> ApiResult {
    let m = sh.model();
    let items = m.groups.iter().map(|g| m.render_group(g)).collect();
    sh.list(
        items,
        q,
        &GROUP_LIST,
        Some(crate::model::group_autocomplete()),
    )
}

async fn group_create(State(sh): St, b: Bytes) -> ApiResult {
    let mut m = sh.model();
    let pk = m.write_group(&body(&b)?)?;
    let i = m.group_index(&pk.to_string())?;
    created(m.render_group(&m.groups[i]))
}

async fn group_get(State(sh): St, Path(id): Path<String>) -> ApiResult {
    let m = sh.model();
    let i = m.group_index(&id)?;
    ok(m.render_group(&m.groups[i]))
}

async fn group_delete(State(sh): St, Path(id): Path<String>) -> ApiResult {
    let mut m = sh.model();
    let i = m.group_index(&id)?;
    m.delete_group(i);
    no_content()
}

async fn users_me(State(sh): St) -> ApiResult {
    ok(sh.model().render_me())
}

async fn binding_list(State(sh): St, RawQuery(q): RawQuery) -> ApiResult {
    let m = sh.model();
    let items = m.bindings.iter().map(|b| m.render_binding(b)).collect();
    sh.list(items, q, &BINDING_LIST, None)
}

async fn binding_create(State(sh): St, b: Bytes) -> ApiResult {
    let mut m = sh.model();
    let pk = m.write_binding(&body(&b)?)?;
    let i = m.binding_index(&pk.to_string())?;
    created(m.render_binding(&m.bindings[i]))
}

async fn binding_get(State(sh): St, Path(id): Path<String>) -> ApiResult {
    let m = sh.model();
    let i = m.binding_index(&id)?;
    ok(m.render_binding(&m.bindings[i]))
}

async fn binding_delete(State(sh): St, Path(id): Path<String>) -> ApiResult {
    let mut m = sh.model();
    let i = m.binding_index(&id)?;
    m.bindings.remove(i);
    no_content()
}

// ---------------------------------------------------------------- outposts

async fn outpost_list(State(sh): St, RawQuery(q): RawQuery) -> ApiResult {
    let m = sh.model();
    let links = m.provider_links();
    let items = m
        .outposts
        .iter()
        .map(|o| m.outpost_list_item(o, &links))
        .collect();
    sh.list(items, q, &OUTPOST_LIST, None)
}

/// The outpost answer, tagged with what the write did for the latency model.
fn outpost_response(
    model: &Model,
    index: usize,
    providers_before: &[i64],
    status: StatusCode,
) -> ApiResult {
    let outpost = &model.outposts[index];
    let write = OutpostWrite {
        providers: outpost.providers.len(),
        added: outpost
            .providers
            .iter()
            .filter(|pk| !providers_before.contains(pk))
            .count(),
    };
    Ok((
        status,
        axum::Extension(write),
        axum::Json(model.render_outpost(outpost, &model.provider_links())),
    )
        .into_response())
}

async fn outpost_create(State(shared): St, payload: Bytes) -> ApiResult {
    let mut model = shared.model();
    let index = model.write_outpost(None, &body(&payload)?, false)?;
    outpost_response(&model, index, &[], StatusCode::CREATED)
}

async fn outpost_get(State(shared): St, Path(id): Path<String>) -> ApiResult {
    let model = shared.model();
    let index = model.outpost_index(&id)?;
    ok(model.render_outpost(&model.outposts[index], &model.provider_links()))
}

fn outpost_write(shared: &Shared, id: &str, payload: &Bytes, partial: bool) -> ApiResult {
    let mut model = shared.model();
    let index = model.outpost_index(id)?;
    let providers_before = model.outposts[index].providers.clone();
    let index = model.write_outpost(Some(index), &body(payload)?, partial)?;
    outpost_response(&model, index, &providers_before, StatusCode::OK)
}

async fn outpost_put(State(shared): St, Path(id): Path<String>, payload: Bytes) -> ApiResult {
    outpost_write(&shared, &id, &payload, false)
}

async fn outpost_patch(State(shared): St, Path(id): Path<String>, payload: Bytes) -> ApiResult {
    outpost_write(&shared, &id, &payload, true)
}

async fn outpost_delete(State(sh): St, Path(id): Path<String>) -> ApiResult {
    let mut m = sh.model();
    let i = m.outpost_index(&id)?;
    m.outposts.remove(i);
    no_content()
}

// ---------------------------------------------------------------- flows and probes

async fn flow_list(State(sh): St, RawQuery(q): RawQuery) -> ApiResult {
    let items = sh.model().flows.iter().map(Model::flow_list_item).collect();
    sh.list(items, q, &FLOW_LIST, None)
}

async fn flow_get(State(sh): St, Path(slug): Path<String>) -> ApiResult {
    ok(crate::model::render_flow(sh.model().flow_by_slug(&slug)?))
}

async fn version(State(sh): St) -> ApiResult {
    let current = sh.model().reported_version.clone();
    ok(json!({
        "version_current": current.as_deref().unwrap_or(sh.version.version_string()),
        "version_latest": "0.0.0",
        "version_latest_valid": false,
        "build_hash": "",
        "outdated": false,
        "outpost_outdated": false,
    }))
}

async fn root_config() -> ApiResult {
    ok(json!({
        "error_reporting": {"enabled": false, "sentry_dsn": "", "environment": "", "send_pii": false,
                            "traces_sample_rate": 0.0},
        "capabilities": ["can_save_media", "can_impersonate", "can_debug"],
        "cache_timeout": 300,
        "cache_timeout_flows": 300,
        "cache_timeout_policies": 300,
    }))
}

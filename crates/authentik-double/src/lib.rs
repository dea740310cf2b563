//! A test double of the authentik API (`/api/v3`), as far as a proxy-provider controller uses
//! it, following `authentik-api.md` and the responses recorded from authentik 2025.12.4.
//!
//! # Faithful
//! - Auth: 403 (never 401) with authentik's `detail` texts; `/root/config/` answers anonymously
//!   but still rejects a wrong token.
//! - Status codes 200/201/204/400/403/404/405; DRF error bodies: field-keyed 400s collected per
//!   field, object-level checks only after field checks pass, `{"detail": ...}` otherwise.
//! - Proxy providers: required fields, name unique across *all* provider types, URL and
//!   timedelta validation, the `internal_host` rule that reads only the submitted payload (a
//!   PATCH without `mode` counts as `proxy`), the basic-auth rule, server-added scope
//!   `property_mappings` and derived `redirect_uris`, `outpost_set` as `"Outpost <name>"`.
//! - Applications: slug unique and validated, one application per provider, delete keeps the
//!   provider, deleting a provider unbinds its application; the plain list hides applications
//!   the user's policy bindings deny unless `superuser_full_list=true`.
//! - Outposts: `providers` replaced wholesale, type check only when `type` is submitted,
//!   unknown pk message, empty list rejected except for the embedded outpost.
//! - Lists: page-number envelope (`next`/`previous` 0 at the ends), `Invalid page.` 404,
//!   undeclared filters ignored (the whole list comes back, as from authentik; the request
//!   log's `ignored_query` names them), `search`, `ordering`; `autocomplete` from 2025.8.
//! - Releases: `--version 2024.10` … `2026.8` (default the newest) answers with that release's
//!   response shapes, ignores request fields it did not know and reports it in
//!   `/admin/version/`, all from the facts derived from its official client package (see
//!   `docs/authentik-versions.md`).
//! - Under load, on request ([`ServerBehaviour`]): kept-alive connections expire (a request
//!   reusing one is reset or answered authentik's empty 405), workers are recycled after N
//!   requests (their connections reset); [`Fault::delete_providers_first`] deletes providers as
//!   another admin would, just before a write that still names them.
//! - Seed: default flows by slug, the embedded outpost, the admin user and default groups.
//! - The embedded outpost's forward auth, as recorded in `authentik-forward-auth.md` and
//!   replayed by `tests/forward_auth_transcripts.rs`: `/outpost.goauthentik.io/auth/traefik`,
//!   `/auth/caddy`, `/auth/envoy/<path>` (302 to the authorize URL with a state JWT),
//!   `/auth/nginx` (401 `unauthorized request`), `/callback`, `/start?rd=`, `/ping`. The
//!   application is looked up by X-Forwarded-Host (or Host) among the proxy providers of the
//!   embedded outpost that have an application; an unknown host gets core's HTML 404. One
//!   `authentik_proxy_<sha256(client_id)[..8]>` cookie per provider with the recorded
//!   attributes; `skip_path_regex` matched on the path (forward_domain: the URL); a session gets
//!   200 with the `X-Authentik-*` headers (skipped paths too); missing forward headers give 500
//!   `configuration error`. The outpost never refuses a signed-in user: core's
//!   `/application/o/authorize/` does, with "Permission denied" for a user the application's
//!   group/user bindings deny, and a code (redeemed by the callback) for one they allow.
//!
//! # Simplified
//! - One token, one user (a superuser). No RBAC, no policies other than group/user bindings.
//! - OAuth2 providers exist only to occupy names; no SAML/LDAP/etc. No service connections,
//!   JWT federation sources or policies: references to them are "does not exist".
//! - `page_size` is capped at 100 by default (the real cap is configurable, default unknown).
//! - Forward auth: no login flow (authorize without an `authentik_session` only redirects to
//!   it; `POST /_double/sign-in` logs in instead), no logout/sign_out, no basic-auth or
//!   `additionalHeaders` from user attributes, no entitlements (the header is empty), no
//!   proxy mode (its providers' hosts get core's 404). Tokens are HS256 with a key of the
//!   double's; the authorize pages carry authentik's head and title, not its whole HTML.
//! - Injected failures answer JSON `{"detail": "Injected fault: N"}` (or an empty body);
//!   "down behind a proxy" answers an nginx-style HTML page. Connection expiry and worker
//!   recycling are deterministic: the double never closes an idle connection itself, it treats
//!   a request on a connection idle past the keep-alive as having raced the close. Outpost refresh is not modelled (writes are visible
//!   immediately).
//!
//! # Use
//! In-process: [`AuthentikDouble::start`] returns a [`DoubleHandle`] with the base URL, token,
//! request log, fault injection and direct state access. Out of process: the
//! `authentik-double` binary, controlled through the unauthenticated admin API under
//! `/_double/` (always served; the double is test-only and binds loopback by default):
//! `GET|DELETE /_double/requests`, `GET|POST|DELETE /_double/faults`, `POST /_double/down`,
//! `POST /_double/latency`, `POST /_double/server` (a [`ServerBehaviour`]), `GET /_double/state`,
//! `GET /_double/stats`, `POST /_double/reset`,
//! and `POST /_double/sign-in` (`{"username": "alice", "groups": ["team"]}`: creates the user
//! and groups as needed, adds the memberships, answers `{"user", "uid", "groups", "cookie"}`
//! with an `authentik_session=…` cookie for the authorize page). A test signs in like a
//! browser: forward auth → 302 to authorize → authorize with that cookie → 302 to the
//! callback on the application's host → forward auth with the callback URL → the
//! `authentik_proxy_…` cookie is now signed in.

mod accept;
mod admin;
mod api;
mod behaviour;
mod config;
mod control;
mod error;
mod fault;
mod form;
mod handle;
mod latency;
mod list;
mod log;
pub mod model;
mod outpost_auth;
mod state;
mod version;

pub use behaviour::{KeepAliveRace, ServerBehaviour};
pub use config::{DEFAULT_TOKEN, DoubleConfig};
pub use fault::{DownMode, Fault, Matcher};
pub use handle::{AuthentikDouble, DoubleHandle};
pub use latency::{LatencyModel, OutpostWrite};
pub use log::{Outcome, RequestRecord, Stats};
pub use model::{EMBEDDED_OUTPOST_MANAGED, EMBEDDED_OUTPOST_NAME, Identity, Model, SignIn};
pub use outpost_auth::{CORE_SESSION_COOKIE, claims_unverified};
pub use version::ApiVersion;

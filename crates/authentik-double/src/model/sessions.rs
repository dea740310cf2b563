//! Sign-in state behind the embedded outpost: authentik (core) sessions, the outpost's proxy
//! sessions (one cookie per provider) and authorization codes waiting for their callback.
//! Not part of the API snapshot; a reset forgets it.

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{Model, User};
use crate::error::ApiError;

/// Who a proxy session belongs to, as the outpost keeps it after the callback (its claims).
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// User pk.
    pub user: i64,
    /// `preferred_username`.
    pub username: String,
    /// E-mail address.
    pub email: String,
    /// Display name.
    pub name: String,
    /// `sub`: the user's uid (sha256 hex).
    pub uid: String,
    /// Group names, in the order authentik lists them.
    pub groups: Vec<String>,
    /// The signed id_token (`X-Authentik-Jwt`).
    pub id_token: String,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The id_token is a credential: never in Debug output.
        f.debug_struct("Identity")
            .field("user", &self.user)
            .field("username", &self.username)
            .field("groups", &self.groups)
            .finish_non_exhaustive()
    }
}

/// One `authentik_proxy_<id>` session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProxySession {
    /// Provider pk the cookie belongs to.
    pub provider: i64,
    /// Set once the callback succeeded.
    pub identity: Option<Identity>,
}

/// A code handed out by the authorize page, redeemed by the outpost's callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PendingCode {
    pub user: i64,
    pub client_id: String,
}

/// Session values are random (not from the seeded id stream: signing in must not shift the
/// ids of objects created later).
fn random_hex() -> String {
    Uuid::new_v4().simple().to_string()
}

/// All sign-in state. Values are opaque random strings, as cookies are.
#[derive(Clone)]
pub struct Sessions {
    key: String,
    core: HashMap<String, i64>,
    proxy: HashMap<String, ProxySession>,
    codes: HashMap<String, PendingCode>,
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Counts only: session values and the signing key are credentials.
        f.debug_struct("Sessions")
            .field("core", &self.core.len())
            .field("proxy", &self.proxy.len())
            .field("codes", &self.codes.len())
            .finish_non_exhaustive()
    }
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            key: format!("{}{}", random_hex(), random_hex()),
            core: HashMap::new(),
            proxy: HashMap::new(),
            codes: HashMap::new(),
        }
    }
}

impl Sessions {
    /// HS256 key for the state and id tokens this double signs.
    pub(crate) fn key(&self) -> &[u8] {
        self.key.as_bytes()
    }

    /// The user an `authentik_session` cookie value belongs to.
    pub(crate) fn core_user(&self, value: &str) -> Option<i64> {
        self.core.get(value).copied()
    }

    pub(crate) fn new_core(&mut self, user: i64) -> String {
        let value = random_hex();
        self.core.insert(value.clone(), user);
        value
    }

    pub(crate) fn proxy(&self, value: &str) -> Option<&ProxySession> {
        self.proxy.get(value)
    }

    pub(crate) fn new_proxy(&mut self, provider: i64) -> String {
        let value = random_hex();
        self.proxy.insert(
            value.clone(),
            ProxySession {
                provider,
                identity: None,
            },
        );
        value
    }

    pub(crate) fn set_identity(&mut self, value: &str, identity: Identity) {
        if let Some(s) = self.proxy.get_mut(value) {
            s.identity = Some(identity);
        }
    }

    pub(crate) fn new_code(&mut self, pending: PendingCode) -> String {
        let code = random_hex();
        self.codes.insert(code.clone(), pending);
        code
    }

    /// A code is good once.
    pub(crate) fn redeem(&mut self, code: &str) -> Option<PendingCode> {
        self.codes.remove(code)
    }
}

/// Body of `POST /_double/sign-in`: a user (created if missing) and groups to put it in
/// (created if missing; memberships are added, never removed).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// Username; an existing user with this name is reused.
    pub username: String,
    /// Groups the user must be in.
    #[serde(default)]
    pub groups: Vec<String>,
    /// E-mail (default `<username>@example.com` for a new user).
    #[serde(default)]
    pub email: Option<String>,
    /// Display name (default: the username for a new user).
    #[serde(default)]
    pub name: Option<String>,
}

impl Model {
    /// Make sure the user exists and is in the groups; returns its pk.
    pub(crate) fn ensure_user(&mut self, req: &SignIn) -> Result<i64, ApiError> {
        if req.username.trim().is_empty() {
            return Err(ApiError::field("username", "This field may not be blank."));
        }
        let pk = match self.users.iter_mut().find(|u| u.username == req.username) {
            Some(u) => {
                if let Some(e) = &req.email {
                    u.email.clone_from(e);
                }
                if let Some(n) = &req.name {
                    u.name.clone_from(n);
                }
                u.pk
            }
            None => {
                let pk = self.users.iter().map(|u| u.pk).max().unwrap_or(0) + 1;
                let uid = format!("{}{}", self.ids.uuid().simple(), self.ids.uuid().simple());
                self.users.push(User {
                    pk,
                    username: req.username.clone(),
                    name: req.name.clone().unwrap_or_else(|| req.username.clone()),
                    email: req
                        .email
                        .clone()
                        .unwrap_or_else(|| format!("{}@example.com", req.username)),
                    uid,
                });
                pk
            }
        };
        for name in &req.groups {
            if !self.groups.iter().any(|g| g.name == *name) {
                self.write_group(&json!({ "name": name }))?;
            }
            if let Some(g) = self.groups.iter_mut().find(|g| g.name == *name)
                && !g.users.contains(&pk)
            {
                g.users.push(pk);
            }
        }
        Ok(pk)
    }

    /// Names of the groups a user is in, in the order authentik lists them.
    pub(crate) fn group_names(&self, user: i64) -> Vec<String> {
        self.groups
            .iter()
            .filter(|g| g.users.contains(&user))
            .map(|g| g.name.clone())
            .collect()
    }

    /// Whether the user is in a superuser group.
    pub(crate) fn is_superuser(&self, user: i64) -> bool {
        self.groups
            .iter()
            .any(|g| g.is_superuser && g.users.contains(&user))
    }
}

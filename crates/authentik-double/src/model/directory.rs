//! Flows (seeded, read-only), users, groups and policy bindings.

use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Ids, Model};
use crate::error::ApiError;
use crate::form::{Form, Need};

/// A flow; looked up by slug, referenced by `pk`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[allow(missing_docs)]
pub struct Flow {
    pub pk: Uuid,
    pub pbm_uuid: Uuid,
    pub name: String,
    pub slug: String,
    pub title: String,
    pub designation: String,
    pub stages: Vec<Uuid>,
}

/// A user (only the admin exists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[allow(missing_docs)]
pub struct User {
    pub pk: i64,
    pub username: String,
    pub name: String,
    pub email: String,
    pub uid: String,
}

/// A group.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct Group {
    pub pk: Uuid,
    pub num_pk: i64,
    pub name: String,
    pub is_superuser: bool,
    pub users: Vec<i64>,
    pub attributes: Value,
    pub roles: Vec<(Uuid, String)>,
}

/// A policy binding of a group or user to a target (an application's pk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[allow(missing_docs)]
pub struct Binding {
    pub pk: Uuid,
    pub group: Option<Uuid>,
    pub user: Option<i64>,
    pub target: Uuid,
    pub negate: bool,
    pub enabled: bool,
    pub order: i64,
    pub timeout: i64,
    pub failure_result: bool,
}

/// The blueprint-created flows a proxy-provider controller needs (API doc §6).
pub(super) fn seed_flows(ids: &mut Ids) -> Vec<Flow> {
    [
        (
            "default-authentication-flow",
            "Welcome to authentik!",
            "authentication",
            "Welcome to authentik!",
        ),
        (
            "default-invalidation-flow",
            "Logout",
            "invalidation",
            "Default Invalidation Flow",
        ),
        (
            "default-provider-authorization-explicit-consent",
            "Authorize Application",
            "authorization",
            "Redirecting to %(app)s",
        ),
        (
            "default-provider-authorization-implicit-consent",
            "Authorize Application",
            "authorization",
            "Redirecting to %(app)s",
        ),
        (
            "default-provider-invalidation-flow",
            "Logged out of application",
            "invalidation",
            "You've logged out of %(app)s.",
        ),
    ]
    .into_iter()
    .map(|(slug, name, designation, title)| Flow {
        pk: ids.uuid(),
        pbm_uuid: ids.uuid(),
        name: name.to_owned(),
        slug: slug.to_owned(),
        title: title.to_owned(),
        designation: designation.to_owned(),
        stages: if slug.ends_with("explicit-consent") {
            vec![ids.uuid()]
        } else {
            Vec::new()
        },
    })
    .collect()
}

pub(super) fn seed_groups(model: &mut Model) {
    let admins = Group {
        pk: model.ids.uuid(),
        num_pk: model.next_num_pk(),
        name: "authentik Admins".to_owned(),
        is_superuser: true,
        users: vec![model.admin_pk],
        attributes: json!({}),
        roles: Vec::new(),
    };
    let read_only = Group {
        pk: model.ids.uuid(),
        num_pk: model.next_num_pk(),
        name: "authentik Read-only".to_owned(),
        is_superuser: false,
        users: Vec::new(),
        attributes: json!({"notes": "An group with an auto-generated role that allows read-only permissions on all objects.\n"}),
        roles: vec![(model.ids.uuid(), "authentik Read-only".to_owned())],
    };
    model.groups = vec![admins, read_only];
}

pub(crate) fn render_flow(f: &Flow) -> Value {
    json!({
        "pk": f.pk,
        "policybindingmodel_ptr_id": f.pbm_uuid,
        "name": f.name,
        "slug": f.slug,
        "title": f.title,
        "designation": f.designation,
        "background": "",
        "background_url": "/static/dist/assets/images/flow_background.jpg",
        "background_themed_urls": null,
        "stages": f.stages,
        "policies": [],
        "cache_count": 0,
        "policy_engine_mode": "any",
        "compatibility_mode": false,
        "export_url": format!("/api/v3/flows/instances/{}/export/", f.slug),
        "layout": "stacked",
        "denied_action": "message_continue",
        "authentication": if f.designation == "authentication" { "none" } else { "require_authenticated" },
    })
}

/// The `autocomplete` block recorded for `/core/groups/`.
pub(crate) fn group_autocomplete() -> Value {
    json!({
        "current_model": "authentik_core.group",
        "models": {"authentik_core.group": {
            "name": {"type": "str", "nullable": false, "options": null},
            "is_superuser": {"type": "bool", "nullable": true, "options": null},
            "attributes": {"type": "relation", "nullable": false, "options": null, "relation": "authentik_core.group_attributes"}
        }}
    })
}

impl Model {
    fn next_num_pk(&mut self) -> i64 {
        let n = self.next_group_num_pk;
        self.next_group_num_pk += 1;
        n
    }

    pub(crate) fn flow_by_slug(&self, slug: &str) -> Result<&Flow, ApiError> {
        self.flows
            .iter()
            .find(|f| f.slug == slug)
            .ok_or(ApiError::NotFound("Flow"))
    }

    pub(crate) fn flow_list_item(f: &Flow) -> Value {
        let mut v = render_flow(f);
        if let Value::Object(m) = &mut v {
            m.insert("_flow_uuid".into(), json!(f.pk));
        }
        v
    }

    fn render_partial_user(u: &User) -> Value {
        json!({"pk": u.pk, "username": u.username, "name": u.name, "is_active": true,
               "last_login": null, "email": u.email, "attributes": {}, "uid": u.uid})
    }

    pub(crate) fn render_group(&self, g: &Group) -> Value {
        json!({
            "pk": g.pk,
            "num_pk": g.num_pk,
            "name": g.name,
            "is_superuser": g.is_superuser,
            "parents": [],
            "parents_obj": null,
            "users": g.users,
            "users_obj": g.users.iter().filter_map(|pk| self.users.iter().find(|u| u.pk == *pk))
                .map(Self::render_partial_user).collect::<Vec<_>>(),
            "attributes": g.attributes,
            "roles": g.roles.iter().map(|(pk, _)| pk).collect::<Vec<_>>(),
            "roles_obj": g.roles.iter().map(|(pk, name)| json!({"pk": pk, "name": name})).collect::<Vec<_>>(),
            "inherited_roles_obj": null,
            "children": [],
            "children_obj": null,
        })
    }

    /// POST `/core/groups/`.
    pub(crate) fn write_group(&mut self, body: &Value) -> Result<Uuid, ApiError> {
        let mut f = Form::new(body, false)?;
        let name = f.string("name", Need::Required, false);
        if let Some(n) = &name
            && self.groups.iter().any(|g| g.name == *n)
        {
            f.error("name", "Group with this name already exists.");
        }
        let is_superuser = f.bool("is_superuser");
        let users = f.references::<i64>("users", Need::Optional, |pk| {
            self.users.iter().any(|u| u.pk == pk)
        });
        let attributes = f.object("attributes", Need::Optional);
        f.finish()?;
        let group = Group {
            pk: self.ids.uuid(),
            num_pk: self.next_num_pk(),
            name: name.unwrap_or_default(),
            is_superuser: is_superuser.unwrap_or(false),
            users: users.unwrap_or_default(),
            attributes: attributes.unwrap_or_else(|| json!({})),
            roles: Vec::new(),
        };
        let pk = group.pk;
        self.groups.push(group);
        Ok(pk)
    }

    pub(crate) fn group_index(&self, raw: &str) -> Result<usize, ApiError> {
        let uuid = Uuid::parse_str(raw).map_err(|_| ApiError::NotFound("Group"))?;
        self.groups
            .iter()
            .position(|g| g.pk == uuid)
            .ok_or(ApiError::NotFound("Group"))
    }

    /// Delete a group and the bindings that reference it.
    pub(crate) fn delete_group(&mut self, index: usize) {
        let g = self.groups.remove(index);
        self.bindings.retain(|b| b.group != Some(g.pk));
    }

    pub(crate) fn render_binding(&self, b: &Binding) -> Value {
        let group = b
            .group
            .and_then(|g| self.groups.iter().find(|gr| gr.pk == g));
        let user = b.user.and_then(|u| self.users.iter().find(|us| us.pk == u));
        json!({
            "pk": b.pk,
            "policy": null,
            "group": b.group,
            "user": b.user,
            "policy_obj": null,
            "group_obj": group.map(|g| json!({"pk": g.pk, "num_pk": g.num_pk, "name": g.name,
                                             "is_superuser": g.is_superuser, "attributes": g.attributes})),
            "user_obj": user.map(Self::render_partial_user),
            "target": b.target,
            "negate": b.negate,
            "enabled": b.enabled,
            "order": b.order,
            "timeout": b.timeout,
            "failure_result": b.failure_result,
            // 2026.8+: bindings may expire; the double's never do.
            "expires": null,
            "expiring": false,
        })
    }

    /// POST `/policies/bindings/`. Identical bindings are accepted (the server does not
    /// de-duplicate), as recorded.
    pub(crate) fn write_binding(&mut self, body: &Value) -> Result<Uuid, ApiError> {
        let body = self.known_fields("PolicyBindingRequest", false, body);
        let mut f = Form::new(&body, false)?;
        // No policies are modelled: any policy uuid is unknown.
        let policy = f
            .reference::<Uuid>("policy", Need::Optional, true, |_| false)
            .flatten();
        let group = f
            .reference::<Uuid>("group", Need::Optional, true, |u| {
                self.groups.iter().any(|g| g.pk == u)
            })
            .flatten();
        let user = f
            .reference::<i64>("user", Need::Optional, true, |pk| {
                self.users.iter().any(|u| u.pk == pk)
            })
            .flatten();
        // Targets are policy-binding models: applications (pk) and flows (pbm uuid).
        let target = f
            .reference::<Uuid>("target", Need::Required, false, |u| {
                self.applications.iter().any(|a| a.pk == u)
                    || self.flows.iter().any(|fl| fl.pbm_uuid == u)
            })
            .flatten();
        let negate = f.bool("negate");
        let enabled = f.bool("enabled");
        let order = f.int("order", Need::Required);
        let timeout = f.int("timeout", Need::Optional);
        let failure_result = f.bool("failure_result");
        f.finish()?;
        let set = [policy.is_some(), group.is_some(), user.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if set > 1 {
            return Err(ApiError::field(
                "non_field_errors",
                "Only one of 'policy', 'group' or 'user' can be set.",
            ));
        }
        if set == 0 {
            return Err(ApiError::field(
                "non_field_errors",
                "One of 'policy', 'group' or 'user' must be set.",
            ));
        }
        let binding = Binding {
            pk: self.ids.uuid(),
            group,
            user,
            target: target.unwrap_or_default(),
            negate: negate.unwrap_or(false),
            enabled: enabled.unwrap_or(true),
            order: order.unwrap_or(0),
            timeout: timeout.unwrap_or(30),
            failure_result: failure_result.unwrap_or(false),
        };
        let pk = binding.pk;
        self.bindings.push(binding);
        Ok(pk)
    }

    pub(crate) fn binding_index(&self, raw: &str) -> Result<usize, ApiError> {
        let uuid = Uuid::parse_str(raw).map_err(|_| ApiError::NotFound("PolicyBinding"))?;
        self.bindings
            .iter()
            .position(|b| b.pk == uuid)
            .ok_or(ApiError::NotFound("PolicyBinding"))
    }

    /// `GET /core/users/me/` (`SessionUser`).
    pub(crate) fn render_me(&self) -> Value {
        let me = self.users.iter().find(|u| u.pk == self.admin_pk);
        let groups: Vec<Value> = self
            .groups
            .iter()
            .filter(|g| g.users.contains(&self.admin_pk))
            .map(|g| json!({"name": g.name, "pk": g.pk.to_string()}))
            .collect();
        let user = json!({
            "pk": self.admin_pk,
            "username": me.map_or("akadmin", |u| u.username.as_str()),
            "name": me.map_or("", |u| u.name.as_str()),
            "is_active": true,
            "is_superuser": true,
            "groups": groups,
            "roles": [],
            "email": me.map_or("", |u| u.email.as_str()),
            "avatar": "/static/dist/assets/images/user_default.png",
            "uid": me.map_or("", |u| u.uid.as_str()),
            "settings": {},
            "type": "internal",
            "system_permissions": [],
            "is_current": true,
        });
        // 2026.8+: `users` lists the session's accounts (here only the token's user).
        json!({"user": user, "users": [user]})
    }
}

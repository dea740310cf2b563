//! Applications: slug-keyed, one-to-one with a provider, visible by policy unless
//! `superuser_full_list=true`.

use serde_json::{Value, json};

use super::providers::{BaseView, ProviderLinks};
use super::{Application, Model, ProviderKind, set};
use crate::error::ApiError;
use crate::form::{Form, Need};

fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Model {
    pub(crate) fn application_index(&self, slug: &str) -> Result<usize, ApiError> {
        self.applications
            .iter()
            .position(|a| a.slug == slug)
            .ok_or(ApiError::NotFound("Application"))
    }

    /// Create (`slug == None`), update or partially update an application; returns its slug.
    pub(crate) fn write_application(
        &mut self,
        slug: Option<&str>,
        body: &Value,
        partial: bool,
    ) -> Result<String, ApiError> {
        let index = slug.map(|s| self.application_index(s)).transpose()?;
        let current_pk = index.map(|i| self.applications[i].pk);
        let body = self.known_fields("ApplicationRequest", partial, body);
        let mut f = Form::new(&body, partial)?;
        let name = f.string("name", Need::Required, false);
        let new_slug = f.string("slug", Need::Required, false);
        if let Some(s) = &new_slug {
            if !is_slug(s) {
                f.error(
                    "slug",
                    "Enter a valid “slug” consisting of letters, numbers, underscores or hyphens.",
                );
            } else if self
                .applications
                .iter()
                .any(|a| a.slug == *s && Some(a.pk) != current_pk)
            {
                f.error("slug", "Application with this slug already exists.");
            }
        }
        let provider = f.reference::<i64>("provider", Need::Optional, true, |pk| {
            self.providers.contains_key(&pk)
        });
        // `Application.provider` is a OneToOneField: one application per provider.
        if let Some(Some(pk)) = provider
            && self
                .applications
                .iter()
                .any(|a| a.provider == Some(pk) && Some(a.pk) != current_pk)
        {
            f.error("provider", "Application with this provider already exists.");
        }
        let backchannel_providers =
            f.references::<i64>("backchannel_providers", Need::Optional, |pk| {
                self.providers.contains_key(&pk)
            });
        let open_in_new_tab = f.bool("open_in_new_tab");
        let meta_launch_url = f.url("meta_launch_url", Need::Optional, true);
        let meta_icon = f.string("meta_icon", Need::Optional, true);
        let meta_description = f.string("meta_description", Need::Optional, true);
        let meta_publisher = f.string("meta_publisher", Need::Optional, true);
        let policy_engine_mode = f.choice("policy_engine_mode", Need::Optional, &["all", "any"]);
        let group = f.string("group", Need::Optional, true);
        f.finish()?;

        let mut app = match index {
            Some(i) => self.applications[i].clone(),
            None => Application {
                pk: self.ids.uuid(),
                name: String::new(),
                slug: String::new(),
                provider: None,
                backchannel_providers: Vec::new(),
                open_in_new_tab: false,
                meta_launch_url: String::new(),
                meta_icon: String::new(),
                meta_description: String::new(),
                meta_publisher: String::new(),
                policy_engine_mode: "any".to_owned(),
                group: String::new(),
            },
        };
        set(&mut app.name, name);
        set(&mut app.slug, new_slug);
        set(&mut app.provider, provider);
        set(&mut app.backchannel_providers, backchannel_providers);
        set(&mut app.open_in_new_tab, open_in_new_tab);
        set(&mut app.meta_launch_url, meta_launch_url);
        set(&mut app.meta_icon, meta_icon);
        set(&mut app.meta_description, meta_description);
        set(&mut app.meta_publisher, meta_publisher);
        set(&mut app.policy_engine_mode, policy_engine_mode);
        set(&mut app.group, group);
        let slug = app.slug.clone();
        match index {
            Some(i) => self.applications[i] = app,
            None => self.applications.push(app),
        }
        Ok(slug)
    }

    /// Delete an application; the provider stays (unassigned) and its bindings go with it.
    pub(crate) fn delete_application(&mut self, slug: &str) -> Result<(), ApiError> {
        let i = self.application_index(slug)?;
        let app = self.applications.remove(i);
        self.bindings.retain(|b| b.target != app.pk);
        Ok(())
    }

    pub(crate) fn render_application(&self, a: &Application, links: &ProviderLinks<'_>) -> Value {
        let provider = a.provider.and_then(|pk| self.providers.get(&pk));
        // `meta_launch_url` wins; otherwise the provider's launch URL (external_host for proxy).
        let launch_url = if a.meta_launch_url.is_empty() {
            provider.and_then(|p| match &p.kind {
                ProviderKind::Proxy(s) => Some(s.external_host.clone()),
                ProviderKind::OAuth2(_) => None,
            })
        } else {
            Some(a.meta_launch_url.clone())
        };
        json!({
            "pk": a.pk,
            // 2026.8+: the policy-binding-model uuid, the same value as `pk`.
            "pbm_uuid": a.pk,
            "name": a.name,
            "slug": a.slug,
            "provider": a.provider,
            "provider_obj": provider.map(|p| self.render_provider_base(p, BaseView::Typed, links)),
            "backchannel_providers": a.backchannel_providers,
            "backchannel_providers_obj": a.backchannel_providers.iter()
                .filter_map(|pk| self.providers.get(pk))
                .map(|p| self.render_provider_base(p, BaseView::Typed, links)).collect::<Vec<_>>(),
            "launch_url": launch_url,
            "open_in_new_tab": a.open_in_new_tab,
            "meta_launch_url": a.meta_launch_url,
            "meta_icon": a.meta_icon,
            "meta_icon_url": (!a.meta_icon.is_empty()).then(|| a.meta_icon.clone()),
            "meta_icon_themed_urls": null,
            "meta_description": a.meta_description,
            "meta_publisher": a.meta_publisher,
            "policy_engine_mode": a.policy_engine_mode,
            "group": a.group,
        })
    }

    /// Whether a user passes the application's policy bindings: the plain list is filtered by
    /// this for the token's user (`superuser_full_list=true` skips it), and the authorize page
    /// refuses a signed-in user who fails it.
    pub(crate) fn user_may_access(&self, user_pk: i64, a: &Application) -> bool {
        let results: Vec<bool> = self
            .bindings
            .iter()
            .filter(|b| b.target == a.pk && b.enabled)
            .map(|b| {
                let passes = match (b.group, b.user) {
                    (Some(g), _) => self
                        .groups
                        .iter()
                        .any(|gr| gr.pk == g && gr.users.contains(&user_pk)),
                    (None, Some(u)) => u == user_pk,
                    (None, None) => b.failure_result,
                };
                passes != b.negate
            })
            .collect();
        if results.is_empty() {
            return true;
        }
        if a.policy_engine_mode == "all" {
            results.iter().all(|r| *r)
        } else {
            results.iter().any(|r| *r)
        }
    }

    pub(crate) fn application_list_item(
        &self,
        a: &Application,
        links: &ProviderLinks<'_>,
    ) -> Value {
        let mut v = self.render_application(a, links);
        if let Value::Object(m) = &mut v {
            m.insert(
                "_visible".into(),
                json!(self.user_may_access(self.admin_pk, a)),
            );
        }
        v
    }
}

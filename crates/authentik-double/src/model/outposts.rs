//! Outposts: `providers` is a plain list replaced wholesale; validated against `type`.

use serde_json::{Value, json};
use uuid::Uuid;

use super::providers::{BaseView, ProviderLinks};
use super::{EMBEDDED_OUTPOST_MANAGED, Model, Outpost, ProviderKind, set};
use crate::error::ApiError;
use crate::form::{Form, Need};

/// The embedded outpost's config as recorded on a fresh 2025.12.4.
pub(crate) fn default_config() -> Value {
    json!({
        "log_level": "info",
        "docker_labels": null,
        "authentik_host": "",
        "docker_network": null,
        "container_image": null,
        "docker_map_ports": true,
        "refresh_interval": "minutes=5",
        "kubernetes_replicas": 1,
        "kubernetes_namespace": "default",
        "authentik_host_browser": "",
        "object_naming_template": "ak-outpost-%(name)s",
        "authentik_host_insecure": false,
        "kubernetes_json_patches": null,
        "kubernetes_service_type": "ClusterIP",
        "kubernetes_ingress_path_type": null,
        "kubernetes_image_pull_secrets": [],
        "kubernetes_ingress_class_name": null,
        "kubernetes_disabled_components": [],
        "kubernetes_ingress_annotations": {},
        "kubernetes_ingress_secret_name": "authentik-outpost-tls",
        "kubernetes_httproute_annotations": {},
        "kubernetes_httproute_parent_refs": []
    })
}

/// Python class name and outpost type a provider kind serves.
fn provider_class(kind: &ProviderKind) -> (&'static str, &'static str) {
    match kind {
        ProviderKind::Proxy(_) => ("ProxyProvider", "proxy"),
        ProviderKind::OAuth2(_) => ("OAuth2Provider", ""),
    }
}

impl Model {
    pub(crate) fn outpost_index(&self, raw_uuid: &str) -> Result<usize, ApiError> {
        let uuid = Uuid::parse_str(raw_uuid).map_err(|_| ApiError::NotFound("Outpost"))?;
        self.outposts
            .iter()
            .position(|o| o.pk == uuid)
            .ok_or(ApiError::NotFound("Outpost"))
    }

    /// Create (`index == None`), update or partially update an outpost; returns its index.
    pub(crate) fn write_outpost(
        &mut self,
        index: Option<usize>,
        body: &Value,
        partial: bool,
    ) -> Result<usize, ApiError> {
        let current = index.map(|i| self.outposts[i].clone());
        let embedded = current
            .as_ref()
            .is_some_and(|o| o.managed.as_deref() == Some(EMBEDDED_OUTPOST_MANAGED));
        let body = self.known_fields("OutpostRequest", partial, body);
        let mut f = Form::new(&body, partial)?;
        let name = f.string("name", Need::Required, false);
        if let Some(n) = &name {
            if embedded && current.as_ref().is_some_and(|o| o.name != *n) {
                f.error("name", "Embedded outpost's name cannot be changed");
            } else if self
                .outposts
                .iter()
                .any(|o| o.name == *n && Some(o.pk) != current.as_ref().map(|c| c.pk))
            {
                f.error("name", "Outpost with this name already exists.");
            }
        }
        let outpost_type = f.choice("type", Need::Required, &["proxy", "ldap", "radius", "rac"]);
        let providers = f.references::<i64>("providers", Need::Required, |pk| {
            self.providers.contains_key(&pk)
        });
        if let Some(list) = &providers {
            // The type check uses `type` from the submitted payload only: a PATCH without
            // `type` skips it (API doc §5).
            if let Some(t) = f.has("type").then_some(outpost_type.as_deref()).flatten() {
                let wrong = list
                    .iter()
                    .filter_map(|pk| self.providers.get(pk))
                    .map(|p| provider_class(&p.kind))
                    .find(|(_, serves)| *serves != t);
                if let Some((class, _)) = wrong {
                    f.error(
                        "providers",
                        format!("Outpost type {t} can't be used with {class} providers."),
                    );
                }
            }
            if list.is_empty() && !embedded && !f.has_error("providers") {
                f.error("providers", "This list may not be empty.");
            }
        }
        // No service connections exist in the double's fresh install.
        let service_connection =
            f.reference::<Uuid>("service_connection", Need::Optional, true, |_| false);
        let config = f.object("config", Need::Required);
        let managed = f.nullable_string("managed");
        f.finish()?;

        let mut outpost = match current {
            Some(o) => o,
            None => Outpost {
                pk: self.ids.uuid(),
                name: String::new(),
                outpost_type: "proxy".to_owned(),
                providers: Vec::new(),
                service_connection: None,
                config: default_config(),
                managed: None,
            },
        };
        set(&mut outpost.name, name);
        set(&mut outpost.outpost_type, outpost_type);
        set(&mut outpost.providers, providers);
        set(&mut outpost.service_connection, service_connection);
        set(&mut outpost.config, config);
        set(&mut outpost.managed, managed);
        Ok(match index {
            Some(i) => {
                self.outposts[i] = outpost;
                i
            }
            None => {
                self.outposts.push(outpost);
                self.outposts.len() - 1
            }
        })
    }

    pub(crate) fn render_outpost(&self, o: &Outpost, links: &ProviderLinks<'_>) -> Value {
        json!({
            "pk": o.pk,
            "name": o.name,
            "type": o.outpost_type,
            "providers": o.providers,
            // Recorded: providers_obj uses the generic base Provider serializer.
            "providers_obj": o.providers.iter().filter_map(|pk| self.providers.get(pk))
                .map(|p| self.render_provider_base(p, BaseView::Generic, links)).collect::<Vec<_>>(),
            "service_connection": o.service_connection,
            "service_connection_obj": null,
            "refresh_interval_s": 300,
            "token_identifier": format!("ak-outpost-{}-api", o.pk),
            "config": o.config,
            "managed": o.managed,
        })
    }

    pub(crate) fn outpost_list_item(&self, o: &Outpost, links: &ProviderLinks<'_>) -> Value {
        let mut v = self.render_outpost(o, links);
        if let Value::Object(m) = &mut v {
            let names: Vec<&str> = o
                .providers
                .iter()
                .filter_map(|pk| self.providers.get(pk))
                .map(|p| p.name.as_str())
                .collect();
            m.insert("_provider_names".into(), json!(names));
            m.insert("_service_connection_name".into(), Value::Null);
        }
        v
    }
}

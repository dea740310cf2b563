//! The endpoints the controllers use. Each is a thin description of a [`Call`]; sending,
//! retrying, paginating and error mapping live in `client.rs`.
//!
//! Conventions: `get_*` addresses one object by its key and fails with [`Error::NotFound`]
//! when it is absent; `find_*` filters a list and returns `Ok(None)` when nothing matches
//! exactly; `list_*` returns every page.
//!
//! Filters: authentik ignores query parameters it does not declare and answers with every
//! object, so only filters its API documents are sent (`designation`, `flow_uuid`,
//! `name__iexact`, `search`, `superuser_full_list`, `name` on groups, `target`,
//! `managed__iexact`), and every filtered result is checked again here.

use http::Method;

use crate::client::{AuthentikClient, Call};
use crate::error::Error;
use crate::models::{
    Application, ApplicationPatch, ApplicationRequest, Flow, FlowDesignation, Group, Outpost,
    PolicyBinding, PolicyBindingRequest, ProviderSummary, ProxyProvider, ProxyProviderPatch,
    ProxyProviderRequest, SessionUser, Version,
};

const FLOWS: &str = "/flows/instances/";
const FLOW: &str = "/flows/instances/{id}/";
const PROXY_PROVIDERS: &str = "/providers/proxy/";
const PROXY_PROVIDER: &str = "/providers/proxy/{id}/";
const ALL_PROVIDERS: &str = "/providers/all/";
const APPLICATIONS: &str = "/core/applications/";
const APPLICATION: &str = "/core/applications/{id}/";
const GROUPS: &str = "/core/groups/";
const POLICY_BINDINGS: &str = "/policies/bindings/";
const POLICY_BINDING: &str = "/policies/bindings/{id}/";
const OUTPOSTS: &str = "/outposts/instances/";
const OUTPOST: &str = "/outposts/instances/{id}/";
const CURRENT_USER: &str = "/core/users/me/";
const VERSION: &str = "/admin/version/";

/// The only body ever sent to an outpost: its provider list, replaced wholesale. `config`
/// and `type` are never sent, so this client cannot clobber an outpost's configuration.
#[derive(serde::Serialize)]
struct OutpostProviders<'a> {
    providers: &'a [i64],
}

impl AuthentikClient {
    // --- flows -------------------------------------------------------------------------

    /// `GET /flows/instances/{slug}/`.
    pub async fn get_flow(&self, slug: &str) -> Result<Flow, Error> {
        self.send_json(Call::get(FLOW).id(slug)).await
    }

    /// Every flow with `designation`, sorted by slug so a fallback choice is deterministic.
    pub async fn list_flows_by_designation(
        &self,
        designation: FlowDesignation,
    ) -> Result<Vec<Flow>, Error> {
        let call = Call::get(FLOWS)
            .query("designation", designation.as_str())
            .query("ordering", "slug");
        let mut flows: Vec<Flow> = self.list_all(call).await?;
        // authentik answers a filter it does not know with every object; `designation` is
        // documented, but checking costs nothing and a wrong flow would be a security bug.
        flows.retain(|flow| flow.designation == designation.as_str());
        flows.sort_by(|a, b| a.slug.cmp(&b.slug));
        Ok(flows)
    }

    /// The flow whose `pk` is `uuid` (`?flow_uuid=`).
    pub async fn find_flow_by_uuid(&self, uuid: &str) -> Result<Option<Flow>, Error> {
        let call = Call::get(FLOWS).query("flow_uuid", uuid);
        self.find_first(call, |f: &Flow| f.pk.eq_ignore_ascii_case(uuid))
            .await
    }

    // --- proxy providers ---------------------------------------------------------------

    /// The proxy provider named exactly `name` (`?name__iexact=`, then a case-sensitive match,
    /// since names differing only in case are distinct providers).
    pub async fn find_proxy_provider_by_name(
        &self,
        name: &str,
    ) -> Result<Option<ProxyProvider>, Error> {
        let call = Call::get(PROXY_PROVIDERS).query("name__iexact", name);
        self.find_first(call, |p: &ProxyProvider| p.name == name)
            .await
    }

    /// Every proxy provider.
    pub async fn list_proxy_providers(&self) -> Result<Vec<ProxyProvider>, Error> {
        self.list_all(Call::get(PROXY_PROVIDERS)).await
    }

    /// `GET /providers/proxy/{pk}/`.
    pub async fn get_proxy_provider(&self, pk: i64) -> Result<ProxyProvider, Error> {
        self.send_json(Call::get(PROXY_PROVIDER).id(&pk.to_string()))
            .await
    }

    /// `POST /providers/proxy/` (201). Never retried: look the name up first, and read a 400
    /// on `name` ([`Error::is_field_conflict`]) as "taken", possibly by another provider type.
    pub async fn create_proxy_provider(
        &self,
        request: &ProxyProviderRequest,
    ) -> Result<ProxyProvider, Error> {
        self.send_json(Call::new(Method::POST, PROXY_PROVIDERS).json(request)?)
            .await
    }

    /// `PUT /providers/proxy/{pk}/`: replaces every writable field.
    pub async fn update_proxy_provider(
        &self,
        pk: i64,
        request: &ProxyProviderRequest,
    ) -> Result<ProxyProvider, Error> {
        let pk = pk.to_string();
        self.send_json(
            Call::new(Method::PUT, PROXY_PROVIDER)
                .id(&pk)
                .json(request)?,
        )
        .await
    }

    /// `PATCH /providers/proxy/{pk}/`: changes the fields set in `patch`.
    pub async fn patch_proxy_provider(
        &self,
        pk: i64,
        patch: &ProxyProviderPatch,
    ) -> Result<ProxyProvider, Error> {
        let pk = pk.to_string();
        self.send_json(
            Call::new(Method::PATCH, PROXY_PROVIDER)
                .id(&pk)
                .json(patch)?,
        )
        .await
    }

    /// `DELETE /providers/proxy/{pk}/` (204). A 404 on the first attempt is
    /// [`Error::NotFound`]; on a retry it counts as deleted.
    pub async fn delete_proxy_provider(&self, pk: i64) -> Result<(), Error> {
        let pk = pk.to_string();
        self.send(Call::new(Method::DELETE, PROXY_PROVIDER).id(&pk))
            .await
            .map(drop)
    }

    /// The provider of any type named exactly `name` (`/providers/all/?search=`, which is a
    /// "contains" search, then an exact match). Names are unique across provider types, so this
    /// tells who holds a name a proxy provider cannot take.
    pub async fn find_provider_by_name(
        &self,
        name: &str,
    ) -> Result<Option<ProviderSummary>, Error> {
        let call = Call::get(ALL_PROVIDERS).query("search", name);
        self.find_first(call, |p: &ProviderSummary| p.name == name)
            .await
    }

    // --- applications ------------------------------------------------------------------

    /// `GET /core/applications/{slug}/`.
    pub async fn get_application(&self, slug: &str) -> Result<Application, Error> {
        self.send_json(Call::get(APPLICATION).id(slug)).await
    }

    /// Every application, including those the token's user could not launch
    /// (`superuser_full_list=true`).
    pub async fn list_applications(&self) -> Result<Vec<Application>, Error> {
        self.list_all(Call::get(APPLICATIONS).query("superuser_full_list", "true"))
            .await
    }

    /// `POST /core/applications/` (201). Never retried; a 400 on `slug` means the slug is
    /// taken, a 400 on `provider` that the provider is bound elsewhere.
    pub async fn create_application(
        &self,
        request: &ApplicationRequest,
    ) -> Result<Application, Error> {
        self.send_json(Call::new(Method::POST, APPLICATIONS).json(request)?)
            .await
    }

    /// `PUT /core/applications/{slug}/`: replaces the fields of [`ApplicationRequest`].
    pub async fn update_application(
        &self,
        slug: &str,
        request: &ApplicationRequest,
    ) -> Result<Application, Error> {
        self.send_json(Call::new(Method::PUT, APPLICATION).id(slug).json(request)?)
            .await
    }

    /// `PATCH /core/applications/{slug}/`: changes the fields set in `patch`.
    pub async fn patch_application(
        &self,
        slug: &str,
        patch: &ApplicationPatch,
    ) -> Result<Application, Error> {
        self.send_json(Call::new(Method::PATCH, APPLICATION).id(slug).json(patch)?)
            .await
    }

    /// `DELETE /core/applications/{slug}/` (204). The provider is left in place, unbound.
    pub async fn delete_application(&self, slug: &str) -> Result<(), Error> {
        self.send(Call::new(Method::DELETE, APPLICATION).id(slug))
            .await
            .map(drop)
    }

    // --- groups and policy bindings ----------------------------------------------------

    /// The group named exactly `name` (`?name=`).
    pub async fn find_group_by_name(&self, name: &str) -> Result<Option<Group>, Error> {
        let call = Call::get(GROUPS).query("name", name);
        self.find_first(call, |g: &Group| g.name == name).await
    }

    /// Every policy binding on `target` (an application's `pk`).
    pub async fn list_policy_bindings(&self, target: &str) -> Result<Vec<PolicyBinding>, Error> {
        let bindings: Vec<PolicyBinding> = self
            .list_all(Call::get(POLICY_BINDINGS).query("target", target))
            .await?;
        // Guard against a server that ignores the filter (unknown filters are ignored).
        Ok(bindings
            .into_iter()
            .filter(|b| b.target == target)
            .collect())
    }

    /// `POST /policies/bindings/` (201). The server accepts duplicates, so list first.
    pub async fn create_policy_binding(
        &self,
        request: &PolicyBindingRequest,
    ) -> Result<PolicyBinding, Error> {
        self.send_json(Call::new(Method::POST, POLICY_BINDINGS).json(request)?)
            .await
    }

    /// `DELETE /policies/bindings/{pk}/` (204).
    pub async fn delete_policy_binding(&self, pk: &str) -> Result<(), Error> {
        self.send(Call::new(Method::DELETE, POLICY_BINDING).id(pk))
            .await
            .map(drop)
    }

    // --- outposts ----------------------------------------------------------------------

    /// The embedded outpost (`?managed__iexact=goauthentik.io/outposts/embedded`).
    pub async fn find_embedded_outpost(&self) -> Result<Option<Outpost>, Error> {
        let call = Call::get(OUTPOSTS).query("managed__iexact", Outpost::EMBEDDED_MANAGED);
        self.find_first(call, |o: &Outpost| {
            o.managed.as_deref() == Some(Outpost::EMBEDDED_MANAGED)
        })
        .await
    }

    /// The outpost named exactly `name` (`?name__iexact=`, then a case-sensitive match).
    pub async fn find_outpost_by_name(&self, name: &str) -> Result<Option<Outpost>, Error> {
        let call = Call::get(OUTPOSTS).query("name__iexact", name);
        self.find_first(call, |o: &Outpost| o.name == name).await
    }

    /// `GET /outposts/instances/{uuid}/`.
    pub async fn get_outpost(&self, uuid: &str) -> Result<Outpost, Error> {
        self.send_json(Call::get(OUTPOST).id(uuid)).await
    }

    /// Replaces the outpost's provider list: `PATCH /outposts/instances/{uuid}/` with
    /// `{"providers": [...]}` only. There is no conditional write: read the outpost, change
    /// the list, write it, and read it again to detect a concurrent writer.
    pub async fn set_outpost_providers(
        &self,
        uuid: &str,
        providers: &[i64],
    ) -> Result<Outpost, Error> {
        let body = OutpostProviders { providers };
        self.send_json(
            Call::new(Method::PATCH, OUTPOST)
                .id(uuid)
                .json(&body)?
                .slow(),
        )
        .await
    }

    // --- health ------------------------------------------------------------------------

    /// `GET /core/users/me/`: the token's user. Success proves the token works.
    pub async fn current_user(&self) -> Result<SessionUser, Error> {
        self.send_json(Call::get(CURRENT_USER)).await
    }

    /// `GET /admin/version/`: the server version, for version gating.
    pub async fn version(&self) -> Result<Version, Error> {
        self.send_json(Call::get(VERSION)).await
    }
}

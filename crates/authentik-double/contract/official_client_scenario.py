#!/usr/bin/env python3
"""Contract scenario for the authentik API double, driven by the official PyPI
`authentik-client` package of one release (pydantic models: every response must deserialize),
against the double imitating that release.

Usage: official_client_scenario.py --host http://127.0.0.1:PORT/api/v3 --token TOKEN
Exits non-zero on the first unexpected exception or on any failed check (all are listed).
"""
import argparse
import json
import sys
from typing import Optional

import authentik_client as ak
from authentik_client.exceptions import ApiException

# Real servers send `null` for these (an unbound provider or application, an outpost without a
# service connection; recorded on 2024.10.5 and 2025.12.4) although the schemas of older
# releases type them non-null; the schemas caught up in 2025.8 and 2026.2. The models are
# relaxed for exactly these fields, so everything else is still checked by the package.
REAL_SERVER_NULLS = {
    "ProxyProvider": ["assigned_application_slug", "assigned_application_name",
                      "assigned_backchannel_application_slug", "assigned_backchannel_application_name"],
    "Provider": ["assigned_application_slug", "assigned_application_name",
                 "assigned_backchannel_application_slug", "assigned_backchannel_application_name"],
    "Application": ["provider_obj"],
    "Outpost": ["service_connection_obj"],
}
# Rebuilt after the models above, because they embed them.
CONTAINERS = ["Application", "Outpost", "PaginatedProxyProviderList", "PaginatedProviderList",
              "PaginatedApplicationList", "PaginatedOutpostList"]


def tolerate_real_server_nulls():
    for cls_name, fields in REAL_SERVER_NULLS.items():
        cls = getattr(ak, cls_name)
        for name in fields:
            info = cls.model_fields.get(name)
            if info is not None and type(None) not in getattr(info.annotation, "__args__", ()):
                info.annotation = Optional[info.annotation]
        cls.model_rebuild(force=True)
    for cls_name in CONTAINERS:
        getattr(ak, cls_name).model_rebuild(force=True)


def uri_count(redirect_uris):
    """2024.10 sends one string, a URI per line; later releases a list of `RedirectURI`."""
    return len(redirect_uris.splitlines()) if isinstance(redirect_uris, str) else len(redirect_uris)

FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print(f"FAIL: {what}", file=sys.stderr)


def expect_400(fn, field, what):
    """The call must fail with 400 and an error keyed by `field`."""
    try:
        fn()
    except ApiException as e:
        body = json.loads(e.body or "{}")
        check(e.status == 400, f"{what}: status {e.status} (want 400)")
        check(field in body, f"{what}: body {body} lacks key {field!r}")
        return body
    check(False, f"{what}: no error raised")
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--expect-version", help="version_current the server must report")
    args = ap.parse_args()
    tolerate_real_server_nulls()

    config = ak.Configuration(host=args.host, access_token=args.token)
    with ak.ApiClient(config) as client:
        providers = ak.ProvidersApi(client)
        core = ak.CoreApi(client)
        outposts = ak.OutpostsApi(client)
        flows = ak.FlowsApi(client)
        admin = ak.AdminApi(client)

        # Health and version.
        me = core.core_users_me_retrieve()
        check(me.user.is_superuser, "users/me: token user is a superuser")
        current = admin.admin_version_retrieve().version_current
        check(current != "", "admin/version answers")
        check(args.expect_version in (None, current), f"admin/version reports {current}")

        # Flow lookup by slug (list filter and retrieve).
        found = flows.flows_instances_list(slug="default-provider-authorization-implicit-consent")
        check(found.pagination.count == 1, "flow list by slug finds exactly one")
        authz = found.results[0].pk
        inval = flows.flows_instances_retrieve(slug="default-provider-invalidation-flow").pk

        # Create.
        req = ak.ProxyProviderRequest(
            name="contract-grafana",
            authorization_flow=authz,
            invalidation_flow=inval,
            external_host="https://grafana.example.com",
            internal_host="http://grafana.monitoring.svc:3000",
            mode=ak.ProxyMode.FORWARD_SINGLE,
        )
        created = providers.providers_proxy_create(req)
        pk = created.pk
        check(len(created.property_mappings or []) > 0, "server added property_mappings")
        check(uri_count(created.redirect_uris) == 2, "server derived two redirect_uris")
        check(created.assigned_application_slug is None, "new provider is unassigned")

        # List and get.
        listed = providers.providers_proxy_list(name__iexact="CONTRACT-GRAFANA")
        check(listed.pagination.count == 1 and listed.results[0].pk == pk, "list by name__iexact")
        check(providers.providers_proxy_retrieve(id=pk).name == "contract-grafana", "retrieve by pk")

        # Update (PATCH with mode, as the API doc advises).
        patched = providers.providers_proxy_partial_update(
            id=pk,
            patched_proxy_provider_request=ak.PatchedProxyProviderRequest(
                mode=ak.ProxyMode.FORWARD_SINGLE, skip_path_regex="^/api/.*$"
            ),
        )
        check(patched.skip_path_regex == "^/api/.*$", "partial update applied")

        # Errors: duplicate name, missing required fields.
        expect_400(lambda: providers.providers_proxy_create(req), "name", "duplicate provider name")
        missing = ak.ProxyProviderRequest.model_construct(
            name="contract-missing", external_host="https://x.example.com", mode=ak.ProxyMode.FORWARD_SINGLE
        )
        body = expect_400(lambda: providers.providers_proxy_create(missing), "authorization_flow", "missing flows")
        check(body is not None and "invalidation_flow" in body, "missing invalidation_flow is reported too")

        # Application create and slug conflict.
        app = core.core_applications_create(
            ak.ApplicationRequest(name="Grafana", slug="contract-grafana", provider=pk)
        )
        check(app.provider == pk and app.launch_url == "https://grafana.example.com", "application bound")
        expect_400(
            lambda: core.core_applications_create(ak.ApplicationRequest(name="Dup", slug="contract-grafana")),
            "slug",
            "duplicate slug",
        )

        # Embedded outpost lookup and providers PATCH (replaced wholesale).
        embedded = outposts.outposts_instances_list(managed__iexact="goauthentik.io/outposts/embedded")
        check(embedded.pagination.count == 1, "embedded outpost found")
        outpost = embedded.results[0]
        after = outposts.outposts_instances_partial_update(
            uuid=outpost.pk,
            patched_outpost_request=ak.PatchedOutpostRequest(providers=sorted(set(outpost.providers) | {pk})),
        )
        check(pk in after.providers, "provider added to the outpost")
        check(
            providers.providers_proxy_retrieve(id=pk).outpost_set == [f"Outpost {outpost.name}"],
            "outpost_set lists the outpost",
        )
        expect_400(
            lambda: outposts.outposts_instances_partial_update(
                uuid=outpost.pk, patched_outpost_request=ak.PatchedOutpostRequest(providers=[pk, 99999])
            ),
            "providers",
            "unknown provider pk in outpost",
        )
        after = outposts.outposts_instances_partial_update(
            uuid=outpost.pk,
            patched_outpost_request=ak.PatchedOutpostRequest(providers=[p for p in after.providers if p != pk]),
        )
        check(pk not in after.providers, "provider removed from the outpost")

        # Delete.
        providers.providers_proxy_destroy(id=pk)
        try:
            providers.providers_proxy_retrieve(id=pk)
            check(False, "deleted provider still retrievable")
        except ApiException as e:
            check(e.status == 404, f"deleted provider: status {e.status} (want 404)")
        # Read raw as well, to see the nulls themselves.
        raw = core.core_applications_retrieve_without_preload_content(slug="contract-grafana")
        unbound = json.loads(raw.data)
        check(raw.status == 200 and unbound["provider"] is None, "application unbound")
        check(unbound["provider_obj"] is None, "unbound application has provider_obj null")
        core.core_applications_destroy(slug="contract-grafana")

    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed", file=sys.stderr)
        return 1
    print("official client scenario: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

//! What a real authentik (2025.12.4, gunicorn: 2 s keep-alive, workers recycled after ~1,000
//! requests) does to connections under load, modelled by the double, against the project's
//! client: it must never reuse a connection the server is closing, must retry what is safe to
//! retry, and must read the empty 405 of a closing connection as transient (issue 16, 5a).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use authentik_double::{DoubleHandle, Fault, KeepAliveRace, Outcome, ServerBehaviour};
use common::{Api, start};
use gitops_authentik::{
    ApiToken, AuthentikClient, ClientConfig, ProxyMode, ProxyProviderPatch, ProxyProviderRequest,
    RetryPolicy,
};
use serde_json::json;

fn client_with(d: &DoubleHandle, config: impl FnOnce(&mut ClientConfig)) -> AuthentikClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut settings = ClientConfig::new(d.base_url(), ApiToken::new(d.token()));
    settings.retry = RetryPolicy {
        initial_backoff: Duration::from_millis(20),
        ..RetryPolicy::default()
    };
    config(&mut settings);
    AuthentikClient::new(settings).unwrap()
}

async fn provider_request(client: &AuthentikClient, name: &str) -> ProxyProviderRequest {
    let authz = client
        .get_flow("default-provider-authorization-implicit-consent")
        .await
        .unwrap();
    let inval = client
        .get_flow("default-provider-invalidation-flow")
        .await
        .unwrap();
    let mut request = ProxyProviderRequest::new(
        name,
        &authz.pk,
        &inval.pk,
        format!("https://{name}.example.com"),
    );
    request.mode = ProxyMode::ForwardSingle;
    request
}

/// The keep-alive here is 1.5 s and the client idles 2 s: with reqwest's default (idle
/// connections kept 90 s) the create below reuses a connection the server has closed and, as a
/// POST, cannot be retried. The client keeps idle connections 1 s, so it opens a fresh one.
#[tokio::test]
async fn the_client_never_reuses_a_connection_the_server_has_closed() {
    let d = start().await;
    d.set_server_behaviour(ServerBehaviour {
        keep_alive_ms: Some(1_500),
        keep_alive_race: KeepAliveRace::Reset,
        recycle_after: None,
    });
    let client = client_with(&d, |_| {});
    let request = provider_request(&client, "after-a-pause").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let created = client.create_proxy_provider(&request).await;
    assert!(created.is_ok(), "{created:?}");
    assert_eq!(d.count_outcome(Outcome::KeepAliveExpired), 0);
}

/// What authentik answered on such a connection: 405 with an empty body. A client that does
/// keep connections longer than the server (here configured to) gets it, and must retry.
#[tokio::test]
async fn the_empty_405_of_a_closing_connection_is_retried() {
    let d = start().await;
    d.set_server_behaviour(ServerBehaviour {
        keep_alive_ms: Some(1_000),
        keep_alive_race: KeepAliveRace::EmptyMethodNotAllowed,
        recycle_after: None,
    });
    let client = client_with(&d, |config| {
        config.idle_connection_timeout = Duration::from_secs(90);
    });
    let outpost = client.find_embedded_outpost().await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let written = client.set_outpost_providers(&outpost.pk, &[]).await;
    assert!(written.is_ok(), "{written:?}");
    assert_eq!(
        d.count_outcome(Outcome::KeepAliveExpired),
        1,
        "the model raced"
    );
}

/// gunicorn replaces a worker after `max_requests`, resetting the connections it served. Every
/// idempotent call that meets such a reset is retried on a fresh connection.
#[tokio::test]
async fn idempotent_calls_survive_worker_recycling() {
    let d = start().await;
    let client = client_with(&d, |_| {});
    let request = provider_request(&client, "recycled").await;
    let provider = client.create_proxy_provider(&request).await.unwrap();
    let outpost = client.find_embedded_outpost().await.unwrap().unwrap();
    // Every second request is the last of its worker: each call below meets a reset.
    d.set_server_behaviour(ServerBehaviour {
        recycle_after: Some(2),
        ..ServerBehaviour::default()
    });
    for round in 0..3 {
        client.get_proxy_provider(provider.pk).await.unwrap();
        let mut patch = ProxyProviderPatch::new(ProxyMode::ForwardSingle);
        patch.external_host = Some(format!("https://recycled-{round}.example.com"));
        client
            .patch_proxy_provider(provider.pk, &patch)
            .await
            .unwrap();
        client
            .update_proxy_provider(provider.pk, &request)
            .await
            .unwrap();
        client
            .set_outpost_providers(&outpost.pk, &[provider.pk])
            .await
            .unwrap();
    }
    client.delete_proxy_provider(provider.pk).await.unwrap();
    let resets = d.count_outcome(Outcome::WorkerRecycled);
    assert!(resets >= 6, "{resets} requests met a recycled worker");
}

/// Another admin deletes a provider between a client's read of the outpost and its write: the
/// write names a pk that no longer exists, and authentik rejects the whole list.
#[tokio::test]
async fn a_concurrent_deletion_makes_the_outpost_write_name_the_deleted_pk() {
    let d = start().await;
    let api = Api::new(&d);
    let foreign = d.create_foreign_provider("someone-elses");
    let outpost = format!("/outposts/instances/{}/", d.embedded_outpost_uuid());
    d.inject(Fault::delete_providers_first(vec![foreign]).only("PATCH", "/api/v3/outposts/"));
    let (status, body) = api.patch(&outpost, json!({"providers": [foreign]})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"providers": [format!("Invalid pk \"{foreign}\" - object does not exist.")]})
    );
    assert!(d.provider(foreign).is_none());
}

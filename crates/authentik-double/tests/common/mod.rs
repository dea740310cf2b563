//! Shared test helpers: start a double and talk JSON to it.
#![allow(dead_code, clippy::unwrap_used)]

use authentik_double::{AuthentikDouble, DoubleConfig, DoubleHandle};
use reqwest::Method;
use serde_json::Value;

pub async fn start() -> DoubleHandle {
    start_with(DoubleConfig::default()).await
}

pub async fn start_with(config: DoubleConfig) -> DoubleHandle {
    AuthentikDouble::start(config).await.expect("double starts")
}

pub fn http() -> reqwest::Client {
    // reqwest is built without a default rustls provider; plain HTTP still needs one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().expect("client")
}

/// A JSON client with the double's token.
#[derive(Debug, Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
}

impl Api {
    pub fn new(d: &DoubleHandle) -> Self {
        Api {
            http: http(),
            base: d.api_url(),
            token: Some(d.token().to_owned()),
        }
    }

    pub fn with_token(mut self, token: Option<&str>) -> Self {
        self.token = token.map(str::to_owned);
        self
    }

    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Result<(u16, Value)> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method, url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.try_send(method, path, body)
            .await
            .expect("request completes")
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(Method::POST, path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(Method::PUT, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(Method::DELETE, path, None).await
    }
}

/// A valid proxy-provider body (forward_single, so no internal_host needed).
pub fn proxy_body(d: &DoubleHandle, name: &str) -> Value {
    serde_json::json!({
        "name": name,
        "authorization_flow": d.flow_pk("default-provider-authorization-implicit-consent").unwrap(),
        "invalidation_flow": d.flow_pk("default-provider-invalidation-flow").unwrap(),
        "external_host": format!("https://{name}.example.com"),
        "mode": "forward_single",
    })
}

/// Create a proxy provider and return its pk.
pub async fn create_proxy(api: &Api, d: &DoubleHandle, name: &str) -> i64 {
    let (status, body) = api.post("/providers/proxy/", proxy_body(d, name)).await;
    assert_eq!(status, 201, "{body}");
    body["pk"].as_i64().unwrap()
}

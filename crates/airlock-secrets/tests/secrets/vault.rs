//! The Vault source against a local stand-in that speaks Vault's real KV v2 JSON.

use crate::{env_of, specs, CANARY};
use airlock_core::manifest::{SecretKind, SecretSource, SecretSpec};
use airlock_secrets::{Broker, SecretError};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

const TOKEN: &str = "hvs.test-token-5b1e";

/// The path and `X-Vault-Namespace` of a request the stand-in received.
type Request = (String, Option<String>);

#[derive(Clone, Default)]
struct Seen {
    requests: Arc<Mutex<Vec<Request>>>,
}

/// `GET /v1/{mount}/data/{path}` as Vault answers it: 403 `permission denied` without the right
/// `X-Vault-Token`, 404 `{"errors":[]}` for an unknown path, the KV v2 envelope otherwise.
async fn kv_read(
    State(seen): State<Seen>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    let namespace = headers
        .get("x-vault-namespace")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    seen.requests
        .lock()
        .unwrap()
        .push((path.clone(), namespace));
    if headers.get("x-vault-token").and_then(|v| v.to_str().ok()) != Some(TOKEN) {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"errors": ["permission denied"]})),
        )
            .into_response();
    }
    match path.as_str() {
        "secret/data/ci/readonly" => Json(json!({
            "request_id": "0e1f6d2a-5b6c-4c1e-9d3e-2a9f1c0b7e11",
            "lease_id": "",
            "renewable": false,
            "lease_duration": 0,
            "data": {
                "data": {"username": "ci-bot", "password": CANARY, "pin": 1234},
                "metadata": {
                    "created_time": "2026-11-01T10:00:00.000000Z",
                    "custom_metadata": null,
                    "deletion_time": "",
                    "destroyed": false,
                    "version": 3
                }
            },
            "wrap_info": null,
            "warnings": null,
            "auth": null
        }))
        .into_response(),
        "kv/data/team/ops/deploy key" => Json(json!({
            "data": {"data": {"token": "deploy-token-value"}, "metadata": {"version": 1}}
        }))
        .into_response(),
        _ => (StatusCode::NOT_FOUND, Json(json!({"errors": []}))).into_response(),
    }
}

async fn stand_in() -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .route("/v1/{*path}", get(kv_read))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, seen)
}

fn vault_spec(path: &str, field: &str) -> SecretSpec {
    SecretSpec {
        source: SecretSource::Vault,
        env: None,
        path: None,
        vault_path: Some(path.into()),
        vault_field: Some(field.into()),
        hosts: vec!["ci.example".into()],
        kind: SecretKind::Password,
    }
}

async fn resolve(
    path: &str,
    field: &str,
    addr: SocketAddr,
    token: &str,
    namespace: Option<&str>,
) -> Result<Broker, SecretError> {
    let mut b = Broker::new(&specs(vec![("ci-password", vault_spec(path, field))]))?;
    let addr = format!("http://{addr}");
    let mut vars = vec![("VAULT_ADDR", addr.as_str()), ("VAULT_TOKEN", token)];
    if let Some(ns) = namespace {
        vars.push(("VAULT_NAMESPACE", ns));
    }
    b.resolve_all_with_env(env_of(&vars)).await?;
    Ok(b)
}

#[tokio::test]
async fn kv2_field_resolves_with_token_and_namespace() {
    let (addr, seen) = stand_in().await;
    let b = resolve(
        "secret/ci/readonly",
        "password",
        addr,
        TOKEN,
        Some("team-a"),
    )
    .await
    .unwrap();
    assert_eq!(
        b.value_for_handle("broker://ci-password")
            .unwrap()
            .expose_str(),
        CANARY
    );
    assert_eq!(
        seen.requests.lock().unwrap().as_slice(),
        &[(
            "secret/data/ci/readonly".to_string(),
            Some("team-a".to_string())
        )]
    );
}

#[tokio::test]
async fn path_segments_are_encoded_not_interpreted() {
    let (addr, seen) = stand_in().await;
    let b = resolve("kv/team/ops/deploy key", "token", addr, TOKEN, None)
        .await
        .unwrap();
    assert_eq!(
        b.value_for_handle("broker://ci-password")
            .unwrap()
            .expose_str(),
        "deploy-token-value"
    );
    assert_eq!(seen.requests.lock().unwrap()[0].1, None);
}

#[tokio::test]
async fn wrong_token_is_reported_with_the_path_never_the_token() {
    let (addr, _) = stand_in().await;
    let wrong = "hvs.wrong-token-9c2d";
    let err = resolve("secret/ci/readonly", "password", addr, wrong, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SecretError::VaultStatus { status: 403, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert_eq!(
        msg,
        "secret `ci-password`: vault refused `secret/ci/readonly` with HTTP 403: permission denied"
    );
    assert!(!msg.contains(wrong) && !msg.contains(TOKEN), "{msg}");
    assert!(!format!("{err:?}").contains(wrong));
}

#[tokio::test]
async fn missing_field_is_named() {
    let (addr, _) = stand_in().await;
    let err = resolve("secret/ci/readonly", "passwd", addr, TOKEN, None)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "secret `ci-password`: vault secret `secret/ci/readonly` has no field `passwd`"
    );
    let err = resolve("secret/ci/readonly", "pin", addr, TOKEN, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SecretError::VaultFieldNotString { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn unknown_path_is_a_404_error() {
    let (addr, _) = stand_in().await;
    let err = resolve("secret/ci/gone", "password", addr, TOKEN, None)
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::VaultNotFound { .. }), "{err}");
    assert!(err.to_string().contains("`secret/ci/gone`"), "{err}");
}

#[tokio::test]
async fn unreachable_vault_and_missing_config_fail_with_the_handle() {
    // Bind then drop to get a port nothing listens on.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let err = resolve("secret/ci/readonly", "password", addr, TOKEN, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "secret `ci-password`: vault request for `secret/ci/readonly` failed: cannot connect"
        ),
        "{err}"
    );

    let mut b = Broker::new(&specs(vec![(
        "ci-password",
        vault_spec("secret/ci/readonly", "password"),
    )]))
    .unwrap();
    let err = b
        .resolve_all_with_env(env_of(&[
            ("VAULT_ADDR", "http://vault.internal:8200"),
            ("VAULT_TOKEN", TOKEN),
        ]))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("plain http to a non-loopback host"), "{err}");
    let err = b
        .resolve_all_with_env(env_of(&[("VAULT_ADDR", "http://127.0.0.1:1")]))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "secret `ci-password`: vault is not configured: `VAULT_TOKEN` is not set"
    );
}

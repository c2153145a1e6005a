//! HTTP endpoints of the development provider, nested under `/dev-idp`.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::json;

use super::{CODE_SECONDS, DevIdp, PendingCode};

pub fn router(idp: Arc<DevIdp>) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize_form).post(authorize_submit))
        .route("/token", axum::routing::post(token))
        .with_state(idp)
}

async fn discovery(State(idp): State<Arc<DevIdp>>) -> Json<serde_json::Value> {
    Json(idp.discovery())
}

async fn jwks(State(idp): State<Arc<DevIdp>>) -> Json<serde_json::Value> {
    Json(idp.jwks())
}

#[derive(Debug, Deserialize)]
struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// Checks the request before anything is shown; errors here are displayed, never redirected, because the
/// redirect URI is not trusted until it matches the registered one.
fn check_request(idp: &DevIdp, p: &AuthorizeParams) -> Result<String, &'static str> {
    let client = p.client_id.as_deref().ok_or("client_id is missing")?;
    let registered = idp.redirect_uri(client).ok_or("unknown client_id")?;
    if p.redirect_uri.as_deref() != Some(registered.as_str()) {
        return Err("redirect_uri does not match the registered one");
    }
    if p.response_type.as_deref() != Some("code") {
        return Err("only response_type=code is supported");
    }
    if !p
        .scope
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .any(|s| s == "openid")
    {
        return Err("scope must include openid");
    }
    if p.code_challenge_method.as_deref() != Some("S256")
        || p.code_challenge.as_deref().unwrap_or("").len() < 43
    {
        return Err("PKCE with code_challenge_method=S256 is required");
    }
    Ok(registered)
}

async fn authorize_form(State(idp): State<Arc<DevIdp>>, Query(p): Query<AuthorizeParams>) -> Response {
    match check_request(&idp, &p) {
        Ok(_) => login_page(&p, None, StatusCode::OK),
        Err(msg) => (
            StatusCode::BAD_REQUEST,
            Html(page("Sign-in request refused", &escape(msg))),
        )
            .into_response(),
    }
}

async fn authorize_submit(State(idp): State<Arc<DevIdp>>, Form(p): Form<AuthorizeParams>) -> Response {
    let redirect_uri = match check_request(&idp, &p) {
        Ok(r) => r,
        Err(msg) => {
            return (
                StatusCode::BAD_REQUEST,
                Html(page("Sign-in request refused", &escape(msg))),
            )
                .into_response();
        }
    };
    let user = idp.user_by_credentials(
        p.username.as_deref().unwrap_or(""),
        p.password.as_deref().unwrap_or(""),
    );
    let Some(user) = user else {
        return login_page(&p, Some("Wrong user name or password."), StatusCode::UNAUTHORIZED);
    };
    let code = idp.issue_code(PendingCode {
        client_id: p.client_id.clone().unwrap_or_default(),
        redirect_uri: redirect_uri.clone(),
        user,
        nonce: p.nonce.clone(),
        code_challenge: p.code_challenge.clone().unwrap_or_default(),
        expires_at: chrono::Utc::now().timestamp() + CODE_SECONDS,
    });
    let mut target = url::Url::parse(&redirect_uri).expect("registered redirect URIs are valid");
    {
        let mut q = target.query_pairs_mut();
        q.append_pair("code", &code);
        if let Some(state) = &p.state {
            q.append_pair("state", state);
        }
        q.append_pair("iss", idp.issuer());
    }
    Redirect::to(target.as_str()).into_response()
}

#[derive(Debug, Deserialize)]
struct TokenParams {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
}

fn oauth_error(status: StatusCode, code: &str) -> Response {
    (status, Json(json!({ "error": code }))).into_response()
}

/// Client authentication from HTTP Basic (RFC 6749 §2.3.1, form-urlencoded parts) or the form body.
fn client_from(headers: &HeaderMap, p: &TokenParams) -> Option<(String, Option<String>)> {
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let decoded = String::from_utf8(STANDARD.decode(basic).ok()?).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        let unescape = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        };
        return Some((unescape(id)?, Some(unescape(secret)?)));
    }
    Some((p.client_id.clone()?, p.client_secret.clone()))
}

async fn token(State(idp): State<Arc<DevIdp>>, headers: HeaderMap, Form(p): Form<TokenParams>) -> Response {
    let Some((client_id, secret)) = client_from(&headers, &p) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    };
    if !idp.authenticate_client(&client_id, secret.as_deref()) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let result = match p.grant_type.as_deref() {
        Some("authorization_code") => idp.redeem(
            p.code.as_deref().unwrap_or(""),
            &client_id,
            p.redirect_uri.as_deref().unwrap_or(""),
            p.code_verifier.as_deref().unwrap_or(""),
        ),
        Some("client_credentials") => idp.client_credentials(&client_id, p.scope.as_deref()),
        _ => Err("unsupported_grant_type"),
    };
    match result {
        Ok(body) => ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response(),
        Err(code) => oauth_error(StatusCode::BAD_REQUEST, code),
    }
}

fn login_page(p: &AuthorizeParams, error: Option<&str>, status: StatusCode) -> Response {
    let hidden: String = [
        ("response_type", &p.response_type),
        ("client_id", &p.client_id),
        ("redirect_uri", &p.redirect_uri),
        ("scope", &p.scope),
        ("state", &p.state),
        ("nonce", &p.nonce),
        ("code_challenge", &p.code_challenge),
        ("code_challenge_method", &p.code_challenge_method),
    ]
    .iter()
    .filter_map(|(k, v)| {
        v.as_ref()
            .map(|v| format!(r#"<input type="hidden" name="{k}" value="{}">"#, escape(v)))
    })
    .collect();
    let error = error
        .map(|e| format!(r#"<p role="alert" class="error">{}</p>"#, escape(e)))
        .unwrap_or_default();
    let body = format!(
        r#"<p>Development identity provider. Use one of the demo accounts printed by <code>examroom dev</code>.</p>
{error}
<form method="post" action="authorize">
{hidden}
<p><label for="username">User name</label><br><input id="username" name="username" autocomplete="username" required autofocus></p>
<p><label for="password">Password</label><br><input id="password" name="password" type="password" autocomplete="current-password" required></p>
<p><button type="submit">Sign in</button></p>
</form>"#
    );
    (status, Html(page("Sign in", &body))).into_response()
}

fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title} · examroom dev provider</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}}
input{{width:100%;padding:.4rem;font-size:1rem}}button{{padding:.5rem 1.2rem;font-size:1rem}}.error{{color:#a00}}</style>
</head><body><main><h1>{title}</h1>{body}</main></body></html>"#
    )
}

/// Minimal HTML escaping for text and attribute values.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

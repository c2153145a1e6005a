//! Flows against `examroom dev`'s built-in provider, shared by the dev-mode and chat tests.

use std::path::Path;

use serde_json::Value;

use crate::common::{SendJson, client, location, pkce_pair};

pub fn credentials(data_dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(data_dir.join("dev-idp/credentials.json")).unwrap()).unwrap()
}

pub fn password(creds: &Value, user: &str) -> String {
    creds["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == user)
        .unwrap()["password"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Staff sign-in through `/auth/login` and the dev provider's form; returns the signed-in client and the
/// callback's response status.
pub async fn staff_sign_in(url: &str, user: &str, pass: &str) -> (reqwest::Client, reqwest::StatusCode) {
    let http = client();
    let resp = http
        .get(format!("{url}/auth/login?return_to=/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let authorize = location(&resp);
    assert!(
        authorize.starts_with(&format!("{url}/dev-idp/authorize")),
        "{authorize}"
    );
    let form_page = http.get(&authorize).send().await.unwrap();
    assert_eq!(form_page.status(), 200);
    assert!(
        form_page
            .text()
            .await
            .unwrap()
            .contains(r#"<label for="password">"#)
    );
    let mut form: Vec<(String, String)> = url::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    form.push(("username".into(), user.into()));
    form.push(("password".into(), pass.into()));
    let resp = http
        .post(format!("{url}/dev-idp/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    if resp.status() != 303 {
        return (http, resp.status());
    }
    let callback = location(&resp);
    assert!(
        callback.starts_with(&format!("{url}/auth/callback?")),
        "{callback}"
    );
    let resp = http.get(&callback).send().await.unwrap();
    (http, resp.status())
}

/// The demo portal's flow (public client, PKCE), done over HTTP: returns the patient's ID token.
pub async fn portal_id_token(url: &str, pass: &str) -> String {
    portal_id_token_for(url, "patient", pass).await
}

pub async fn portal_id_token_for(url: &str, user: &str, pass: &str) -> String {
    let http = client();
    let (verifier, challenge) = pkce_pair();
    let redirect = format!("{url}/portal/");
    let form = [
        ("response_type", "code"),
        ("client_id", "clinic-portal"),
        ("redirect_uri", &redirect),
        ("scope", "openid profile"),
        ("state", "st"),
        ("nonce", "nn"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("username", user),
        ("password", pass),
    ];
    let resp = http
        .post(format!("{url}/dev-idp/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let back = url::Url::parse(&location(&resp)).unwrap();
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let tokens: Value = http
        .post(format!("{url}/dev-idp/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect.as_str()),
            ("client_id", "clinic-portal"),
            ("code_verifier", verifier.as_str()),
        ])
        .json_body()
        .await;
    tokens["id_token"].as_str().unwrap().to_string()
}

pub async fn me(http: &reqwest::Client, url: &str, bearer: Option<&str>) -> (u16, Value) {
    let mut req = http.get(format!("{url}/api/v1/me"));
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// A patient session token for a demo patient, through the portal flow.
pub async fn patient_token(url: &str, data: &Path, user: &str) -> String {
    let id_token = portal_id_token_for(url, user, &password(&credentials(data), user)).await;
    session_for_id_token(url, &id_token).await
}

/// The patient session a portal ID token opens.
pub async fn session_for_id_token(url: &str, id_token: &str) -> String {
    let resp = client()
        .post(format!("{url}/api/v1/patient/sessions"))
        .bearer_auth(id_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.json::<Value>().await.unwrap()["session_token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The session cookie of a signed-in demo staff member, as a `Cookie` header value.
pub async fn staff_cookie(url: &str, data: &Path, user: &str) -> String {
    let http = client();
    let resp = http.get(format!("{url}/auth/login")).send().await.unwrap();
    if !resp.status().is_redirection() {
        panic!(
            "sign-in: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }
    let authorize = location(&resp);
    let mut form: Vec<(String, String)> = url::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    form.push(("username".into(), user.into()));
    form.push(("password".into(), password(&credentials(data), user)));
    let resp = http
        .post(format!("{url}/dev-idp/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let resp = http.get(location(&resp)).send().await.unwrap();
    let set = resp.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_string()
}

//! The broker against an external OpenID provider (panva oidc-provider): staff sign-in, the patient token
//! flow, service tokens, and the JWT attack suite. Every refused token gets a 401 with a JSON error code and an
//! audit event, and the broker never panics.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Header};
use serde_json::{Value, json};

use crate::common::{
    Broker, OidcProvider, SendJson, TestKey, client, free_port, location, op_id_token, op_interactions,
};

const PORTAL_REDIRECT: &str = "http://127.0.0.1:9/portal-callback";

fn write_config(dir: &Path, broker_port: u16, issuer: &str) -> std::path::PathBuf {
    let secret = dir.join("staff-client-secret");
    std::fs::write(&secret, "staff-secret-for-tests\n").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:{broker_port}"
public_url = "http://127.0.0.1:{broker_port}"
data_dir = "{data}"
portal_origins = ["https://portal.clinic.example"]

[auth]
jwks_cache_seconds = 2
jwks_min_refresh_seconds = 1

[auth.staff]
issuer = "{issuer}"
client_id = "examroom-staff"
client_secret_file = "{secret}"
roles_claim = "groups"
role_mapping = {{ "g-nurses" = "nurse", "g-compliance" = "compliance_officer", "g-helpdesk" = "it_helpdesk" }}

[auth.patient]
issuer = "{issuer}"
audiences = ["clinic-portal"]

[auth.service]
issuer = "{issuer}"
audience = "urn:examroom:api"
"#,
        data = dir.join("data").display(),
        secret = secret.display(),
    );
    let path = dir.join("examroom.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims(issuer: &str) -> Value {
    json!({"iss": issuer, "aud": "clinic-portal", "sub": "patient-42", "iat": now(), "exp": now() + 600})
}

fn header(alg: Algorithm, kid: &str) -> Header {
    let mut h = Header::new(alg);
    h.kid = Some(kid.to_string());
    h
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A token with a hand-written header (for `alg: none` and key-bearing headers) signed by `sign`.
fn raw_token(header: Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!("{}.{}", b64(&header), b64(claims));
    let sig = URL_SAFE_NO_PAD.encode(sign(input.as_bytes()));
    format!("{input}.{sig}")
}

fn rs256(key: &TestKey, msg: &[u8]) -> Vec<u8> {
    let k = jsonwebtoken::EncodingKey::from_rsa_pem(key.private_pem.as_bytes()).unwrap();
    let sig = jsonwebtoken::crypto::sign(msg, &k, Algorithm::RS256).unwrap();
    URL_SAFE_NO_PAD.decode(sig).unwrap()
}

fn hs256(secret: &[u8], msg: &[u8]) -> Vec<u8> {
    let k = jsonwebtoken::EncodingKey::from_secret(secret);
    URL_SAFE_NO_PAD
        .decode(jsonwebtoken::crypto::sign(msg, &k, Algorithm::HS256).unwrap())
        .unwrap()
}

async fn patient_session(url: &str, token: &str) -> (u16, Value) {
    let resp = client()
        .post(format!("{url}/api/v1/patient/sessions"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn audit_failures(data: &Path) -> Vec<String> {
    let pool = crate::storage::pool(data).await;
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT reason FROM audit_events WHERE action = 'auth.patient_session' AND outcome = 'failure' ORDER BY seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows.into_iter().map(|r| r.0).collect()
}

#[tokio::test]
async fn external_provider_sign_in_token_flows_and_attack_suite() {
    let dir = tempfile::tempdir().unwrap();
    let k1 = TestKey::generate("key-1");
    let broker_port = free_port();
    let op_port = free_port();
    let staff_redirect = format!("http://127.0.0.1:{broker_port}/auth/callback");
    let mut op = OidcProvider::start(dir.path(), op_port, &[&k1], &staff_redirect);
    let config = write_config(dir.path(), broker_port, &op.issuer);
    let broker = Broker::serve(&config, &format!("http://127.0.0.1:{broker_port}"));
    let url = broker.url.clone();
    let iss = op.issuer.clone();

    // Only the configured portal may frame the widget; every other page refuses framing. Plain HTTP: no HSTS.
    let widget = client().get(format!("{url}/widget/")).send().await.unwrap();
    let csp = widget.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.ends_with("frame-ancestors 'self' https://portal.clinic.example"),
        "{csp}"
    );
    assert!(widget.headers().get("x-frame-options").is_none());
    assert!(widget.headers().get("strict-transport-security").is_none());
    let page = client().get(format!("{url}/")).send().await.unwrap();
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );

    // `serve` never starts the development provider.
    let resp = client()
        .get(format!("{url}/dev-idp/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // Staff sign-in: code + PKCE + state + nonce through the provider's own login and consent pages.
    let http = client();
    let resp = http.get(format!("{url}/auth/login")).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    let back = op_interactions(&http, &op, &location(&resp), "nurse-1").await;
    assert!(back.starts_with(&staff_redirect), "{back}");
    let resp = http.get(&back).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let me: Value = http.get(format!("{url}/api/v1/me")).json_body().await;
    assert_eq!(me["roles"], json!(["nurse"]));
    // The callback's state is single-use.
    assert_eq!(http.get(&back).send().await.unwrap().status(), 400);

    // Patient token flow with a real ID token from the provider.
    let id_token = op_id_token(&op, "clinic-portal", PORTAL_REDIRECT, "patient-7").await;
    let (status, body) = patient_session(&url, &id_token).await;
    assert_eq!(status, 201, "{body}");

    // Service principal: a client-credentials JWT access token.
    let tokens: Value = client()
        .post(format!("{iss}/token"))
        .basic_auth("emr", Some("emr-secret-for-tests"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "recording:pause-others"),
            ("resource", "urn:examroom:api"),
        ])
        .json_body()
        .await;
    let access_token = tokens["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{tokens}"))
        .to_string();
    let me: Value = client()
        .get(format!("{url}/api/v1/me"))
        .bearer_auth(&access_token)
        .json_body()
        .await;
    assert_eq!(me["roles"], json!(["service"]));
    assert_eq!(me["scopes"], json!(["recording:pause-others"]));

    // The attack suite.
    let attacker = TestKey::generate("attacker");
    let other_client_token =
        op_id_token(&op, "other-app", "http://127.0.0.1:9/other-callback", "patient-7").await;
    let mut tampered: Vec<String> = id_token.split('.').map(str::to_string).collect();
    let mut payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&tampered[1]).unwrap()).unwrap();
    payload["sub"] = json!("someone-else");
    tampered[1] = b64(&payload);
    let tampered = tampered.join(".");

    let mut attacks: Vec<(String, String, &str)> = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE"] {
        attacks.push((
            format!("alg {alg}"),
            raw_token(json!({"alg": alg, "kid": "key-1"}), &claims(&iss), |_| vec![]),
            "algorithm_not_allowed",
        ));
    }
    attacks.push((
        "RS256→HS256 with the public key as secret".into(),
        raw_token(json!({"alg": "HS256", "kid": "key-1"}), &claims(&iss), |m| {
            hs256(k1.public_pem.as_bytes(), m)
        }),
        "algorithm_not_allowed",
    ));
    attacks.push((
        "unknown kid".into(),
        attacker.sign(&header(Algorithm::RS256, "attacker"), &claims(&iss)),
        "unknown_key",
    ));
    for kid in ["../../../../dev/null", "' OR '1'='1", "key-1\u{0}"] {
        attacks.push((
            format!("kid trick {kid:?}"),
            attacker.sign(&header(Algorithm::RS256, kid), &claims(&iss)),
            "unknown_key",
        ));
    }
    attacks.push((
        "jku pointing at attacker keys".into(),
        raw_token(
            json!({"alg": "RS256", "kid": "attacker", "jku": "http://127.0.0.1:9/jwks.json"}),
            &claims(&iss),
            |m| rs256(&attacker, m),
        ),
        "unknown_key",
    ));
    attacks.push((
        "x5u pointing at attacker keys".into(),
        raw_token(
            json!({"alg": "RS256", "kid": "attacker", "x5u": "http://127.0.0.1:9/cert.pem"}),
            &claims(&iss),
            |m| rs256(&attacker, m),
        ),
        "unknown_key",
    ));
    attacks.push((
        "embedded jwk with the provider's kid".into(),
        raw_token(
            json!({"alg": "RS256", "kid": "key-1", "jwk": attacker.public_jwk}),
            &claims(&iss),
            |m| rs256(&attacker, m),
        ),
        "bad_signature",
    ));
    let mut c = claims(&iss);
    c["exp"] = json!(now() - 120);
    attacks.push((
        "expired".into(),
        k1.sign(&header(Algorithm::RS256, "key-1"), &c),
        "token_expired",
    ));
    let mut c = claims(&iss);
    c["nbf"] = json!(now() + 300);
    attacks.push((
        "not yet valid".into(),
        k1.sign(&header(Algorithm::RS256, "key-1"), &c),
        "token_not_yet_valid",
    ));
    let mut c = claims(&iss);
    c["iat"] = json!(now() + 300);
    attacks.push((
        "issued in the future".into(),
        k1.sign(&header(Algorithm::RS256, "key-1"), &c),
        "token_issued_in_future",
    ));
    let mut c = claims(&iss);
    c["iss"] = json!("http://127.0.0.1:9");
    attacks.push((
        "wrong iss".into(),
        k1.sign(&header(Algorithm::RS256, "key-1"), &c),
        "wrong_issuer",
    ));
    let mut c = claims(&iss);
    c["aud"] = json!("somebody-else");
    attacks.push((
        "wrong aud".into(),
        k1.sign(&header(Algorithm::RS256, "key-1"), &c),
        "wrong_audience",
    ));
    let mut c = claims(&iss);
    c.as_object_mut().unwrap().remove("aud");
    attacks.push((
        "missing aud".into(),
        k1.sign(&header(Algorithm::RS256, "key-1"), &c),
        "wrong_audience",
    ));
    attacks.push((
        "ID token issued to another client".into(),
        other_client_token,
        "wrong_audience",
    ));
    attacks.push((
        "access token presented as an ID token".into(),
        access_token.clone(),
        "wrong_token_type",
    ));
    attacks.push((
        "tampered payload, original signature".into(),
        tampered,
        "bad_signature",
    ));
    attacks.push(("not a JWT at all".into(), "garbage".into(), "malformed_token"));

    for (name, token, code) in &attacks {
        let (status, body) = patient_session(&url, token).await;
        assert_eq!(status, 401, "{name}: {body}");
        assert_eq!(body["error"]["code"], *code, "{name}: {body}");
    }
    let failures = audit_failures(&dir.path().join("data")).await;
    assert_eq!(
        failures.len(),
        attacks.len(),
        "every refused token is audited: {failures:?}"
    );
    for (i, (name, _, code)) in attacks.iter().enumerate() {
        assert_eq!(failures[i], *code, "audit reason of {name}");
    }

    // Unknown kids trigger at most one key-set refresh per interval, however many arrive.
    let (status, _) = patient_session(&url, &id_token).await;
    assert_eq!(status, 201);
    let before = op.jwks_fetches();
    for i in 0..6 {
        let t = attacker.sign(&header(Algorithm::RS256, &format!("flood-{i}")), &claims(&iss));
        assert_eq!(patient_session(&url, &t).await.0, 401);
    }
    assert!(
        op.jwks_fetches() - before <= 1,
        "unknown kids are rate-limited: {} fetches",
        op.jwks_fetches() - before
    );

    // Key rotation: a new key is accepted as soon as the provider publishes it ...
    let k2 = TestKey::generate("key-2");
    op.restart_with(&[&k2, &k1], &staff_redirect);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let signed_k2 = k2.sign(&header(Algorithm::RS256, "key-2"), &claims(&iss));
    let (status, body) = patient_session(&url, &signed_k2).await;
    assert_eq!(status, 201, "new key accepted: {body}");
    // ... and a token signed by a key the provider removed is refused once the cache expires.
    op.restart_with(&[&k2], &staff_redirect);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let signed_k1 = k1.sign(&header(Algorithm::RS256, "key-1"), &claims(&iss));
    let (status, body) = patient_session(&url, &signed_k1).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (401, json!("unknown_key")),
        "removed key rejected"
    );
    assert_eq!(patient_session(&url, &signed_k2).await.0, 201);

    // Still alive, never panicked.
    assert_eq!(
        client()
            .get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    broker.assert_no_panic();
}

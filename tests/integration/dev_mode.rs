//! `examroom dev`: every demo user signs in through the development provider's login form over HTTP, and the
//! broker consumes that provider exactly like an external one.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::common::{Broker, SendJson, client};
use crate::demo::{credentials, me, password, portal_id_token, staff_sign_in};

async fn dev_mode_flow(env: &[(&str, &str)]) -> (tempfile::TempDir, Broker) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let broker = Broker::dev(&data, env);
    let url = broker.url.clone();
    let creds = credentials(&data);
    assert!(
        broker.stdout.lines().iter().any(|l| l.contains("nurse / ")),
        "banner prints credentials"
    );

    for (user, role) in [
        ("nurse", "nurse"),
        ("supervisor", "supervisor"),
        ("compliance", "compliance_officer"),
        ("helpdesk", "it_helpdesk"),
    ] {
        let (http, status) = staff_sign_in(&url, user, &password(&creds, user)).await;
        assert_eq!(status, 303, "{user} signs in");
        let (code, body) = me(&http, &url, None).await;
        assert_eq!(code, 200);
        assert_eq!(body["roles"], serde_json::json!([role]), "{user}");
    }

    // A wrong password is refused by the provider's form.
    let (_, status) = staff_sign_in(&url, "nurse", "wrong").await;
    assert_eq!(status, 401);

    // The patient has no staff role: the broker refuses the workforce sign-in.
    let (_, status) = staff_sign_in(&url, "patient", &password(&creds, "patient")).await;
    assert_eq!(status, 403);

    // The patient signs in at the portal and hands its ID token to the broker.
    let id_token = portal_id_token(&url, &password(&creds, "patient")).await;
    let http = client();
    let resp = http
        .post(format!("{url}/api/v1/patient/sessions"))
        .bearer_auth(&id_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let session: Value = resp.json().await.unwrap();
    let token = session["session_token"].as_str().unwrap();
    let (code, body) = me(&http, &url, Some(token)).await;
    assert_eq!(
        (code, body["roles"].clone()),
        (200, serde_json::json!(["patient"]))
    );

    // Machine client: client credentials at the dev provider, JWT access token at the broker.
    let emr_secret = creds["emr_client_secret"].as_str().unwrap();
    let tokens: Value = http
        .post(format!("{url}/dev-idp/token"))
        .basic_auth("emr-integration", Some(emr_secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "recording:pause-others"),
        ])
        .json_body()
        .await;
    let (code, body) = me(&http, &url, tokens["access_token"].as_str()).await;
    assert_eq!(code, 200);
    assert_eq!(body["roles"], serde_json::json!(["service"]));
    assert_eq!(body["scopes"], serde_json::json!(["recording:pause-others"]));

    // Authorization: the helpdesk may see system status but not the audit trail; compliance may.
    let (helpdesk, _) = staff_sign_in(&url, "helpdesk", &password(&creds, "helpdesk")).await;
    assert_eq!(
        helpdesk
            .get(format!("{url}/api/v1/audit/events"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        helpdesk
            .get(format!("{url}/api/v1/system/status"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (compliance, _) = staff_sign_in(&url, "compliance", &password(&creds, "compliance")).await;
    let events: Value = compliance
        .get(format!("{url}/api/v1/audit/events?limit=500"))
        .json_body()
        .await;
    let events = events["events"].as_array().unwrap();
    let count = |action: &str, outcome: &str| {
        events
            .iter()
            .filter(|e| e["action"] == action && e["outcome"] == outcome)
            .count()
    };
    assert!(count("auth.sign_in", "success") >= 6, "sign-ins are audited");
    assert!(
        count("auth.sign_in", "failure") >= 1,
        "the refused patient sign-in is audited"
    );
    assert!(
        count("audit.read", "denied") >= 1,
        "the helpdesk's refused request is audited"
    );
    assert!(count("auth.patient_session", "success") >= 1);
    let verify: Value = compliance
        .get(format!("{url}/api/v1/audit/verify"))
        .json_body()
        .await;
    assert_eq!(verify["intact"], true, "{verify}");

    // Signing out ends the session.
    assert_eq!(
        compliance
            .post(format!("{url}/auth/logout"))
            .header("origin", &url)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(me(&compliance, &url, None).await.0, 401);

    // No PHI or secret in the logs: the patient's name, birth date and subject, passwords, tokens.
    let patient = creds["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "patient")
        .unwrap();
    let mut planted: Vec<String> = ["name", "birthdate", "sub", "password"]
        .iter()
        .map(|k| patient[k].as_str().unwrap().to_string())
        .collect();
    planted.extend([
        id_token.clone(),
        token.to_string(),
        password(&creds, "nurse"),
        emr_secret.to_string(),
    ]);
    let logs = broker.stderr.lines();
    assert!(logs.len() > 10, "the broker logs its requests");
    for needle in &planted {
        assert!(
            !logs.iter().any(|l| l.contains(needle.as_str())),
            "log leaks a planted value"
        );
    }

    // The demo portal is served in dev mode.
    assert_eq!(
        http.get(format!("{url}/portal/")).send().await.unwrap().status(),
        200
    );
    (dir, broker)
}

#[tokio::test]
async fn dev_mode_on_sqlite_and_audit_verify_detects_tampering() {
    let (dir, mut broker) = dev_mode_flow(&[]).await;
    let status = broker.terminate();
    assert!(status.success(), "graceful shutdown on SIGTERM: {status}");
    broker.assert_no_panic();

    let data = dir.path().join("data");
    let verify = |db_dir: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_examroom"))
            .args(["audit", "verify", "--data-dir"])
            .arg(db_dir)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (code, out) = verify(&data);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("intact"));

    let tampers: [(&str, &[&str], &str); 5] = [
        (
            "edit",
            &["UPDATE audit_events SET reason = 'tampered' WHERE seq = 3"],
            "event 3 was edited",
        ),
        (
            "delete",
            &["DELETE FROM audit_events WHERE seq = 4"],
            "event 4 is missing",
        ),
        (
            "swap",
            &[
                "UPDATE audit_events SET seq = -1 WHERE seq = 5",
                "UPDATE audit_events SET seq = 5 WHERE seq = 6",
                "UPDATE audit_events SET seq = 6 WHERE seq = -1",
            ],
            "event 5 is out of order",
        ),
        (
            "truncate",
            &["DELETE FROM audit_events WHERE seq > (SELECT MAX(seq) - 2 FROM audit_events)"],
            "truncated",
        ),
        (
            // All four in one database, the edit last in the chain: the first bad event is named.
            "all-four",
            &[
                "DELETE FROM audit_events WHERE seq > (SELECT MAX(seq) - 2 FROM audit_events)",
                "UPDATE audit_events SET reason = 'tampered' WHERE seq = 8",
                "UPDATE audit_events SET seq = -1 WHERE seq = 6",
                "UPDATE audit_events SET seq = 6 WHERE seq = 7",
                "UPDATE audit_events SET seq = 7 WHERE seq = -1",
                "DELETE FROM audit_events WHERE seq = 4",
            ],
            "event 4 is missing",
        ),
    ];
    for (name, statements, expected) in tampers {
        let copy = dir.path().join(name);
        std::fs::create_dir_all(&copy).unwrap();
        std::fs::copy(data.join("examroom.db"), copy.join("examroom.db")).unwrap();
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", copy.join("examroom.db").display()))
            .await
            .unwrap();
        for s in statements {
            sqlx::query(sqlx::AssertSqlSafe(s.to_string()))
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
        let (code, out) = verify(&copy);
        assert_eq!(code, Some(3), "{name}: {out}");
        assert!(out.contains(expected), "{name}: expected `{expected}` in `{out}`");
    }
}

#[tokio::test]
async fn dev_mode_on_postgres() {
    let Some(url) = crate::storage::postgres_database().await else {
        return;
    };
    let (_dir, mut broker) = dev_mode_flow(&[
        ("EXAMROOM_DATABASE__URL", url.as_str()),
        ("EXAMROOM_LOGGING__FORMAT", "json"),
    ])
    .await;
    for line in broker.stderr.lines() {
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not a JSON log line: {line}"));
        assert!(v.get("level").is_some() && v.get("message").is_some(), "{line}");
    }
    assert!(broker.terminate().success());
    broker.assert_no_panic();
}

#[tokio::test]
async fn http_basics_in_dev_mode() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::dev(&dir.path().join("data"), &[]);
    let url = &broker.url;
    let http = client();

    let resp = http.get(format!("{url}/")).send().await.unwrap();
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    assert!(resp.headers().contains_key("x-request-id"));

    assert_eq!(
        http.get(format!("{url}/healthz")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        http.get(format!("{url}/readyz")).send().await.unwrap().status(),
        200
    );
    let metrics = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("examroom_http_requests_total"), "{metrics}");

    let openapi: Value = http.get(format!("{url}/api/v1/openapi.json")).json_body().await;
    for path in [
        "/api/v1/patient/sessions",
        "/api/v1/me",
        "/healthz",
        "/readyz",
        "/auth/login",
        "/api/v1/audit/verify",
    ] {
        assert!(openapi["paths"].get(path).is_some(), "{path} documented");
    }

    // Errors are JSON with a code, for the framework's own refusals too.
    let resp = http.get(format!("{url}/no/such/thing")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "not_found");
    // An oversized body is refused from its Content-Length. The raw request announces `Expect: 100-continue`
    // so the refusal arrives before any body is sent (no race with a connection reset).
    let oversized = raw_request(
        url,
        "POST /api/v1/patient/sessions HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\n\
         Expect: 100-continue\r\nConnection: close\r\n\r\n",
    );
    assert!(oversized.starts_with("HTTP/1.1 413"), "{oversized}");
    assert!(oversized.contains("payload_too_large"), "{oversized}");
    let resp = http
        .get(format!("{url}/api/v1/patient/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "method_not_allowed"
    );
}

fn raw_request(url: &str, request: &str) -> String {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

#[tokio::test]
async fn behind_a_tls_proxy_responses_carry_hsts() {
    // A deployment terminates TLS in front of the broker and says so through an https public URL.
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::dev(
        &dir.path().join("data"),
        &[("EXAMROOM_SERVER__PUBLIC_URL", "https://examroom.clinic.example")],
    );
    let http = client();
    for path in ["/", "/healthz", "/api/v1/openapi.json"] {
        let resp = http.get(format!("{}{path}", broker.url)).send().await.unwrap();
        assert_eq!(
            resp.headers()
                .get("strict-transport-security")
                .map(|v| v.to_str().unwrap()),
            Some("max-age=63072000; includeSubDomains"),
            "{path}"
        );
    }
    broker.assert_no_panic();
}

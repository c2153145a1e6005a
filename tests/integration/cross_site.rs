//! Cross-site requests: a request that carries the staff session cookie and can change something (a non-GET, or
//! the socket upgrade) is refused from any origin but the broker's own (a configured portal's included), and when
//! it names no origin at all — with a 403 JSON error and an audit event — and so is a cookie read of the API that
//! the browser marks as coming from another site (`Sec-Fetch-Site`), while bearer-token clients, which carry no
//! cookie, are unaffected.

use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::chat::{FAST_ROUTING, audit_denials};
use crate::common::client;
use crate::demo::{credentials, password, portal_id_token, staff_cookie};
use crate::test_app::TestApp;

const EVIL: &str = "https://evil.example";
/// The portal's sibling: same site as a real portal would be.
const SIBLING: &str = "https://files.clinic.example";
/// The configured portal: it frames the widget, but has no business with a staff cookie either.
const PORTAL: &str = "https://portal.clinic.example";

/// Opens the chat socket with the session cookie from `origin` (none: no header); the HTTP status of a refused
/// handshake.
async fn socket_from(url: &str, cookie: &str, origin: Option<&str>) -> Result<(), u16> {
    let mut req = format!("{}/api/v1/ws", url.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    if let Some(origin) = origin {
        req.headers_mut().insert("origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => Ok(()),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn cookie_requests_from_another_origin_are_refused_and_audited() {
    let mut env = FAST_ROUTING.to_vec();
    env.push((
        "EXAMROOM_SERVER__PORTAL_ORIGINS",
        r#"["https://portal.clinic.example"]"#,
    ));
    let app = TestApp::spawn(&env).await;
    let url = app.url.clone();
    let cookie = staff_cookie(&url, &app.data, "nurse").await;
    let http = client();
    let logout = |origin: Option<&str>| {
        let req = http.post(format!("{url}/auth/logout")).header("cookie", &cookie);
        match origin {
            Some(o) => req.header("origin", o),
            None => req,
        }
        .send()
    };

    for origin in [Some(EVIL), Some(SIBLING), Some(PORTAL), None] {
        let resp = logout(origin).await.unwrap();
        assert_eq!(resp.status(), 403, "{origin:?}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "forbidden");
        assert_eq!(socket_from(&url, &cookie, origin).await, Err(403), "{origin:?}");
    }
    // The broker's own pages are fine.
    assert_eq!(socket_from(&url, &cookie, Some(&url)).await, Ok(()));
    // A read of the API from another site (an <img>, a fetch) is refused too; the broker's pages and a typed
    // address are not.
    let read = |site: &str| {
        http.get(format!("{url}/api/v1/me"))
            .header("cookie", &cookie)
            .header("sec-fetch-site", site)
            .send()
    };
    for (site, status) in [
        ("same-site", 403),
        ("cross-site", 403),
        ("same-origin", 200),
        ("none", 200),
    ] {
        assert_eq!(read(site).await.unwrap().status(), status, "{site}");
    }

    // A bearer token is not a cookie: the portal's ID token opens a patient session from anywhere.
    let id_token = portal_id_token(&url, &password(&credentials(&app.data), "patient")).await;
    let resp = client()
        .post(format!("{url}/api/v1/patient/sessions"))
        .bearer_auth(&id_token)
        .header("origin", EVIL)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    // Each refusal was audited, and the session survived them: signing out from the broker's origin works.
    let denials = audit_denials(&app.data).await;
    for route in ["route:/auth/logout", "route:/api/v1/ws"] {
        let n = denials
            .iter()
            .filter(|(a, r)| a == "http.cross_site" && r == route)
            .count();
        assert_eq!(n, 4, "{route}: {denials:?}");
    }
    let reads = denials
        .iter()
        .filter(|(a, r)| a == "http.cross_site" && r == "route:/api/v1/me")
        .count();
    assert_eq!(reads, 2, "{denials:?}");
    assert_eq!(logout(Some(&url)).await.unwrap().status(), 204);
}

//! The OpenAPI document (`/api/v1/openapi.json`, `docs/openapi.json`) against the broker: it names every REST
//! route the code serves, and schemathesis, driving a live `examroom dev` with a compliance officer's session,
//! finds no 5xx and no response outside what the document says (status, content type, headers, body schema).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::common::Broker;
use crate::demo::staff_cookie;

fn route_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            route_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `.route("/…"` the HTTP layer registers (pages and static files excepted: they are not the API).
fn served_routes() -> BTreeSet<String> {
    let mut files = Vec::new();
    route_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http"),
        &mut files,
    );
    let mut routes = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, _) in text.match_indices(".route(") {
            let rest = text[i + 7..].trim_start();
            if let Some(path) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) {
                routes.insert(path.to_string());
            }
        }
    }
    routes
}

#[test]
fn the_document_names_every_rest_route() {
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../../docs/openapi.json")).expect("docs/openapi.json is JSON");
    let documented: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let served = served_routes();
    assert!(served.len() > 15, "the route scan found {served:?}");
    let pages = |r: &str| {
        r == "/" || r.starts_with("/portal") || r.starts_with("/workspace") || r.starts_with("/compliance")
    };
    let missing: Vec<&String> = served
        .iter()
        .filter(|r| !pages(r) && !documented.contains(*r))
        .collect();
    assert!(
        missing.is_empty(),
        "routes missing from docs/openapi.json: {missing:?}"
    );
    let stale: Vec<&String> = documented.iter().filter(|r| !served.contains(*r)).collect();
    assert!(stale.is_empty(), "documented routes nobody serves: {stale:?}");
}

#[tokio::test]
async fn schemathesis_finds_the_live_api_as_documented() {
    let Ok(schemathesis) = std::env::var("TEST_SCHEMATHESIS") else {
        assert!(
            std::env::var("TEST_REQUIRE_BROWSER").is_err(),
            "schemathesis is installed by scripts/test.sh (TEST_SCHEMATHESIS)"
        );
        eprintln!("schemathesis not installed: skipping");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let broker = Broker::dev(&data, &[]);
    let url = broker.url.clone();
    let cookie = staff_cookie(&url, &data, "compliance").await;
    let args: Vec<String> = [
        "run",
        &format!("{url}/api/v1/openapi.json"),
        "--experimental=openapi-3.1",
        "--header",
        &format!("Cookie: {cookie}"),
        // A browser names its origin on every state change; the broker refuses a cookie request that does not.
        "--header",
        &format!("Origin: {url}"),
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,\
         response_headers_conformance",
        "--hypothesis-max-examples",
        "25",
        "--hypothesis-derandomize",
        // Header values the HTTP parser refuses before any handler sees them say nothing about the API.
        "--generation-codec=ascii",
        "--generation-with-security-parameters=false",
        // These end the session the run uses (tested in dev_mode and cross_site), or start the browser sign-in
        // redirect chain (tested in demo).
        "--exclude-path",
        "/auth/logout",
        "--exclude-path",
        "/api/v1/sessions/current",
        "--exclude-path",
        "/auth/login",
    ]
    .map(String::from)
    .to_vec();
    let work = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(schemathesis)
            .args(&args)
            // Hypothesis keeps its example database in the working directory: not in the checkout.
            .current_dir(&work)
            .env("SCHEMATHESIS_HOOKS", "")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis:\n{text}");
    assert!(text.contains("not_a_server_error"), "{text}");
    broker.assert_no_panic();
}

//! Browser pages served by the broker: the landing page, and under `examroom dev` the demo clinic portal.
//! Plain files from `web/`, embedded at build time so a deployment is one binary.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::app::AppState;

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse + Clone {
    ([(header::CONTENT_TYPE, content_type)], body)
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", include_str!("../../web/index.html")) }),
        )
        .route(
            "/index.js",
            get(|| async { asset("text/javascript", include_str!("../../web/index.js")) }),
        )
        .route(
            "/style.css",
            get(|| async { asset("text/css", include_str!("../../web/style.css")) }),
        )
}

/// The demo clinic portal: a stand-in for the clinic's own patient portal, signing the patient in at the
/// development provider as a public client (code + PKCE) and handing the ID token to the broker.
pub fn dev_portal() -> Router<AppState> {
    Router::new()
        .route(
            "/portal/",
            get(|| async {
                asset(
                    "text/html; charset=utf-8",
                    include_str!("../../web/portal/index.html"),
                )
            }),
        )
        .route(
            "/portal/portal.js",
            get(|| async { asset("text/javascript", include_str!("../../web/portal/portal.js")) }),
        )
}

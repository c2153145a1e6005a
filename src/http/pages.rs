//! Browser pages served by the broker: the landing page, the patient widget (loader and frame), the nurse
//! workspace, hold music, and under `examroom dev` the demo clinic portal. Plain files from `web/`, embedded
//! at build time so a deployment is one binary and needs no build step.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::app::AppState;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript";
const CSS: &str = "text/css";

/// Serves one embedded file.
macro_rules! file {
    ($router:expr, $path:expr, $type:expr, $file:literal) => {
        $router.route(
            $path,
            get(|| async { ([(header::CONTENT_TYPE, $type)], include_str!($file)) }),
        )
    };
}

pub fn router() -> Router<AppState> {
    let r = Router::new();
    let r = file!(r, "/", HTML, "../../web/index.html");
    let r = file!(r, "/index.js", JS, "../../web/index.js");
    let r = file!(r, "/style.css", CSS, "../../web/style.css");
    let r = file!(r, "/widget.js", JS, "../../web/widget.js");
    let r = file!(r, "/widget/", HTML, "../../web/widget/index.html");
    let r = file!(r, "/widget/app.js", JS, "../../web/widget/app.js");
    let r = file!(r, "/widget/channel.js", JS, "../../web/widget/channel.js");
    let r = file!(r, "/widget/video.js", JS, "../../web/widget/video.js");
    let r = file!(r, "/widget/visit.js", JS, "../../web/widget/visit.js");
    let r = file!(r, "/widget/precall.js", JS, "../../web/widget/precall.js");
    let r = file!(r, "/widget/i18n.js", JS, "../../web/widget/i18n.js");
    let r = file!(r, "/widget/tiles.js", JS, "../../web/widget/tiles.js");
    let r = file!(r, "/widget/guests.js", JS, "../../web/widget/guests.js");
    let r = file!(r, "/guest/", HTML, "../../web/guest/index.html");
    // Interpreters and physicians asked into visits: the guest's call page, signed in as staff.
    let r = file!(r, "/consult/", HTML, "../../web/guest/index.html");
    let r = file!(r, "/guest/guest.js", JS, "../../web/guest/guest.js");
    let r = file!(r, "/widget/widget.css", CSS, "../../web/widget/widget.css");
    let r = file!(r, "/workspace/", HTML, "../../web/workspace/index.html");
    let r = file!(
        r,
        "/workspace/workspace.js",
        JS,
        "../../web/workspace/workspace.js"
    );
    let r = file!(r, "/workspace/panel.js", JS, "../../web/workspace/panel.js");
    let r = file!(r, "/workspace/transfer.js", JS, "../../web/workspace/transfer.js");
    let r = file!(r, "/workspace/screen.js", JS, "../../web/workspace/screen.js");
    let r = file!(r, "/workspace/guests.js", JS, "../../web/workspace/guests.js");
    let r = file!(
        r,
        "/workspace/workspace.css",
        CSS,
        "../../web/workspace/workspace.css"
    );
    let r = file!(r, "/supervisor/", HTML, "../../web/supervisor/index.html");
    let r = file!(r, "/supervisor/board.js", JS, "../../web/supervisor/board.js");
    let r = file!(r, "/supervisor/board.css", CSS, "../../web/supervisor/board.css");
    let r = file!(r, "/status/", HTML, "../../web/status/index.html");
    let r = file!(r, "/status/status.js", JS, "../../web/status/status.js");
    let r = file!(r, "/compliance/", HTML, "../../web/compliance/index.html");
    let r = file!(
        r,
        "/compliance/compliance.js",
        JS,
        "../../web/compliance/compliance.js"
    );
    let r = file!(r, "/compliance/player.js", JS, "../../web/compliance/player.js");
    let r = file!(
        r,
        "/compliance/evidence.js",
        JS,
        "../../web/compliance/evidence.js"
    );
    let r = file!(
        r,
        "/compliance/compliance.css",
        CSS,
        "../../web/compliance/compliance.css"
    );
    r.route(crate::messaging::HOLD_MUSIC_URL, get(hold_music))
}

async fn hold_music() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "audio/wav"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        include_bytes!("../../web/assets/hold-music.wav").as_slice(),
    )
}

/// The demo clinic portal: a stand-in for the clinic's own patient portal, signing the patient in at the
/// development provider as a public client (code + PKCE) and embedding the widget with the ID token.
pub fn dev_portal() -> Router<AppState> {
    let r = Router::new();
    let r = file!(r, "/portal/", HTML, "../../web/portal/index.html");
    file!(r, "/portal/portal.js", JS, "../../web/portal/portal.js")
}

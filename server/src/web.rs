//! The browser client (`web-client/`), embedded in the binary so that `tiaojie serve` is all a
//! deployment needs: no CDN, no separate web server, no build step.
//!
//! Pages: `/` and `/join?token=…` (the participant client), `/admin` (the admin page); their
//! scripts and styles under `/web/…`. Responses forbid sniffing, framing and referrers (a join
//! link carries its token) and allow scripts, styles and connections only from this origin.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One embedded file.
struct Asset {
    path: &'static str,
    mime: &'static str,
    body: &'static [u8],
}

macro_rules! assets {
    ($($path:literal => $mime:expr),* $(,)?) => {
        &[$(Asset {
            path: $path,
            mime: $mime,
            body: include_bytes!(concat!("../../web-client/", $path)),
        }),*]
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the client. A file missing here is a compile error, not a 404 in production.
const ASSETS: &[Asset] = assets! {
    "index.html" => HTML,
    "admin.html" => HTML,
    "css/app.css" => "text/css; charset=utf-8",
    "js/app.js" => JS,
    "js/case.js" => JS,
    "js/admin.js" => JS,
    "js/errors.js" => JS,
    "js/i18n.js" => JS,
    "js/media.js" => JS,
    "js/place.js" => JS,
    "js/signaling.js" => JS,
    "js/ui.js" => JS,
};

/// Routes of the client, merged into the app's router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { page("index.html") }))
        .route("/join", get(|| async { page("index.html") }))
        .route("/admin", get(|| async { page("admin.html") }))
        .route("/web/{*path}", get(asset))
}

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

fn page(path: &str) -> Response {
    match find(path) {
        Some(a) => serve(a),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn asset(Path(path): Path<String>) -> Response {
    match find(&path) {
        // Pages are served at their own paths only.
        Some(a) if a.mime != HTML => serve(a),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

fn serve(asset: &Asset) -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, HeaderValue::from_static(asset.mime))],
        asset.body,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if asset.mime == HTML {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                 media-src 'self' blob: mediastream:; connect-src 'self'; frame-ancestors 'none'; \
                 base-uri 'none'; form-action 'none'",
            ),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_embedded_with_a_type() {
        for a in ASSETS {
            assert!(!a.body.is_empty(), "{} is empty", a.path);
            assert!(a.mime.contains("charset=utf-8"), "{}", a.path);
        }
        assert!(find("js/signaling.js").is_some_and(|a| a.mime == JS));
        // Every module of the client is embedded (a new file left out would fail its import).
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../web-client/js");
        for entry in std::fs::read_dir(dir).expect("web-client/js") {
            let name = entry.expect("entry").file_name();
            let path = format!("js/{}", name.to_string_lossy());
            assert!(find(&path).is_some(), "{path} is not embedded");
        }
        assert!(find("../Cargo.toml").is_none());
    }
}

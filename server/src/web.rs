//! The web client: a built jellyfin-web served from `web.dir` at `/web/`, and `/` redirecting
//! there. The browser, Jellyfin Media Player and the Android app all load it from the server.
//!
//! These routes sit outside the API's path lowercasing: jellyfin-web's file names are mixed
//! case (`main.jellyfin.bundle.js`, `themes/appletv/theme.css`, `libraries/…`), so they are
//! looked up exactly as asked. `index.html` and `config.json` are never cached (they name the
//! current bundles); files whose name or URL carries a content hash are cached for a year;
//! everything else is revalidated. Text is compressed (brotli or gzip, as the browser accepts).
//!
//! Without a configured folder `/web/` answers a short page saying how to add one.
//! `/web/ConfigurationPages` (plugin pages the dashboard lists) is the empty list. Nothing here
//! reads outside the folder: `ServeDir` refuses `..` and absolute components.

use std::path::PathBuf;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, Uri, header};
use tower::ServiceExt;
use tower_http::compression::CompressionLayer;
use tower_http::services::ServeDir;

/// The web client's routes, for a configured folder or none.
pub fn router(dir: Option<PathBuf>) -> Router {
    let files = WebFiles { dir };
    Router::new()
        .route("/", get(|| async { Redirect::to("/web/") }))
        .route("/web", get(|| async { Redirect::to("/web/") }))
        .route("/web/", get(serve))
        .route("/web/{*path}", get(serve))
        .layer(CompressionLayer::new())
        .with_state(files)
}

#[derive(Debug, Clone)]
struct WebFiles {
    dir: Option<PathBuf>,
}

async fn serve(State(files): State<WebFiles>, req: Request) -> Response {
    // The dashboard lists plugin configuration pages from here; Ephyra has no plugins.
    if req
        .uri()
        .path()
        .eq_ignore_ascii_case("/web/configurationpages")
    {
        return axum::Json(Vec::<()>::new()).into_response();
    }
    let Some(dir) = files.dir else {
        return Html(NOT_CONFIGURED).into_response();
    };
    let path = req.uri().path().strip_prefix("/web").unwrap_or("/");
    let hashed_url = req.uri().query().is_some_and(|q| !q.is_empty());
    let path = if path.is_empty() { "/" } else { path };
    let cache = cache_control(path, hashed_url);
    let mut inner = Request::new(Body::empty());
    *inner.method_mut() = req.method().clone();
    *inner.headers_mut() = req.headers().clone();
    *inner.uri_mut() = Uri::try_from(path).unwrap_or_else(|_| Uri::from_static("/"));
    let served = ServeDir::new(dir)
        .append_index_html_on_directories(true)
        .oneshot(inner)
        .await;
    let mut response = match served {
        Ok(r) => r.map(Body::new),
        Err(never) => match never {},
    };
    if response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    }
    response
}

/// `no-cache` for the files that name the current bundles, a year for content-hashed ones,
/// revalidation for the rest.
fn cache_control(path: &str, hashed_url: bool) -> &'static str {
    const NO_CACHE: &str = "no-cache";
    const IMMUTABLE: &str = "public, max-age=31536000, immutable";
    let name = path.rsplit('/').next().unwrap_or_default();
    if name.is_empty() || name.ends_with(".html") || name == "config.json" {
        return NO_CACHE;
    }
    if hashed_url || name.split('.').any(is_content_hash) {
        IMMUTABLE
    } else {
        NO_CACHE
    }
}

/// Webpack's `[contenthash]`: 16 or more hex digits.
fn is_content_hash(part: &str) -> bool {
    part.len() >= 16 && part.bytes().all(|b| b.is_ascii_hexdigit())
}

const NOT_CONFIGURED: &str = "<!doctype html>
<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Ephyra</title></head>
<body>
<h1>Ephyra is running</h1>
<p>No web client is installed on this server. Apps (Jellyfin for Android, iOS, Android TV,
Kodi, Infuse…) can connect to it now.</p>
<p>To use Jellyfin's web client in the browser, build or download jellyfin-web (its
<code>dist/</code> folder, the one with <code>index.html</code>) and point
<code>EPHYRA_WEB_DIR</code> (or <code>web.dir</code> in the configuration file) at it, then
restart the server.</p>
</body></html>
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_files_are_never_cached_and_hashed_files_are_cached_for_a_year() {
        assert_eq!(cache_control("/", false), "no-cache");
        assert_eq!(cache_control("/index.html", false), "no-cache");
        assert_eq!(cache_control("/config.json", false), "no-cache");
        assert_eq!(cache_control("/runtime.bundle.js", false), "no-cache");
        assert_eq!(
            cache_control("/main.jellyfin.bundle.js", true),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(
            cache_control("/node_modules.a1b2c3d4e5f60718.chunk.js", false),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(cache_control("/themes/dark/theme.css", false), "no-cache");
    }
}

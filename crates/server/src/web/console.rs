//! The web console: files built from `web/` by the build script and embedded in the binary.
//! `/` serves the console to a signed-in browser (others go to `/login`); `/assets/…` are
//! content-hashed and cached for good.
//!
//! xterm.js adds `<style>` elements at run time, which a `style-src 'self'` policy blocks;
//! instead of allowing all inline style, each console page gets a fresh nonce (in a meta
//! tag the console reads, and in that response's CSP) which the console puts on the style
//! elements it creates.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use crate::auth;
use crate::state::SharedState;
use ironmesh_core::{hex, random_bytes};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));
}

/// An embedded file by its URL path (`/index.html`, `/assets/index-….js`).
pub fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    embedded::ASSETS
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(_, mime, bytes)| (*mime, *bytes))
}

/// The CSP of a console page: the site-wide policy, with this page's style nonce.
pub fn console_csp(nonce: &str) -> String {
    super::headers::CSP.replace(
        "style-src 'self'",
        &format!("style-src 'self' 'nonce-{nonce}'"),
    )
}

/// The console page with its style nonce in a meta tag.
pub fn index_html(nonce: &str) -> Option<String> {
    let (_, bytes) = asset("/index.html")?;
    let html = std::str::from_utf8(bytes).ok()?;
    Some(html.replacen(
        "<head>",
        &format!("<head>\n    <meta name=\"ironmesh-style-nonce\" content=\"{nonce}\">"),
        1,
    ))
}

/// `GET /`: the console for a signed-in browser, else the sign-in page.
pub async fn index(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    let signed_in = match auth::session_cookie(&headers) {
        Some(cookie) => state.auth.user_from_session(&cookie).await.is_some(),
        None => false,
    };
    if !signed_in {
        return Redirect::to("/login").into_response();
    }
    let nonce = hex(&random_bytes::<16>());
    let Some(html) = index_html(&nonce) else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the web console is missing from this build",
        )
            .into_response();
    };
    let mut res = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    if let Ok(csp) = HeaderValue::from_str(&console_csp(&nonce)) {
        res.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    res
}

/// `GET /assets/{*file}` and the few unhashed public files (`/login.css`).
pub async fn static_file(Path(file): Path<String>) -> Response {
    serve(&format!("/assets/{file}"), true)
}

pub async fn login_css() -> Response {
    serve("/login.css", false)
}

/// The sign-in page's script (passkeys), a file of the console's build.
pub async fn login_js() -> Response {
    serve("/login.js", false)
}

fn serve(path: &str, immutable: bool) -> Response {
    match asset(path) {
        Some((mime, bytes)) => (
            [
                (header::CONTENT_TYPE, mime),
                (
                    header::CACHE_CONTROL,
                    if immutable {
                        "public, max-age=31536000, immutable"
                    } else {
                        "public, max-age=3600"
                    },
                ),
            ],
            bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_page_carries_its_nonce_and_no_inline_script() {
        let html = index_html("abc123").expect("index.html embedded");
        assert!(html.contains("<meta name=\"ironmesh-style-nonce\" content=\"abc123\">"));
        assert!(html.contains("type=\"module\""));
        // Every script is an external file.
        for part in html.split("<script").skip(1) {
            assert!(part.contains(" src=\"/assets/"), "inline script in {html}");
        }
        let csp = console_csp("abc123");
        assert!(csp.contains("style-src 'self' 'nonce-abc123'"));
        assert!(csp.contains("script-src 'self';"));
    }
}

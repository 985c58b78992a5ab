//! What every endpoint shares, below all of them: the browser Origin rule, WebSocket close
//! codes and reasons (including over-size messages, recognised from the socket's error
//! type), escaping of text put into HTML pages and URLs, and the compressing WebSocket that
//! browsers' control channels get.

pub mod deflate_ws;

use axum::http::{header, HeaderMap};
use ironmesh_proto::websocket;

use crate::config::Config;

/// RFC 6455 "going away": the server is shutting down.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// RFC 6455 "message too big".
pub const CLOSE_TOO_BIG: u16 = 1009;
/// The close reason every session gets when the server stops.
pub const SHUTTING_DOWN: &str = "server shutting down";

/// An Origin is allowed when it is this server as the browser reached it (`Host`), the
/// configured server name, or listed in `allowed_origins`. Browsers always send Origin on
/// WebSocket upgrades and form posts; a foreign one means another site's page is trying to
/// act with this user's cookies.
pub fn origin_allowed(config: &Config, headers: &HeaderMap, origin: &str) -> bool {
    let origin = origin.trim_end_matches('/');
    if config
        .allowed_origins
        .iter()
        .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some(host) = origin.strip_prefix("https://") else {
        return false;
    };
    let own = config.public_host_port();
    let request_host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    host.eq_ignore_ascii_case(request_host) || host.eq_ignore_ascii_case(&own)
}

/// The request's `Origin` header, when it has one that is not allowed.
pub fn foreign_origin<'h>(config: &Config, headers: &'h HeaderMap) -> Option<&'h str> {
    let origin = headers.get(header::ORIGIN)?.to_str().unwrap_or("?");
    (!origin_allowed(config, headers, origin)).then_some(origin)
}

/// Close reasons are limited to 123 bytes by RFC 6455; cut at a character boundary.
pub fn close_reason(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}

/// The close reason for a WebSocket read error that is an over-size message, naming both
/// sizes ("Frame size of 2097152 exceeds maximum of 1048576"); `None` for other errors.
/// Recognised by type: tungstenite's capacity error (axum's socket) or
/// [`websocket::ReadError::TooBig`] (the compressing socket's codec).
pub fn too_big_reason(error: &axum::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(e) = source {
        if let Some(tungstenite::Error::Capacity(
            tungstenite::error::CapacityError::MessageTooLong { size, max_size },
        )) = e.downcast_ref::<tungstenite::Error>()
        {
            return Some(too_big_text(*size, *max_size));
        }
        if let Some(websocket::ReadError::TooBig { size, max }) =
            e.downcast_ref::<websocket::ReadError>()
        {
            return Some(too_big_text(*size, *max));
        }
        source = e.source();
    }
    None
}

fn too_big_text(size: usize, max: usize) -> String {
    format!("Frame size of {size} exceeds maximum of {max}")
}

pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a value for a URL query (b64@$ ids hold `@`, `$`, `=`).
pub fn escape_query(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_size_messages_are_recognised_by_type() {
        let tungstenite_error =
            tungstenite::Error::Capacity(tungstenite::error::CapacityError::MessageTooLong {
                size: 2_097_152,
                max_size: 1_048_576,
            });
        assert_eq!(
            too_big_reason(&axum::Error::new(tungstenite_error)).as_deref(),
            Some("Frame size of 2097152 exceeds maximum of 1048576")
        );
        let deflate_error = websocket::ReadError::TooBig { size: 10, max: 5 };
        assert_eq!(
            too_big_reason(&axum::Error::new(deflate_error)).as_deref(),
            Some("Frame size of 10 exceeds maximum of 5")
        );
        // The same words in another error's text are not an over-size message.
        let lookalike = std::io::Error::other("Message too long: 2 > 1");
        assert_eq!(too_big_reason(&axum::Error::new(lookalike)), None);
    }

    #[test]
    fn close_reasons_fit_and_stay_utf8() {
        let long = "é".repeat(100);
        let cut = close_reason(&long);
        assert!(cut.len() <= 123 && long.starts_with(&cut));
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape_html("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        assert_eq!(escape_query("a@b$c="), "a%40b%24c%3D");
    }
}

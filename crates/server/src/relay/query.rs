//! The relay URL's query. Parsed by hand: values may hold base64 (`+`, `/`, `=`) and
//! b64@$ ids, so `+` must stay `+` (form decoding would turn it into a space).

use percent_encoding::percent_decode_str;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayQuery {
    /// Pairing key; or, when no `nodeid` is given, possibly a device id (relay guide).
    pub id: Option<String>,
    pub nodeid: Option<String>,
    /// Protocol number: 1 terminal, 2 desktop, 5 files, …
    pub p: Option<u32>,
    /// User credential: a sealed token, or base64 of `user:password`.
    pub auth: Option<String>,
    /// Agent credential: a relay token.
    pub rauth: Option<String>,
    pub user: Option<String>,
    pub pass: Option<String>,
    /// `browser=1`: the user side (kept for logs).
    pub browser: bool,
    /// `rtc=1`: the client would like WebRTC; ironmesh relays only, so it is ignored.
    pub rtc: bool,
}

impl RelayQuery {
    pub fn parse(raw: &str) -> RelayQuery {
        let mut q = RelayQuery::default();
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode_str(value).decode_utf8_lossy().into_owned();
            match key {
                "id" => q.id = Some(value),
                "nodeid" => q.nodeid = Some(value),
                "p" => q.p = value.parse().ok(),
                "auth" => q.auth = Some(value),
                "rauth" => q.rauth = Some(value),
                "user" => q.user = Some(value),
                "pass" => q.pass = Some(value),
                "browser" => q.browser = value == "1",
                "rtc" => q.rtc = value == "1",
                _ => {}
            }
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_plus_and_decodes_percent() {
        let q = RelayQuery::parse(
            "id=abc&p=5&auth=YWJj+ZA==&nodeid=node%2F%2FAB%24CD%40E&browser=1&rtc=0",
        );
        assert_eq!(q.id.as_deref(), Some("abc"));
        assert_eq!(q.p, Some(5));
        assert_eq!(q.auth.as_deref(), Some("YWJj+ZA=="));
        assert_eq!(q.nodeid.as_deref(), Some("node//AB$CD@E"));
        assert!(q.browser && !q.rtc);
        // meshctrl appends an unescaped token with `=` padding.
        let q = RelayQuery::parse("id=x&auth=ab$c@d=");
        assert_eq!(q.auth.as_deref(), Some("ab$c@d="));
    }
}

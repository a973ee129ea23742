//! Jellyfin's authorization header and the seven places a token may come from.
//!
//! `MediaBrowser Client="..", Device="..", DeviceId="..", Version="..", Token=".."`: the scheme
//! is matched without regard to case (`MediaBrowser` or the legacy `Emby`), pairs are split on
//! commas outside quotes, keys come in any order, values may be quoted or not and are
//! URL-decoded, and an empty `Token` means no token.

use http::HeaderMap;
use http::request::Parts;
use percent_encoding::percent_decode_str;

use crate::jf::parse_query;

/// The fields of a `MediaBrowser` authorization header. All are optional here; login and
/// QuickConnect require the four client fields (see [`AuthHeader::device_info`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthHeader {
    /// `Client`: the app's name.
    pub client: Option<String>,
    /// `Device`: the device's name.
    pub device: Option<String>,
    /// `DeviceId`: stable per installation.
    pub device_id: Option<String>,
    /// `Version`: the app's version.
    pub version: Option<String>,
    /// `Token`, when not empty.
    pub token: Option<String>,
}

impl AuthHeader {
    /// Parses a header value; `None` when the scheme is not `MediaBrowser` or `Emby`.
    pub fn parse(value: &str) -> Option<AuthHeader> {
        let value = value.trim();
        let (scheme, rest) = match value.find(char::is_whitespace) {
            Some(i) => (&value[..i], &value[i..]),
            None => (value, ""),
        };
        if !(scheme.eq_ignore_ascii_case("MediaBrowser") || scheme.eq_ignore_ascii_case("Emby")) {
            return None;
        }
        let mut header = AuthHeader::default();
        for part in split_outside_quotes(rest) {
            let Some((key, raw)) = part.split_once('=') else {
                continue;
            };
            let key = key.trim();
            let raw = raw.trim().trim_matches('"').trim();
            let decoded = percent_decode_str(raw)
                .decode_utf8_lossy()
                .trim()
                .to_owned();
            let slot = if key.eq_ignore_ascii_case("Client") {
                &mut header.client
            } else if key.eq_ignore_ascii_case("Device") {
                &mut header.device
            } else if key.eq_ignore_ascii_case("DeviceId") {
                &mut header.device_id
            } else if key.eq_ignore_ascii_case("Version") {
                &mut header.version
            } else if key.eq_ignore_ascii_case("Token") {
                &mut header.token
            } else {
                continue;
            };
            *slot = (!decoded.is_empty()).then_some(decoded);
        }
        Some(header)
    }

    /// The header of a request: `Authorization` if it is a Jellyfin one, else
    /// `X-Emby-Authorization`.
    pub fn from_headers(headers: &HeaderMap) -> Option<AuthHeader> {
        let from = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(AuthHeader::parse)
        };
        from("authorization").or_else(|| from("x-emby-authorization"))
    }
}

/// Splits on commas that are not inside double quotes.
fn split_outside_quotes(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut in_quotes = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// The request's token, from the first non-empty of Jellyfin's seven sources:
/// `Authorization: MediaBrowser …`, `Authorization: Emby …`, `X-Emby-Authorization`,
/// `X-Emby-Token`, `X-MediaBrowser-Token`, query `ApiKey`, query `api_key` (query keys without
/// regard to case).
pub fn request_token(parts: &Parts) -> Option<String> {
    if let Some(token) = AuthHeader::from_headers(&parts.headers).and_then(|h| h.token) {
        return Some(token);
    }
    for name in ["x-emby-token", "x-mediabrowser-token"] {
        if let Some(v) = parts.headers.get(name).and_then(|v| v.to_str().ok()) {
            let v = v.trim();
            if !v.is_empty() {
                return Some(v.to_owned());
            }
        }
    }
    let query = parts.uri.query()?;
    let params = parse_query(query);
    ["ApiKey", "api_key"].iter().find_map(|wanted| {
        params.as_object().and_then(|m| {
            m.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(wanted))
                .and_then(|(_, v)| match v {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Array(a) => {
                        a.first().and_then(|f| f.as_str()).map(str::to_owned)
                    }
                    _ => None,
                })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    #[test]
    fn the_python_client_header_parses() {
        let h = AuthHeader::parse(
            r#"MediaBrowser Client="research-app", Device="research-device", DeviceId="dev-1234", Version="0.0.1", Token="abc""#,
        )
        .unwrap();
        assert_eq!(h.client.as_deref(), Some("research-app"));
        assert_eq!(h.device.as_deref(), Some("research-device"));
        assert_eq!(h.device_id.as_deref(), Some("dev-1234"));
        assert_eq!(h.version.as_deref(), Some("0.0.1"));
        assert_eq!(h.token.as_deref(), Some("abc"));
    }

    #[test]
    fn url_encoded_values_are_decoded_and_an_empty_token_is_no_token() {
        let h = AuthHeader::parse(
            r#"MediaBrowser Client="Research%20App", Device="research%20device", DeviceId="dev-5678", Version="0.0.1", Token="""#,
        )
        .unwrap();
        assert_eq!(h.client.as_deref(), Some("Research App"));
        assert_eq!(h.device.as_deref(), Some("research device"));
        assert_eq!(h.token, None);
    }

    #[test]
    fn unquoted_values_in_any_order_with_any_scheme_case_parse() {
        let h = AuthHeader::parse(
            "emby DeviceId=abc, Device=iPhone, Client=Swiftfin, Version=1.0, Token=",
        )
        .unwrap();
        assert_eq!(h.client.as_deref(), Some("Swiftfin"));
        assert_eq!(h.device_id.as_deref(), Some("abc"));
        assert_eq!(h.token, None);
    }

    #[test]
    fn commas_inside_quotes_do_not_split_pairs() {
        let h = AuthHeader::parse(r#"MediaBrowser Device="Living room, TV", Client="x""#).unwrap();
        assert_eq!(h.device.as_deref(), Some("Living room, TV"));
        assert_eq!(h.client.as_deref(), Some("x"));
    }

    #[test]
    fn other_schemes_and_garbage_are_not_jellyfin_headers() {
        assert_eq!(AuthHeader::parse("Bearer abc"), None);
        assert_eq!(AuthHeader::parse(""), None);
        let h = AuthHeader::parse("MediaBrowser ,,,=,Token").unwrap();
        assert_eq!(h, AuthHeader::default());
    }

    fn token_of(builder: http::request::Builder) -> Option<String> {
        let (parts, ()) = builder.body(()).unwrap().into_parts();
        request_token(&parts)
    }

    #[test]
    fn the_token_comes_from_each_of_the_seven_sources() {
        let r = || Request::builder().uri("/x");
        assert_eq!(
            token_of(r().header("Authorization", r#"MediaBrowser Token="t1""#)).as_deref(),
            Some("t1")
        );
        assert_eq!(
            token_of(r().header("Authorization", r#"Emby Token="t2""#)).as_deref(),
            Some("t2")
        );
        assert_eq!(
            token_of(r().header("X-Emby-Authorization", r#"MediaBrowser Token="t3""#)).as_deref(),
            Some("t3")
        );
        assert_eq!(
            token_of(r().header("X-Emby-Token", "t4")).as_deref(),
            Some("t4")
        );
        assert_eq!(
            token_of(r().header("X-MediaBrowser-Token", "t5")).as_deref(),
            Some("t5")
        );
        let q = |uri: &str| Request::builder().uri(uri);
        assert_eq!(token_of(q("/x?ApiKey=t6")).as_deref(), Some("t6"));
        assert_eq!(token_of(q("/x?api_key=t7")).as_deref(), Some("t7"));
        assert_eq!(token_of(q("/x?APIKEY=t8")).as_deref(), Some("t8"));
        assert_eq!(token_of(r()), None);
    }

    #[test]
    fn an_empty_header_token_falls_through_to_later_sources() {
        let b = Request::builder()
            .uri("/socket?api_key=late")
            .header("Authorization", r#"MediaBrowser Client="c", Token="""#);
        assert_eq!(token_of(b).as_deref(), Some("late"));
    }
}

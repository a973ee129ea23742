//! What a player asks before choosing a quality, and the branding every page load reads:
//! `/System/Endpoint` (is the client on the local network), `/Playback/BitrateTest?size=`
//! (that many random bytes, to time the download), `/Branding/Configuration` and
//! `/Branding/Css`. Without the first two jellyfin-web caps itself at 1.5 Mbit/s.
//!
//! The bitrate test streams its bytes in chunks and is bounded as Jellyfin bounds it
//! (1 byte to 100 MB), so it never holds the whole answer in memory.

use std::net::IpAddr;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::api::users::ClientAddr;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::jf::{Json, Query};
use crate::state::AppState;

/// Largest bitrate test Jellyfin allows.
pub const MAX_BITRATE_TEST_BYTES: u64 = 100_000_000;
/// Jellyfin's default size when none is given.
const DEFAULT_BITRATE_TEST_BYTES: u64 = 102_400;
/// Bytes per chunk of the test's body.
const CHUNK_BYTES: usize = 64 * 1024;

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/system/endpoint", get(endpoint))
        .route("/playback/bitratetest", get(bitrate_test))
        .route("/branding/configuration", get(branding))
        .route("/branding/css", get(branding_css))
        .route("/branding/css.css", get(branding_css))
}

/// Jellyfin's `EndPointInfo`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct EndPointInfo {
    is_local: bool,
    is_in_network: bool,
}

/// Loopback is local; private, link-local and unique-local addresses are in the network.
fn endpoint_info(addr: Option<IpAddr>) -> EndPointInfo {
    let Some(addr) = addr else {
        return EndPointInfo {
            is_local: false,
            is_in_network: false,
        };
    };
    let is_local = addr.is_loopback();
    let in_network = match addr {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() || v4.is_private() || v4.is_link_local())
        }
    };
    EndPointInfo {
        is_local,
        is_in_network: in_network,
    }
}

async fn endpoint(_caller: AuthUser, ClientAddr(addr): ClientAddr) -> Json<EndPointInfo> {
    Json(endpoint_info(addr))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct BitrateTestParams {
    size: Option<i64>,
}

async fn bitrate_test(
    _caller: AuthUser,
    Query(params): Query<BitrateTestParams>,
) -> Result<Response, ApiError> {
    let size = match params.size {
        None => DEFAULT_BITRATE_TEST_BYTES,
        Some(n) => u64::try_from(n)
            .ok()
            .filter(|n| (1..=MAX_BITRATE_TEST_BYTES).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "size must be between 1 and {MAX_BITRATE_TEST_BYTES}."
                ))
            })?,
    };
    let chunks = futures::stream::unfold(size, |left| async move {
        if left == 0 {
            return None;
        }
        let n = usize::try_from(left).map_or(CHUNK_BYTES, |l| l.min(CHUNK_BYTES));
        let mut chunk = vec![0u8; n];
        // Random, so no proxy or transport compression makes the test look faster.
        rand::rng().fill_bytes(&mut chunk);
        Some((Ok::<_, std::io::Error>(Bytes::from(chunk)), left - n as u64))
    });
    let mut response = Body::from_stream(chunks).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Jellyfin's `BrandingOptionsDto`: no login disclaimer, no custom CSS, no splash screen.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct BrandingOptions {
    login_disclaimer: String,
    custom_css: String,
    splashscreen_enabled: bool,
}

async fn branding() -> Json<BrandingOptions> {
    Json(BrandingOptions {
        login_disclaimer: String::new(),
        custom_css: String::new(),
        splashscreen_enabled: false,
    })
}

/// No custom CSS: Jellyfin answers 204 then.
async fn branding_css() -> StatusCode {
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_in_the_network_and_public_ones_are_not() {
        let at = |s: &str| endpoint_info(Some(s.parse().expect("an address")));
        assert!(at("127.0.0.1").is_local && at("127.0.0.1").is_in_network);
        assert!(at("192.168.1.20").is_in_network && !at("192.168.1.20").is_local);
        assert!(at("10.1.2.3").is_in_network);
        assert!(at("fd00::1").is_in_network);
        assert!(!at("8.8.8.8").is_in_network);
        assert!(!at("2001:db8::1").is_in_network);
        assert!(!endpoint_info(None).is_in_network);
    }
}

//! `Query` and `Json` extractors that follow Jellyfin's conventions and report bad input as an
//! [`ApiError`], in the same shape as every other error.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use percent_encoding::percent_decode_str;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::de::from_value;
use crate::error::ApiError;

/// Query parameters, keys matched without regard to case (`ParentId`, `parentId`, `parentid`),
/// lists comma-separated or repeated, booleans as `true`/`True`. Empty values count as absent.
/// Write the target struct with `#[serde(rename_all = "PascalCase")]` and optional fields.
#[derive(Debug, Clone, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let value = parse_query(parts.uri.query().unwrap_or(""));
        from_value(value)
            .map(Query)
            .map_err(|e| ApiError::bad_request(format!("Invalid query parameter: {e}")))
    }
}

/// Parses a query string into a JSON object: one key per parameter name (names that differ
/// only in case are merged, the first spelling kept), a string for a single value, an array for
/// a repeated one. `+` is a space; values are percent-decoded; empty values are dropped.
pub fn parse_query(query: &str) -> Value {
    let mut map: Map<String, Value> = Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(raw_key);
        let value = decode(raw_value);
        if key.is_empty() || value.is_empty() {
            continue;
        }
        let existing = map.keys().find(|k| k.eq_ignore_ascii_case(&key)).cloned();
        match existing {
            None => {
                map.insert(key, Value::String(value));
            }
            Some(k) => {
                if let Some(slot) = map.get_mut(&k) {
                    match slot {
                        Value::Array(values) => values.push(Value::String(value)),
                        other => {
                            let first = other.take();
                            *other = Value::Array(vec![first, Value::String(value)]);
                        }
                    }
                }
            }
        }
    }
    Value::Object(map)
}

fn decode(raw: &str) -> String {
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// Path parameters, with bad input (a malformed id) reported as a 400 [`ApiError`] like every
/// other error: `Path(item_id): Path<JfId>`, `Path((user_id, item_id)): Path<(JfId, JfId)>`.
/// Paths are lowercased before routing, so parameters arrive in lowercase.
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// A JSON body read with Jellyfin's lenient rules (see [`super::from_value`]); also a JSON
/// response. An empty body reads as `{}`, because clients send partial or empty bodies.
/// The content type is not checked: some clients send JSON as `text/plain`.
#[derive(Debug, Clone, Default)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
                _ => ApiError::bad_request("The request body could not be read."),
            }
        })?;
        let value = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Object(Map::new())
        } else {
            serde_json::from_slice::<Value>(&bytes)
                .map_err(|e| ApiError::bad_request(format!("Invalid JSON body: {e}")))?
        };
        from_value(value)
            .map(Json)
            .map_err(|e| ApiError::bad_request(format!("Invalid JSON body: {e}")))
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jf::{JfId, List};
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Items {
        parent_id: Option<JfId>,
        recursive: Option<bool>,
        #[serde(default)]
        fields: List<Field>,
        #[serde(default)]
        include_item_types: List<String>,
        limit: Option<u32>,
    }

    #[derive(Debug, PartialEq)]
    enum Field {
        Overview,
        MediaSources,
    }

    impl std::str::FromStr for Field {
        type Err = ();
        fn from_str(s: &str) -> Result<Self, ()> {
            match s.to_ascii_lowercase().as_str() {
                "overview" => Ok(Field::Overview),
                "mediasources" => Ok(Field::MediaSources),
                _ => Err(()),
            }
        }
    }

    fn items(q: &str) -> Items {
        from_value(parse_query(q)).unwrap()
    }

    #[test]
    fn query_keys_match_without_regard_to_case() {
        let q = items("parentid=0123456789ABCDEF0123456789abcdef&RECURSIVE=True&Limit=50");
        assert_eq!(
            q.parent_id.map(|i| i.to_string()).as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(q.recursive, Some(true));
        assert_eq!(q.limit, Some(50));
    }

    #[test]
    fn lists_come_comma_separated_or_repeated_and_unknown_values_are_dropped() {
        let comma =
            items("Fields=MediaSources%2COverview%2CMetascore&IncludeItemTypes=Movie,Episode");
        assert_eq!(comma.fields.0, vec![Field::MediaSources, Field::Overview]);
        assert_eq!(comma.include_item_types.0, vec!["Movie", "Episode"]);
        let repeated = items(
            "fields=MediaSources&fields=Overview&includeItemTypes=Movie&includeItemTypes=Episode",
        );
        assert_eq!(
            repeated.fields.0,
            vec![Field::MediaSources, Field::Overview]
        );
        assert_eq!(repeated.include_item_types.0, vec!["Movie", "Episode"]);
    }

    #[test]
    fn empty_values_count_as_absent_and_bad_ids_are_errors() {
        assert!(items("ParentId=&Limit=").parent_id.is_none());
        assert!(from_value::<Items>(parse_query("ParentId=not-an-id")).is_err());
    }
}

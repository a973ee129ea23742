//! A lenient deserializer over a JSON value, the way ASP.NET reads Jellyfin requests: property
//! names match without regard to case (`username` fills `Username`), numbers and booleans may
//! arrive as strings (`"True"`, `"50"`), a string fills a list by splitting on commas, and
//! enum names match without regard to case. Unknown keys are ignored unless the target type
//! says `deny_unknown_fields`.
//!
//! Query strings go through the same code (see `extract::parse_query`), so query structs and
//! body structs are written the same way: `#[serde(rename_all = "PascalCase")]`.
//! Limitation: `#[serde(flatten)]` bypasses the case-insensitive matching of field names.

use std::fmt;
use std::vec;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Value};

/// Why a value does not fit the target type. The message names the field and is safe to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DeError(String);

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError(msg.to_string())
    }
}

/// Deserializes `T` from `value` with Jellyfin's lenient rules.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, DeError> {
    T::deserialize(Lenient(value))
}

struct Lenient(Value);

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

fn visit_number<'de, V: Visitor<'de>>(n: &serde_json::Number, v: V) -> Result<V::Value, DeError> {
    if let Some(u) = n.as_u64() {
        v.visit_u64(u)
    } else if let Some(i) = n.as_i64() {
        v.visit_i64(i)
    } else {
        v.visit_f64(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// Integers and floats: a JSON number, or a string holding one.
fn visit_numeric<'de, V: Visitor<'de>>(value: Value, v: V) -> Result<V::Value, DeError> {
    match value {
        Value::Number(n) => visit_number(&n, v),
        Value::String(s) => {
            let t = s.trim();
            if let Ok(i) = t.parse::<i64>() {
                v.visit_i64(i)
            } else if let Ok(u) = t.parse::<u64>() {
                v.visit_u64(u)
            } else if let Ok(f) = t.parse::<f64>() {
                v.visit_f64(f)
            } else {
                Err(de::Error::invalid_value(
                    de::Unexpected::Str(&s),
                    &"a number",
                ))
            }
        }
        Value::Array(a) => match a.into_iter().next() {
            Some(first) => visit_numeric(first, v),
            None => Err(de::Error::invalid_length(0, &"one number")),
        },
        other => Lenient(other).deserialize_any_inner(v),
    }
}

impl Lenient {
    fn deserialize_any_inner<'de, V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Null => v.visit_unit(),
            Value::Bool(b) => v.visit_bool(b),
            Value::Number(n) => visit_number(&n, v),
            Value::String(s) => v.visit_string(s),
            Value::Array(a) => v.visit_seq(SeqDe(a.into_iter())),
            Value::Object(m) => v.visit_map(MapDe::new(m, None)),
        }
    }
}

macro_rules! numeric {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
                visit_numeric(self.0, v)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for Lenient {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_any_inner(v)
    }

    numeric! {
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Bool(b) => v.visit_bool(b),
            Value::String(s) => match parse_bool(&s) {
                Some(b) => v.visit_bool(b),
                None => Err(de::Error::invalid_value(
                    de::Unexpected::Str(&s),
                    &"true or false",
                )),
            },
            Value::Number(n) => v.visit_bool(n.as_f64().is_some_and(|f| f != 0.0)),
            Value::Array(a) => match a.into_iter().next() {
                Some(first) => Lenient(first).deserialize_bool(v),
                None => Err(de::Error::invalid_length(0, &"one boolean")),
            },
            other => Lenient(other).deserialize_any_inner(v),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::String(s) => v.visit_string(s),
            Value::Number(n) => v.visit_string(n.to_string()),
            Value::Bool(b) => v.visit_string(b.to_string()),
            // A repeated scalar query parameter: the first one counts.
            Value::Array(a) => match a.into_iter().next() {
                Some(first) => Lenient(first).deserialize_string(v),
                None => Err(de::Error::invalid_length(0, &"one string")),
            },
            other => Lenient(other).deserialize_any_inner(v),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_string(v)
    }

    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_string(v)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_string(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Null => v.visit_none(),
            other => v.visit_some(Lenient(other)),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Array(a) => v.visit_seq(SeqDe(a.into_iter())),
            Value::Null => v.visit_seq(SeqDe(Vec::new().into_iter())),
            Value::String(s) => {
                let parts: Vec<Value> = s
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| Value::String(p.to_owned()))
                    .collect();
                v.visit_seq(SeqDe(parts.into_iter()))
            }
            other => v.visit_seq(SeqDe(vec![other].into_iter())),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Object(m) => v.visit_map(MapDe::new(m, Some(fields))),
            other => Err(de::Error::invalid_type(unexpected(&other), &"an object")),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        match self.0 {
            Value::String(s) => {
                let canonical = variants
                    .iter()
                    .find(|variant| variant.eq_ignore_ascii_case(s.trim()))
                    .map_or(s.clone(), |variant| (*variant).to_owned());
                v.visit_enum(canonical.into_deserializer())
            }
            other => de::Deserializer::deserialize_enum(other, name, variants, v)
                .map_err(|e| DeError(e.to_string())),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_unit()
    }

    forward_to_deserialize_any! { bytes byte_buf unit unit_struct map }
}

fn unexpected(value: &Value) -> de::Unexpected<'_> {
    match value {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(_) => de::Unexpected::Other("a number"),
        Value::String(s) => de::Unexpected::Str(s),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

struct SeqDe(vec::IntoIter<Value>);

impl<'de> SeqAccess<'de> for SeqDe {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.0.next() {
            Some(value) => seed.deserialize(Lenient(value)).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct MapDe {
    entries: vec::IntoIter<(String, Value)>,
    pending: Option<Value>,
}

impl MapDe {
    /// With `fields`, each key is replaced by the field it matches without regard to case.
    fn new(map: Map<String, Value>, fields: Option<&'static [&'static str]>) -> Self {
        let entries: Vec<(String, Value)> = map
            .into_iter()
            .map(|(key, value)| {
                let key = fields
                    .and_then(|fs| fs.iter().find(|f| f.eq_ignore_ascii_case(&key)))
                    .map_or(key, |f| (*f).to_owned());
                (key, value)
            })
            .collect();
        MapDe {
            entries: entries.into_iter(),
            pending: None,
        }
    }
}

impl<'de> MapAccess<'de> for MapDe {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.entries.next() {
            Some((key, value)) => {
                self.pending = Some(value);
                seed.deserialize(key.into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let value = self.pending.take().unwrap_or(Value::Null);
        seed.deserialize(Lenient(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct Login {
        username: String,
        pw: Option<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct Progress {
        position_ticks: Option<i64>,
        is_paused: Option<bool>,
        #[serde(default)]
        fields: Vec<String>,
        kind: Option<Kind>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    enum Kind {
        Movie,
        Episode,
    }

    #[test]
    fn property_names_match_without_regard_to_case_and_unknown_keys_are_ignored() {
        let login: Login =
            from_value(json!({"username": "demo", "PW": "secret", "IsPlayback": true})).unwrap();
        assert_eq!(
            login,
            Login {
                username: "demo".into(),
                pw: Some("secret".into())
            }
        );
    }

    #[test]
    fn numbers_and_booleans_may_arrive_as_strings() {
        let p: Progress = from_value(json!({
            "positionticks": "50000000", "ISPAUSED": "True", "Fields": "A,B", "kind": "episode"
        }))
        .unwrap();
        assert_eq!(p.position_ticks, Some(50_000_000));
        assert_eq!(p.is_paused, Some(true));
        assert_eq!(p.fields, vec!["A", "B"]);
        assert_eq!(p.kind, Some(Kind::Episode));
    }

    #[test]
    fn a_wrong_type_is_an_error_that_names_the_problem() {
        let err = from_value::<Progress>(json!({"PositionTicks": "soon"})).unwrap_err();
        assert!(err.to_string().contains("soon"), "{err}");
    }
}

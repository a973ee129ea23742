//! Jellyfin's wire conventions, in one place, so every handler follows them the same way:
//! ids in "N" format ([`JfId`]), dates with seven fractional digits ([`date`]), query strings and
//! JSON bodies read without regard to the case of keys, with lists comma-separated or repeated
//! and unknown list values ignored ([`Query`], [`Json`], [`List`]).
//!
//! Nothing here touches storage or knows any endpoint.

mod de;
mod extract;
mod id;
mod time;

pub use de::{DeError, from_value};
pub use extract::{Json, Path, Query, parse_query};
pub use id::{JfId, ParseIdError};
pub use time::{date, date_opt, now_millis, ticks_from_millis};

use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// A list parameter: comma-separated (`Fields=A,B`), repeated (`fields=A&fields=B`) or a JSON
/// array. Values that do not parse as `T` are dropped, as Jellyfin does, because clients send
/// enum values that no longer exist (`Fields=Metascore`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List<T>(pub Vec<T>);

impl<T> Default for List<T> {
    fn default() -> Self {
        List(Vec::new())
    }
}

impl<T> List<T> {
    /// The parsed values.
    pub fn as_slice(&self) -> &[T] {
        &self.0
    }

    /// True when no value parsed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T: PartialEq> List<T> {
    /// True when `value` is in the list.
    pub fn contains(&self, value: &T) -> bool {
        self.0.contains(value)
    }
}

impl<'de, T: FromStr> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Vec::<String>::deserialize(deserializer)?;
        Ok(List(
            raw.iter()
                .flat_map(|s| s.split(','))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .filter_map(|s| s.parse().ok())
                .collect(),
        ))
    }
}

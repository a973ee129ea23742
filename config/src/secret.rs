//! A string that must never be printed: database and Redis URLs, passwords.

use serde::Deserialize;

/// A secret value. `Debug` shows `Secret(***)`; there is no `Display` and no `Serialize`, so it
/// cannot reach a log line, an error message or a rendered file by accident.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that needs it (opening a connection, hashing a password).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

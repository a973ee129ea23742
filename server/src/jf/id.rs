//! Ids as Jellyfin writes them: 32 lowercase hex digits ("N" format). Input may also be the
//! dashed GUID form, in any case.

use std::fmt;
use std::str::FromStr;

use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 128-bit id, printed as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JfId([u8; 16]);

/// Why a text is not an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a valid id: expected 32 hex digits, optionally with dashes")]
pub struct ParseIdError(String);

impl JfId {
    /// A fresh random id.
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        JfId(bytes)
    }

    /// The id from its 16 bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        JfId(bytes)
    }

    /// The 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The "N" form: 32 lowercase hex digits, as stored in the database and sent to clients.
    pub fn to_n(&self) -> String {
        hex::encode(self.0)
    }

    /// The dashed form `8-4-4-4-12`, for the few places that want it.
    pub fn to_dashed(&self) -> String {
        let n = self.to_n();
        format!(
            "{}-{}-{}-{}-{}",
            &n[0..8],
            &n[8..12],
            &n[12..16],
            &n[16..20],
            &n[20..32]
        )
    }
}

impl FromStr for JfId {
    type Err = ParseIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim().trim_start_matches('{').trim_end_matches('}');
        let digits: String = match trimmed.len() {
            32 => trimmed.to_owned(),
            36 => {
                let b = trimmed.as_bytes();
                if [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
                    return Err(ParseIdError(truncate(s)));
                }
                trimmed.chars().filter(|c| *c != '-').collect()
            }
            _ => return Err(ParseIdError(truncate(s))),
        };
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(&digits, &mut bytes).map_err(|_| ParseIdError(truncate(s)))?;
        Ok(JfId(bytes))
    }
}

/// Bad input is echoed in error messages; keep it short.
fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

impl fmt::Display for JfId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_n())
    }
}

impl fmt::Debug for JfId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JfId({})", self.to_n())
    }
}

impl Serialize for JfId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_n())
    }
}

impl<'de> Deserialize<'de> for JfId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashed_and_undashed_ids_in_any_case_are_the_same_id() {
        let a: JfId = "0123456789abcdef0123456789ABCDEF".parse().unwrap();
        let b: JfId = "01234567-89AB-CDEF-0123-456789abcdef".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "0123456789abcdef0123456789abcdef");
        assert_eq!(a.to_dashed(), "01234567-89ab-cdef-0123-456789abcdef");
    }

    #[test]
    fn non_hex_and_wrong_length_texts_are_not_ids() {
        for bad in [
            "",
            "xyz",
            "0123456789abcdef0123456789abcdeg",
            "0123456789abcdef0123456789abcde",
            "01234567-89ab-cdef-0123_456789abcdef",
            "../../etc/passwd",
        ] {
            assert!(bad.parse::<JfId>().is_err(), "{bad} parsed");
        }
    }
}

//! Item ids: 32 lowercase hex digits derived from what an item *is* (its library and path, or
//! its series name and season number), never random, so that a rescan, another replica or a
//! rebuilt database gives every item the same id and clients' saved ids and play positions stay
//! valid.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::jf::JfId;

/// An id from labelled parts. Parts are length-prefixed so `("ab", "c")` and `("a", "bc")`
/// differ.
fn derive(parts: &[&[u8]]) -> JfId {
    let mut hash = Sha256::new();
    hash.update(b"ephyra-item-v1");
    for part in parts {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    JfId::from_bytes(bytes)
}

/// The library's own item (a `CollectionFolder`), from its configured name.
pub fn library_id(library: &str) -> JfId {
    derive(&[b"library", library.to_lowercase().as_bytes()])
}

/// A film or episode, from its library and the path of its file.
pub fn file_item_id(library: &str, path: &Path) -> JfId {
    derive(&[
        b"file",
        library.to_lowercase().as_bytes(),
        path.as_os_str().as_encoded_bytes(),
    ])
}

/// A series, from its library and its name (ignoring case), so that one show spread over two
/// folders of a library is one series.
pub fn series_id(library: &str, series: &str) -> JfId {
    derive(&[
        b"series",
        library.to_lowercase().as_bytes(),
        series.to_lowercase().as_bytes(),
    ])
}

/// A season, from its series and number.
pub fn season_id(series_id: JfId, season: u32) -> JfId {
    derive(&[b"season", series_id.as_bytes(), &season.to_le_bytes()])
}

/// A genre, studio or person, from its kind (`genre`, `studio`, `person`) and name (ignoring
/// case): the same name has the same id in every library and on every replica.
pub fn name_id(kind: &str, name: &str) -> JfId {
    derive(&[
        b"name",
        kind.as_bytes(),
        name.trim().to_lowercase().as_bytes(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_id(id: &JfId) -> bool {
        let n = id.to_n();
        n.len() == 32
            && n.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    #[test]
    fn ids_are_32_lowercase_hex_digits() {
        assert!(is_id(&library_id("Films")));
        assert!(is_id(&file_item_id("Films", Path::new("/m/a.mkv"))));
        assert!(is_id(&series_id("Shows", "Show")));
        assert!(is_id(&season_id(series_id("Shows", "Show"), 1)));
    }

    #[test]
    fn the_same_thing_always_gets_the_same_id() {
        assert_eq!(
            file_item_id("Films", Path::new("/m/a.mkv")),
            file_item_id("films", Path::new("/m/a.mkv"))
        );
        assert_eq!(
            series_id("Shows", "The Show"),
            series_id("Shows", "the show")
        );
    }

    #[test]
    fn different_things_get_different_ids() {
        let ids = [
            library_id("Films"),
            library_id("Shows"),
            file_item_id("Films", Path::new("/m/a.mkv")),
            file_item_id("Films", Path::new("/m/b.mkv")),
            file_item_id("Shows", Path::new("/m/a.mkv")),
            series_id("Shows", "Show"),
            season_id(series_id("Shows", "Show"), 1),
            season_id(series_id("Shows", "Show"), 2),
        ];
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
    }
}

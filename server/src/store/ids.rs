//! Item ids: 32 lowercase hex digits derived from what an item *is* (its library and path, or
//! its series name and season number), never random, so that a rescan, another replica or a
//! rebuilt library gives every item the same id and clients' saved ids and play positions stay
//! valid.
//!
//! The derivation is keyed with a secret of the installation ([`ItemIds`]), created once in
//! `server_meta` and the same for every replica. Without it ids would be a public function of
//! a file's path: anyone could compute the id of `Films/Some Film (2019)/Some Film (2019).mkv`
//! and ask `/Items/{id}/Images/Primary`, which needs no login (clients load images without a
//! token), to learn whether the server has that film. With the key an id says nothing to whoever
//! does not hold it.
//!
//! An id is `HMAC-SHA256(key, unkeyed)`, cut to 16 bytes, where `unkeyed` is the id the
//! unkeyed derivation (`ephyra-item-v1`) gave before keys existed. So a database from before the
//! key gets its ids rewritten from the stored ids alone ([`rekey`]) when the key is created,
//! with every reference to them (user data, play positions, metadata, library settings).
//!
//! This module must not decide *which* parts identify an item (the scanner does), and must
//! never log or print the key.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::{Any, AssertSqlSafe, Row, Transaction};

use super::{Dialect, Store, StoreError, StoreResult, parse_id};
use crate::jf::JfId;

/// A genre, studio or person, from its kind (`genre`, `studio`, `person`) and name (ignoring
/// case): the same name has the same id in every library and on every replica.
///
/// Not keyed: a name id stands for a word, not for anything in the library (Jellyfin derives
/// them from the name the same way), every route that answers for one needs a session, and
/// filters given names (`Genres=Drama`) must find them without the store.
pub fn name_id(kind: &str, name: &str) -> JfId {
    unkeyed(&[
        b"name",
        kind.as_bytes(),
        name.trim().to_lowercase().as_bytes(),
    ])
}

/// Where the key lives in `server_meta`.
const KEY_NAME: &str = "item_id_key";

/// The keyed id derivation of one installation. Cheap to clone.
#[derive(Clone)]
pub struct ItemIds {
    key: [u8; 32],
}

impl fmt::Debug for ItemIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ItemIds { key: <secret> }")
    }
}

/// The id from labelled parts, before keying. Parts are length-prefixed so `("ab", "c")` and
/// `("a", "bc")` differ.
fn unkeyed(parts: &[&[u8]]) -> JfId {
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

impl ItemIds {
    /// The derivation under `key`.
    pub fn new(key: [u8; 32]) -> Self {
        ItemIds { key }
    }

    /// A fresh random key.
    fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        ItemIds { key }
    }

    /// The keyed id of an unkeyed one.
    fn keyed(&self, unkeyed: JfId) -> JfId {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        mac.update(unkeyed.as_bytes());
        let tag = mac.finalize().into_bytes();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&tag[..16]);
        JfId::from_bytes(bytes)
    }

    /// The library's own item (a `CollectionFolder`), from its configured name.
    pub fn library(&self, library: &str) -> JfId {
        self.keyed(unkeyed(&[b"library", library.to_lowercase().as_bytes()]))
    }

    /// A film or episode, from its library and the path of its file.
    pub fn file_item(&self, library: &str, path: &Path) -> JfId {
        self.keyed(unkeyed(&[
            b"file",
            library.to_lowercase().as_bytes(),
            path.as_os_str().as_encoded_bytes(),
        ]))
    }

    /// A series, from its library and its name (ignoring case), so that one show spread over
    /// two folders of a library is one series.
    pub fn series(&self, library: &str, series: &str) -> JfId {
        self.keyed(unkeyed(&[
            b"series",
            library.to_lowercase().as_bytes(),
            series.to_lowercase().as_bytes(),
        ]))
    }

    /// A collection (BoxSet), from its name ignoring case and surrounding space: the films of
    /// every library naming one set share it. Keyed like items: a set's image needs no login,
    /// so an unkeyed id would tell anyone whether the server holds a given collection.
    pub fn boxset(&self, name: &str) -> JfId {
        self.keyed(unkeyed(&[b"boxset", name.trim().to_lowercase().as_bytes()]))
    }

    /// The "Collections" folder (Jellyfin's `boxsets` collection folder) that holds every set.
    pub fn collections_folder(&self) -> JfId {
        self.keyed(unkeyed(&[b"collections-folder"]))
    }

    /// A season, from its series' id and its number: what `?season=N` finds.
    pub fn season(&self, series: JfId, season: u32) -> JfId {
        self.keyed(unkeyed(&[
            b"season",
            series.as_bytes(),
            &season.to_le_bytes(),
        ]))
    }
}

impl Store {
    /// The installation's id derivation: its key read from `server_meta`, or created there
    /// by the first replica to start on this database, which then rewrites any ids stored
    /// before the key existed in the same transaction. Replicas starting together agree on
    /// one key: on PostgreSQL the second insert waits for the first transaction and then
    /// finds its key; on SQLite the write lock orders them.
    pub(super) async fn load_item_ids(&self) -> StoreResult<ItemIds> {
        if let Some(stored) = self.meta(KEY_NAME).await? {
            return parse_key(&stored);
        }
        let fresh = ItemIds::generate();
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO server_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(KEY_NAME)
        .bind(hex::encode(fresh.key))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !inserted {
            tx.rollback().await?;
            let stored = self
                .meta(KEY_NAME)
                .await?
                .ok_or_else(|| StoreError::Corrupt("the item id key vanished".to_owned()))?;
            return parse_key(&stored);
        }
        let rewritten = rekey(&mut tx, self.dialect, &fresh).await?;
        tx.commit().await?;
        if rewritten > 0 {
            tracing::info!(
                ids = rewritten,
                "item ids are now keyed with this installation's secret; stored ids rewritten"
            );
        }
        Ok(fresh)
    }
}

fn parse_key(text: &str) -> StoreResult<ItemIds> {
    let mut key = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut key)
        .map_err(|_| StoreError::Corrupt("the item id key is not 64 hex digits".to_owned()))?;
    Ok(ItemIds::new(key))
}

/// Columns holding an item or library id, rewritten through the id map: every reference to
/// `items(id)` and `libraries(id)` (the foreign keys are deferred meanwhile). Name ids are not
/// keyed ([`name_id`]).
const ID_COLUMNS: &[(&str, &str)] = &[
    ("libraries", "id"),
    ("items", "id"),
    ("items", "library_id"),
    ("items", "parent_id"),
    ("items", "series_id"),
    ("items", "season_id"),
    ("items", "owner_id"),
    ("media_streams", "item_id"),
    ("chapters", "item_id"),
    ("images", "item_id"),
    ("user_item_data", "item_id"),
    ("media_index", "item_id"),
    ("scan_summaries", "library_id"),
    ("item_metadata", "item_id"),
    ("item_genres", "item_id"),
    ("item_tags", "item_id"),
    ("item_studios", "item_id"),
    ("item_people", "item_id"),
];

/// Rewrites every stored id from its unkeyed to its keyed form, inside `tx`; returns how many
/// ids changed. Seasons are derived from their series' id, so theirs is derived again from the
/// series' new id and the season number; every other id is the key applied to the old one.
async fn rekey(
    tx: &mut Transaction<'static, Any>,
    dialect: Dialect,
    ids: &ItemIds,
) -> StoreResult<usize> {
    let map = id_map(tx, ids).await?;
    if map.is_empty() {
        return Ok(0);
    }
    match dialect {
        Dialect::Sqlite => sqlx::query("PRAGMA defer_foreign_keys = ON"),
        Dialect::Postgres => sqlx::query("SET CONSTRAINTS ALL DEFERRED"),
    }
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "CREATE TEMPORARY TABLE id_remap (old TEXT PRIMARY KEY NOT NULL, new TEXT NOT NULL)",
    )
    .execute(&mut **tx)
    .await?;
    let pairs: Vec<(String, String)> = map
        .iter()
        .map(|(old, new)| (old.to_n(), new.to_n()))
        .collect();
    // 400 rows (800 bound values) per statement stays under every placeholder limit.
    for chunk in pairs.chunks(400) {
        let values = (0..chunk.len())
            .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        // Only numbered placeholders are formatted in; the values are bound.
        let sql = format!("INSERT INTO id_remap (old, new) VALUES {values}");
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (old, new) in chunk {
            query = query.bind(old).bind(new);
        }
        query.execute(&mut **tx).await?;
    }
    for (table, column) in ID_COLUMNS {
        // Table and column names come from the constant above, never from input.
        let sql = format!(
            "UPDATE {table} SET {column} = (SELECT new FROM id_remap WHERE old = {table}.{column}) \
             WHERE {column} IN (SELECT old FROM id_remap)"
        );
        sqlx::query(AssertSqlSafe(sql)).execute(&mut **tx).await?;
    }
    sqlx::query("DROP TABLE id_remap")
        .execute(&mut **tx)
        .await?;
    rewrite_settings(tx, &map).await?;
    Ok(map.len())
}

/// Old id → new id for every library and item stored.
async fn id_map(
    tx: &mut Transaction<'static, Any>,
    ids: &ItemIds,
) -> StoreResult<HashMap<JfId, JfId>> {
    let mut map = HashMap::new();
    let simple = "SELECT id FROM libraries UNION SELECT id FROM items WHERE kind <> 'Season'";
    for row in sqlx::query(simple).fetch_all(&mut **tx).await? {
        let old = parse_id(&row.try_get::<String, _>(0)?)?;
        map.insert(old, ids.keyed(old));
    }
    let seasons =
        sqlx::query("SELECT id, series_id, index_number FROM items WHERE kind = 'Season'")
            .fetch_all(&mut **tx)
            .await?;
    for row in seasons {
        let old = parse_id(&row.try_get::<String, _>("id")?)?;
        let series: Option<String> = row.try_get("series_id")?;
        let number: Option<i64> = row.try_get("index_number")?;
        let new = match (series, number.and_then(|n| u32::try_from(n).ok())) {
            (Some(series), Some(number)) => {
                let series = parse_id(&series)?;
                let keyed_series = map.get(&series).copied().unwrap_or(series);
                ids.season(keyed_series, number)
            }
            // A season without its series or number was not made by the scanner's rule.
            _ => ids.keyed(old),
        };
        map.insert(old, new);
    }
    Ok(map)
}

/// Ids saved inside settings clients posted: library order and exclusions in the user
/// configuration (`OrderedViews`, `MyMediaExcludes`, `LatestItemsExcludes`, ...) and the
/// per-library display preferences, whose key is often a library id.
async fn rewrite_settings(
    tx: &mut Transaction<'static, Any>,
    map: &HashMap<JfId, JfId>,
) -> StoreResult<()> {
    let configs = sqlx::query("SELECT user_id, body FROM user_configuration")
        .fetch_all(&mut **tx)
        .await?;
    for row in configs {
        let user: String = row.try_get("user_id")?;
        let body: String = row.try_get("body")?;
        if let Some(body) = rewrite_json(&body, map) {
            sqlx::query("UPDATE user_configuration SET body = $1 WHERE user_id = $2")
                .bind(body)
                .bind(user)
                .execute(&mut **tx)
                .await?;
        }
    }
    let prefs = sqlx::query("SELECT user_id, pref_id, client, body FROM display_preferences")
        .fetch_all(&mut **tx)
        .await?;
    for row in prefs {
        let user: String = row.try_get("user_id")?;
        let pref: String = row.try_get("pref_id")?;
        let client: String = row.try_get("client")?;
        let body: String = row.try_get("body")?;
        let new_pref = rewrite_id_text(&pref, map).map(|p| p.to_lowercase());
        let new_body = rewrite_json(&body, map);
        if new_pref.is_none() && new_body.is_none() {
            continue;
        }
        sqlx::query(
            "UPDATE display_preferences SET pref_id = $1, body = $2 \
             WHERE user_id = $3 AND pref_id = $4 AND client = $5",
        )
        .bind(new_pref.unwrap_or_else(|| pref.clone()))
        .bind(new_body.unwrap_or(body))
        .bind(user)
        .bind(pref)
        .bind(client)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The text with a mapped id replaced by its new id in the same form (N or dashed); `None`
/// when the text is not a mapped id.
fn rewrite_id_text(text: &str, map: &HashMap<JfId, JfId>) -> Option<String> {
    let id: JfId = text.parse().ok()?;
    let new = map.get(&id)?;
    Some(if text.contains('-') {
        new.to_dashed()
    } else {
        new.to_n()
    })
}

/// The JSON text with every string that is a mapped id rewritten; `None` when nothing changed
/// or the text is not JSON (left as the client posted it).
fn rewrite_json(text: &str, map: &HashMap<JfId, JfId>) -> Option<String> {
    fn walk(value: &mut serde_json::Value, map: &HashMap<JfId, JfId>) -> bool {
        match value {
            serde_json::Value::String(s) => match rewrite_id_text(s, map) {
                Some(new) => {
                    *s = new;
                    true
                }
                None => false,
            },
            serde_json::Value::Array(items) => items
                .iter_mut()
                .fold(false, |changed, v| walk(v, map) | changed),
            serde_json::Value::Object(fields) => fields
                .values_mut()
                .fold(false, |changed, v| walk(v, map) | changed),
            _ => false,
        }
    }
    let mut value: serde_json::Value = serde_json::from_str(text).ok()?;
    walk(&mut value, map).then(|| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> ItemIds {
        ItemIds::new([7; 32])
    }

    fn is_id(id: &JfId) -> bool {
        let n = id.to_n();
        n.len() == 32
            && n.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    #[test]
    fn ids_are_32_lowercase_hex_digits() {
        let ids = ids();
        assert!(is_id(&ids.library("Films")));
        assert!(is_id(&ids.file_item("Films", Path::new("/m/a.mkv"))));
        assert!(is_id(&ids.series("Shows", "Show")));
        assert!(is_id(&ids.season(ids.series("Shows", "Show"), 1)));
    }

    #[test]
    fn the_same_thing_always_gets_the_same_id() {
        let ids = ids();
        assert_eq!(
            ids.file_item("Films", Path::new("/m/a.mkv")),
            ids.file_item("films", Path::new("/m/a.mkv"))
        );
        assert_eq!(
            ids.series("Shows", "The Show"),
            ids.series("Shows", "the show")
        );
        // Another replica holding the same key derives the same ids.
        assert_eq!(
            ItemIds::new([7; 32]).series("Shows", "Show"),
            ids.series("Shows", "Show")
        );
        assert_eq!(name_id("genre", "Drama"), name_id("genre", " drama "));
    }

    #[test]
    fn different_things_get_different_ids() {
        let ids = ids();
        let all = [
            ids.library("Films"),
            ids.library("Shows"),
            ids.file_item("Films", Path::new("/m/a.mkv")),
            ids.file_item("Films", Path::new("/m/b.mkv")),
            ids.file_item("Shows", Path::new("/m/a.mkv")),
            ids.series("Shows", "Show"),
            ids.season(ids.series("Shows", "Show"), 1),
            ids.season(ids.series("Shows", "Show"), 2),
        ];
        let unique: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(unique.len(), all.len());
    }

    #[test]
    fn without_the_key_an_id_cannot_be_computed_from_the_path() {
        let path = Path::new("/media/films/Some Film (2019)/Some Film (2019).mkv");
        let public = unkeyed(&[b"file", b"films", path.as_os_str().as_encoded_bytes()]);
        let one = ItemIds::new([1; 32]).file_item("Films", path);
        let other = ItemIds::new([2; 32]).file_item("Films", path);
        assert_ne!(one, public);
        assert_ne!(one, other);
    }

    #[test]
    fn the_keyed_id_is_the_key_applied_to_the_unkeyed_one() {
        // What `rekey` relies on to rewrite a stored id without knowing its parts.
        let ids = ids();
        let path = Path::new("/m/a.mkv");
        let old = unkeyed(&[b"file", b"films", path.as_os_str().as_encoded_bytes()]);
        assert_eq!(ids.keyed(old), ids.file_item("Films", path));
    }

    #[test]
    fn ids_inside_posted_settings_are_rewritten_in_their_own_form() {
        let old: JfId = "0123456789abcdef0123456789abcdef".parse().unwrap();
        let new: JfId = "fedcba9876543210fedcba9876543210".parse().unwrap();
        let map = HashMap::from([(old, new)]);
        let body = format!(
            r#"{{"OrderedViews":["{}","other"],"MyMediaExcludes":["{}"],"PlayDefaultAudioTrack":true}}"#,
            old.to_n(),
            old.to_dashed()
        );
        let rewritten: serde_json::Value =
            serde_json::from_str(&rewrite_json(&body, &map).unwrap()).unwrap();
        assert_eq!(rewritten["OrderedViews"][0], new.to_n());
        assert_eq!(rewritten["OrderedViews"][1], "other");
        assert_eq!(rewritten["MyMediaExcludes"][0], new.to_dashed());
        assert_eq!(rewritten["PlayDefaultAudioTrack"], true);
        assert_eq!(rewrite_json(r#"{"a":["other"]}"#, &map), None);
        assert_eq!(rewrite_json("not json", &map), None);
    }
}

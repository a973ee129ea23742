//! Collections (Jellyfin's BoxSets) from the `<set>` of films' `.nfo` files (migration 0017).
//!
//! A set is not stored on its own: it is every readable film (not an extra, version or part)
//! whose local metadata names it, grouped by `item_metadata.collection_id`, the set's keyed id
//! derived from its name ignoring case ([`super::ids::ItemIds::boxset`]). So a set follows the
//! scans with nothing to keep in step: a film whose `.nfo` leaves the set, or that is removed,
//! leaves it, and a set without films is gone. Sets span libraries, as Jellyfin's
//! "Collections" folder does.
//!
//! This module reads sets, their counts and the images they borrow from their films; it never
//! writes a film's metadata (`metadata::set_local_metadata` does, deriving the id).

use std::collections::HashMap;
use std::path::PathBuf;

use sqlx::Row;

use super::items::query::user_key;
use super::items::{ItemImage, Sql};
use super::{Store, StoreResult, get_id};
use crate::jf::JfId;

/// Longest set name kept, in characters: a name is a title, and a longer `<set>` (a broken or
/// hostile `.nfo`) would otherwise be sent in every listing of sets.
pub const MAX_COLLECTION_NAME_CHARS: usize = 256;

/// The name a `<set>` gives its BoxSet: control characters and runs of white space become one
/// space, the ends are trimmed and the name is cut to [`MAX_COLLECTION_NAME_CHARS`]; `None`
/// when nothing is left (an empty `<set>` makes no set).
pub fn collection_name(raw: &str) -> Option<String> {
    let mut out = String::new();
    for word in raw
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    let cut: String = out.chars().take(MAX_COLLECTION_NAME_CHARS).collect();
    let cut = cut.trim_end();
    (!cut.is_empty()).then(|| cut.to_owned())
}

/// A collection as read for the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxSet {
    /// Keyed id from the name.
    pub id: JfId,
    /// The name as its films' `.nfo` files write it (the spelling most of them use, when
    /// they differ in case).
    pub name: String,
    /// Its readable films.
    pub children: i64,
    /// Of those, played by the asking user.
    pub played_children: i64,
    /// When its newest film was first seen (unix ms): what "date added" sorts by.
    pub date_created: i64,
    /// The earliest year of its films.
    pub production_year: Option<i64>,
}

/// An image a set borrows from one of its films (or a person from one of its credits), with
/// that item's library (the image is served only while its file resolves inside it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BorrowedImage {
    /// The film's image.
    pub image: ItemImage,
    /// The film's library.
    pub library_id: JfId,
}

/// The films of a set that count: readable, listed films (not extras, versions or parts).
const SET_FILMS: &str = " FROM item_metadata md JOIN items i ON i.id = md.item_id \
     WHERE md.collection_id IS NOT NULL AND i.kind = 'Movie' \
     AND i.probe_error IS NULL AND i.owner_id IS NULL";

/// The order of a set's films when the client asks for none (Jellyfin's BoxSet default:
/// by year, release date, then name): the first film with an image lends it to the set.
const SET_ORDER: &str = "COALESCE(md.production_year, i.production_year, 0), \
     COALESCE(md.premiere_date, i.premiere_date, 0), i.sort_name, i.id";

impl Store {
    /// The sets visible to `user` (their played counts are the user's), by name. With
    /// `library`, only sets with a film in that library; with `set`, only that set.
    pub async fn boxsets(
        &self,
        user: Option<JfId>,
        library: Option<JfId>,
        set: Option<JfId>,
    ) -> StoreResult<Vec<BoxSet>> {
        // One row per spelling of a set; the spellings are merged below, so the name shown
        // does not depend on how each database collates case.
        let mut sql = Sql::new(
            "SELECT md.collection_id AS id, md.collection AS name, COUNT(*) AS children, \
             SUM(CASE WHEN ud.played = 1 THEN 1 ELSE 0 END) AS played, \
             MAX(i.date_created) AS date_created, \
             MIN(COALESCE(md.production_year, i.production_year)) AS production_year \
             FROM item_metadata md JOIN items i ON i.id = md.item_id \
             LEFT JOIN user_item_data ud ON ud.item_id = i.id AND ud.user_id = ",
        );
        sql.text(user_key(user)).push(
            " WHERE md.collection_id IS NOT NULL AND i.kind = 'Movie' \
             AND i.probe_error IS NULL AND i.owner_id IS NULL",
        );
        if let Some(set) = set {
            sql.push(" AND md.collection_id = ").text(set.to_n());
        }
        if let Some(library) = library {
            sql.push(
                " AND md.collection_id IN (SELECT lm.collection_id \
                 FROM item_metadata lm JOIN items li ON li.id = lm.item_id \
                 WHERE lm.collection_id IS NOT NULL AND li.kind = 'Movie' \
                 AND li.probe_error IS NULL AND li.owner_id IS NULL AND li.library_id = ",
            )
            .text(library.to_n())
            .push(")");
        }
        sql.push(" GROUP BY md.collection_id, md.collection");
        let rows = sql.query().fetch_all(self.pool()).await?;
        // (set, its spellings with their film counts)
        let mut merged: HashMap<JfId, (BoxSet, Vec<(i64, String)>)> = HashMap::new();
        for row in &rows {
            let id = get_id(row, "id")?;
            let name: String = row.try_get("name")?;
            let children: i64 = row.try_get("children")?;
            let played = row.try_get::<Option<i64>, _>("played")?.unwrap_or(0);
            let date_created = row.try_get::<Option<i64>, _>("date_created")?.unwrap_or(0);
            let year: Option<i64> = row.try_get("production_year")?;
            let (set, spellings) = merged.entry(id).or_insert_with(|| {
                let empty = BoxSet {
                    id,
                    name: String::new(),
                    children: 0,
                    played_children: 0,
                    date_created: 0,
                    production_year: None,
                };
                (empty, Vec::new())
            });
            set.children += children;
            set.played_children += played;
            set.date_created = set.date_created.max(date_created);
            set.production_year = match (set.production_year, year) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            spellings.push((children, name));
        }
        let mut sets: Vec<BoxSet> = merged
            .into_values()
            .map(|(mut set, mut spellings)| {
                // The spelling most of its films use; between equals, the least by bytes.
                spellings.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
                set.name = spellings
                    .into_iter()
                    .next()
                    .map(|s| s.1)
                    .unwrap_or_default();
                set
            })
            .collect();
        sets.sort_by_cached_key(|s| (s.name.to_lowercase(), s.id));
        Ok(sets)
    }

    /// One set, when it has a film.
    pub async fn boxset(&self, id: JfId, user: Option<JfId>) -> StoreResult<Option<BoxSet>> {
        Ok(self.boxsets(user, None, Some(id)).await?.pop())
    }

    /// How many sets have a film: one aggregate over the partial index, for `BoxSetCount`
    /// and whether the Collections view shows (read on every home screen).
    pub async fn boxset_count(&self) -> StoreResult<i64> {
        let mut sql = Sql::new("SELECT COUNT(DISTINCT md.collection_id) AS n");
        sql.push(SET_FILMS);
        Ok(sql.query().fetch_one(self.pool()).await?.try_get("n")?)
    }

    /// Whether `id` names a set with a film: one indexed probe, so a listing's `ParentId` can
    /// be told apart from a library or folder cheaply.
    pub async fn is_boxset(&self, id: JfId) -> StoreResult<bool> {
        let mut sql = Sql::new("SELECT 1 AS found");
        sql.push(SET_FILMS)
            .push(" AND md.collection_id = ")
            .text(id.to_n())
            .push(" LIMIT 1");
        Ok(sql.query().fetch_optional(self.pool()).await?.is_some())
    }

    /// The `Primary` and `Backdrop` images the sets `ids` borrow: for each set and type, the
    /// first film (in the set's default order) that has one.
    pub async fn boxset_images(
        &self,
        ids: &[JfId],
    ) -> StoreResult<HashMap<JfId, Vec<BorrowedImage>>> {
        let mut out: HashMap<JfId, Vec<BorrowedImage>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let mut sql = Sql::new(
            "SELECT md.collection_id AS set_id, i.library_id, m.item_id, m.image_type, \
             m.image_index, m.path, m.tag, m.file_mtime \
             FROM images m JOIN items i ON i.id = m.item_id \
             JOIN item_metadata md ON md.item_id = i.id \
             WHERE m.image_type IN ('Primary', 'Backdrop') AND m.image_index = 0 \
             AND i.kind = 'Movie' AND i.probe_error IS NULL AND i.owner_id IS NULL \
             AND md.collection_id IN (",
        );
        sql.texts(ids.iter().map(JfId::to_n))
            .push(") ORDER BY md.collection_id, ")
            .push(SET_ORDER);
        let rows = sql.query().fetch_all(self.pool()).await?;
        for row in &rows {
            let set = get_id(row, "set_id")?;
            let image_type: String = row.try_get("image_type")?;
            let borrowed = out.entry(set).or_default();
            if borrowed.iter().any(|b| b.image.image_type == image_type) {
                continue;
            }
            let path: String = row.try_get("path")?;
            borrowed.push(BorrowedImage {
                image: ItemImage {
                    item_id: get_id(row, "item_id")?,
                    image_type,
                    image_index: row.try_get("image_index")?,
                    path: PathBuf::from(path),
                    tag: row.try_get("tag")?,
                    file_mtime: row.try_get("file_mtime")?,
                },
                library_id: get_id(row, "library_id")?,
            });
        }
        Ok(out)
    }

    /// Derives the set ids of metadata written before migration 0017 (and tidies their
    /// names as [`collection_name`] does), a batch per transaction. Run when the store opens;
    /// a no-op once every set has its id, and safe on several replicas at once (they write the
    /// same values).
    pub async fn fill_collection_ids(&self) -> StoreResult<u64> {
        let mut filled = 0;
        loop {
            let rows = sqlx::query(
                "SELECT item_id, collection FROM item_metadata \
                 WHERE collection IS NOT NULL AND collection_id IS NULL \
                 ORDER BY item_id LIMIT 500",
            )
            .fetch_all(self.pool())
            .await?;
            if rows.is_empty() {
                return Ok(filled);
            }
            let mut tx = self.begin_write().await?;
            for row in &rows {
                let item: String = row.try_get("item_id")?;
                let raw: String = row.try_get("collection")?;
                // A name that tidies to nothing is no set: cleared, so it is not read again.
                let name = collection_name(&raw);
                let id = name.as_deref().map(|n| self.ids().boxset(n).to_n());
                sqlx::query(
                    "UPDATE item_metadata SET collection = $2, collection_id = $3 \
                     WHERE item_id = $1",
                )
                .bind(item)
                .bind(name)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            filled += rows.len() as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_names_are_tidied_and_an_empty_one_makes_no_set() {
        assert_eq!(
            collection_name("  The\tMatrix \n Collection "),
            Some("The Matrix Collection".to_owned())
        );
        assert_eq!(collection_name("a\u{0}b"), Some("a b".to_owned()));
        assert_eq!(collection_name(""), None);
        assert_eq!(collection_name(" \t\r\n "), None);
    }

    #[test]
    fn long_set_names_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_COLLECTION_NAME_CHARS * 4);
        let name = collection_name(&long).expect("a name");
        assert_eq!(name.chars().count(), MAX_COLLECTION_NAME_CHARS);
    }
}

//! The read keys stored on each item row (migration 0012): `sort_key`, what `SortBy=SortName`
//! orders by (the `.nfo` sort title, else the sort name), and `search_name`, what a search
//! matches (the display name and the `.nfo` original title, folded by [`fold`]). Indexes
//! serve both, so a library page and a search read only the rows they show.
//!
//! The keys are derived values: every write of an item's names or of its `.nfo` values calls
//! [`refresh`] in the same transaction, and [`Store::fill_read_keys`] fills rows written
//! before the migration. Nothing else writes them, and nothing here reads for the API.

use sqlx::{Any, Row, Transaction};
use unicode_normalization::UnicodeNormalization;

use super::query::Sql;
use crate::store::{Store, StoreResult};

/// Rows per statement when keys are read or filled in bulk (well under SQLite's bound
/// parameter limit).
const BATCH: usize = 500;

/// `text` as a search compares it: lower-cased, diacritics removed (`Amélie` → `amelie`,
/// `Ærø` keeps its letters), runs of white space made one space, trimmed. A search term is
/// folded the same way, so matching is without regard to case or accents.
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.nfd().filter(|c| !is_combining_mark(*c)) {
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// Combining marks (accents and the like, left alone after canonical decomposition).
fn is_combining_mark(c: char) -> bool {
    unicode_normalization::char::is_combining_mark(c)
}

/// The `search_name` of an item: its display name and its original title, folded, one per
/// line (a term never holds a line break, so it cannot match across the two).
fn search_name(name: &str, original_title: Option<&str>) -> String {
    let mut out = fold(name);
    if let Some(original) = original_title.map(fold).filter(|o| !o.is_empty()) {
        out.push('\n');
        out.push_str(&original);
    }
    out
}

/// One item's keys as they are and as they should be.
struct Keys {
    stored: (Option<String>, Option<String>),
    wanted: (String, String),
}

/// Reads the names the keys derive from, for `ids`, and the keys as stored.
async fn read(
    tx: &mut Transaction<'static, Any>,
    ids: &[String],
) -> StoreResult<Vec<(String, Keys)>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(BATCH) {
        let mut sql = Sql::new(
            "SELECT i.id, COALESCE(md.title, i.name) AS name, md.original_title, \
             COALESCE(md.sort_title, i.sort_name) AS sort_key, \
             i.sort_key AS stored_sort_key, i.search_name AS stored_search_name \
             FROM items i LEFT JOIN item_metadata md ON md.item_id = i.id WHERE i.id IN (",
        );
        // In id order, so that two writers updating the same rows take their locks in the
        // same order and never deadlock (replicas filling keys at once when they start).
        sql.texts(chunk.iter().cloned()).push(") ORDER BY i.id");
        for row in sql.query().fetch_all(&mut **tx).await? {
            let name: String = row.try_get("name")?;
            let original: Option<String> = row.try_get("original_title")?;
            out.push((
                row.try_get("id")?,
                Keys {
                    stored: (
                        row.try_get("stored_sort_key")?,
                        row.try_get("stored_search_name")?,
                    ),
                    wanted: (
                        row.try_get("sort_key")?,
                        search_name(&name, original.as_deref()),
                    ),
                },
            ));
        }
    }
    Ok(out)
}

/// Brings the keys of `ids` up to date with their names and `.nfo` values, inside the
/// transaction that changed them; rows whose keys are already right are not written.
pub(in crate::store) async fn refresh(
    tx: &mut Transaction<'static, Any>,
    ids: &[String],
) -> StoreResult<()> {
    let mut ids = ids.to_vec();
    ids.sort();
    for (id, keys) in read(tx, &ids).await? {
        let (sort_key, search) = keys.wanted;
        if keys.stored == (Some(sort_key.clone()), Some(search.clone())) {
            continue;
        }
        sqlx::query("UPDATE items SET sort_key = $2, search_name = $3 WHERE id = $1")
            .bind(id)
            .bind(sort_key)
            .bind(search)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

impl Store {
    /// Fills the keys of rows that have none (written before migration 0012), a batch per
    /// transaction. Run when the store opens; a no-op once every row has its keys, and safe
    /// to run on several replicas at once (they write the same values).
    pub async fn fill_read_keys(&self) -> StoreResult<u64> {
        let mut filled = 0;
        loop {
            let ids: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM items WHERE search_name IS NULL OR sort_key IS NULL \
                 ORDER BY id LIMIT 500",
            )
            .fetch_all(self.pool())
            .await?;
            if ids.is_empty() {
                return Ok(filled);
            }
            let mut tx = self.begin_write().await?;
            refresh(&mut tx, &ids).await?;
            tx.commit().await?;
            filled += ids.len() as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_drops_case_accents_and_extra_spaces() {
        assert_eq!(fold("Amélie"), "amelie");
        assert_eq!(
            fold("  LÉON:   the  Professional "),
            "leon: the professional"
        );
        assert_eq!(fold("Crème Brûlée"), "creme brulee");
        assert_eq!(fold("Ça"), "ca");
        assert_eq!(fold("東京物語"), "東京物語");
        assert_eq!(fold(""), "");
    }

    #[test]
    fn the_search_name_holds_the_original_title_on_its_own_line() {
        assert_eq!(
            search_name("Spirited Away", Some("千と千尋の神隠し")),
            "spirited away\n千と千尋の神隠し"
        );
        assert_eq!(search_name("Amélie", None), "amelie");
        assert_eq!(search_name("Amélie", Some("  ")), "amelie");
    }
}

//! The chapters of video files: what ffprobe found in the container (Matroska and MP4 chapter
//! lists), kept per item, replaced whenever the scanner probes the file again, and read for a
//! page of items in one query. Plain rows: nothing here reads a file.

use std::collections::HashMap;

use sqlx::Row;

use crate::jf::JfId;
use crate::store::items::query::Sql;
use crate::store::{Store, StoreResult, get_id};

/// One chapter of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chapter {
    /// Where it starts, in ticks (100 ns), rounded to the millisecond as Jellyfin does.
    pub start_ticks: i64,
    /// Its title, when the file names it.
    pub name: Option<String>,
}

impl Store {
    /// Replaces the chapters of each item listed (an empty list removes them), in one
    /// transaction (a scan writes a batch of files at once). Items that do not exist are
    /// skipped.
    pub async fn replace_chapters(&self, items: &[(JfId, &[Chapter])]) -> StoreResult<()> {
        if items.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        // One statement clears the whole batch (most files have no chapters, so most items
        // need nothing else).
        let mut clear = Sql::new("DELETE FROM chapters WHERE item_id IN (");
        clear.texts(items.iter().map(|(id, _)| id.to_n())).push(")");
        clear.query().execute(&mut *tx).await?;
        for (id, chapters) in items {
            for (index, chapter) in chapters.iter().enumerate() {
                // An item the scan did not write (its file belongs to another library) gets
                // none.
                sqlx::query(
                    "INSERT INTO chapters (item_id, chapter_index, start_ticks, name) \
                     SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM items WHERE id = $1)",
                )
                .bind(id.to_n())
                .bind(index as i64)
                .bind(chapter.start_ticks)
                .bind(chapter.name.clone())
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The chapters of items, by item, in order; items without any are left out.
    pub async fn chapters(&self, ids: &[JfId]) -> StoreResult<HashMap<JfId, Vec<Chapter>>> {
        let mut out: HashMap<JfId, Vec<Chapter>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let mut sql =
            Sql::new("SELECT item_id, start_ticks, name FROM chapters WHERE item_id IN (");
        sql.texts(ids.iter().map(|i| i.to_n()))
            .push(") ORDER BY item_id, chapter_index");
        for row in sql.query().fetch_all(self.pool()).await? {
            out.entry(get_id(&row, "item_id")?)
                .or_default()
                .push(Chapter {
                    start_ticks: row.try_get("start_ticks")?,
                    name: row.try_get("name")?,
                });
        }
        Ok(out)
    }
}

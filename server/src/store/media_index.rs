//! The stored media index of each file (migration `0004_media_index`): what
//! `transcode::media` computed, as JSON, with the file's size and mtime so a changed file is
//! indexed again. Any replica may write it; two replicas computing it at once write the same
//! value.

use sqlx::Row;

use super::{Store, StoreError, StoreResult};
use crate::jf::JfId;

/// A stored index and the file version it describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredIndex {
    /// File size in bytes when indexed.
    pub file_size: i64,
    /// File modification time (unix ms) when indexed.
    pub file_mtime: i64,
    /// The index, as JSON.
    pub data: String,
}

impl Store {
    /// The stored index of `item`, if any.
    pub async fn media_index(&self, item: JfId) -> StoreResult<Option<StoredIndex>> {
        let row =
            sqlx::query("SELECT file_size, file_mtime, data FROM media_index WHERE item_id = $1")
                .bind(item.to_n())
                .fetch_optional(self.pool())
                .await?;
        row.map(|r| {
            Ok(StoredIndex {
                file_size: r.try_get("file_size")?,
                file_mtime: r.try_get("file_mtime")?,
                data: r.try_get("data")?,
            })
        })
        .transpose()
        .map_err(|e: sqlx::Error| StoreError::from(e))
    }

    /// Stores (or replaces) the index of `item`.
    pub async fn put_media_index(&self, item: JfId, index: &StoredIndex) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO media_index (item_id, file_size, file_mtime, data, computed_at_ms) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (item_id) DO UPDATE SET file_size = excluded.file_size, \
             file_mtime = excluded.file_mtime, data = excluded.data, \
             computed_at_ms = excluded.computed_at_ms",
        )
        .bind(item.to_n())
        .bind(index.file_size)
        .bind(index.file_mtime)
        .bind(&index.data)
        .bind(Store::now())
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

//! Per-user item state: resume position, played, play count, favourite.
//!
//! Every write is one upsert statement, so it is atomic on its own and two replicas reporting
//! progress for the same user and item cannot lose each other's play count. The resume rules
//! (what a reported position means) live in `api::playstate`; this module only stores their
//! outcome.

use super::{Store, StoreResult, flag};
use crate::jf::JfId;
use crate::store::items::{ItemKind, UserData};

/// What a playback report does to the user's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionUpdate {
    /// Keep this resume position (0 clears it); `played` is left alone.
    Resume(i64),
    /// Mark played and clear the resume position.
    Played,
    /// A stop without a position: one more play, played, no resume position (Jellyfin's
    /// assumption when the client cannot say where it stopped).
    PlayedWithoutPosition,
}

impl Store {
    /// The user's data for an item (zeros when none is stored).
    pub async fn user_data(&self, user: JfId, item: JfId) -> StoreResult<UserData> {
        let row = sqlx::query(
            "SELECT playback_position_ticks, play_count, is_favorite, played, last_played_at \
             FROM user_item_data WHERE user_id = $1 AND item_id = $2",
        )
        .bind(user.to_n())
        .bind(item.to_n())
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(UserData::default());
        };
        use sqlx::Row;
        Ok(UserData {
            playback_position_ticks: row.try_get("playback_position_ticks")?,
            play_count: row.try_get("play_count")?,
            is_favorite: super::get_bool(&row, "is_favorite")?,
            played: super::get_bool(&row, "played")?,
            last_played_at: row.try_get("last_played_at")?,
        })
    }

    /// Playback started: one more play, last played now, and (as Jellyfin does for items that
    /// can resume) not played until this playback reaches the end.
    pub async fn record_playback_start(&self, user: JfId, item: JfId, now: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO user_item_data (user_id, item_id, playback_position_ticks, play_count, \
             is_favorite, played, last_played_at, updated_at) \
             VALUES ($1, $2, 0, 1, 0, 0, $3, $3) \
             ON CONFLICT (user_id, item_id) DO UPDATE SET \
             play_count = user_item_data.play_count + 1, played = 0, \
             last_played_at = excluded.last_played_at, updated_at = excluded.updated_at",
        )
        .bind(user.to_n())
        .bind(item.to_n())
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Stores the outcome of a progress or stop report.
    pub async fn record_position(
        &self,
        user: JfId,
        item: JfId,
        update: PositionUpdate,
        now: i64,
    ) -> StoreResult<()> {
        let query = match update {
            PositionUpdate::Resume(position) => sqlx::query(
                "INSERT INTO user_item_data (user_id, item_id, playback_position_ticks, \
                 play_count, is_favorite, played, updated_at) \
                 VALUES ($1, $2, $3, 0, 0, 0, $4) \
                 ON CONFLICT (user_id, item_id) DO UPDATE SET \
                 playback_position_ticks = excluded.playback_position_ticks, \
                 updated_at = excluded.updated_at",
            )
            .bind(user.to_n())
            .bind(item.to_n())
            .bind(position.max(0))
            .bind(now),
            PositionUpdate::Played => sqlx::query(
                "INSERT INTO user_item_data (user_id, item_id, playback_position_ticks, \
                 play_count, is_favorite, played, updated_at) \
                 VALUES ($1, $2, 0, 0, 0, 1, $3) \
                 ON CONFLICT (user_id, item_id) DO UPDATE SET playback_position_ticks = 0, \
                 played = 1, updated_at = excluded.updated_at",
            )
            .bind(user.to_n())
            .bind(item.to_n())
            .bind(now),
            PositionUpdate::PlayedWithoutPosition => sqlx::query(
                "INSERT INTO user_item_data (user_id, item_id, playback_position_ticks, \
                 play_count, is_favorite, played, last_played_at, updated_at) \
                 VALUES ($1, $2, 0, 1, 0, 1, $3, $3) \
                 ON CONFLICT (user_id, item_id) DO UPDATE SET playback_position_ticks = 0, \
                 played = 1, play_count = user_item_data.play_count + 1, \
                 updated_at = excluded.updated_at",
            )
            .bind(user.to_n())
            .bind(item.to_n())
            .bind(now),
        };
        query.execute(self.pool()).await?;
        Ok(())
    }

    /// Marks an item played (with the date it was played) or unplayed; for a series or season,
    /// every episode in it. Marking played clears the resume position, as Jellyfin does.
    pub async fn set_played(
        &self,
        user: JfId,
        item: JfId,
        kind: ItemKind,
        played: bool,
        at: i64,
    ) -> StoreResult<()> {
        let targets = self.played_targets(item, kind).await?;
        let mut tx = self.begin_write().await?;
        for target in targets {
            let query = if played {
                sqlx::query(
                    "INSERT INTO user_item_data (user_id, item_id, playback_position_ticks, \
                     play_count, is_favorite, played, last_played_at, updated_at) \
                     VALUES ($1, $2, 0, 1, 0, 1, $3, $3) \
                     ON CONFLICT (user_id, item_id) DO UPDATE SET played = 1, \
                     playback_position_ticks = 0, last_played_at = excluded.last_played_at, \
                     play_count = CASE WHEN user_item_data.play_count = 0 THEN 1 \
                     ELSE user_item_data.play_count END, updated_at = excluded.updated_at",
                )
            } else {
                sqlx::query(
                    "INSERT INTO user_item_data (user_id, item_id, playback_position_ticks, \
                     play_count, is_favorite, played, updated_at) \
                     VALUES ($1, $2, 0, 0, 0, 0, $3) \
                     ON CONFLICT (user_id, item_id) DO UPDATE SET played = 0, \
                     playback_position_ticks = 0, updated_at = excluded.updated_at",
                )
            };
            query
                .bind(user.to_n())
                .bind(target)
                .bind(at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Marks or unmarks an item as a favourite.
    pub async fn set_favorite(
        &self,
        user: JfId,
        item: JfId,
        favorite: bool,
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO user_item_data (user_id, item_id, playback_position_ticks, play_count, \
             is_favorite, played, updated_at) VALUES ($1, $2, 0, 0, $3, 0, $4) \
             ON CONFLICT (user_id, item_id) DO UPDATE SET is_favorite = excluded.is_favorite, \
             updated_at = excluded.updated_at",
        )
        .bind(user.to_n())
        .bind(item.to_n())
        .bind(flag(favorite))
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The item itself, or the episodes of a series or season.
    async fn played_targets(&self, item: JfId, kind: ItemKind) -> StoreResult<Vec<String>> {
        use sqlx::Row;
        if !kind.is_folder() {
            return Ok(vec![item.to_n()]);
        }
        let rows = sqlx::query(
            "SELECT id FROM items WHERE kind = 'Episode' AND probe_error IS NULL \
             AND (series_id = $1 OR season_id = $1)",
        )
        .bind(item.to_n())
        .fetch_all(self.pool())
        .await?;
        let mut ids = rows
            .iter()
            .map(|r| r.try_get::<String, _>("id"))
            .collect::<Result<Vec<_>, _>>()?;
        ids.push(item.to_n());
        Ok(ids)
    }
}

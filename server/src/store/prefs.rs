//! Settings clients save for a user: display preferences (per preference set and client) and
//! the user's configuration. Both are JSON documents the API layer shapes; this module only
//! stores and returns them, one upsert per write.

use sqlx::Row;

use super::{Store, StoreResult};
use crate::jf::JfId;

impl Store {
    /// The saved display preferences `pref_id` of `user` for `client`, as JSON.
    pub async fn display_preferences(
        &self,
        user: JfId,
        pref_id: &str,
        client: &str,
    ) -> StoreResult<Option<String>> {
        let row = sqlx::query(
            "SELECT body FROM display_preferences \
             WHERE user_id = $1 AND pref_id = $2 AND client = $3",
        )
        .bind(user.to_n())
        .bind(pref_id)
        .bind(client)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| r.try_get("body"))
            .transpose()
            .map_err(Into::into)
    }

    /// Saves display preferences, replacing what was saved for the same key.
    pub async fn save_display_preferences(
        &self,
        user: JfId,
        pref_id: &str,
        client: &str,
        body: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO display_preferences (user_id, pref_id, client, body, updated_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (user_id, pref_id, client) DO UPDATE SET body = excluded.body, \
             updated_at = excluded.updated_at",
        )
        .bind(user.to_n())
        .bind(pref_id)
        .bind(client)
        .bind(body)
        .bind(Store::now())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The user's saved configuration, as JSON.
    pub async fn user_configuration(&self, user: JfId) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT body FROM user_configuration WHERE user_id = $1")
            .bind(user.to_n())
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| r.try_get("body"))
            .transpose()
            .map_err(Into::into)
    }

    /// Saves the user's configuration.
    pub async fn save_user_configuration(&self, user: JfId, body: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO user_configuration (user_id, body, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET body = excluded.body, \
             updated_at = excluded.updated_at",
        )
        .bind(user.to_n())
        .bind(body)
        .bind(Store::now())
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

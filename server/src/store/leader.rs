//! Leadership fencing and history (migration `0003_leadership`).
//!
//! A leader takes a fencing number (epoch) at each acquisition. Work only the leader may do
//! runs inside [`Store::fenced_write`]: the transaction first raises `leader_fence.epoch` to
//! the caller's epoch, and a caller whose epoch is lower than the stored one (a newer leader
//! has written since) gets [`StoreError::StaleLeader`] and writes nothing. On PostgreSQL the
//! fence row stays locked until the transaction ends, so a stale leader's write either
//! commits before the new leader's first write or is refused.
//!
//! `leader_terms` records each term (epoch, holder, start, end) for status and for tests that
//! prove two terms never overlap. Nothing here decides who leads: that is `coord`.

use sqlx::{Any, Row, Transaction};

use super::{Store, StoreError, StoreResult};

/// One recorded leadership term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermRecord {
    /// The fencing number of the term.
    pub epoch: i64,
    /// The replica that held it.
    pub holder: String,
    /// When it started (unix ms).
    pub acquired_at_ms: i64,
    /// When it ended (unix ms); `None` while it lasts or when the holder died.
    pub released_at_ms: Option<i64>,
}

impl Store {
    /// Starts a leader-only write: a transaction in which the fence has been raised to
    /// `epoch`. The caller adds its statements and commits. A newer epoch already recorded
    /// means the caller is no longer leader: [`StoreError::StaleLeader`], nothing written.
    pub async fn fenced_write(&self, epoch: i64) -> StoreResult<Transaction<'static, Any>> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE leader_fence SET epoch = $1 WHERE id = 1 AND epoch <= $1")
            .bind(epoch)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Err(StoreError::StaleLeader { epoch });
        }
        Ok(tx)
    }

    /// The highest epoch any leader has written with.
    pub async fn fence_epoch(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT epoch FROM leader_fence WHERE id = 1")
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("epoch")?)
    }

    /// Takes the next epoch from the database itself (the in-process provider: one replica,
    /// always leader) and records the term it starts.
    pub async fn take_next_epoch(&self, holder: &str, now_ms: i64) -> StoreResult<i64> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE leader_fence SET epoch = epoch + 1 WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query("SELECT epoch FROM leader_fence WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let epoch: i64 = row.try_get("epoch")?;
        insert_term(&mut tx, epoch, holder, now_ms).await?;
        tx.commit().await?;
        Ok(epoch)
    }

    /// Records the start of a term whose epoch was taken elsewhere (Redis), raising the fence
    /// to it so that the previous leader's writes are refused from now on.
    pub async fn begin_term(&self, epoch: i64, holder: &str, now_ms: i64) -> StoreResult<()> {
        let mut tx = self.fenced_write(epoch).await?;
        insert_term(&mut tx, epoch, holder, now_ms).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records the end of a term (release, step-down, shutdown).
    pub async fn end_term(&self, epoch: i64, now_ms: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE leader_terms SET released_at_ms = $1 \
             WHERE epoch = $2 AND released_at_ms IS NULL",
        )
        .bind(now_ms)
        .bind(epoch)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Every recorded term, oldest first.
    pub async fn leader_terms(&self) -> StoreResult<Vec<TermRecord>> {
        let rows = sqlx::query(
            "SELECT epoch, holder, acquired_at_ms, released_at_ms FROM leader_terms \
             ORDER BY epoch",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TermRecord {
                    epoch: r.try_get("epoch")?,
                    holder: r.try_get("holder")?,
                    acquired_at_ms: r.try_get("acquired_at_ms")?,
                    released_at_ms: r.try_get("released_at_ms")?,
                })
            })
            .collect()
    }
}

async fn insert_term(
    tx: &mut Transaction<'static, Any>,
    epoch: i64,
    holder: &str,
    now_ms: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO leader_terms (epoch, holder, acquired_at_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (epoch) DO NOTHING",
    )
    .bind(epoch)
    .bind(holder)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

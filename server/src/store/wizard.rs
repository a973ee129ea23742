//! The first-run wizard's state, shared by every replica through the database (migration
//! 0007): whether it is still open, who the first administrator is, and the few settings its
//! pages save.
//!
//! The first administrator is created only through [`Store::create_first_admin`], which
//! inserts the user and claims the single `startup_wizard` row (`first_admin_id IS NULL`) in
//! one transaction: a second caller, on this replica or another, finds the claim taken, and
//! its user row is rolled back. Nothing here is cached; the API keeps a one-way latch once the
//! wizard is closed (it never reopens).

use sqlx::Row;

use super::{Store, StoreError, StoreResult, flag, get_bool, get_opt_id};
use crate::jf::JfId;
use crate::store::users::User;

/// Where the wizard stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WizardState {
    /// The administrator the wizard (or the bootstrap) created, if any.
    pub first_admin_id: Option<JfId>,
    /// When the wizard was completed (unix ms); `None` while it is open.
    pub completed_at: Option<i64>,
    /// The database has at least one user.
    pub has_users: bool,
    /// Saved settings.
    pub settings: WizardSettings,
}

impl WizardState {
    /// True while anonymous callers may run the wizard: not completed, and either nobody
    /// exists yet or the only administrator is the one this wizard created. Users made any
    /// other way (an older database, the operator's bootstrap) mean the server is set up.
    pub fn is_open(&self) -> bool {
        self.completed_at.is_none() && (self.first_admin_id.is_some() || !self.has_users)
    }
}

/// The settings the wizard's pages save (Jellyfin's `StartupConfigurationDto` and remote
/// access flag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WizardSettings {
    /// UI language, e.g. `en-US`.
    pub ui_culture: String,
    /// Two-letter country for metadata, e.g. `US`.
    pub metadata_country_code: String,
    /// Two-letter language for metadata, e.g. `en`.
    pub preferred_metadata_language: String,
    /// The person allowed connections from outside the local network.
    pub enable_remote_access: bool,
}

/// Why the first administrator was not created.
#[derive(Debug, thiserror::Error)]
pub enum FirstAdminError {
    /// Someone (any replica, the wizard or the bootstrap) already created it, or the wizard
    /// is closed.
    #[error("the first administrator already exists")]
    AlreadyExists,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for FirstAdminError {
    fn from(e: sqlx::Error) -> Self {
        FirstAdminError::Store(e.into())
    }
}

impl Store {
    /// The wizard's state, in one query.
    pub async fn wizard_state(&self) -> StoreResult<WizardState> {
        let row = sqlx::query(
            "SELECT first_admin_id, completed_at, ui_culture, metadata_country_code, \
             preferred_metadata_language, enable_remote_access, \
             CASE WHEN EXISTS (SELECT 1 FROM users) THEN 1 ELSE 0 END AS has_users \
             FROM startup_wizard WHERE id = 1",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(WizardState {
            first_admin_id: get_opt_id(&row, "first_admin_id")?,
            completed_at: row.try_get("completed_at")?,
            has_users: get_bool(&row, "has_users")?,
            settings: WizardSettings {
                ui_culture: row.try_get("ui_culture")?,
                metadata_country_code: row.try_get("metadata_country_code")?,
                preferred_metadata_language: row.try_get("preferred_metadata_language")?,
                enable_remote_access: get_bool(&row, "enable_remote_access")?,
            },
        })
    }

    /// Creates the first administrator, exactly once across all replicas. With `complete`, the
    /// wizard closes in the same transaction (the `EPHYRA_ADMIN_*` bootstrap). Refused with
    /// [`FirstAdminError::AlreadyExists`] when the claim is taken, the wizard is closed, or
    /// another user exists.
    pub async fn create_first_admin(
        &self,
        name: &str,
        password_hash: &str,
        complete: bool,
    ) -> Result<User, FirstAdminError> {
        let mut tx = self.begin_write().await?;
        let user = match Store::insert_user(&mut tx, name, Some(password_hash), true).await {
            Ok(user) => user,
            // The same name taken by a racing creator: that one won.
            Err(StoreError::Conflict(_)) => return Err(FirstAdminError::AlreadyExists),
            Err(e) => return Err(e.into()),
        };
        // The claim. On PostgreSQL a racing transaction waits here on the row lock, then
        // re-checks `first_admin_id IS NULL` against the committed row and updates nothing.
        let claimed = sqlx::query(
            "UPDATE startup_wizard SET first_admin_id = $1, completed_at = $2 \
             WHERE id = 1 AND first_admin_id IS NULL AND completed_at IS NULL \
             AND NOT EXISTS (SELECT 1 FROM users WHERE id <> $1)",
        )
        .bind(user.id.to_n())
        // Still open (NULL) unless this creation also completes the wizard.
        .bind(complete.then(Store::now))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed != 1 {
            tx.rollback().await?;
            return Err(FirstAdminError::AlreadyExists);
        }
        tx.commit().await?;
        Ok(user)
    }

    /// Closes the wizard (idempotent: the first completion time is kept). Returns false when
    /// it was already closed.
    pub async fn complete_wizard(&self) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE startup_wizard SET completed_at = $1 WHERE id = 1 AND completed_at IS NULL",
        )
        .bind(Store::now())
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    /// Saves the language and country choices.
    pub async fn set_wizard_culture(
        &self,
        ui_culture: &str,
        metadata_country_code: &str,
        preferred_metadata_language: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE startup_wizard SET ui_culture = $1, metadata_country_code = $2, \
             preferred_metadata_language = $3 WHERE id = 1",
        )
        .bind(ui_culture)
        .bind(metadata_country_code)
        .bind(preferred_metadata_language)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Saves the remote-access choice.
    pub async fn set_wizard_remote_access(&self, enable: bool) -> StoreResult<()> {
        sqlx::query("UPDATE startup_wizard SET enable_remote_access = $1 WHERE id = 1")
            .bind(flag(enable))
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

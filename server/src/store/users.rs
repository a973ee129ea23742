//! Users, their devices and their login tokens.
//!
//! Tokens are stored as a SHA-256 hash only (see `auth::token`); the row also carries the
//! device fields so that resolving a token is one indexed lookup joined to the user by primary
//! key, the only query on the path of every authenticated request.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreResult, flag, get_bool, get_id};
use crate::jf::JfId;

/// A user account.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// Stable id.
    pub id: JfId,
    /// Name as typed when created (logins match it without regard to case).
    pub name: String,
    /// argon2id PHC string; `None` when the user has no password.
    pub password_hash: Option<String>,
    /// May manage the server and act for other users.
    pub is_admin: bool,
    /// Left out of `/Users/Public`.
    pub is_hidden: bool,
    /// May not log in.
    pub is_disabled: bool,
    /// When created (unix ms).
    pub created_at: i64,
    /// Last successful login (unix ms).
    pub last_login_at: Option<i64>,
    /// Last request seen (unix ms).
    pub last_activity_at: Option<i64>,
}

/// The client a token is issued to: Jellyfin's four header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// `DeviceId`: stable per installation.
    pub device_id: String,
    /// `Device`: a name for people.
    pub device_name: String,
    /// `Client`: the app's name.
    pub client: String,
    /// `Version`: the app's version.
    pub app_version: String,
}

/// Who a token belongs to: the result of the per-request lookup.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenOwner {
    /// The token row's id (for logout).
    pub token_id: JfId,
    /// The user.
    pub user_id: JfId,
    /// The user's name.
    pub user_name: String,
    /// The user is an administrator.
    pub is_admin: bool,
    /// The user is disabled (the token is then refused).
    pub is_disabled: bool,
    /// The device the token was issued to.
    pub device: DeviceInfo,
    /// When the token was last seen in use (unix ms), updated coarsely.
    pub last_used_at: i64,
}

/// A device row, with its posted capabilities.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    /// Owner.
    pub user_id: JfId,
    /// Header fields.
    pub info: DeviceInfo,
    /// ClientCapabilities JSON as posted.
    pub capabilities: Option<String>,
    /// Last activity (unix ms).
    pub last_seen_at: i64,
}

/// `SELECT` of every user column, followed by the rest of the statement (kept a literal, as
/// sqlx wants constant SQL).
macro_rules! select_user {
    ($rest:literal) => {
        concat!(
            "SELECT id, name, password_hash, is_admin, is_hidden, is_disabled, created_at, \
             last_login_at, last_activity_at FROM users ",
            $rest
        )
    };
}

fn user_from_row(row: &AnyRow) -> StoreResult<User> {
    Ok(User {
        id: get_id(row, "id")?,
        name: row.try_get("name")?,
        password_hash: row.try_get("password_hash")?,
        is_admin: get_bool(row, "is_admin")?,
        is_hidden: get_bool(row, "is_hidden")?,
        is_disabled: get_bool(row, "is_disabled")?,
        created_at: row.try_get("created_at")?,
        last_login_at: row.try_get("last_login_at")?,
        last_activity_at: row.try_get("last_activity_at")?,
    })
}

/// The key a name is unique and looked up by.
fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

impl Store {
    /// How many users exist (0 means the first admin must be created).
    pub async fn count_users(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Creates a user. A name already taken (in any case) is [`StoreError::Conflict`].
    pub async fn create_user(
        &self,
        name: &str,
        password_hash: Option<&str>,
        is_admin: bool,
    ) -> StoreResult<User> {
        let mut conn = self.pool().acquire().await?;
        Store::insert_user(&mut conn, name, password_hash, is_admin).await
    }

    /// Inserts a user on `conn` (a pooled connection or an open transaction).
    pub(crate) async fn insert_user(
        conn: &mut sqlx::AnyConnection,
        name: &str,
        password_hash: Option<&str>,
        is_admin: bool,
    ) -> StoreResult<User> {
        let user = User {
            id: JfId::random(),
            name: name.trim().to_owned(),
            password_hash: password_hash.map(str::to_owned),
            is_admin,
            // Jellyfin's default: users are left out of the public list on the login screen.
            is_hidden: true,
            is_disabled: false,
            created_at: Store::now(),
            last_login_at: None,
            last_activity_at: None,
        };
        sqlx::query(
            "INSERT INTO users (id, name, name_key, password_hash, is_admin, is_hidden, \
             is_disabled, created_at) VALUES ($1, $2, $3, $4, $5, 1, 0, $6)",
        )
        .bind(user.id.to_n())
        .bind(&user.name)
        .bind(name_key(name))
        .bind(user.password_hash.as_deref())
        .bind(flag(is_admin))
        .bind(user.created_at)
        .execute(&mut *conn)
        .await?;
        Ok(user)
    }

    /// The `EPHYRA_ADMIN_*` bootstrap: creates the first administrator unless a user exists
    /// already, and closes the first-run wizard either way; true when created. Safe when
    /// several replicas start at once (see [`Store::create_first_admin`]). An administrator
    /// that exists is never touched, so a password changed since is kept.
    pub async fn ensure_first_admin(&self, name: &str, password_hash: &str) -> StoreResult<bool> {
        let created = if self.count_users().await? > 0 {
            false
        } else {
            match self.create_first_admin(name, password_hash, true).await {
                Ok(_) => true,
                Err(super::wizard::FirstAdminError::AlreadyExists) => false,
                Err(super::wizard::FirstAdminError::Store(e)) => return Err(e),
            }
        };
        self.complete_wizard().await?;
        Ok(created)
    }

    /// A user by id.
    pub async fn user_by_id(&self, id: JfId) -> StoreResult<Option<User>> {
        let row = sqlx::query(select_user!("WHERE id = $1"))
            .bind(id.to_n())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// A user by name, without regard to case.
    pub async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(select_user!("WHERE name_key = $1"))
            .bind(name_key(name))
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// All users, by name.
    pub async fn list_users(&self) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(select_user!("ORDER BY name_key"))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Replaces a user's password hash and revokes all their tokens (a password change logs
    /// every device out).
    pub async fn set_password_hash(&self, user_id: JfId, password_hash: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user_id.to_n())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM access_tokens WHERE user_id = $1")
            .bind(user_id.to_n())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets or clears (`None`) a user's password and revokes their tokens except `keep` (the
    /// token of a user changing their own password stays signed in, as in Jellyfin).
    pub async fn set_password(
        &self,
        user_id: JfId,
        password_hash: Option<&str>,
        keep: Option<JfId>,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user_id.to_n())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM access_tokens WHERE user_id = $1 AND id <> $2")
            .bind(user_id.to_n())
            .bind(keep.map_or_else(|| "-".to_owned(), |k| k.to_n()))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets the three policy flags Ephyra stores. Disabling a user also revokes their tokens.
    /// False when there is no such user.
    pub async fn set_user_flags(
        &self,
        user_id: JfId,
        is_admin: bool,
        is_hidden: bool,
        is_disabled: bool,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE users SET is_admin = $1, is_hidden = $2, is_disabled = $3 WHERE id = $4",
        )
        .bind(flag(is_admin))
        .bind(flag(is_hidden))
        .bind(flag(is_disabled))
        .bind(user_id.to_n())
        .execute(&mut *tx)
        .await?;
        if is_disabled {
            sqlx::query("DELETE FROM access_tokens WHERE user_id = $1")
                .bind(user_id.to_n())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Renames a user; a name taken (in any case) is [`StoreError::Conflict`].
    pub async fn rename_user(&self, user_id: JfId, name: &str) -> StoreResult<()> {
        sqlx::query("UPDATE users SET name = $1, name_key = $2 WHERE id = $3")
            .bind(name.trim())
            .bind(name_key(name))
            .bind(user_id.to_n())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// How many administrators can still sign in (the last one may not be removed).
    pub async fn count_active_admins(&self) -> StoreResult<i64> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM users WHERE is_admin = 1 AND is_disabled = 0")
                .fetch_one(self.pool())
                .await?;
        Ok(row.try_get("n")?)
    }

    /// Deletes a user with their tokens, devices and data; true when the user existed.
    pub async fn delete_user(&self, user_id: JfId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(user_id.to_n())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records a successful login: a new token for `device`, replacing the tokens this user
    /// held on the same device, and the device row. One transaction, one connection.
    pub async fn create_token(
        &self,
        user_id: JfId,
        device: &DeviceInfo,
        token_hash: &str,
    ) -> StoreResult<JfId> {
        let token_id = JfId::random();
        let now = Store::now();
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM access_tokens WHERE user_id = $1 AND device_id = $2")
            .bind(user_id.to_n())
            .bind(&device.device_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO access_tokens (id, token_hash, user_id, device_id, device_name, client, \
             app_version, created_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(token_id.to_n())
        .bind(token_hash)
        .bind(user_id.to_n())
        .bind(&device.device_id)
        .bind(&device.device_name)
        .bind(&device.client)
        .bind(&device.app_version)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO devices (user_id, device_id, device_name, client, app_version, \
             last_seen_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (user_id, device_id) DO UPDATE SET device_name = excluded.device_name, \
             client = excluded.client, app_version = excluded.app_version, \
             last_seen_at = excluded.last_seen_at",
        )
        .bind(user_id.to_n())
        .bind(&device.device_id)
        .bind(&device.device_name)
        .bind(&device.client)
        .bind(&device.app_version)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE users SET last_login_at = $1, last_activity_at = $1 WHERE id = $2")
            .bind(now)
            .bind(user_id.to_n())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(token_id)
    }

    /// Who holds the token with this hash: one query on the unique index, joined to the user
    /// by primary key.
    pub async fn token_owner(&self, token_hash: &str) -> StoreResult<Option<TokenOwner>> {
        let row = sqlx::query(
            "SELECT t.id AS token_id, t.user_id, t.device_id, t.device_name, t.client, \
             t.app_version, t.last_used_at, u.name, u.is_admin, u.is_disabled \
             FROM access_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(TokenOwner {
            token_id: get_id(&row, "token_id")?,
            user_id: get_id(&row, "user_id")?,
            user_name: row.try_get("name")?,
            is_admin: get_bool(&row, "is_admin")?,
            is_disabled: get_bool(&row, "is_disabled")?,
            device: DeviceInfo {
                device_id: row.try_get("device_id")?,
                device_name: row.try_get("device_name")?,
                client: row.try_get("client")?,
                app_version: row.try_get("app_version")?,
            },
            last_used_at: row.try_get("last_used_at")?,
        }))
    }

    /// Marks a token (and its user) as active now. Called coarsely, not on every request.
    pub async fn touch_token(&self, token_id: JfId, user_id: JfId) -> StoreResult<()> {
        let now = Store::now();
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE access_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(token_id.to_n())
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE users SET last_activity_at = $1 WHERE id = $2")
            .bind(now)
            .bind(user_id.to_n())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Revokes one token; true when it existed.
    pub async fn revoke_token(&self, token_id: JfId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM access_tokens WHERE id = $1")
            .bind(token_id.to_n())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// How many tokens a user holds (for tests and admin views).
    pub async fn count_tokens(&self, user_id: JfId) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM access_tokens WHERE user_id = $1")
            .bind(user_id.to_n())
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Stores the capabilities a device posted (`/Sessions/Capabilities[/Full]`).
    pub async fn set_device_capabilities(
        &self,
        user_id: JfId,
        device: &DeviceInfo,
        capabilities_json: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO devices (user_id, device_id, device_name, client, app_version, \
             capabilities, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (user_id, device_id) DO UPDATE SET capabilities = excluded.capabilities, \
             last_seen_at = excluded.last_seen_at",
        )
        .bind(user_id.to_n())
        .bind(&device.device_id)
        .bind(&device.device_name)
        .bind(&device.client)
        .bind(&device.app_version)
        .bind(capabilities_json)
        .bind(Store::now())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A device of a user.
    pub async fn device(&self, user_id: JfId, device_id: &str) -> StoreResult<Option<Device>> {
        let row = sqlx::query(
            "SELECT user_id, device_id, device_name, client, app_version, capabilities, \
             last_seen_at FROM devices WHERE user_id = $1 AND device_id = $2",
        )
        .bind(user_id.to_n())
        .bind(device_id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Device {
            user_id: get_id(&row, "user_id")?,
            info: DeviceInfo {
                device_id: row.try_get("device_id")?,
                device_name: row.try_get("device_name")?,
                client: row.try_get("client")?,
                app_version: row.try_get("app_version")?,
            },
            capabilities: row.try_get("capabilities")?,
            last_seen_at: row.try_get("last_seen_at")?,
        }))
    }

    /// Every device of every user, most recently seen first (at most 1000: the admin list).
    pub async fn list_devices(&self) -> StoreResult<Vec<Device>> {
        let rows = sqlx::query(
            "SELECT user_id, device_id, device_name, client, app_version, capabilities, \
             last_seen_at FROM devices ORDER BY last_seen_at DESC LIMIT 1000",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Device {
                    user_id: get_id(row, "user_id")?,
                    info: DeviceInfo {
                        device_id: row.try_get("device_id")?,
                        device_name: row.try_get("device_name")?,
                        client: row.try_get("client")?,
                        app_version: row.try_get("app_version")?,
                    },
                    capabilities: row.try_get("capabilities")?,
                    last_seen_at: row.try_get("last_seen_at")?,
                })
            })
            .collect()
    }
}

//! The Redis provider: the leadership lease, events over pub/sub, QuickConnect requests.
//!
//! Keys (all under `ephyra:`): `leader` holds the lease (value: this process's holder string,
//! expiry: the lease), `leader:epoch` the last fencing number, `events` is the pub/sub
//! channel, `qc:s:<SECRET>` a pending QuickConnect request (a hash: `pending` JSON, `code`,
//! `user` once authorized) and `qc:c:<CODE>` the secret a code points to; both expire with
//! the request. `qc:pending` is a sorted set of pending secrets by expiry, which caps how many
//! may be pending at once; `rl:<limit>` are fixed-window rate-limit counters.
//!
//! Commands go through a lazily connected `ConnectionManager` that reconnects by itself; every
//! call is bounded by a short timeout, so a Redis outage costs a request little time and
//! never blocks the lease loop past its deadline. Pub/sub has its own connection, re-opened
//! and re-subscribed in a loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use rand::RngCore as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands as _, Script};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::quickconnect::{
    Authorization, CODE_DRAWS, InitiateRefusal, MAX_PENDING, Pending, REQUEST_TTL, new_secret,
    random_code,
};
use super::{CoordError, CoordResult, Event, LeaseTiming, Revocation, WeakCoordinator};
use crate::jf::{JfId, now_millis};
use crate::store::StoreError;
use crate::store::users::DeviceInfo;

const LEASE_KEY: &str = "ephyra:leader";
const EPOCH_KEY: &str = "ephyra:leader:epoch";
const CHANNEL: &str = "ephyra:events";
const QC_SECRET: &str = "ephyra:qc:s:";
const QC_CODE: &str = "ephyra:qc:c:";
const QC_PENDING: &str = "ephyra:qc:pending";
const RATE: &str = "ephyra:rl:";

/// Starts a request, bounded: drops expired entries of the pending set, refuses when it is at
/// its cap, then tries the given candidate codes (`SET NX`, so two replicas never hand out
/// the same live code) and stores the request under the first free one. The JSON's code
/// placeholder is replaced by the code taken.
const QC_INITIATE: &str = r#"
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 'full' end
for i = 8, #ARGV do
  local c = ARGV[i]
  if redis.call('SET', ARGV[6] .. c, ARGV[4], 'NX', 'PX', ARGV[2]) then
    local k = ARGV[7] .. ARGV[4]
    local json = string.gsub(ARGV[5], '"code":"%?%?%?%?%?%?"', '"code":"' .. c .. '"', 1)
    redis.call('HSET', k, 'pending', json, 'code', c)
    redis.call('PEXPIRE', k, ARGV[2])
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[4])
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 'ok:' .. c
  end
end
return 'nocode'
"#;

/// Takes a slot of a fixed-window counter: -1 when taken, else the milliseconds left in the
/// window.
const TAKE_SLOT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
if n > tonumber(ARGV[2]) then
  local t = redis.call('PTTL', KEYS[1])
  if t < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
    t = tonumber(ARGV[1])
  end
  return t
end
return -1
";

/// Takes the lease if free and, only then, the next epoch (never below the database fence,
/// so an emptied Redis cannot hand out numbers the database would refuse).
const ACQUIRE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local e = redis.call('INCR', KEYS[2])
  local floor = tonumber(ARGV[3])
  if e <= floor then
    e = floor + 1
    redis.call('SET', KEYS[2], e)
  end
  return e
end
return false
";

/// Extends the lease only if this holder still has it.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// Deletes the lease only if this holder still has it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Marks the request a code points to as authorized by a user: 1 done, 0 no such code, 2
/// already authorized (the first authorization is final).
const QC_AUTHORIZE: &str = r"
local s = redis.call('GET', KEYS[1])
if not s then return 0 end
local k = ARGV[1] .. s
if redis.call('EXISTS', k) == 0 then return 0 end
if redis.call('HSETNX', k, 'user', ARGV[2]) == 0 then return 2 end
return 1
";

/// Consumes an authorized request once: returns {user, pending JSON}.
const QC_REDEEM: &str = r"
local u = redis.call('HGET', KEYS[1], 'user')
if not u then return false end
local p = redis.call('HGET', KEYS[1], 'pending')
local c = redis.call('HGET', KEYS[1], 'code')
redis.call('DEL', KEYS[1])
if c then redis.call('DEL', ARGV[1] .. c) end
redis.call('ZREM', ARGV[2], ARGV[3])
return {u, p}
";

/// How long one Redis command may take before the caller treats Redis as unreachable.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(1000);

/// A message on the wire, with the publishing process so it can skip its own: an event, or
/// the news that the lease was just released (followers then try at once instead of on
/// their next renew tick).
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    origin: String,
    #[serde(default)]
    event: Option<Event>,
    #[serde(default)]
    lease_released: bool,
}

/// The request fields kept in Redis (the secret is the key; the user is a separate field
/// written by authorization).
#[derive(Debug, Serialize, Deserialize)]
struct StoredRequest {
    code: String,
    device_id: String,
    device_name: String,
    client: String,
    app_version: String,
    created_at: i64,
}

#[derive(Debug)]
pub(super) struct RedisBackend {
    client: redis::Client,
    conn: ConnectionManager,
    timing: LeaseTiming,
    /// The lease value and event origin: unique to this process and coordinator, so two
    /// servers with the same replica id can never renew each other's lease.
    holder: String,
    reachable: AtomicBool,
    /// Whether Redis refused the credentials (NOAUTH, WRONGPASS) and that was logged.
    credentials_refused: AtomicBool,
    /// Woken when another replica released the lease.
    lease_free: tokio::sync::Notify,
    acquire: Script,
    renew: Script,
    release: Script,
    qc_authorize: Script,
    qc_redeem: Script,
    qc_initiate: Script,
    take_slot: Script,
}

async fn bounded<T>(f: impl std::future::Future<Output = redis::RedisResult<T>>) -> CoordResult<T> {
    match tokio::time::timeout(COMMAND_TIMEOUT, f).await {
        Ok(r) => r.map_err(CoordError::Unavailable),
        Err(_) => Err(CoordError::Unavailable(redis::RedisError::from((
            redis::ErrorKind::Io,
            "redis command timed out",
        )))),
    }
}

/// Whether Redis answered that this client is not, or wrongly, authenticated.
fn is_refused_credentials(e: &redis::RedisError) -> bool {
    matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
        || e.kind() == redis::ErrorKind::AuthenticationFailed
}

impl RedisBackend {
    pub(super) fn new(url: &str, timing: LeaseTiming, replica_id: &str) -> CoordResult<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        let mut nonce = [0u8; 6];
        rand::rng().fill_bytes(&mut nonce);
        Ok(RedisBackend {
            client,
            conn,
            timing,
            holder: format!("{replica_id}#{}", hex::encode(nonce)),
            reachable: AtomicBool::new(false),
            credentials_refused: AtomicBool::new(false),
            lease_free: tokio::sync::Notify::new(),
            acquire: Script::new(ACQUIRE),
            renew: Script::new(RENEW),
            release: Script::new(RELEASE),
            qc_authorize: Script::new(QC_AUTHORIZE),
            qc_redeem: Script::new(QC_REDEEM),
            qc_initiate: Script::new(QC_INITIATE),
            take_slot: Script::new(TAKE_SLOT),
        })
    }

    pub(super) fn is_reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// Runs a command, recording whether Redis answered.
    async fn run<T>(
        &self,
        f: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> CoordResult<T> {
        let r = bounded(f).await;
        self.reachable.store(r.is_ok(), Ordering::Relaxed);
        match &r {
            Err(CoordError::Unavailable(e)) if is_refused_credentials(e) => {
                // Said once per outage, and never with the URL (it holds the password).
                if !self.credentials_refused.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        code = e.code().unwrap_or_default(),
                        "Redis refused this replica's credentials: set its password in \
                         EPHYRA_REDIS_URL (redis://:PASSWORD@host:6379, or \
                         redis://USER:PASSWORD@… with ACL users)"
                    );
                }
            }
            Ok(_) => self.credentials_refused.store(false, Ordering::Relaxed),
            Err(_) => {}
        }
        r
    }

    async fn try_acquire(&self, floor: i64) -> CoordResult<Option<i64>> {
        let mut conn = self.conn.clone();
        let lease_ms = millis(self.timing.lease);
        self.run(async {
            self.acquire
                .key(LEASE_KEY)
                .key(EPOCH_KEY)
                .arg(&self.holder)
                .arg(lease_ms)
                .arg(floor)
                .invoke_async(&mut conn)
                .await
        })
        .await
    }

    async fn try_renew(&self) -> CoordResult<bool> {
        let mut conn = self.conn.clone();
        let lease_ms = millis(self.timing.lease);
        let extended: i64 = self
            .run(async {
                self.renew
                    .key(LEASE_KEY)
                    .arg(&self.holder)
                    .arg(lease_ms)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        Ok(extended == 1)
    }

    async fn try_release(&self) -> CoordResult<bool> {
        let mut conn = self.conn.clone();
        let deleted: i64 = self
            .run(async {
                self.release
                    .key(LEASE_KEY)
                    .arg(&self.holder)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        Ok(deleted == 1)
    }

    pub(super) async fn publish(&self, event: &Event) -> CoordResult<()> {
        self.send(Envelope {
            origin: self.holder.clone(),
            event: Some(event.clone()),
            lease_released: false,
        })
        .await
    }

    async fn send(&self, envelope: Envelope) -> CoordResult<()> {
        let payload =
            serde_json::to_string(&envelope).map_err(|e| CoordError::Protocol(e.to_string()))?;
        let mut conn = self.conn.clone();
        let _receivers: i64 = self.run(conn.publish(CHANNEL, payload)).await?;
        Ok(())
    }

    pub(super) async fn quick_connect_initiate(
        &self,
        device: DeviceInfo,
    ) -> CoordResult<Result<Pending, InitiateRefusal>> {
        let secret = new_secret();
        let ttl_ms = millis(REQUEST_TTL);
        let created_at = now_millis();
        let stored = StoredRequest {
            // Replaced by the script with the code it takes.
            code: "??????".to_owned(),
            device_id: device.device_id.clone(),
            device_name: device.device_name.clone(),
            client: device.client.clone(),
            app_version: device.app_version.clone(),
            created_at,
        };
        let json =
            serde_json::to_string(&stored).map_err(|e| CoordError::Protocol(e.to_string()))?;
        let mut conn = self.conn.clone();
        let outcome: String = self
            .run(async {
                let mut call = self.qc_initiate.key(QC_PENDING);
                call.arg(created_at)
                    .arg(ttl_ms)
                    .arg(MAX_PENDING)
                    .arg(&secret)
                    .arg(&json)
                    .arg(QC_CODE)
                    .arg(QC_SECRET);
                for _ in 0..CODE_DRAWS {
                    call.arg(random_code());
                }
                call.invoke_async(&mut conn).await
            })
            .await?;
        let code = match outcome.strip_prefix("ok:") {
            Some(code) => code.to_owned(),
            None if outcome == "full" => return Ok(Err(InitiateRefusal::Full)),
            None => return Ok(Err(InitiateRefusal::NoFreeCode)),
        };
        Ok(Ok(Pending {
            secret,
            code,
            device,
            created_at,
            authorized_user: None,
        }))
    }

    pub(super) async fn take_slot(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> CoordResult<Result<(), u64>> {
        let mut conn = self.conn.clone();
        let left_ms: i64 = self
            .run(async {
                self.take_slot
                    .key(format!("{RATE}{key}"))
                    .arg(millis(window))
                    .arg(limit)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        Ok(if left_ms < 0 {
            Ok(())
        } else {
            Err(u64::try_from(left_ms).unwrap_or(0).div_ceil(1000).max(1))
        })
    }

    pub(super) async fn quick_connect_get(&self, secret: &str) -> CoordResult<Option<Pending>> {
        let secret = secret.trim().to_ascii_uppercase();
        let mut conn = self.conn.clone();
        let fields: std::collections::HashMap<String, String> = self
            .run(conn.hgetall(format!("{QC_SECRET}{secret}")))
            .await?;
        let Some(json) = fields.get("pending") else {
            return Ok(None);
        };
        let stored = parse_stored(json)?;
        let authorized_user = fields.get("user").map(|u| parse_user(u)).transpose()?;
        Ok(Some(pending_of(secret, stored, authorized_user)))
    }

    pub(super) async fn quick_connect_authorize(
        &self,
        code: &str,
        user: JfId,
    ) -> CoordResult<Authorization> {
        let mut conn = self.conn.clone();
        let done: i64 = self
            .run(async {
                self.qc_authorize
                    .key(format!("{QC_CODE}{}", code.trim()))
                    .arg(QC_SECRET)
                    .arg(user.to_n())
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        Ok(match done {
            1 => Authorization::Authorized,
            2 => Authorization::AlreadyAuthorized,
            _ => Authorization::Unknown,
        })
    }

    pub(super) async fn quick_connect_redeem(
        &self,
        secret: &str,
    ) -> CoordResult<Option<(JfId, DeviceInfo)>> {
        let secret = secret.trim().to_ascii_uppercase();
        let mut conn = self.conn.clone();
        let redeemed: Option<(String, String)> = self
            .run(async {
                self.qc_redeem
                    .key(format!("{QC_SECRET}{secret}"))
                    .arg(QC_CODE)
                    .arg(QC_PENDING)
                    .arg(&secret)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        let Some((user, json)) = redeemed else {
            return Ok(None);
        };
        let stored = parse_stored(&json)?;
        let pending = pending_of(secret, stored, None);
        Ok(Some((parse_user(&user)?, pending.device)))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn parse_stored(json: &str) -> CoordResult<StoredRequest> {
    serde_json::from_str(json)
        .map_err(|e| CoordError::Protocol(format!("QuickConnect request: {e}")))
}

fn parse_user(text: &str) -> CoordResult<JfId> {
    text.parse()
        .map_err(|_| CoordError::Protocol("QuickConnect user id".into()))
}

fn pending_of(secret: String, s: StoredRequest, authorized_user: Option<JfId>) -> Pending {
    Pending {
        secret,
        code: s.code,
        device: DeviceInfo {
            device_id: s.device_id,
            device_name: s.device_name,
            client: s.client,
            app_version: s.app_version,
        },
        created_at: s.created_at,
        authorized_user,
    }
}

/// Holds, renews and releases the lease until the coordinator stops or is dropped.
///
/// While leading, the replica may act until `acting_until` = (time the last successful renewal
/// was *sent*) + lease − margin: Redis counts the lease from when it received the command,
/// which is later, so the replica stops acting before the lease can pass to anyone else.
pub(super) async fn lease_loop(weak: WeakCoordinator, backend: Arc<RedisBackend>) {
    let timing = backend.timing;
    let mut acting_until = Instant::now();
    loop {
        if weak.stop.is_cancelled() {
            break;
        }
        let Some(coord) = weak.upgrade() else { return };
        if coord.is_leader() {
            let sent = Instant::now();
            match tokio::time::timeout_at(acting_until, backend.try_renew()).await {
                Ok(Ok(true)) => acting_until = sent + timing.act_for(),
                Ok(Ok(false)) => coord.step_down("the lease was lost").await,
                Ok(Err(e)) => {
                    tracing::warn!(error = %crate::error::DisplayChain(&e), "lease renewal failed");
                    if Instant::now() >= acting_until {
                        coord
                            .step_down("the lease could not be renewed in time")
                            .await;
                    }
                }
                Err(_) => {
                    coord
                        .step_down("the lease could not be renewed in time")
                        .await
                }
            }
        } else {
            try_lead(&coord, &backend, &mut acting_until).await;
        }
        coord
            .inner
            .metrics
            .redis_up
            .set(i64::from(backend.is_reachable()));
        let mut wake = Instant::now() + timing.renew;
        if coord.is_leader() {
            wake = wake.min(acting_until);
        }
        drop(coord);
        tokio::select! {
            () = weak.stop.cancelled() => break,
            () = tokio::time::sleep_until(wake) => {}
            () = backend.lease_free.notified() => {}
        }
    }
    // Told to stop: stop acting first, then free the lease so another replica takes over on
    // its next attempt instead of waiting for expiry.
    if let Some(coord) = weak.upgrade() {
        let was_leader = coord.is_leader();
        coord.step_down("shutdown").await;
        if was_leader {
            match backend.try_release().await {
                Ok(true) => {
                    tracing::info!("leadership released");
                    let _ = backend
                        .send(Envelope {
                            origin: backend.holder.clone(),
                            event: None,
                            lease_released: true,
                        })
                        .await;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %crate::error::DisplayChain(&e), "could not release the lease; it will expire")
                }
            }
        }
    }
}

async fn try_lead(coord: &super::Coordinator, backend: &RedisBackend, acting_until: &mut Instant) {
    let store = &coord.inner.store;
    // Without the database a leader could not fence its writes: do not even try.
    let floor = match store.fence_epoch().await {
        Ok(f) => f,
        Err(e) => {
            tracing::debug!(error = %crate::error::DisplayChain(&e), "not trying to lead: database unavailable");
            return;
        }
    };
    let sent = Instant::now();
    let epoch = match backend.try_acquire(floor).await {
        Ok(Some(epoch)) => epoch,
        Ok(None) => return,
        Err(e) => {
            tracing::debug!(error = %crate::error::DisplayChain(&e), "lease acquisition failed");
            return;
        }
    };
    *acting_until = sent + backend.timing.act_for();
    match store
        .begin_term(epoch, coord.replica_id(), now_millis())
        .await
    {
        Ok(()) if Instant::now() < *acting_until => coord.become_leader(epoch),
        outcome => {
            if let Err(e) = &outcome {
                let stale = matches!(e, StoreError::StaleLeader { .. });
                tracing::warn!(error = %crate::error::DisplayChain(e), stale, "could not start a leadership term; giving the lease back");
            }
            let _ = backend.try_release().await;
        }
    }
}

/// Receives events published by other replicas, re-subscribing after Redis comes back. While
/// disconnected events may be missed, so the token cache is emptied on every (re)connection.
pub(super) async fn subscribe_loop(weak: WeakCoordinator, backend: Arc<RedisBackend>) {
    let retry = backend.timing.renew.min(Duration::from_millis(500));
    loop {
        if weak.stop.is_cancelled() {
            return;
        }
        let connected = tokio::time::timeout(COMMAND_TIMEOUT, async {
            let mut pubsub = backend.client.get_async_pubsub().await?;
            pubsub.subscribe(CHANNEL).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        match connected {
            Ok(Ok(pubsub)) => {
                let Some(coord) = weak.upgrade() else { return };
                coord.deliver(Event::TokensRevoked {
                    revocation: Revocation::All,
                });
                drop(coord);
                tracing::debug!("subscribed to replica events");
                let mut messages = pubsub.into_on_message();
                loop {
                    let message = tokio::select! {
                        () = weak.stop.cancelled() => return,
                        m = messages.next() => m,
                    };
                    let Some(message) = message else { break };
                    let Some(coord) = weak.upgrade() else { return };
                    let Ok(payload) = message.get_payload::<String>() else {
                        continue;
                    };
                    match serde_json::from_str::<Envelope>(&payload) {
                        Ok(env) if env.origin == backend.holder => {}
                        Ok(env) => {
                            if env.lease_released {
                                backend.lease_free.notify_one();
                            }
                            if let Some(event) = env.event {
                                coord.deliver(event);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "ignoring an unreadable replica event")
                        }
                    }
                }
                tracing::warn!("lost the replica event subscription; reconnecting");
                if let Some(coord) = weak.upgrade() {
                    coord.deliver(Event::TokensRevoked {
                        revocation: Revocation::All,
                    });
                }
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %crate::error::DisplayChain(&e), "cannot subscribe to replica events");
            }
            Err(_) => tracing::debug!("subscribing to replica events timed out"),
        }
        tokio::select! {
            () = weak.stop.cancelled() => return,
            () = tokio::time::sleep(retry) => {}
        }
    }
}

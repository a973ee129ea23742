//! Pending QuickConnect requests: the request type, the limits that keep them from filling
//! memory (here or in Redis), and the in-process provider (one replica; the Redis provider
//! keeps the same data in Redis, see `coord::redis`). A device initiates and gets a secret and
//! a six-digit code; a logged-in user authorizes the code (once: the first authorization is
//! final); the device polls with the secret and then exchanges it for a token. Requests
//! expire after ten minutes.
//!
//! Bounds: at most [`MAX_PENDING`] requests at once, [`INITIATE_PER_ADDRESS`] initiations per
//! client address and [`AUTHORIZE_PER_USER`] authorization attempts per user per
//! [`REQUEST_TTL`] (so nobody can sweep the million codes while they live), device fields of
//! at most [`MAX_FIELD_BYTES`] each, and at most [`CODE_DRAWS`] random draws for a free code. The
//! limits are checked by the caller through `Coordinator::take_slot` (rate) and here (size).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::{Rng, RngCore};

use crate::jf::{JfId, now_millis};
use crate::store::users::DeviceInfo;

/// How long a request stays valid.
pub const REQUEST_TTL: Duration = Duration::from_secs(600);

/// Pending requests kept at most (all replicas together with Redis): at most about
/// 10,000 × 2.5 KiB.
pub const MAX_PENDING: usize = 10_000;

/// Longest device field (client, device name, device id, version) a request may carry.
pub const MAX_FIELD_BYTES: usize = 512;

/// Initiations one client address may make per [`REQUEST_TTL`] (so it never holds more
/// pending requests than this).
pub const INITIATE_PER_ADDRESS: u32 = 10;

/// Authorization attempts one user may make per [`REQUEST_TTL`]: ten guesses among a million
/// codes, so sweeping the code space would take tens of thousands of accounts.
pub const AUTHORIZE_PER_USER: u32 = 10;

/// Authorization attempts from one client address per [`REQUEST_TTL`], whatever the account.
pub const AUTHORIZE_PER_ADDRESS: u32 = 30;

/// Random draws for a code not in use; with at most [`MAX_PENDING`] of a million codes taken,
/// twenty draws all failing has a probability below 10⁻⁴⁰.
pub const CODE_DRAWS: usize = 20;

/// One pending request.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// 64 uppercase hex digits (32 random bytes), known only to the initiating device.
    pub secret: String,
    /// Six digits the user types on an authorized device.
    pub code: String,
    /// The initiating device (the token is issued to it).
    pub device: DeviceInfo,
    /// When initiated (unix ms).
    pub created_at: i64,
    /// The user who authorized it, once authorized.
    pub authorized_user: Option<JfId>,
}

/// Why an initiation was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitiateRefusal {
    /// [`MAX_PENDING`] requests are pending.
    Full,
    /// No free code was drawn within [`CODE_DRAWS`].
    NoFreeCode,
}

/// What an authorization did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorization {
    /// The request is now authorized by the user.
    Authorized,
    /// No pending request has this code.
    Unknown,
    /// Another authorization came first; it stays.
    AlreadyAuthorized,
}

/// A new random secret: 64 uppercase hex digits.
pub fn new_secret() -> String {
    let mut secret_bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut secret_bytes);
    hex::encode_upper(secret_bytes)
}

/// A random six-digit code.
pub fn random_code() -> String {
    format!("{:06}", rand::rng().random_range(0..1_000_000u32))
}

/// True when a code is six ASCII digits (anything else cannot match and is not looked up).
pub fn is_code(code: &str) -> bool {
    code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())
}

/// True while a request has not expired (between two sweeps).
fn live(p: &Pending) -> bool {
    now_millis() - p.created_at < i64::try_from(REQUEST_TTL.as_millis()).unwrap_or(i64::MAX)
}

#[derive(Debug, Default)]
struct Table {
    by_secret: HashMap<String, Pending>,
    by_code: HashMap<String, String>,
    /// When expired requests were last swept (unix ms): at most once a second, or when full.
    swept_at: i64,
}

/// Pending requests of this replica.
#[derive(Debug)]
pub struct QuickConnect {
    enabled: bool,
    pending: Mutex<Table>,
}

impl QuickConnect {
    /// An empty set; `enabled` is what `/QuickConnect/Enabled` answers.
    pub fn new(enabled: bool) -> Self {
        QuickConnect {
            enabled,
            pending: Mutex::default(),
        }
    }

    /// Whether QuickConnect is available.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn with_pending<R>(&self, f: impl FnOnce(&mut Table) -> R) -> R {
        let mut guard = match self.pending.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = now_millis();
        let table = &mut *guard;
        if now - table.swept_at >= 1000 || table.by_secret.len() >= MAX_PENDING {
            let oldest = now - i64::try_from(REQUEST_TTL.as_millis()).unwrap_or(i64::MAX);
            table.by_secret.retain(|_, p| p.created_at > oldest);
            let by_secret = &table.by_secret;
            table.by_code.retain(|_, s| by_secret.contains_key(s));
            table.swept_at = now;
        }
        f(table)
    }

    /// Starts a request for `device`.
    pub fn initiate(&self, device: DeviceInfo) -> Result<Pending, InitiateRefusal> {
        let secret = new_secret();
        self.with_pending(|table| {
            if table.by_secret.len() >= MAX_PENDING {
                return Err(InitiateRefusal::Full);
            }
            let code = (0..CODE_DRAWS)
                .map(|_| random_code())
                .find(|c| !table.by_code.contains_key(c))
                .ok_or(InitiateRefusal::NoFreeCode)?;
            let request = Pending {
                secret: secret.clone(),
                code: code.clone(),
                device,
                created_at: now_millis(),
                authorized_user: None,
            };
            table.by_code.insert(code, secret.clone());
            table.by_secret.insert(secret, request.clone());
            Ok(request)
        })
    }

    /// The request with this secret, if pending.
    pub fn get(&self, secret: &str) -> Option<Pending> {
        let secret = secret.trim().to_ascii_uppercase();
        self.with_pending(|table| table.by_secret.get(&secret).filter(|p| live(p)).cloned())
    }

    /// Marks the request with this code as authorized by `user`, unless it already is.
    pub fn authorize(&self, code: &str, user: JfId) -> Authorization {
        let code = code.trim();
        self.with_pending(|table| {
            let Some(p) = table
                .by_code
                .get(code)
                .and_then(|s| table.by_secret.get_mut(s))
                .filter(|p| live(p))
            else {
                return Authorization::Unknown;
            };
            if p.authorized_user.is_some() {
                return Authorization::AlreadyAuthorized;
            }
            p.authorized_user = Some(user);
            Authorization::Authorized
        })
    }

    /// Consumes an authorized request: `Some((user, device))` once, then it is gone.
    /// An unknown or not yet authorized secret yields `None` and is left in place.
    pub fn redeem(&self, secret: &str) -> Option<(JfId, DeviceInfo)> {
        let secret = secret.trim().to_ascii_uppercase();
        self.with_pending(|table| {
            let user = table
                .by_secret
                .get(&secret)
                .filter(|p| live(p))?
                .authorized_user?;
            let p = table.by_secret.remove(&secret)?;
            table.by_code.remove(&p.code);
            Some((user, p.device))
        })
    }

    /// Requests pending now.
    pub fn len(&self) -> usize {
        self.with_pending(|table| table.by_secret.len())
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> DeviceInfo {
        DeviceInfo {
            device_id: "d".into(),
            device_name: "TV".into(),
            client: "c".into(),
            app_version: "1".into(),
        }
    }

    #[test]
    fn a_request_is_redeemed_once_after_authorization() {
        let qc = QuickConnect::new(true);
        let p = qc.initiate(device()).unwrap();
        assert_eq!(p.secret.len(), 64);
        assert!(is_code(&p.code));
        assert_eq!(qc.redeem(&p.secret), None, "not authorized yet");
        let user = JfId::random();
        assert_eq!(qc.authorize(&p.code, user), Authorization::Authorized);
        assert_eq!(
            qc.get(&p.secret.to_lowercase()).unwrap().authorized_user,
            Some(user)
        );
        assert_eq!(qc.redeem(&p.secret).map(|(u, _)| u), Some(user));
        assert_eq!(qc.redeem(&p.secret), None, "redeemed twice");
        assert_eq!(qc.authorize("999999x", user), Authorization::Unknown);
        assert!(qc.is_empty());
    }

    #[test]
    fn the_first_authorization_is_final() {
        let qc = QuickConnect::new(true);
        let p = qc.initiate(device()).unwrap();
        let (first, second) = (JfId::random(), JfId::random());
        assert_eq!(qc.authorize(&p.code, first), Authorization::Authorized);
        assert_eq!(
            qc.authorize(&p.code, second),
            Authorization::AlreadyAuthorized
        );
        assert_eq!(qc.redeem(&p.secret).map(|(u, _)| u), Some(first));
    }

    #[test]
    fn pending_requests_are_capped_and_codes_stay_unique() {
        let qc = QuickConnect::new(true);
        let mut codes = std::collections::HashSet::new();
        for _ in 0..MAX_PENDING {
            let p = qc.initiate(device()).expect("room for the cap");
            assert!(codes.insert(p.code), "a live code was handed out twice");
        }
        assert_eq!(qc.initiate(device()), Err(InitiateRefusal::Full));
        assert_eq!(qc.len(), MAX_PENDING);
    }
}

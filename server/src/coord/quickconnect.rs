//! Pending QuickConnect requests: the request type, and the in-process provider (one replica;
//! the Redis provider keeps the same data in Redis, see `coord::redis`). A device initiates and gets a
//! secret and a six-digit code; a logged-in user authorizes the code; the device polls with
//! the secret and then exchanges it for a token. Requests expire after ten minutes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::{Rng, RngCore};

use crate::jf::{JfId, now_millis};
use crate::store::users::DeviceInfo;

/// How long a request stays valid.
pub const REQUEST_TTL: Duration = Duration::from_secs(600);

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

/// Pending requests of this replica.
#[derive(Debug)]
pub struct QuickConnect {
    enabled: bool,
    pending: Mutex<HashMap<String, Pending>>,
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

    fn with_pending<R>(&self, f: impl FnOnce(&mut HashMap<String, Pending>) -> R) -> R {
        let mut guard = match self.pending.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let oldest = now_millis() - i64::try_from(REQUEST_TTL.as_millis()).unwrap_or(i64::MAX);
        guard.retain(|_, p| p.created_at > oldest);
        f(&mut guard)
    }

    /// Starts a request for `device`.
    pub fn initiate(&self, device: DeviceInfo) -> Pending {
        let mut secret_bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut secret_bytes);
        let secret = hex::encode_upper(secret_bytes);
        self.with_pending(|pending| {
            let code = loop {
                let candidate = format!("{:06}", rand::rng().random_range(0..1_000_000u32));
                if !pending.values().any(|p| p.code == candidate) {
                    break candidate;
                }
            };
            let request = Pending {
                secret: secret.clone(),
                code,
                device,
                created_at: now_millis(),
                authorized_user: None,
            };
            pending.insert(secret, request.clone());
            request
        })
    }

    /// The request with this secret, if pending.
    pub fn get(&self, secret: &str) -> Option<Pending> {
        let secret = secret.trim().to_ascii_uppercase();
        self.with_pending(|pending| pending.get(&secret).cloned())
    }

    /// Marks the request with this code as authorized by `user`; false when no such code.
    pub fn authorize(&self, code: &str, user: JfId) -> bool {
        let code = code.trim();
        self.with_pending(
            |pending| match pending.values_mut().find(|p| p.code == code) {
                Some(p) => {
                    p.authorized_user = Some(user);
                    true
                }
                None => false,
            },
        )
    }

    /// Consumes an authorized request: `Some((user, device))` once, then it is gone.
    /// An unknown or not yet authorized secret yields `None` and is left in place.
    pub fn redeem(&self, secret: &str) -> Option<(JfId, DeviceInfo)> {
        let secret = secret.trim().to_ascii_uppercase();
        self.with_pending(|pending| {
            let user = pending.get(&secret)?.authorized_user?;
            pending.remove(&secret).map(|p| (user, p.device))
        })
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
        let p = qc.initiate(device());
        assert_eq!(p.secret.len(), 64);
        assert_eq!(p.code.len(), 6);
        assert_eq!(qc.redeem(&p.secret), None, "not authorized yet");
        let user = JfId::random();
        assert!(qc.authorize(&p.code, user));
        assert_eq!(
            qc.get(&p.secret.to_lowercase()).unwrap().authorized_user,
            Some(user)
        );
        assert_eq!(qc.redeem(&p.secret).map(|(u, _)| u), Some(user));
        assert_eq!(qc.redeem(&p.secret), None, "redeemed twice");
        assert!(!qc.authorize("999999x", user));
    }
}

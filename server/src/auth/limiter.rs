//! Rate limiting of failed logins, per user name and per client address, so that guessing a
//! password is slow whichever of the two an attacker varies.
//!
//! Each key keeps the times of its recent failures; once it has `max_failures` inside `window`,
//! further attempts are refused with 429 until the oldest failure leaves the window. A
//! successful login clears the user's record. State is per replica (a guesser spread over N
//! replicas gets N times the budget); issue 5 may move it to Redis.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Limits for failed logins.
#[derive(Debug, Clone)]
pub struct LoginPolicy {
    /// Failures of one user name allowed inside `window`.
    pub per_user: usize,
    /// Failures from one address allowed inside `window`.
    pub per_address: usize,
    /// How long a failure counts.
    pub window: Duration,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        LoginPolicy {
            per_user: 5,
            per_address: 20,
            window: Duration::from_secs(300),
        }
    }
}

/// Keys kept at most, so a flood of random names cannot grow memory without bound.
const MAX_KEYS: usize = 100_000;

/// Failed-login book-keeping, shared by all requests of this replica.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    policy: LoginPolicy,
    users: Mutex<HashMap<String, VecDeque<Instant>>>,
    addresses: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

/// Drops failures older than the window; returns the wait until a slot frees up when full.
fn wait_for(
    failures: &mut VecDeque<Instant>,
    limit: usize,
    window: Duration,
    now: Instant,
) -> Option<Duration> {
    while failures
        .front()
        .is_some_and(|t| now.duration_since(*t) >= window)
    {
        failures.pop_front();
    }
    if failures.len() >= limit {
        failures
            .front()
            .map(|oldest| window.saturating_sub(now.duration_since(*oldest)))
    } else {
        None
    }
}

impl LoginLimiter {
    /// A limiter with the given policy.
    pub fn new(policy: LoginPolicy) -> Self {
        LoginLimiter {
            policy,
            users: Mutex::default(),
            addresses: Mutex::default(),
        }
    }

    /// `Err(seconds)` when a login for `user` from `address` must be refused now.
    pub fn check(&self, user: &str, address: Option<IpAddr>) -> Result<(), u64> {
        let now = Instant::now();
        let key = user.trim().to_lowercase();
        let mut wait = None;
        if let Ok(mut users) = self.users.lock()
            && let Some(f) = users.get_mut(&key)
        {
            wait = wait_for(f, self.policy.per_user, self.policy.window, now);
        }
        if let (Some(ip), Ok(mut addresses)) = (address, self.addresses.lock())
            && let Some(f) = addresses.get_mut(&ip)
        {
            wait = wait.max(wait_for(
                f,
                self.policy.per_address,
                self.policy.window,
                now,
            ));
        }
        match wait {
            Some(d) => Err(d.as_secs().max(1)),
            None => Ok(()),
        }
    }

    /// Records a failed login.
    pub fn failed(&self, user: &str, address: Option<IpAddr>) {
        let now = Instant::now();
        if let Ok(mut users) = self.users.lock() {
            if users.len() >= MAX_KEYS {
                users.retain(|_, f| {
                    f.back()
                        .is_some_and(|t| now.duration_since(*t) < self.policy.window)
                });
            }
            users
                .entry(user.trim().to_lowercase())
                .or_default()
                .push_back(now);
        }
        if let (Some(ip), Ok(mut addresses)) = (address, self.addresses.lock()) {
            if addresses.len() >= MAX_KEYS {
                addresses.retain(|_, f| {
                    f.back()
                        .is_some_and(|t| now.duration_since(*t) < self.policy.window)
                });
            }
            addresses.entry(ip).or_default().push_back(now);
        }
    }

    /// Records a successful login: the user's failures are forgotten (the address's are not).
    pub fn succeeded(&self, user: &str) {
        if let Ok(mut users) = self.users.lock() {
            users.remove(&user.trim().to_lowercase());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(per_user: usize, per_address: usize) -> LoginPolicy {
        LoginPolicy {
            per_user,
            per_address,
            window: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_user_is_refused_after_the_allowed_failures_whatever_the_address() {
        let l = LoginLimiter::new(policy(3, 100));
        for i in 0..3u8 {
            assert!(l.check("Alice", Some(IpAddr::from([10, 0, 0, i]))).is_ok());
            l.failed("alice", Some(IpAddr::from([10, 0, 0, i])));
        }
        let wait = l
            .check("ALICE", Some(IpAddr::from([10, 0, 0, 9])))
            .unwrap_err();
        assert!((1..=60).contains(&wait));
        assert!(l.check("bob", Some(IpAddr::from([10, 0, 0, 9]))).is_ok());
    }

    #[test]
    fn an_address_is_refused_after_the_allowed_failures_whatever_the_user() {
        let l = LoginLimiter::new(policy(100, 2));
        let ip = Some(IpAddr::from([192, 168, 1, 2]));
        l.failed("a", ip);
        l.failed("b", ip);
        assert!(l.check("c", ip).is_err());
        assert!(l.check("c", Some(IpAddr::from([192, 168, 1, 3]))).is_ok());
    }

    #[test]
    fn success_clears_the_user_record() {
        let l = LoginLimiter::new(policy(1, 100));
        l.failed("a", None);
        assert!(l.check("a", None).is_err());
        l.succeeded("a");
        assert!(l.check("a", None).is_ok());
    }
}

//! Rate limiting of logins, per (user name, client address) and per client address, so that
//! guessing a password is slow whichever an attacker varies, while the right password from
//! another address still gets in (no lock of an account, the administrator's included).
//!
//! - **(user, address)**: the first [`LoginPolicy::free_failures`] failures cost nothing; each
//!   further attempt must wait [`LoginPolicy::first_backoff`], doubled per further failure up
//!   to [`LoginPolicy::max_backoff`]. The record is forgotten [`LoginPolicy::window`] after its
//!   last failure, or at once on success.
//! - **address**: at most [`LoginPolicy::per_address`] failures inside `window`, whatever the
//!   user names (one client spraying many accounts).
//!
//! An attempt is **reserved before the password is checked** ([`LoginLimiter::begin`]) and
//! counts as a failure until it is known to have succeeded, so a burst of concurrent guesses
//! evaluates at most the budget, not one password per request.
//!
//! Addresses are keyed per host for IPv4 and per /64 for IPv6 (one subscriber's prefix), so
//! rotating through a prefix does not reset the budget. The address is the one
//! [`crate::auth::client_address`] trusts (forwarded headers only from configured proxies).
//!
//! State is per replica (a guesser spread over N replicas gets N times the budget) and
//! bounded: beyond [`MAX_KEYS`] live records new keys are refused rather than evicting the
//! records an attacker would like to see forgotten.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Limits for logins.
#[derive(Debug, Clone)]
pub struct LoginPolicy {
    /// Failures of one user name from one address before each further attempt must wait.
    pub free_failures: u32,
    /// The wait after the first failure past the free ones; doubled per further failure.
    pub first_backoff: Duration,
    /// The longest wait between two attempts of one user name from one address.
    pub max_backoff: Duration,
    /// Failures from one address, whatever the user names, allowed inside `window`.
    pub per_address: usize,
    /// How long a failure counts.
    pub window: Duration,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        LoginPolicy {
            free_failures: 5,
            first_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(15 * 60),
            per_address: 30,
            window: Duration::from_secs(15 * 60),
        }
    }
}

/// Live records kept at most, per table.
pub const MAX_KEYS: usize = 100_000;

/// The part of an address a budget belongs to: the host for IPv4, the /64 for IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKey {
    /// One IPv4 host.
    V4(u32),
    /// One IPv6 /64 prefix.
    V6(u64),
}

impl From<IpAddr> for AddressKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => AddressKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressKey::V4(u32::from(v4)),
                None => {
                    let bits = u128::from(v6);
                    AddressKey::V6(u64::try_from(bits >> 64).unwrap_or(u64::MAX))
                }
            },
        }
    }
}

impl std::fmt::Display for AddressKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddressKey::V4(a) => write!(f, "{}", std::net::Ipv4Addr::from(*a)),
            AddressKey::V6(prefix) => write!(f, "{prefix:016x}::/64"),
        }
    }
}

/// One (user, address) record.
#[derive(Debug, Default)]
struct Pair {
    /// Failures since the record was made.
    failures: u32,
    /// Attempts reserved and not yet resolved.
    in_flight: u32,
    /// The last failure (or reservation).
    last: Option<Instant>,
}

type PairKey = (String, Option<AddressKey>);

#[derive(Debug, Default)]
struct Book {
    pairs: HashMap<PairKey, Pair>,
    addresses: HashMap<AddressKey, VecDeque<Instant>>,
}

/// Login book-keeping, shared by all requests of this replica.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    policy: LoginPolicy,
    book: Mutex<Book>,
}

/// A reserved login attempt: report [`LoginAttempt::failed`] or [`LoginAttempt::succeeded`].
/// Dropped without either (the check could not run: the server was busy), it is given back.
#[derive(Debug)]
pub struct LoginAttempt<'a> {
    limiter: &'a LoginLimiter,
    pair: PairKey,
    address: Option<AddressKey>,
    reserved_at: Instant,
    resolved: bool,
}

impl LoginAttempt<'_> {
    /// The password was wrong (or the user unknown or disabled): the reservation stays a
    /// failure.
    pub fn failed(mut self) {
        self.resolved = true;
        let now = Instant::now();
        let mut book = self.limiter.book();
        if let Some(pair) = book.pairs.get_mut(&self.pair) {
            pair.in_flight = pair.in_flight.saturating_sub(1);
            pair.failures = pair.failures.saturating_add(1);
            pair.last = Some(now);
        }
    }

    /// The login succeeded: the (user, address) record is forgotten and the address's
    /// reservation given back.
    pub fn succeeded(mut self) {
        self.resolved = true;
        let mut book = self.limiter.book();
        book.pairs.remove(&self.pair);
        self.release_address(&mut book);
    }

    fn release_address(&self, book: &mut Book) {
        if let Some(key) = self.address
            && let Some(failures) = book.addresses.get_mut(&key)
            && let Some(i) = failures.iter().rposition(|t| *t == self.reserved_at)
        {
            failures.remove(i);
        }
    }
}

impl Drop for LoginAttempt<'_> {
    fn drop(&mut self) {
        if self.resolved {
            return;
        }
        let mut book = self.limiter.book();
        if let Some(pair) = book.pairs.get_mut(&self.pair) {
            pair.in_flight = pair.in_flight.saturating_sub(1);
        }
        self.release_address(&mut book);
    }
}

/// Drops failures older than the window; returns the wait until a slot frees when full.
fn address_wait(
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
            book: Mutex::default(),
        }
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        match self.book.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The wait a (user, address) record imposes now, if any.
    fn pair_wait(&self, pair: &Pair, now: Instant) -> Option<Duration> {
        let counted = pair.failures.saturating_add(pair.in_flight);
        if counted < self.policy.free_failures {
            return None;
        }
        // Past the free failures, one attempt at a time, each after the backoff.
        if pair.in_flight > 0 {
            return Some(self.policy.first_backoff.max(Duration::from_secs(1)));
        }
        let past = counted - self.policy.free_failures;
        let backoff = self
            .policy
            .first_backoff
            .saturating_mul(2u32.saturating_pow(past.min(30)))
            .min(self.policy.max_backoff);
        let since = pair.last.map_or(backoff, |t| now.duration_since(t));
        (since < backoff).then(|| backoff - since)
    }

    /// Like [`LoginLimiter::begin`], but while the budget is taken by attempts still being
    /// checked (their outcome unknown: a success would clear them), waits for them, up to
    /// `patience`, instead of refusing: many devices signing in at once with the right
    /// password all get in, while concurrent guesses are still checked at most the free number
    /// of times.
    pub async fn begin_patiently(
        &self,
        user: &str,
        address: Option<IpAddr>,
        patience: Duration,
    ) -> Result<LoginAttempt<'_>, u64> {
        let deadline = Instant::now() + patience;
        loop {
            match self.begin(user, address) {
                Ok(attempt) => return Ok(attempt),
                Err(_) if Instant::now() < deadline && self.pending(user, address) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(secs) => return Err(secs),
            }
        }
    }

    /// Whether attempts for `user` from `address` are being checked right now.
    fn pending(&self, user: &str, address: Option<IpAddr>) -> bool {
        let key: PairKey = (user.trim().to_lowercase(), address.map(AddressKey::from));
        self.book().pairs.get(&key).is_some_and(|p| p.in_flight > 0)
    }

    /// Reserves an attempt for `user` from `address`, or `Err(seconds to wait)`.
    pub fn begin(&self, user: &str, address: Option<IpAddr>) -> Result<LoginAttempt<'_>, u64> {
        let now = Instant::now();
        let address = address.map(AddressKey::from);
        let pair_key: PairKey = (user.trim().to_lowercase(), address);
        let window = self.policy.window;
        let mut book = self.book();

        let stale =
            |p: &Pair| p.in_flight == 0 && p.last.is_none_or(|t| now.duration_since(t) >= window);
        if book.pairs.get(&pair_key).is_some_and(stale) {
            book.pairs.remove(&pair_key);
        }
        let mut wait = book
            .pairs
            .get(&pair_key)
            .and_then(|p| self.pair_wait(p, now));
        if let Some(key) = address
            && let Some(failures) = book.addresses.get_mut(&key)
        {
            wait = wait.max(address_wait(failures, self.policy.per_address, window, now));
        }
        if let Some(d) = wait {
            return Err(d.as_secs().max(1));
        }

        // Bounded memory: forget what has expired, and refuse new keys when still full.
        if !book.pairs.contains_key(&pair_key) && book.pairs.len() >= MAX_KEYS {
            book.pairs.retain(|_, p| !stale(p));
            if book.pairs.len() >= MAX_KEYS {
                return Err(60);
            }
        }
        if let Some(key) = address
            && !book.addresses.contains_key(&key)
            && book.addresses.len() >= MAX_KEYS
        {
            book.addresses
                .retain(|_, f| f.back().is_some_and(|t| now.duration_since(*t) < window));
            if book.addresses.len() >= MAX_KEYS {
                return Err(60);
            }
        }

        let pair = book.pairs.entry(pair_key.clone()).or_default();
        pair.in_flight += 1;
        if pair.failures.saturating_add(pair.in_flight) > self.policy.free_failures {
            // Attempts past the free ones start the backoff clock when they are made.
            pair.last = Some(now);
        }
        if let Some(key) = address {
            book.addresses.entry(key).or_default().push_back(now);
        }
        Ok(LoginAttempt {
            limiter: self,
            pair: pair_key,
            address,
            reserved_at: now,
            resolved: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(free_failures: u32, per_address: usize) -> LoginPolicy {
        LoginPolicy {
            free_failures,
            first_backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(600),
            per_address,
            window: Duration::from_secs(600),
        }
    }

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn one_user_from_one_address_waits_after_the_free_failures_but_not_elsewhere() {
        let l = LoginLimiter::new(policy(3, 100));
        for _ in 0..3 {
            l.begin("Alice", ip(1)).unwrap().failed();
        }
        let wait = l.begin("ALICE", ip(1)).unwrap_err();
        assert!((1..=30).contains(&wait), "{wait}");
        // The right password from another address is not locked out.
        l.begin("alice", ip(2)).unwrap().succeeded();
        assert!(l.begin("bob", ip(1)).is_ok());
    }

    #[test]
    fn the_backoff_doubles_with_each_further_failure() {
        let l = LoginLimiter::new(policy(1, 100));
        let now = Instant::now();
        let pair = |failures| Pair {
            failures,
            in_flight: 0,
            last: Some(now),
        };
        assert_eq!(l.pair_wait(&pair(0), now), None);
        assert_eq!(l.pair_wait(&pair(1), now), Some(Duration::from_secs(30)));
        assert_eq!(l.pair_wait(&pair(2), now), Some(Duration::from_secs(60)));
        assert_eq!(l.pair_wait(&pair(3), now), Some(Duration::from_secs(120)));
        assert_eq!(l.pair_wait(&pair(30), now), Some(Duration::from_secs(600)));
    }

    #[test]
    fn an_address_is_refused_after_the_allowed_failures_whatever_the_user() {
        let l = LoginLimiter::new(policy(100, 2));
        l.begin("a", ip(7)).unwrap().failed();
        l.begin("b", ip(7)).unwrap().failed();
        assert!(l.begin("c", ip(7)).is_err());
        assert!(l.begin("c", ip(8)).is_ok());
    }

    #[test]
    fn concurrent_attempts_are_reserved_before_they_are_checked() {
        let l = LoginLimiter::new(policy(5, 100));
        let held: Vec<_> = (0..64)
            .filter_map(|_| l.begin("root", ip(1)).ok())
            .collect();
        assert_eq!(held.len(), 5, "only the budget is evaluated");
        for attempt in held {
            attempt.failed();
        }
        assert!(l.begin("root", ip(1)).is_err());
    }

    #[test]
    fn an_attempt_given_back_unchecked_does_not_count() {
        let l = LoginLimiter::new(policy(1, 1));
        drop(l.begin("a", ip(1)).unwrap());
        l.begin("a", ip(1)).unwrap().succeeded();
        l.begin("a", ip(1)).unwrap().succeeded();
    }

    #[test]
    fn success_clears_the_pair_record() {
        let l = LoginLimiter::new(policy(1, 100));
        l.begin("a", None).unwrap().failed();
        assert!(l.begin("a", None).is_err());
        let l = LoginLimiter::new(policy(2, 100));
        l.begin("a", None).unwrap().failed();
        l.begin("a", None).unwrap().succeeded();
        l.begin("a", None).unwrap().failed();
        assert!(
            l.begin("a", None).is_ok(),
            "the earlier failure was forgotten"
        );
    }

    #[test]
    fn ipv6_addresses_share_the_budget_of_their_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(AddressKey::from(a), AddressKey::from(b));
        assert_ne!(AddressKey::from(a), AddressKey::from(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(AddressKey::from(mapped), AddressKey::from(ip(1).unwrap()));
    }
}

//! Fixed-window counters for rate limits that must hold across replicas (QuickConnect
//! initiation per address, authorization per user): the in-process provider's table here, the
//! Redis provider's in `coord::redis` (`INCR` + `PEXPIRE`, one key per limit and window).
//!
//! A slot is taken before the limited work runs, so concurrent requests cannot overshoot. The
//! table is bounded: when [`MAX_KEYS`] windows are live, new keys are refused (fail closed)
//! rather than forgetting counts an attacker would like forgotten.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Live windows kept at most.
pub const MAX_KEYS: usize = 100_000;

#[derive(Debug)]
struct Window {
    started: Instant,
    length: Duration,
    taken: u32,
}

/// The in-process counters.
#[derive(Debug, Default)]
pub struct RateCounters {
    windows: Mutex<HashMap<String, Window>>,
}

impl RateCounters {
    /// Takes one of `limit` slots of `key` in the current `window`; `Err(seconds)` until the
    /// window ends when they are all taken.
    pub fn take(&self, key: &str, limit: u32, window: Duration) -> Result<(), u64> {
        let now = Instant::now();
        let mut windows = match self.windows.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !windows.contains_key(key) && windows.len() >= MAX_KEYS {
            windows.retain(|_, w| now.duration_since(w.started) < w.length);
            if windows.len() >= MAX_KEYS {
                return Err(window.as_secs().max(1));
            }
        }
        let w = windows.entry(key.to_owned()).or_insert(Window {
            started: now,
            length: window,
            taken: 0,
        });
        if now.duration_since(w.started) >= w.length {
            *w = Window {
                started: now,
                length: window,
                taken: 0,
            };
        }
        if w.taken >= limit {
            let left = w.length.saturating_sub(now.duration_since(w.started));
            return Err(left.as_secs().max(1));
        }
        w.taken += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_limit_per_window_and_others_are_independent() {
        let c = RateCounters::default();
        for _ in 0..3 {
            assert!(c.take("a", 3, Duration::from_secs(60)).is_ok());
        }
        let wait = c.take("a", 3, Duration::from_secs(60)).unwrap_err();
        assert!((1..=60).contains(&wait));
        assert!(c.take("b", 3, Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn a_new_window_starts_when_the_old_one_ends() {
        let c = RateCounters::default();
        assert!(c.take("a", 1, Duration::from_millis(1)).is_ok());
        std::thread::sleep(Duration::from_millis(5));
        assert!(c.take("a", 1, Duration::from_millis(1)).is_ok());
    }
}

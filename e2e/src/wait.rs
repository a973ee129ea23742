//! Polling for a condition, with a deadline: tests wait for what they need to see, never for a
//! fixed time.

use std::future::Future;
use std::time::{Duration, Instant};

/// Calls `probe` every `every` until it returns `Some`, for at most `timeout`; the error names
/// `what` and the last thing the probe said.
///
/// `probe` returns `Err(reason)` for "not yet, and here is why" — the last reason is reported
/// when time runs out.
pub async fn eventually<T, F, Fut>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut probe: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    loop {
        let last = match probe().await {
            Ok(value) => return Ok(value),
            Err(reason) => reason,
        };
        if started.elapsed() >= timeout {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}; last: {last}");
        }
        tokio::time::sleep(every).await;
    }
}

/// Milliseconds since the Unix epoch, the unit the server's tables use.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

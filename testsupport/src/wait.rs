//! Waiting for a condition with a deadline: tests wait for what they need to see, never for a
//! fixed time. Every test crate polls through here, so a fix to the loop reaches every wait.
//!
//! Two shapes of check, one loop: [`until`] for checks that say "not yet" with `None` and end
//! the wait at once on an error, [`eventually`] for probes whose error is "not yet, because…"
//! (the last reason is reported when time runs out).

use std::future::Future;
use std::time::{Duration, Instant};

/// How often [`until`] asks.
pub const POLL: Duration = Duration::from_millis(20);

/// Asks `check` every [`POLL`] until it yields `Some`, for at most `within`. An error from
/// `check` ends the wait with that error; running out of time names `what`.
pub async fn until<T, F, Fut>(what: &str, within: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    poll(within, POLL, || {
        let step = check();
        async { step.await.map(|found| found.ok_or_else(String::new)) }
    })
    .await?
    .map_err(|_| anyhow::anyhow!("timed out after {within:?} waiting for {what}"))
}

/// Calls `probe` every `every` until it returns `Ok`, for at most `timeout`; the error names
/// `what` and the last reason the probe gave.
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
    let result = poll(timeout, every, || {
        let step = probe();
        async { Ok(step.await) }
    })
    .await?;
    result.map_err(|last| {
        anyhow::anyhow!("timed out after {timeout:?} waiting for {what}; last: {last}")
    })
}

/// The loop: `step` until it answers `Ok(Ok(_))`, an `Err` (returned at once) or time runs
/// out (`Ok(Err(last reason))`). Asked once more at the deadline, so a check that becomes true
/// while the last sleep ran is not reported as a timeout.
async fn poll<T, F, Fut>(
    within: Duration,
    every: Duration,
    mut step: F,
) -> anyhow::Result<Result<T, String>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Result<T, String>>>,
{
    let started = Instant::now();
    loop {
        let last = match step().await? {
            Ok(value) => return Ok(Ok(value)),
            Err(reason) => reason,
        };
        if started.elapsed() >= within {
            return Ok(Err(last));
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn until_returns_the_value_once_the_check_yields_it() {
        let calls = AtomicU32::new(0);
        let found = until("the third call", Duration::from_secs(5), || async {
            Ok((calls.fetch_add(1, Ordering::SeqCst) >= 2).then_some("here"))
        })
        .await
        .unwrap();
        assert_eq!((found, calls.load(Ordering::SeqCst)), ("here", 3));
    }

    #[tokio::test]
    async fn until_names_what_it_waited_for_and_stops_on_an_error() {
        let err = until::<(), _, _>("nothing", Duration::from_millis(50), || async { Ok(None) })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("waiting for nothing"), "{err}");
        let calls = AtomicU32::new(0);
        let err = until::<(), _, _>("a broken check", Duration::from_secs(5), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            anyhow::bail!("broken")
        })
        .await
        .unwrap_err();
        assert_eq!(
            (err.to_string(), calls.load(Ordering::SeqCst)),
            ("broken".to_owned(), 1)
        );
    }

    #[tokio::test]
    async fn eventually_reports_the_last_reason() {
        let err = eventually::<(), _, _>(
            "a reason",
            Duration::from_millis(50),
            Duration::from_millis(10),
            || async { Err("still 503".to_owned()) },
        )
        .await
        .unwrap_err();
        assert!(err.to_string().ends_with("last: still 503"), "{err}");
    }
}

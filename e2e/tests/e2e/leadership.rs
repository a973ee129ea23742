//! Leadership over runs in which the leader is repeatedly SIGKILLed and SIGTERMed: the
//! recorded history (`leader_terms`: epoch, holder, from, to) never has two holders at once; a
//! new leader takes over within lease + renew interval of a SIGKILL, and within one second of
//! a SIGTERM (a stopping leader gives the lease up at once).

use std::collections::BTreeMap;
use std::time::Duration;

use ephyra_e2e::LocalCluster;
use ephyra_e2e::wait::now_millis;
use sqlx::Row as _;

/// Short lease and renew interval, so the run is quick; a killed leader is replaced within
/// their sum.
const LEASE_MILLIS: i64 = 1500;
const RENEW_MILLIS: i64 = 300;
/// The takeover is measured from just before the signal to `acquired_at_ms`, which the new
/// leader writes to the database after Redis granted it the lease: this covers that write
/// (the SIGKILL bound is tight by design: last renewal just before the kill, next attempt
/// just after the expiry).
const RECORDING_MILLIS: i64 = 100;

/// One recorded term.
#[derive(Debug, Clone)]
struct Term {
    epoch: i64,
    holder: String,
    acquired_at_ms: i64,
    released_at_ms: Option<i64>,
}

async fn terms(cluster: &LocalCluster) -> anyhow::Result<Vec<Term>> {
    let mut connection = cluster.sql().await?;
    let rows = sqlx::query(
        "SELECT epoch, holder, acquired_at_ms, released_at_ms FROM leader_terms ORDER BY epoch",
    )
    .fetch_all(&mut connection)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Term {
                epoch: row.try_get("epoch")?,
                holder: row.try_get("holder")?,
                acquired_at_ms: row.try_get("acquired_at_ms")?,
                released_at_ms: row.try_get("released_at_ms")?,
            })
        })
        .collect()
}

/// How the leader is stopped in one round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Kill,
    Term,
}

/// What a run of stops recorded.
struct Run {
    cluster: LocalCluster,
    /// When each stopped term's holder was gone at the latest: the time of its SIGKILL, or
    /// the time its process was seen exited after SIGTERM.
    gone_at: BTreeMap<i64, i64>,
    /// How each round stopped the leader, and how long the next one took to take over (from
    /// just before the signal to the new term's `acquired_at_ms`).
    takeovers: Vec<(Stop, i64)>,
}

/// Three replicas with a short lease; stops the leader once per round as given, waits for a
/// new leader with a higher epoch each time, and restarts the stopped replica.
async fn stop_leaders(rounds: &[Stop]) -> anyhow::Result<Run> {
    let mut cluster = LocalCluster::builder(3)
        .env("EPHYRA_LEASE_MILLIS", LEASE_MILLIS.to_string())
        .env("EPHYRA_RENEW_MILLIS", RENEW_MILLIS.to_string())
        .start()
        .await?;
    let (mut leader, mut epoch, _) = cluster.wait_leader(Duration::from_secs(10)).await?;
    let mut gone_at: BTreeMap<i64, i64> = BTreeMap::new();
    let mut takeovers = Vec::new();
    for &stop in rounds {
        let at = now_millis();
        let old = leader;
        match stop {
            Stop::Kill => {
                cluster.kill(old);
                gone_at.insert(epoch, at);
            }
            Stop::Term => {
                cluster.signal_term(old)?;
                let exited = cluster.terminate(old, Duration::from_secs(15)).await?;
                assert!(exited, "{} did not exit after SIGTERM", cluster.name(old));
                gone_at.insert(epoch, now_millis());
            }
        }
        let (next, next_epoch, _) = wait_new_leader(&cluster, old, epoch).await?;
        assert!(
            next_epoch > epoch,
            "epoch went from {epoch} to {next_epoch}"
        );
        let history = terms(&cluster).await?;
        let term = history
            .iter()
            .find(|t| t.epoch == next_epoch)
            .ok_or_else(|| {
                anyhow::anyhow!("epoch {next_epoch} not in leader_terms: {history:?}")
            })?;
        let takeover = term.acquired_at_ms - at;
        println!(
            "{stop:?} of {} (epoch {epoch}): {} took over with epoch {next_epoch} after {takeover} ms",
            cluster.name(old),
            cluster.name(next)
        );
        takeovers.push((stop, takeover));
        // Back to three replicas for the next round.
        cluster.start_replica(old).await?;
        (leader, epoch) = (next, next_epoch);
    }
    Ok(Run {
        cluster,
        gone_at,
        takeovers,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_terms_never_overlap_and_a_killed_leader_is_replaced_within_lease_and_renew()
-> anyhow::Result<()> {
    let rounds = [
        Stop::Kill,
        Stop::Term,
        Stop::Kill,
        Stop::Term,
        Stop::Kill,
        Stop::Term,
    ];
    let Run {
        cluster,
        gone_at,
        takeovers,
    } = stop_leaders(&rounds).await?;
    let bound = LEASE_MILLIS + RENEW_MILLIS + RECORDING_MILLIS;
    for &(stop, takeover) in &takeovers {
        if stop == Stop::Kill {
            assert!(
                takeover <= bound,
                "SIGKILL: takeover after {takeover} ms, more than {bound} ms; logs:\n{}",
                cluster.logs()
            );
        }
    }

    let history = terms(&cluster).await?;
    println!("leader_terms:");
    for term in &history {
        println!("  {term:?}");
    }
    for pair in history.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        assert!(after.epoch > before.epoch);
        // The end of a term: when its holder released it, or when its holder was gone (a
        // dead process holds nothing); a term with neither never ended, which only the last
        // one may do.
        let ended = match (before.released_at_ms, gone_at.get(&before.epoch)) {
            (Some(released), _) => released,
            (None, Some(gone)) => *gone,
            (None, None) => {
                panic!("term {before:?} never ended but {after:?} began: two holders at once")
            }
        };
        assert!(
            ended <= after.acquired_at_ms,
            "term {before:?} (ended {ended}) overlaps {after:?}"
        );
        assert!(
            before
                .released_at_ms
                .is_none_or(|r| r >= before.acquired_at_ms)
        );
        if gone_at.contains_key(&before.epoch) {
            assert_ne!(
                before.holder, after.holder,
                "a stopped holder led again at once"
            );
        }
    }
    let kills: Vec<i64> = takeovers
        .iter()
        .filter(|(s, _)| *s == Stop::Kill)
        .map(|(_, t)| *t)
        .collect();
    println!("takeover after SIGKILL (ms): {kills:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_leader_releases_its_term_and_another_takes_over_within_a_second()
-> anyhow::Result<()> {
    let Run {
        cluster, takeovers, ..
    } = stop_leaders(&[Stop::Term, Stop::Term, Stop::Term, Stop::Term]).await?;
    let history = terms(&cluster).await?;
    for &(_, takeover) in &takeovers {
        assert!(
            takeover <= 1000,
            "SIGTERM: takeover after {takeover} ms, more than 1000 ms; logs:\n{}",
            cluster.logs()
        );
    }
    // Every stopped leader wrote the end of its term as it let go (the last term runs on).
    for term in &history[..history.len() - 1] {
        assert!(
            term.released_at_ms.is_some(),
            "not released: {term:?}; all: {history:?}"
        );
    }
    let stops: Vec<i64> = takeovers.iter().map(|(_, t)| *t).collect();
    println!("takeover after SIGTERM (ms): {stops:?}");
    Ok(())
}

/// Waits for a leader other than `old` with an epoch above `epoch`.
async fn wait_new_leader(
    cluster: &LocalCluster,
    old: usize,
    epoch: i64,
) -> anyhow::Result<(usize, i64, std::time::Instant)> {
    let started = std::time::Instant::now();
    loop {
        let leaders = cluster.leaders().await;
        let fresh: Vec<(usize, i64)> = leaders
            .iter()
            .filter_map(|&(i, e)| Some((i, e?)))
            .filter(|&(i, e)| i != old && e > epoch)
            .collect();
        if let [(i, e)] = fresh.as_slice() {
            return Ok((*i, *e, std::time::Instant::now()));
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(10),
            "no new leader 10 s after stopping {} (saw {leaders:?}); logs:\n{}",
            cluster.name(old),
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

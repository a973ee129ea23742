//! The leader's scheduler: enqueues periodic jobs once per time slot.
//!
//! Time is cut into slots of each job's interval, aligned to the unix epoch, so every replica
//! agrees on them. The job of slot `k` carries the dedupe key `<kind>@<interval>:<k>`, unique
//! for ever in the database: a leader that takes over in the middle of a slot, or two leaders
//! during a handover, enqueue it once. Each enqueue runs inside `Store::fenced_write(epoch)`,
//! so a deposed leader that still believes it leads is refused by the database.
//!
//! The scheduler only enqueues; workers on every replica run the jobs.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::coord::LeaderTerm;
use crate::error::DisplayChain;
use crate::store::jobs::{Enqueued, NewJob, enqueue_in};
use crate::store::{Store, StoreError, StoreResult};

/// A job the leader enqueues on an interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Periodic {
    /// The job, without its dedupe key (the scheduler adds the slot's).
    pub job: NewJob,
    /// Its interval; slots are aligned to the unix epoch.
    pub every: Duration,
    /// Whether a new leader enqueues the slot it starts in (when no earlier leader did), or
    /// waits for the next slot (for the library scan, which each replica's start enqueues).
    pub in_current_slot: bool,
}

impl Periodic {
    /// The slot `now_ms` falls in.
    pub fn slot(&self, now_ms: i64) -> i64 {
        let every = i64::try_from(self.every.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        now_ms.div_euclid(every)
    }

    /// The dedupe key of `slot`.
    pub fn dedupe_key(&self, slot: i64) -> String {
        format!("{}@{}:{slot}", self.job.kind, self.every.as_millis())
    }
}

/// How often the scheduler looks at the clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerSettings {
    /// Time between looks; a slot's job is enqueued at most this late.
    pub tick: Duration,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        SchedulerSettings {
            tick: Duration::from_secs(1),
        }
    }
}

/// Enqueues `periodic`'s jobs while `leadership` says this replica leads, until `shutdown`.
pub async fn run_scheduler(
    store: Store,
    mut leadership: watch::Receiver<Option<LeaderTerm>>,
    periodic: Vec<Periodic>,
    settings: SchedulerSettings,
    shutdown: CancellationToken,
) {
    // Per job: the (epoch, slot) last handled, so each term looks at each slot once.
    let mut handled: BTreeMap<usize, (i64, i64)> = BTreeMap::new();
    loop {
        let term = leadership.borrow_and_update().clone();
        let mut deposed = false;
        if let Some(term) = &term {
            let now = Store::now();
            for (i, p) in periodic.iter().enumerate() {
                let slot = p.slot(now);
                let first_look = handled
                    .get(&i)
                    .is_none_or(|(epoch, _)| *epoch != term.epoch);
                if first_look && !p.in_current_slot {
                    handled.insert(i, (term.epoch, slot));
                    continue;
                }
                if handled.get(&i) == Some(&(term.epoch, slot)) {
                    continue;
                }
                match enqueue_fenced(&store, term.epoch, p, slot).await {
                    Ok(added) => {
                        if let Enqueued::Added(id) = added {
                            tracing::info!(kind = %p.job.kind, slot, id = %id.to_n(), epoch = term.epoch, "scheduled a periodic job");
                        }
                        handled.insert(i, (term.epoch, slot));
                    }
                    Err(StoreError::StaleLeader { .. }) => {
                        tracing::warn!(
                            epoch = term.epoch,
                            "a newer leader has written; scheduling stops until leadership changes"
                        );
                        deposed = true;
                        break;
                    }
                    Err(e) => {
                        // Tried again on the next tick.
                        tracing::warn!(kind = %p.job.kind, error = %DisplayChain(&e), "cannot schedule a periodic job");
                    }
                }
            }
        }
        if term.is_none() || deposed {
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = leadership.changed() => if changed.is_err() { return },
            }
        } else {
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = leadership.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(settings.tick) => {}
            }
        }
    }
}

/// Enqueues slot `slot` of `periodic` as the leader of `epoch`.
pub async fn enqueue_fenced(
    store: &Store,
    epoch: i64,
    periodic: &Periodic,
    slot: i64,
) -> StoreResult<Enqueued> {
    let mut job = periodic.job.clone().dedupe_key(periodic.dedupe_key(slot));
    job.fencing_token = Some(epoch);
    let mut tx = store.fenced_write(epoch).await?;
    let added = enqueue_in(&mut tx, &job).await?;
    tx.commit().await?;
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_aligned_to_the_epoch_and_keyed_by_kind_and_interval() {
        let p = Periodic {
            job: NewJob::new("token_cleanup"),
            every: Duration::from_secs(3600),
            in_current_slot: true,
        };
        assert_eq!(p.slot(0), 0);
        assert_eq!(p.slot(3_599_999), 0);
        assert_eq!(p.slot(3_600_000), 1);
        assert_eq!(p.dedupe_key(7), "token_cleanup@3600000:7");
    }
}

//! Status reporting into the replica's MediaServerCluster, when the server runs in Kubernetes
//! (`config.cluster` is set) — off everywhere else.
//!
//! Each replica server-side-applies its own entry of `status.members` (a list keyed by pod
//! name) with its own field manager `ephyra-server-<pod>`, so replicas never overwrite each
//! other's entries and the API server removes nothing but what the same manager stops
//! sending. The leader also applies `status.leader` with the shared manager
//! `ephyra-server-leader`, so the next leader takes those fields over. Everything else in the
//! status belongs to the operator.
//!
//! A replica reports on a short interval (its heartbeat, which the operator uses to prune
//! stale members) and at once when something it reports changes (readiness, role, counts).
//! Building the patches is pure ([`member_patch`], [`leader_patch`]); only [`Reporter`]
//! talks to the API. An API failure is logged and retried on the next tick: reporting must
//! never affect serving.

use std::future::Future;
use std::time::{Duration, Instant};

use ephyra_config::ClusterIdentity;
use ephyra_crd::{LeaderStatus, MediaServerCluster, MemberRole, MemberStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::coord::LeaderTerm;
use crate::error::DisplayChain;
use crate::state::AppState;

/// How often a replica reports itself even when nothing changed.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(10);
/// How often a replica looks for changes to report.
pub const CHANGE_POLL: Duration = Duration::from_secs(1);
/// Field manager of `status.leader`, shared by whoever leads.
pub const LEADER_MANAGER: &str = "ephyra-server-leader";

/// The field manager of a replica's own member entry.
pub fn member_manager(pod: &str) -> String {
    format!("ephyra-server-{pod}")
}

/// What a replica says about itself, without the heartbeat time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Passes its own readiness check (database reachable, not draining).
    pub ready: bool,
    /// Leading or following.
    pub role: MemberRole,
    /// Open session WebSockets.
    pub active_sessions: i32,
    /// Streams and transcodes running.
    pub active_transcodes: i32,
    /// Server version.
    pub version: String,
}

impl Snapshot {
    /// This replica now.
    pub async fn of(state: &AppState) -> Snapshot {
        let ready = state.is_accepting() && state.store.ping().await.is_ok();
        Snapshot {
            ready,
            role: role_of(state.coordinator.current_term().as_ref()),
            active_sessions: gauge(state.metrics.websocket_connections.get()),
            active_transcodes: gauge(
                state.metrics.active_streams.get() + state.metrics.active_transcodes.get(),
            ),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

fn gauge(v: i64) -> i32 {
    i32::try_from(v.max(0)).unwrap_or(i32::MAX)
}

fn time(at: chrono::DateTime<chrono::Utc>) -> Time {
    Time(Timestamp::from_millisecond(at.timestamp_millis()).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// The apply patch of `pod`'s member entry: the cluster's identity and a status holding only
/// that entry.
pub fn member_patch(
    cluster: &ClusterIdentity,
    snapshot: &Snapshot,
    now: chrono::DateTime<chrono::Utc>,
) -> Value {
    let member = MemberStatus {
        name: cluster.pod_name.clone(),
        ready: snapshot.ready,
        role: snapshot.role,
        last_heartbeat: time(now),
        active_sessions: snapshot.active_sessions,
        active_transcodes: snapshot.active_transcodes,
        version: Some(snapshot.version.clone()),
    };
    json!({
        "apiVersion": "ephyra.io/v1alpha1",
        "kind": "MediaServerCluster",
        "metadata": {"name": cluster.name, "namespace": cluster.namespace},
        "status": {"members": [member]},
    })
}

/// The apply patch of `status.leader` for the leader `pod` in `term`.
pub fn leader_patch(cluster: &ClusterIdentity, term: &LeaderTerm) -> Value {
    let leader = LeaderStatus {
        pod: cluster.pod_name.clone(),
        since: time(term.since),
        epoch: term.epoch,
    };
    json!({
        "apiVersion": "ephyra.io/v1alpha1",
        "kind": "MediaServerCluster",
        "metadata": {"name": cluster.name, "namespace": cluster.namespace},
        "status": {"leader": leader},
    })
}

/// Why a report did not reach the API.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The in-cluster configuration (service account, API address) is missing.
    #[error("no in-cluster Kubernetes configuration")]
    Config(#[source] kube::config::InClusterError),
    /// The client could not be built from it.
    #[error("cannot build the Kubernetes client")]
    Client(#[source] kube::Error),
    /// An apply was refused or failed.
    #[error("cannot apply {what} of MediaServerCluster {name}")]
    Apply {
        /// `status.members` or `status.leader`.
        what: &'static str,
        /// The cluster's name.
        name: String,
        /// The API's error.
        #[source]
        source: kube::Error,
    },
}

/// Writes one replica's reports to its MediaServerCluster.
#[derive(Clone)]
pub struct Reporter {
    api: Api<MediaServerCluster>,
    cluster: ClusterIdentity,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl Reporter {
    /// A reporter for `cluster` through `client`.
    pub fn new(client: kube::Client, cluster: ClusterIdentity) -> Reporter {
        Reporter {
            api: Api::namespaced(client, &cluster.namespace),
            cluster,
        }
    }

    /// Applies this replica's member entry with its own field manager.
    pub async fn report_member(
        &self,
        snapshot: &Snapshot,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), ReportError> {
        let patch = member_patch(&self.cluster, snapshot, now);
        let params = PatchParams::apply(&member_manager(&self.cluster.pod_name));
        self.api
            .patch_status(&self.cluster.name, &params, &Patch::Apply(&patch))
            .await
            .map_err(|source| ReportError::Apply {
                what: "status.members",
                name: self.cluster.name.clone(),
                source,
            })?;
        Ok(())
    }

    /// Applies `status.leader` for `term` with the leaders' field manager. Forced: the
    /// fields belong to whoever leads now, whichever manager wrote them last.
    pub async fn report_leader(&self, term: &LeaderTerm) -> Result<(), ReportError> {
        let patch = leader_patch(&self.cluster, term);
        let params = PatchParams::apply(LEADER_MANAGER).force();
        self.api
            .patch_status(&self.cluster.name, &params, &Patch::Apply(&patch))
            .await
            .map_err(|source| ReportError::Apply {
                what: "status.leader",
                name: self.cluster.name.clone(),
                source,
            })?;
        Ok(())
    }

    /// Reports this replica until `state.shutdown`, then once more as not ready.
    pub async fn run(self, state: AppState) {
        let leadership = state.coordinator.leadership();
        let shutdown = state.shutdown.clone();
        self.run_with(leadership, || Snapshot::of(&state), shutdown)
            .await;
    }

    /// The reporting loop over any source of snapshots and leadership (tests drive it).
    /// The role reported is the one `leadership` says, whatever the snapshot holds.
    pub async fn run_with<F, Fut>(
        self,
        mut leadership: watch::Receiver<Option<LeaderTerm>>,
        mut snapshot: F,
        shutdown: CancellationToken,
    ) where
        F: FnMut() -> Fut,
        Fut: Future<Output = Snapshot>,
    {
        let mut last: Option<(Snapshot, Instant)> = None;
        let mut leader_reported: Option<i64> = None;
        loop {
            let term = leadership.borrow_and_update().clone();
            let mut now = snapshot().await;
            now.role = role_of(term.as_ref());
            let due = last
                .as_ref()
                .is_none_or(|(previous, at)| *previous != now || at.elapsed() >= REPORT_INTERVAL);
            if due {
                match self.report_member(&now, chrono::Utc::now()).await {
                    Ok(()) => last = Some((now, Instant::now())),
                    Err(e) => {
                        tracing::warn!(error = %DisplayChain(&e), "cannot report this replica's status");
                    }
                }
            }
            match &term {
                Some(term) if leader_reported != Some(term.epoch) => {
                    match self.report_leader(term).await {
                        Ok(()) => leader_reported = Some(term.epoch),
                        Err(e) => {
                            tracing::warn!(error = %DisplayChain(&e), "cannot report leadership")
                        }
                    }
                }
                Some(_) => {}
                None => leader_reported = None,
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = leadership.changed() => {}
                () = tokio::time::sleep(CHANGE_POLL) => {}
            }
        }
        // Draining: say so at once rather than waiting for the operator to notice.
        let mut last_word = snapshot().await;
        last_word.ready = false;
        last_word.role = MemberRole::Follower;
        let farewell = self.report_member(&last_word, chrono::Utc::now());
        if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(2), farewell).await {
            tracing::debug!(error = %DisplayChain(&e), "cannot report draining");
        }
    }
}

fn role_of(term: Option<&LeaderTerm>) -> MemberRole {
    match term {
        Some(_) => MemberRole::Leader,
        None => MemberRole::Follower,
    }
}

/// Starts status reporting when `config.cluster` is set and the in-cluster configuration is
/// there; `None` (off) otherwise.
pub fn start(state: &AppState) -> Option<JoinHandle<()>> {
    let cluster = state.config.cluster.clone()?;
    let client = match in_cluster_client() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %DisplayChain(&e), "cluster identity set but not in Kubernetes: status reporting is off");
            return None;
        }
    };
    tracing::info!(cluster = %cluster.name, pod = %cluster.pod_name, "reporting status to the MediaServerCluster");
    Some(tokio::spawn(
        Reporter::new(client, cluster).run(state.clone()),
    ))
}

fn in_cluster_client() -> Result<kube::Client, ReportError> {
    let config = kube::Config::incluster().map_err(ReportError::Config)?;
    kube::Client::try_from(config).map_err(ReportError::Client)
}

//! `MediaServerCluster.status`: what is running, written by the operator and by each replica.
//!
//! The operator owns the conditions, counts and URL; each replica owns its own entry of
//! `members` (a list keyed by pod name, so server-side apply merges entries of different field
//! managers); the leader owns `leader`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of a MediaServerCluster.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MediaServerClusterStatus {
    /// The `metadata.generation` this status describes, written at the first reconcile of each
    /// generation; until it equals `metadata.generation` the conditions describe an older spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready, Reconciling and Stalled (read by GitOps tools as kstatus defines them), then
    /// DatabaseReady, RedisReady, StorageReady, ReplicasReady, IngressReady, LeaderElected and
    /// Degraded, in the standard `metav1.Condition` shape.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// Server replicas that exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,

    /// Server replicas that are ready to serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,

    /// Label selector of the server pods, for the scale subresource (`kubectl scale`, HPA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,

    /// The replica that holds leadership (runs the scheduler for once-only work).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<LeaderStatus>,

    /// Where clients connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,

    /// One entry per replica, written by the replica itself. Entries of pods that are gone or
    /// whose heartbeat is stale are pruned by the operator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub members: Vec<MemberStatus>,
}

/// The current leader.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LeaderStatus {
    /// Pod name of the leader.
    pub pod: String,
    /// When it took leadership.
    pub since: Time,
    /// Fencing number taken at this acquisition; grows with every new leadership.
    pub epoch: i64,
}

/// One replica's report of itself.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// Pod name (the list key).
    pub name: String,
    /// Whether the replica passes its own readiness check.
    pub ready: bool,
    /// `Leader` or `Follower`.
    pub role: MemberRole,
    /// Last time the replica wrote this entry.
    pub last_heartbeat: Time,
    /// Client sessions active on this replica.
    #[serde(default)]
    pub active_sessions: i32,
    /// Streams and transcodes running on this replica.
    #[serde(default)]
    pub active_transcodes: i32,
    /// Server version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A replica's role.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberRole {
    /// Holds the leadership lease.
    Leader,
    /// Serves requests and runs jobs, schedules nothing.
    Follower,
}

//! Status: observed children → conditions, counts and URL; stale members pruned; events for
//! what a person should know.
//!
//! GitOps tools read three of the conditions the way kstatus defines them, so they are written
//! from the first reconcile of every generation, together with `observedGeneration`, and never
//! left absent: `Ready`, `Reconciling` (True while the operator is still applying, rolling out
//! or waiting: InProgress) and `Stalled` (True while only a person can unblock it: Failed).
//!
//! Computing the status is pure ([`compute`], [`stale_members`], [`events`]); only [`write`],
//! [`prune_members`] and [`publish`] touch the API. The operator writes its fields with
//! server-side apply on the status subresource under its own field manager, so its writes merge
//! with the `members` entries each replica applies under its own manager and with the leader's
//! `status.leader` (and `LeaderElected` condition), which the operator never sends. Nothing is
//! written when the operator's fields are already as computed, so a quiet cluster costs no
//! status write either.
//!
//! Members cannot be removed by server-side apply (the operator does not own them), so stale
//! ones are removed with a JSON patch whose `test` operations make it fail, harmlessly, if the
//! list changed in between.

use std::time::Duration;

use ephyra_crd::conditions::{self, Status, types};
use ephyra_crd::{MediaServerCluster, MediaServerClusterStatus, MemberStatus};
use json_patch::jsonptr::Token;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::apply::Change;
use crate::error::Error;
use crate::names::FIELD_MANAGER;
use crate::patch;
use crate::validate::{Database, InvalidSpec, Redis, ValidatedCluster};

/// Condition types the operator owns (the leader owns `LeaderElected`).
pub const OPERATOR_CONDITIONS: &[&str] = &[
    types::READY,
    types::RECONCILING,
    types::STALLED,
    types::DATABASE_READY,
    types::REDIS_READY,
    types::STORAGE_READY,
    types::REPLICAS_READY,
    types::INGRESS_READY,
    types::DEGRADED,
    types::FIRST_SIGN_IN,
];

/// What was found for a Secret the spec points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretCheck {
    /// The spec does not point at one.
    NotNeeded,
    /// It exists and has the key.
    Found,
    /// It does not exist.
    Missing,
    /// It exists without the key.
    KeyMissing,
}

impl SecretCheck {
    /// The Secret or its key is missing: the replicas cannot start until someone adds it.
    pub fn is_absent(&self) -> bool {
        matches!(self, SecretCheck::Missing | SecretCheck::KeyMissing)
    }
}

/// Whether an object the spec names exists (a claim: it has no keys to check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// The spec does not name one.
    NotNeeded,
    /// It exists.
    Found,
    /// It does not exist.
    Missing,
}

/// What happened to the Traefik route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngressState {
    /// `spec.ingress` is not set.
    NotRequested,
    /// Traefik's CRDs are not installed.
    TraefikNotInstalled,
    /// The IngressRoute and Middleware are applied.
    Applied,
}

/// What happened to the CloudNativePG Cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum CnpgState {
    /// `spec.database.cloudNativePG` is not set.
    NotRequested,
    /// CloudNativePG's CRD is not installed.
    NotInstalled,
    /// The Cluster is applied; as read before this reconcile's write (`None`: just created).
    Applied(Box<Option<DynamicObject>>),
}

/// What the operator observed of the children (before its own writes).
#[derive(Debug, Clone)]
pub struct Observed {
    /// The server StatefulSet.
    pub server: Option<StatefulSet>,
    /// The managed PostgreSQL StatefulSet.
    pub postgres: Option<StatefulSet>,
    /// The managed Redis Deployment.
    pub redis: Option<Deployment>,
    /// The config claim.
    pub config_claim: Option<PersistentVolumeClaim>,
    /// The existing media claim, when the spec names one: whether it exists.
    pub media_claim: Presence,
    /// The external database Secret.
    pub database_secret: SecretCheck,
    /// The external Redis Secret.
    pub redis_secret: SecretCheck,
    /// The person's Secret with the initial administrator's password.
    pub admin_secret: SecretCheck,
    /// The route.
    pub ingress: IngressState,
    /// The CloudNativePG Cluster.
    pub cnpg: CnpgState,
    /// Names of the server pods that exist.
    pub pods: Vec<String>,
    /// Objects (`Kind/name`) this reconcile created, updated or recreated: their effect is not
    /// observed yet, so the cluster is still reconciling.
    pub changed: Vec<String>,
}

/// One condition's verdict: whether it holds, the reason (CamelCase, for machines) and the
/// message (for people).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The condition holds.
    pub ok: bool,
    /// Its `reason`.
    pub reason: &'static str,
    /// Its `message`.
    pub message: String,
}

impl Outcome {
    fn holds(reason: &'static str, message: impl Into<String>) -> Outcome {
        Outcome {
            ok: true,
            reason,
            message: message.into(),
        }
    }

    fn fails(reason: &'static str, message: impl Into<String>) -> Outcome {
        Outcome {
            ok: false,
            reason,
            message: message.into(),
        }
    }
}

/// Writes `outcome` as condition `type_`, keeping its transition time when the status is the
/// same.
fn set(c: &mut Vec<Condition>, type_: &str, outcome: Outcome, generation: Option<i64>, now: &Time) {
    conditions::set(
        c,
        type_,
        Status::from(outcome.ok),
        outcome.reason,
        outcome.message,
        generation,
        now.clone(),
    );
}

/// A Secret holding an external service's URL.
fn secret_condition(
    check: SecretCheck,
    what: &str,
    secret: &ephyra_crd::SecretKeyRef,
    namespace: &str,
) -> Outcome {
    match check {
        SecretCheck::Found | SecretCheck::NotNeeded => Outcome::holds(
            "ExternalSecretFound",
            format!(
                "using the external {what} from Secret {} key {}",
                secret.name, secret.key
            ),
        ),
        SecretCheck::Missing => Outcome::fails(
            "SecretNotFound",
            format!(
                "Secret {} (key {}) with the external {what} URL does not exist in namespace \
                 {namespace}; create it and the replicas will start",
                secret.name, secret.key
            ),
        ),
        SecretCheck::KeyMissing => Outcome::fails(
            "SecretKeyMissing",
            format!(
                "Secret {} has no key {} holding the external {what} URL",
                secret.name, secret.key
            ),
        ),
    }
}

/// The `FirstSignIn` condition: where the initial administrator's password is, or the wizard;
/// False naming the Secret or key that is missing (the replicas cannot start without it).
fn first_sign_in(v: &ValidatedCluster, check: SecretCheck) -> Outcome {
    let where_ = crate::build::admin::where_to_sign_in(v);
    let Some(admin) = &v.initial_admin else {
        return Outcome::holds("Wizard", where_);
    };
    let (secret, key) = v.admin_password_ref().unwrap_or_default();
    let ns = v.names.namespace().as_str();
    match (&admin.password, check) {
        (crate::validate::AdminPassword::Generated, _) => Outcome::holds("GeneratedSecret", where_),
        (_, SecretCheck::Missing) => Outcome::fails(
            "SecretNotFound",
            format!(
                "Secret {secret} (key {key}) with the initial administrator's password does not \
                 exist in namespace {ns}; the replicas start once it does"
            ),
        ),
        (_, SecretCheck::KeyMissing) => Outcome::fails(
            "SecretKeyMissing",
            format!(
                "Secret {secret} has no key {key} holding the initial administrator's password; \
                 the replicas start once it does"
            ),
        ),
        _ => Outcome::holds("ExternalSecret", where_),
    }
}

/// Ready replicas of a workload's status, 0 when it has none yet.
fn ready_replicas(ready: Option<i32>) -> i32 {
    ready.unwrap_or(0)
}

/// `DatabaseReady`: the managed StatefulSet, the external Secret or CloudNativePG's Cluster.
fn database(v: &ValidatedCluster, obs: &Observed) -> Outcome {
    match &v.database {
        Database::Managed(_) => {
            let status = obs.postgres.as_ref().and_then(|s| s.status.as_ref());
            if ready_replicas(status.and_then(|s| s.ready_replicas)) >= 1 {
                Outcome::holds("PostgresReady", "managed PostgreSQL is ready")
            } else {
                Outcome::fails(
                    "PostgresStarting",
                    format!(
                        "waiting for managed PostgreSQL (StatefulSet {}) to become ready",
                        v.names.postgres()
                    ),
                )
            }
        }
        Database::External(secret) => secret_condition(
            obs.database_secret,
            "database",
            secret,
            v.names.namespace().as_str(),
        ),
        Database::CloudNativePg(pg) => cnpg_condition(v, pg.instances, &obs.cnpg),
    }
}

/// `RedisReady`: the managed Deployment or the external Secret.
fn redis(v: &ValidatedCluster, obs: &Observed) -> Outcome {
    match &v.redis {
        Redis::Managed(_) => {
            let status = obs.redis.as_ref().and_then(|d| d.status.as_ref());
            if ready_replicas(status.and_then(|s| s.ready_replicas)) >= 1 {
                Outcome::holds("RedisReady", "managed Redis is ready")
            } else {
                Outcome::fails(
                    "RedisStarting",
                    format!(
                        "waiting for managed Redis (Deployment {}) to become ready",
                        v.names.redis()
                    ),
                )
            }
        }
        Redis::External(secret) => secret_condition(
            obs.redis_secret,
            "Redis",
            secret,
            v.names.namespace().as_str(),
        ),
    }
}

/// `StorageReady`: the media claim the spec names exists and the config claim is bound.
fn storage(v: &ValidatedCluster, obs: &Observed) -> Outcome {
    if obs.media_claim == Presence::Missing {
        let claim = match &v.media {
            crate::validate::MediaVolume::Claim(claim) => claim.as_str(),
            crate::validate::MediaVolume::Nfs { .. } => "",
        };
        return Outcome::fails(
            "MediaClaimNotFound",
            format!(
                "the media claim {claim} does not exist in namespace {}",
                v.names.namespace().as_str()
            ),
        );
    }
    let phase = obs
        .config_claim
        .as_ref()
        .and_then(|pvc| pvc.status.as_ref())
        .and_then(|s| s.phase.as_deref());
    if phase == Some("Bound") {
        Outcome::holds("VolumesBound", "the config volume is bound")
    } else {
        Outcome::fails(
            "ConfigClaimPending",
            format!(
                "the config claim {} is {}; it needs a ReadWriteMany volume",
                v.names.config_claim(),
                phase.unwrap_or("not created yet")
            ),
        )
    }
}

/// `ReplicasReady`: every replica asked for is ready.
fn replicas(v: &ValidatedCluster, ready: i32) -> Outcome {
    let message = format!("{ready} of {} replicas ready", v.replicas);
    if ready >= v.replicas {
        Outcome::holds("AllReplicasReady", message)
    } else {
        Outcome::fails("ReplicasNotReady", message)
    }
}

/// `IngressReady`: the Traefik route, when one is asked for.
fn ingress(v: &ValidatedCluster, state: IngressState) -> Outcome {
    match state {
        IngressState::NotRequested => Outcome::holds(
            "NotRequested",
            format!(
                "spec.ingress is not set; clients inside the cluster use Service {} on port 8096",
                v.names.client_service()
            ),
        ),
        IngressState::TraefikNotInstalled => Outcome::fails(
            "TraefikNotInstalled",
            "the traefik.io/v1alpha1 API (IngressRoute, Middleware) is not served by this \
             cluster: install Traefik v3 with its CRDs; everything else is reconciled",
        ),
        IngressState::Applied => Outcome::holds(
            "RouteApplied",
            format!(
                "IngressRoute {} routes {} with a sticky cookie",
                v.names.ingress_route(),
                v.ingress
                    .as_ref()
                    .map(|i| i.host.as_str())
                    .unwrap_or_default()
            ),
        ),
    }
}

/// `Degraded`: serving with fewer replicas than asked for.
fn degraded(v: &ValidatedCluster, serving: bool, ready: i32) -> Outcome {
    if serving && ready < v.replicas {
        Outcome::holds(
            "ReducedRedundancy",
            format!("serving with {ready} of {} replicas", v.replicas),
        )
    } else if serving {
        Outcome::fails("FullRedundancy", "every replica asked for is serving")
    } else {
        Outcome::fails("NotServing", "not serving yet (see Ready)")
    }
}

/// The status the cluster should have, starting from `current` (so transition times are kept).
pub fn compute(
    v: &ValidatedCluster,
    obs: &Observed,
    current: Option<&MediaServerClusterStatus>,
    now: Time,
) -> MediaServerClusterStatus {
    let mut status = current.cloned().unwrap_or_default();
    let generation = v.generation;
    let c = &mut status.conditions;

    let sts_status = obs.server.as_ref().and_then(|s| s.status.as_ref());
    let ready = ready_replicas(sts_status.and_then(|s| s.ready_replicas));
    let existing = sts_status.map(|s| s.replicas).unwrap_or(0);
    let url = match &v.ingress {
        Some(ingress) => ingress.url(),
        None => format!(
            "http://{}.{}.svc:8096",
            v.names.client_service(),
            v.names.namespace().as_str()
        ),
    };

    // In the order Ready names the first that blocks serving, with the reason it then gives.
    let parts = [
        (types::DATABASE_READY, database(v, obs), "DatabaseNotReady"),
        (types::REDIS_READY, redis(v, obs), "RedisNotReady"),
        (types::STORAGE_READY, storage(v, obs), "StorageNotReady"),
        (
            types::FIRST_SIGN_IN,
            first_sign_in(v, obs.admin_secret),
            "AdminSecretMissing",
        ),
        (types::REPLICAS_READY, replicas(v, ready), "NoReplicaReady"),
        (
            types::INGRESS_READY,
            ingress(v, obs.ingress),
            "IngressNotReady",
        ),
    ];
    let mut blocking = None;
    for (type_, outcome, blocks_as) in parts {
        // One ready replica serves; ReplicasReady asks for all of them.
        let blocks = if type_ == types::REPLICAS_READY {
            ready < 1
        } else {
            !outcome.ok
        };
        if blocks && blocking.is_none() {
            blocking = Some((blocks_as, outcome.message.clone()));
        }
        set(c, type_, outcome, generation, &now);
    }
    let serving = blocking.is_none();
    let ready_outcome = match blocking {
        None => Outcome::holds(
            "Serving",
            format!("{ready} of {} replicas serve {url}", v.replicas),
        ),
        Some((reason, message)) => Outcome::fails(reason, message),
    };
    set(c, types::READY, ready_outcome, generation, &now);
    set(
        c,
        types::DEGRADED,
        degraded(v, serving, ready),
        generation,
        &now,
    );

    progress(c, obs, v.replicas, generation, &now);

    status.observed_generation = generation;
    status.replicas = Some(existing);
    status.ready_replicas = Some(ready);
    status.selector = Some(v.names.server_selector_string());
    status.url = Some(url);
    status
}

/// What CloudNativePG's own status says, read from its Cluster: ready when its `Ready`
/// condition is True, every instance is ready and the current primary is the target one (they
/// differ during a switchover or failover). Otherwise the message carries CloudNativePG's
/// phase, so a Cluster that never becomes ready says why here.
pub fn cnpg_condition(v: &ValidatedCluster, instances: i32, state: &CnpgState) -> Outcome {
    let name = v.names.cnpg();
    let cluster = match state {
        CnpgState::NotRequested => {
            return Outcome::fails("CloudNativePGStarting", String::new());
        }
        CnpgState::NotInstalled => {
            return Outcome::fails(
                "CloudNativePGNotInstalled",
                "the postgresql.cnpg.io/v1 API (Cluster) is not served by this cluster: \
                 install CloudNativePG, or use spec.database.managed; everything else is \
                 reconciled"
                    .to_owned(),
            );
        }
        CnpgState::Applied(cluster) => cluster.as_ref().as_ref(),
    };
    let Some(cluster) = cluster else {
        return Outcome::fails(
            "CloudNativePGStarting",
            format!("the CloudNativePG Cluster {name} was just created"),
        );
    };
    let status = &cluster.data["status"];
    let text = |key: &str| status[key].as_str().unwrap_or_default();
    let ready_condition = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    let ready_instances = status["readyInstances"].as_i64().unwrap_or(0);
    let (current, target) = (text("currentPrimary"), text("targetPrimary"));
    let phase = match text("phase") {
        "" => "no phase reported yet",
        phase => phase,
    };
    if !current.is_empty() && current != target {
        return Outcome::fails(
            "CloudNativePGSwitchingPrimary",
            format!(
                "CloudNativePG Cluster {name} is moving its primary from {current} to \
                 {target}: {phase}"
            ),
        );
    }
    if ready_condition && ready_instances >= i64::from(instances) && !current.is_empty() {
        Outcome::holds(
            "CloudNativePGReady",
            format!(
                "CloudNativePG Cluster {name}: {ready_instances} of {instances} instances \
                 ready, primary {current}"
            ),
        )
    } else {
        Outcome::fails(
            "CloudNativePGNotReady",
            format!(
                "CloudNativePG Cluster {name}: {ready_instances} of {instances} instances \
                 ready; phase: {phase}"
            ),
        )
    }
}

/// Whether the CloudNativePG Cluster is wanted but not ready yet (the operator then looks
/// again soon, as it does not watch Clusters).
pub fn cnpg_waiting(state: &CnpgState) -> bool {
    match state {
        CnpgState::NotRequested => false,
        CnpgState::NotInstalled => true,
        CnpgState::Applied(cluster) => cluster.as_ref().as_ref().is_none_or(|c| {
            !c.data["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        }),
    }
}

/// Reasons of the other conditions that mean only a person can unblock the cluster: any of
/// them, False, makes `Stalled` True. The operator still looks again every 30 s.
pub const STALL_REASONS: &[&str] = &[
    "SecretNotFound",
    "SecretKeyMissing",
    "MediaClaimNotFound",
    "TraefikNotInstalled",
    "CloudNativePGNotInstalled",
];

/// Why the StatefulSet of the server is still rolling out, if it is: its controller has not
/// seen the latest spec, or not every replica runs the latest revision.
fn rolling_out(sts: &StatefulSet, desired: i32) -> Option<String> {
    let status = sts.status.as_ref()?;
    if status.observed_generation < sts.metadata.generation {
        return Some("the server StatefulSet has not picked up its new spec yet".to_owned());
    }
    let revision_differs = status.update_revision.is_some()
        && status.current_revision.is_some()
        && status.current_revision != status.update_revision;
    revision_differs.then(|| {
        format!(
            "{} of {desired} replicas run the current revision",
            status.updated_replicas.unwrap_or(0)
        )
    })
}

/// `Stalled` and `Reconciling`, from the conditions already computed: stalled when a condition
/// says a person must act; otherwise reconciling until Ready is True, what this pass changed
/// has been observed, the rollout is done and every replica asked for is ready.
fn progress(
    c: &mut Vec<Condition>,
    obs: &Observed,
    desired: i32,
    generation: Option<i64>,
    now: &Time,
) {
    let stall = c
        .iter()
        .filter(|cond| cond.type_ != types::READY && cond.status == "False")
        .find(|cond| STALL_REASONS.contains(&cond.reason.as_str()))
        .map(|cond| (cond.reason.clone(), cond.message.clone()));
    if let Some((reason, message)) = stall {
        conditions::set(
            c,
            types::STALLED,
            Status::True,
            &reason,
            message,
            generation,
            now.clone(),
        );
        set(
            c,
            types::RECONCILING,
            Outcome::fails(
                "Stalled",
                "nothing progresses until the cause in Stalled is fixed",
            ),
            generation,
            now,
        );
        return;
    }
    set(
        c,
        types::STALLED,
        Outcome::fails("NotStalled", "nothing needs a person"),
        generation,
        now,
    );
    let ready = obs
        .server
        .as_ref()
        .and_then(|s| s.status.as_ref())
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    let not_ready = conditions::find(c, types::READY)
        .filter(|cond| cond.status != "True")
        .map(|cond| (cond.reason.clone(), cond.message.clone()));
    let waiting = if let Some(why) = not_ready {
        Some(why)
    } else if !obs.changed.is_empty() {
        Some((
            "Applied".to_owned(),
            format!(
                "applied {}; waiting to see the change take effect",
                obs.changed.join(", ")
            ),
        ))
    } else if let Some(why) = obs.server.as_ref().and_then(|s| rolling_out(s, desired)) {
        Some(("RollingOut".to_owned(), why))
    } else if ready < desired {
        Some((
            "WaitingForReplicas".to_owned(),
            format!("{ready} of {desired} replicas ready"),
        ))
    } else {
        None
    };
    match waiting {
        Some((reason, message)) => conditions::set(
            c,
            types::RECONCILING,
            Status::True,
            &reason,
            message,
            generation,
            now.clone(),
        ),
        None => set(
            c,
            types::RECONCILING,
            Outcome::fails(
                "Reconciled",
                format!("all {desired} replicas ready on the current revision"),
            ),
            generation,
            now,
        ),
    }
}

/// The status of a cluster whose spec is invalid: Ready is False with every problem in its
/// message; other conditions keep what they said about the last valid generation.
pub fn invalid(msc: &MediaServerCluster, err: &InvalidSpec, now: Time) -> MediaServerClusterStatus {
    blocked(
        msc,
        "SpecInvalid",
        format!("the spec cannot be reconciled: {err}"),
        now,
    )
}

/// The status of a cluster that cannot be reconciled until a person acts (`reason` is one of
/// [`BLOCKED_REASONS`]): Ready is False and Stalled True with `message`, Reconciling False;
/// other conditions are kept.
pub fn blocked(
    msc: &MediaServerCluster,
    reason: &'static str,
    message: String,
    now: Time,
) -> MediaServerClusterStatus {
    let mut status = msc.status.clone().unwrap_or_default();
    let generation = msc.meta().generation;
    let c = &mut status.conditions;
    set(
        c,
        types::READY,
        Outcome::fails(reason, message.clone()),
        generation,
        &now,
    );
    set(
        c,
        types::STALLED,
        Outcome::holds(reason, message),
        generation,
        &now,
    );
    set(
        c,
        types::RECONCILING,
        Outcome::fails(
            "Stalled",
            "nothing progresses until the cause in Stalled is fixed",
        ),
        generation,
        &now,
    );
    status.observed_generation = generation;
    status
}

/// The status of a cluster whose reconcile failed on something that may pass (the API
/// answered an error): Reconciling True with the error, Stalled False, Ready kept as it was or
/// Unknown when there was none yet, so even a first reconcile that fails leaves a status.
pub fn retrying(msc: &MediaServerCluster, error: &Error, now: Time) -> MediaServerClusterStatus {
    let mut status = msc.status.clone().unwrap_or_default();
    let generation = msc.meta().generation;
    let c = &mut status.conditions;
    if conditions::find(c, types::READY).is_none() {
        conditions::set(
            c,
            types::READY,
            Status::Unknown,
            "Reconciling",
            "the operator has not finished a reconcile of this cluster yet",
            generation,
            now.clone(),
        );
    }
    set(
        c,
        types::RECONCILING,
        Outcome::holds(
            "RetryingAfterError",
            format!("{error}; retrying with backoff"),
        ),
        generation,
        &now,
    );
    set(
        c,
        types::STALLED,
        Outcome::fails("NotStalled", "nothing needs a person"),
        generation,
        &now,
    );
    status.observed_generation = generation;
    status
}

/// Ready reasons that mean "a person must act"; entering one publishes a Warning event.
pub const BLOCKED_REASONS: &[&str] = &[
    "SpecInvalid",
    "NameConflict",
    "PasswordMissing",
    "ObjectRejected",
    "BuildFailed",
];

/// The operator's share of a status: what it applies, and what decides whether to write.
fn operator_part(status: &MediaServerClusterStatus) -> serde_json::Value {
    let mut own: Vec<&Condition> = status
        .conditions
        .iter()
        .filter(|c| OPERATOR_CONDITIONS.contains(&c.type_.as_str()))
        .collect();
    own.sort_by(|a, b| a.type_.cmp(&b.type_));
    json!({
        "observedGeneration": status.observed_generation,
        "conditions": own,
        "replicas": status.replicas,
        "readyReplicas": status.ready_replicas,
        "selector": status.selector,
        "url": status.url,
    })
}

/// Whether the operator's part of the status differs between `current` and `new`.
pub fn differs(current: Option<&MediaServerClusterStatus>, new: &MediaServerClusterStatus) -> bool {
    let current = current.cloned().unwrap_or_default();
    operator_part(&current) != operator_part(new)
}

/// Applies the operator's part of `new` to the status subresource, if it changed. Returns
/// whether it wrote.
pub async fn write(
    client: &kube::Client,
    msc: &MediaServerCluster,
    new: &MediaServerClusterStatus,
) -> Result<bool, Error> {
    if !differs(msc.status.as_ref(), new) {
        return Ok(false);
    }
    let mut part = operator_part(new);
    if let Some(map) = part.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    let body = json!({
        "apiVersion": format!("{}/{}", ephyra_crd::GROUP, ephyra_crd::VERSION),
        "kind": "MediaServerCluster",
        "metadata": {"name": msc.name_any()},
        "status": part,
    });
    let api: Api<MediaServerCluster> =
        Api::namespaced(client.clone(), &msc.namespace().unwrap_or_default());
    api.patch_status(
        &msc.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|source| Error::WriteStatus {
        name: msc.name_any(),
        source,
    })?;
    Ok(true)
}

/// Members whose pod is gone or whose heartbeat is older than `ttl`, with their index.
pub fn stale_members(
    members: &[MemberStatus],
    pods: &[String],
    now: Timestamp,
    ttl: Duration,
) -> Vec<(usize, String)> {
    members
        .iter()
        .enumerate()
        .filter(|(_, m)| {
            let gone = !pods.contains(&m.name);
            let age = now.duration_since(m.last_heartbeat.0);
            let stale = age.as_secs_f64() > ttl.as_secs_f64();
            gone || stale
        })
        .map(|(i, m)| (i, m.name.clone()))
        .collect()
}

/// Removes stale members with a guarded JSON patch. Returns the names removed.
pub async fn prune_members(
    client: &kube::Client,
    msc: &MediaServerCluster,
    pods: &[String],
    now: Timestamp,
    ttl: Duration,
) -> Result<Vec<String>, Error> {
    let members = msc
        .status
        .as_ref()
        .map(|s| s.members.as_slice())
        .unwrap_or_default();
    let stale = stale_members(members, pods, now, ttl);
    if stale.is_empty() {
        return Ok(Vec::new());
    }
    // Highest index first, so earlier removals do not shift later ones.
    let mut ops = Vec::new();
    for (index, name) in stale.iter().rev() {
        let entry = |field: Option<&'static str>| {
            let member = [
                Token::from("status"),
                Token::from("members"),
                Token::from(*index),
            ];
            patch::pointer(member.into_iter().chain(field.map(Token::from)))
        };
        ops.push(patch::test(entry(Some("name")), name.as_str()));
        ops.push(patch::remove(entry(None)));
    }
    let patch = patch::of(ops);
    let api: Api<MediaServerCluster> =
        Api::namespaced(client.clone(), &msc.namespace().unwrap_or_default());
    api.patch_status(
        &msc.name_any(),
        &PatchParams::default(),
        &Patch::Json::<()>(patch),
    )
    .await
    .map_err(|source| Error::WriteStatus {
        name: msc.name_any(),
        source,
    })?;
    Ok(stale.into_iter().map(|(_, name)| name).collect())
}

/// An event to publish: type, reason, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Warning or normal.
    pub warning: bool,
    /// CamelCase reason.
    pub reason: &'static str,
    /// What happened, for a person.
    pub message: String,
}

fn entered(old: &[Condition], new: &[Condition], type_: &str, reasons: &[&str]) -> Option<String> {
    let now = conditions::find(new, type_)?;
    if !reasons.contains(&now.reason.as_str()) {
        return None;
    }
    let before = conditions::find(old, type_);
    let same = before.is_some_and(|b| b.reason == now.reason && b.status == now.status);
    (!same).then(|| now.message.clone())
}

/// Events worth a person's attention, from the change of conditions and what `apply` did.
/// Only transitions produce events, so a quiet reconcile publishes nothing.
pub fn events(
    old: &[Condition],
    new: &[Condition],
    changes: &[(String, Change)],
    pruned: &[String],
) -> Vec<Notice> {
    let mut out = Vec::new();
    if let Some(message) = entered(old, new, types::READY, BLOCKED_REASONS) {
        let reason = conditions::find(new, types::READY)
            .and_then(|c| BLOCKED_REASONS.iter().find(|r| **r == c.reason))
            .copied()
            .unwrap_or("SpecInvalid");
        out.push(Notice {
            warning: true,
            reason,
            message,
        });
    }
    if let Some(message) = entered(
        old,
        new,
        types::FIRST_SIGN_IN,
        &["Wizard", "GeneratedSecret", "ExternalSecret"],
    ) {
        out.push(Notice {
            warning: false,
            reason: "FirstSignIn",
            message,
        });
    }
    for type_ in [
        types::DATABASE_READY,
        types::REDIS_READY,
        types::FIRST_SIGN_IN,
    ] {
        if let Some(message) = entered(old, new, type_, &["SecretNotFound", "SecretKeyMissing"]) {
            out.push(Notice {
                warning: true,
                reason: "DependencyMissing",
                message,
            });
        }
    }
    if let Some(message) = entered(
        old,
        new,
        types::DATABASE_READY,
        &["CloudNativePGNotInstalled"],
    ) {
        out.push(Notice {
            warning: true,
            reason: "CloudNativePGNotInstalled",
            message,
        });
    }
    if let Some(message) = entered(old, new, types::INGRESS_READY, &["TraefikNotInstalled"]) {
        out.push(Notice {
            warning: true,
            reason: "TraefikNotInstalled",
            message,
        });
    }
    if let Some(message) = entered(old, new, types::READY, &["Serving"]) {
        out.push(Notice {
            warning: false,
            reason: "Ready",
            message,
        });
    }
    let list = |wanted: Change| {
        changes
            .iter()
            .filter(|(_, c)| *c == wanted)
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
    };
    for (change, reason, verb) in [
        (Change::Created, "Created", "created"),
        (Change::Updated, "Updated", "updated"),
        (
            Change::Recreated,
            "Recreated",
            "recreated (pods kept) for an immutable field",
        ),
    ] {
        let objects = list(change);
        if !objects.is_empty() {
            out.push(Notice {
                warning: false,
                reason,
                message: format!("{verb}: {}", objects.join(", ")),
            });
        }
    }
    if !pruned.is_empty() {
        out.push(Notice {
            warning: false,
            reason: "Pruned",
            message: format!("deleted, no longer needed: {}", pruned.join(", ")),
        });
    }
    out
}

/// Publishes notices on the cluster. A failure to publish is logged, never fatal.
pub async fn publish(recorder: &Recorder, msc: &MediaServerCluster, notices: &[Notice]) {
    let reference = msc.object_ref(&());
    for notice in notices {
        let mut note = notice.message.clone();
        // The Events API caps notes at 1 kB.
        if note.len() > 1000 {
            let mut end = 1000;
            while !note.is_char_boundary(end) {
                end -= 1;
            }
            note.truncate(end);
        }
        let event = Event {
            type_: if notice.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: notice.reason.to_owned(),
            note: Some(note),
            action: "Reconcile".to_owned(),
            secondary: None,
        };
        if let Err(error) = recorder.publish(&event, &reference).await {
            tracing::warn!(%error, reason = notice.reason, "cannot publish event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::*;
    use crate::testing::Fixture;
    use ephyra_crd::MemberRole;
    use k8s_openapi::api::apps::v1::StatefulSetStatus;
    use k8s_openapi::api::core::v1::PersistentVolumeClaimStatus;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn sts(ready: i32, replicas: i32) -> StatefulSet {
        StatefulSet {
            status: Some(StatefulSetStatus {
                ready_replicas: Some(ready),
                replicas,
                ..StatefulSetStatus::default()
            }),
            ..StatefulSet::default()
        }
    }

    fn healthy() -> Observed {
        Observed {
            server: Some(sts(3, 3)),
            postgres: Some(sts(1, 1)),
            redis: Some(Deployment {
                status: Some(k8s_openapi::api::apps::v1::DeploymentStatus {
                    ready_replicas: Some(1),
                    ..Default::default()
                }),
                ..Deployment::default()
            }),
            config_claim: Some(PersistentVolumeClaim {
                status: Some(PersistentVolumeClaimStatus {
                    phase: Some("Bound".to_owned()),
                    ..Default::default()
                }),
                ..PersistentVolumeClaim::default()
            }),
            media_claim: Presence::NotNeeded,
            database_secret: SecretCheck::NotNeeded,
            redis_secret: SecretCheck::NotNeeded,
            admin_secret: SecretCheck::NotNeeded,
            ingress: IngressState::Applied,
            cnpg: CnpgState::NotRequested,
            pods: vec![],
            changed: vec![],
        }
    }

    fn cond<'a>(s: &'a MediaServerClusterStatus, t: &str) -> &'a Condition {
        conditions::find(&s.conditions, t).unwrap()
    }

    #[test]
    fn a_healthy_cluster_is_ready_and_not_degraded() {
        let s = compute(&default_cluster(), &healthy(), None, at(10));
        let abnormal_true = [types::DEGRADED, types::RECONCILING, types::STALLED];
        for t in OPERATOR_CONDITIONS
            .iter()
            .filter(|t| !abnormal_true.contains(t))
        {
            assert_eq!(cond(&s, t).status, "True", "{t}");
        }
        for t in abnormal_true {
            assert_eq!(cond(&s, t).status, "False", "{t}");
        }
        assert_eq!(s.ready_replicas, Some(3));
        assert_eq!(s.url.as_deref(), Some("https://jelly.test.example"));
        assert_eq!(s.observed_generation, Some(1));
        assert_eq!(
            cond(&s, types::READY).message,
            "3 of 3 replicas serve https://jelly.test.example"
        );
    }

    fn with_admin(secret: Option<ephyra_crd::PasswordSecretRef>) -> ValidatedCluster {
        let mut msc = MediaServerCluster::test();
        msc.spec.server.initial_admin = Some(ephyra_crd::InitialAdminSpec {
            user_name: "household-head".to_owned(),
            password_secret: secret,
        });
        validated(msc)
    }

    #[test]
    fn first_sign_in_says_where_the_credentials_are_with_a_normal_event() {
        let wizard = compute(&default_cluster(), &healthy(), None, at(10));
        let c = cond(&wizard, types::FIRST_SIGN_IN);
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "Wizard"));
        assert!(c.message.contains("first-run wizard"), "{}", c.message);

        let generated = compute(&with_admin(None), &healthy(), None, at(10));
        let c = cond(&generated, types::FIRST_SIGN_IN);
        assert_eq!(c.reason, "GeneratedSecret");
        assert!(
            c.message.contains("household-head")
                && c.message.contains("Secret jelly-admin key password"),
            "{}",
            c.message
        );
        let notices = events(&[], &generated.conditions, &[], &[]);
        let notice = notices
            .iter()
            .find(|n| n.reason == "FirstSignIn")
            .expect("a FirstSignIn event");
        assert!(!notice.warning);
        assert!(
            notice
                .message
                .contains("kubectl -n media-test get secret jelly-admin"),
            "{}",
            notice.message
        );
        // Published once, not on every reconcile.
        assert!(events(&generated.conditions, &generated.conditions, &[], &[]).is_empty());
    }

    #[test]
    fn a_missing_admin_secret_or_key_is_named_and_blocks_ready() {
        let v = with_admin(Some(ephyra_crd::PasswordSecretRef {
            name: "family-vault".to_owned(),
            key: "pw".to_owned(),
        }));
        for (check, reason) in [
            (SecretCheck::Missing, "SecretNotFound"),
            (SecretCheck::KeyMissing, "SecretKeyMissing"),
        ] {
            let mut obs = healthy();
            obs.admin_secret = check;
            let s = compute(&v, &obs, None, at(10));
            let c = cond(&s, types::FIRST_SIGN_IN);
            assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", reason));
            assert!(
                c.message.contains("family-vault") && c.message.contains("pw"),
                "{}",
                c.message
            );
            let ready = cond(&s, types::READY);
            assert_eq!(
                (ready.status.as_str(), ready.reason.as_str()),
                ("False", "AdminSecretMissing")
            );
            let notices = events(&[], &s.conditions, &[], &[]);
            assert!(notices.iter().any(|n| n.warning
                && n.reason == "DependencyMissing"
                && n.message.contains("family-vault")));
        }
        let mut obs = healthy();
        obs.admin_secret = SecretCheck::Found;
        let s = compute(&v, &obs, None, at(10));
        assert_eq!(cond(&s, types::FIRST_SIGN_IN).reason, "ExternalSecret");
        assert_eq!(cond(&s, types::READY).status, "True");
    }

    #[test]
    fn one_replica_down_is_degraded_but_ready() {
        let mut obs = healthy();
        obs.server = Some(sts(2, 3));
        let s = compute(&default_cluster(), &obs, None, at(10));
        assert_eq!(cond(&s, types::READY).status, "True");
        assert_eq!(cond(&s, types::DEGRADED).status, "True");
        assert_eq!(
            cond(&s, types::REPLICAS_READY).message,
            "2 of 3 replicas ready"
        );
    }

    #[test]
    fn a_missing_external_database_secret_says_so() {
        let mut obs = healthy();
        obs.database_secret = SecretCheck::Missing;
        let v = validated(MediaServerCluster::test().external_db());
        let s = compute(&v, &obs, None, at(10));
        let db = cond(&s, types::DATABASE_READY);
        assert_eq!(
            (db.status.as_str(), db.reason.as_str()),
            ("False", "SecretNotFound")
        );
        assert!(
            db.message.contains("Secret ext-db (key uri)"),
            "{}",
            db.message
        );
        let ready = cond(&s, types::READY);
        assert_eq!(ready.reason, "DatabaseNotReady");
        assert_eq!(ready.message, db.message);
    }

    #[test]
    fn transition_times_survive_a_recompute() {
        let first = compute(&default_cluster(), &healthy(), None, at(10));
        let second = compute(&default_cluster(), &healthy(), Some(&first), at(99));
        assert_eq!(first, second);
        assert!(!differs(Some(&first), &second));
    }

    #[test]
    fn leader_fields_and_members_do_not_count_as_operator_changes() {
        let first = compute(&default_cluster(), &healthy(), None, at(10));
        let mut other = first.clone();
        other.members.push(member("jelly-server-0", 10));
        conditions::set(
            &mut other.conditions,
            types::LEADER_ELECTED,
            Status::True,
            "Elected",
            "jelly-server-0",
            Some(1),
            at(10),
        );
        assert!(!differs(Some(&other), &first));
    }

    fn member(name: &str, heartbeat: i64) -> MemberStatus {
        MemberStatus {
            name: name.to_owned(),
            ready: true,
            role: MemberRole::Follower,
            last_heartbeat: at(heartbeat),
            active_sessions: 0,
            active_transcodes: 0,
            version: None,
        }
    }

    #[test]
    fn members_whose_pod_is_gone_or_heartbeat_is_stale_are_pruned() {
        let members = vec![
            member("jelly-server-0", 1000),
            member("jelly-server-1", 100),
            member("jelly-server-9", 1000),
        ];
        let pods = vec!["jelly-server-0".to_owned(), "jelly-server-1".to_owned()];
        let stale = stale_members(
            &members,
            &pods,
            Timestamp::from_second(1030).unwrap(),
            Duration::from_secs(120),
        );
        assert_eq!(
            stale,
            vec![
                (1, "jelly-server-1".to_owned()),
                (2, "jelly-server-9".to_owned())
            ]
        );
    }

    #[test]
    fn events_come_only_from_transitions() {
        let obs = healthy();
        let first = compute(&default_cluster(), &obs, None, at(10));
        let notices = events(&[], &first.conditions, &[], &[]);
        // The first sign-in notice says once where the credentials are (or that the wizard is
        // the way in); Ready once it is reached.
        assert_eq!(
            notices.iter().map(|n| n.reason).collect::<Vec<_>>(),
            vec!["FirstSignIn", "Ready"]
        );
        let second = compute(&default_cluster(), &obs, Some(&first), at(20));
        assert!(events(&first.conditions, &second.conditions, &[], &[]).is_empty());
    }

    fn rolling(updated: i32) -> StatefulSet {
        let mut sts = sts(3, 3);
        sts.metadata.generation = Some(2);
        if let Some(status) = sts.status.as_mut() {
            status.observed_generation = Some(2);
            status.current_revision = Some("jelly-server-1".to_owned());
            status.update_revision = Some("jelly-server-2".to_owned());
            status.updated_replicas = Some(updated);
        }
        sts
    }

    #[test]
    fn a_rollout_keeps_the_cluster_ready_and_reconciling_until_every_replica_is_updated() {
        let mut obs = healthy();
        obs.server = Some(rolling(1));
        let s = compute(&default_cluster(), &obs, None, at(10));
        assert_eq!(cond(&s, types::READY).status, "True");
        let r = cond(&s, types::RECONCILING);
        assert_eq!(
            (r.status.as_str(), r.reason.as_str(), r.message.as_str()),
            (
                "True",
                "RollingOut",
                "1 of 3 replicas run the current revision"
            )
        );
        assert_eq!(cond(&s, types::STALLED).status, "False");

        let mut unseen = rolling(0);
        unseen.metadata.generation = Some(3);
        obs.server = Some(unseen);
        let s = compute(&default_cluster(), &obs, Some(&s), at(20));
        assert!(
            cond(&s, types::RECONCILING)
                .message
                .contains("has not picked up its new spec"),
            "{:?}",
            cond(&s, types::RECONCILING)
        );
    }

    #[test]
    fn objects_written_in_this_pass_keep_the_cluster_reconciling() {
        let mut obs = healthy();
        obs.changed = vec!["ConfigMap/jelly-config".to_owned()];
        let s = compute(&default_cluster(), &obs, None, at(10));
        let r = cond(&s, types::RECONCILING);
        assert_eq!((r.status.as_str(), r.reason.as_str()), ("True", "Applied"));
        assert!(
            r.message.contains("ConfigMap/jelly-config"),
            "{}",
            r.message
        );
    }

    #[test]
    fn a_missing_media_claim_stalls_and_stops_reconciling() {
        let mut obs = healthy();
        obs.media_claim = Presence::Missing;
        let s = compute(&default_cluster(), &obs, None, at(10));
        let stalled = cond(&s, types::STALLED);
        assert_eq!(
            (stalled.status.as_str(), stalled.reason.as_str()),
            ("True", "MediaClaimNotFound")
        );
        assert_eq!(stalled.message, cond(&s, types::STORAGE_READY).message);
        assert_eq!(cond(&s, types::RECONCILING).status, "False");
        assert_eq!(cond(&s, types::READY).status, "False");
    }

    #[test]
    fn a_transient_error_on_a_new_cluster_leaves_ready_unknown_and_reconciling() {
        let msc = MediaServerCluster::test();
        let error = Error::Discovery {
            group: "traefik.io/v1alpha1".to_owned(),
            source: kube::Error::Api(
                kube::core::Status::failure("etcd timeout", "InternalError")
                    .with_code(500)
                    .boxed(),
            ),
        };
        let s = retrying(&msc, &error, at(10));
        assert_eq!(s.observed_generation, Some(1));
        assert_eq!(cond(&s, types::READY).status, "Unknown");
        let r = cond(&s, types::RECONCILING);
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("True", "RetryingAfterError")
        );
        assert_eq!(cond(&s, types::STALLED).status, "False");

        let served = compute(&default_cluster(), &healthy(), None, at(5));
        let mut msc = MediaServerCluster::test();
        msc.status = Some(served);
        let s = retrying(&msc, &error, at(10));
        assert_eq!(
            cond(&s, types::READY).status,
            "True",
            "an API hiccup does not unsay that the cluster serves"
        );
    }
}

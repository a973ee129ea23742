//! The controller: `reconcile` runs the pipeline (validate → build → apply → status) for one
//! MediaServerCluster; `error_policy` decides when to try again; [`run`] drives both from a
//! kube-runtime `Controller` while this replica holds the leader Lease.
//!
//! `reconcile` never builds objects itself and never decides what "changed" means: those are
//! `build` and `apply`. Errors a person must fix (an invalid spec, a name clash) are written to
//! the status first and then returned, and `error_policy` waits long for them; transient ones
//! back off exponentially per object.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ephyra_config::Secret as SecretValue;
use ephyra_crd::MediaServerCluster;
use futures::StreamExt;
use json_patch::jsonptr::Token;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolume, PersistentVolumeClaim, Pod, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{Controller, WatchStreamExt, predicates, reflector, watcher};
use kube::{Client, Resource, ResourceExt};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::json;
use tracing::Instrument;

use crate::apply::{self, Applier, Report};
use crate::build::{self, BuildInputs, Child};
use crate::error::Error;
use crate::metrics::Metrics;
use crate::names::{ClusterName, MANAGED_BY, NAMESPACE_LABEL, Names, Namespace, PV_FINALIZER};
use crate::patch;
use crate::status::{self, CnpgState, IngressState, Observed, Presence, SecretCheck};
use crate::validate::{
    ConfigVolume, Database, MediaVolume, NfsPolicy, Redis, ValidatedCluster, validate,
};

/// Requeue after a success, to notice what no watch reports (an external Secret appearing,
/// stale members).
pub const RESYNC: Duration = Duration::from_secs(300);
/// Requeue while waiting for something a person must create (an external Secret).
pub const WAIT_FOR_DEPENDENCY: Duration = Duration::from_secs(30);
/// Requeue after an error only a person can fix; a spec change triggers a reconcile sooner.
pub const WAIT_FOR_PERSON: Duration = Duration::from_secs(1800);
/// First retry after a transient error; doubles per failure.
pub const BACKOFF_START: Duration = Duration::from_secs(5);
/// Longest retry interval after transient errors.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// What every reconcile shares.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Publishes events on MediaServerClusters.
    pub recorder: Recorder,
    /// Reconcile metrics.
    pub metrics: Arc<Metrics>,
    /// The clock (fixed in tests).
    pub clock: Arc<dyn Fn() -> Timestamp + Send + Sync>,
    /// Members whose heartbeat is older than this are pruned.
    pub member_ttl: Duration,
    /// Consecutive transient failures per cluster (`namespace/name`), for backoff.
    pub failures: Mutex<HashMap<String, u32>>,
    /// The NFS exports this operator may mount (its own configuration).
    pub nfs_policy: NfsPolicy,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("member_ttl", &self.member_ttl)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context with the system clock.
    pub fn new(
        client: Client,
        reporter: Reporter,
        metrics: Arc<Metrics>,
        member_ttl: Duration,
    ) -> Self {
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            clock: Arc::new(Timestamp::now),
            member_ttl,
            failures: Mutex::new(HashMap::new()),
            nfs_policy: NfsPolicy::default(),
        }
    }

    fn now(&self) -> Timestamp {
        (self.clock)()
    }
}

fn object_key(msc: &MediaServerCluster) -> String {
    format!("{}/{}", msc.namespace().unwrap_or_default(), msc.name_any())
}

/// Reconciles one MediaServerCluster, inside a span, counting metrics.
pub async fn reconcile(msc: Arc<MediaServerCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let span = tracing::info_span!(
        "reconcile",
        cluster = %msc.name_any(),
        namespace = %msc.namespace().unwrap_or_default(),
        generation = msc.meta().generation.unwrap_or_default(),
    );
    async move {
        ctx.metrics.reconciles.inc();
        let started = Instant::now();
        let result = reconcile_inner(&msc, &ctx).await;
        ctx.metrics.observe(
            started.elapsed(),
            result.as_ref().err().map(Error::metric_label),
        );
        match &result {
            Ok(action) => {
                if let Ok(mut failures) = ctx.failures.lock() {
                    failures.remove(&object_key(&msc));
                }
                tracing::debug!(?action, "reconciled");
            }
            Err(error) => tracing::warn!(%error, "reconcile failed"),
        }
        result
    }
    .instrument(span)
    .await
}

/// When to try again after `error`: long for errors a person must fix, exponential backoff
/// (5 s doubling to 5 min) for the others. Never an immediate retry, so never a crash loop.
pub fn error_policy(msc: Arc<MediaServerCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    if error.needs_a_person() {
        return Action::requeue(WAIT_FOR_PERSON);
    }
    let failures = ctx
        .failures
        .lock()
        .map(|mut f| {
            let n = f.entry(object_key(&msc)).or_insert(0);
            *n = n.saturating_add(1);
            *n
        })
        .unwrap_or(1);
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    Action::requeue((BACKOFF_START * factor).min(BACKOFF_MAX))
}

async fn reconcile_inner(msc: &MediaServerCluster, ctx: &Context) -> Result<Action, Error> {
    if msc.meta().deletion_timestamp.is_some() {
        return cleanup(msc, ctx).await;
    }
    let now = ctx.now();
    let old_conditions = msc
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();

    let v = match validate(msc).and_then(|v| ctx.nfs_policy.check(&v).map(|()| v)) {
        Ok(v) => v,
        Err(invalid) => {
            tracing::warn!(%invalid, "spec is invalid");
            let new = status::invalid(msc, &invalid, Time(now));
            status::write(&ctx.client, msc, &new).await?;
            let notices = status::events(&old_conditions, &new.conditions, &[], &[]);
            status::publish(&ctx.recorder, msc, &notices).await;
            return Err(Error::InvalidSpec(invalid));
        }
    };
    match reconcile_valid(msc, ctx, &v, &old_conditions, now).await {
        Err(error) if error.needs_a_person() => {
            // Say so on the cluster, where a person looks, not only in the operator's log.
            let reason = error.blocked_reason().unwrap_or("ObjectRejected");
            let new = status::blocked(msc, reason, error.to_string(), Time(now));
            status::write(&ctx.client, msc, &new).await?;
            let notices = status::events(&old_conditions, &new.conditions, &[], &[]);
            status::publish(&ctx.recorder, msc, &notices).await;
            Err(error)
        }
        Err(error) => {
            // GitOps tools wait on the status: say the operator is still at it (and, on a first
            // reconcile, that Ready is not known yet) rather than leave it absent or stale. The
            // reconcile's error is what decides the retry, so a failed write is only logged.
            let new = status::retrying(msc, &error, Time(now));
            if let Err(write_error) = status::write(&ctx.client, msc, &new).await {
                tracing::debug!(%write_error, "cannot record the retry in the status");
            }
            Err(error)
        }
        result => result,
    }
}

/// The pipeline after validation: build, apply, observe, status.
async fn reconcile_valid(
    msc: &MediaServerCluster,
    ctx: &Context,
    v: &ValidatedCluster,
    old_conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    now: Timestamp,
) -> Result<Action, Error> {
    let namespace = v.names.namespace().to_string();
    let applier = Applier::new(
        ctx.client.clone(),
        &namespace,
        v.names.cluster().as_str(),
        &msc.uid().unwrap_or_default(),
    );

    if matches!(v.config_volume, ConfigVolume::Nfs { .. }) {
        add_finalizer(&ctx.client, msc).await?;
    }
    let refs = dereference(&ctx.client, v).await?;
    let kept;
    let v = match &refs.kept_config_volume {
        Some(name) => {
            kept = ValidatedCluster {
                names: v.names.clone().keeping_config_volume(name.clone()),
                ..v.clone()
            };
            &kept
        }
        None => v,
    };

    let children = build::desired(v, &refs.inputs)?;
    let (traefik_children, other_children): (Vec<Child>, Vec<Child>) =
        children.iter().cloned().partition(build::is_traefik);
    let (cnpg_children, core_children): (Vec<Child>, Vec<Child>) =
        other_children.into_iter().partition(build::is_cnpg);

    let mut report = Report::default();
    applier.apply_all(&core_children, &mut report).await?;
    let (core_optional, traefik_optional) = build::optional_objects(v);
    applier
        .prune(&build::unwanted(core_optional, &children), &mut report)
        .await?;

    // Discovered only when the spec asks for it, so other clusters never depend on it.
    let cnpg = if cnpg_children.is_empty() {
        CnpgState::NotRequested
    } else if !refs.cnpg_installed {
        CnpgState::NotInstalled
    } else {
        match applier.apply_all(&cnpg_children, &mut report).await {
            Ok(()) => CnpgState::Applied(Box::new(
                report
                    .observed
                    .get(&apply::key("Cluster", &v.names.cnpg()))
                    .cloned(),
            )),
            Err(e) if apply::is_not_installed(&e) => CnpgState::NotInstalled,
            Err(e) => return Err(e),
        }
    };

    let traefik = refs.traefik_installed;
    let ingress = if v.ingress.is_none() {
        IngressState::NotRequested
    } else if !traefik {
        IngressState::TraefikNotInstalled
    } else {
        match applier.apply_all(&traefik_children, &mut report).await {
            Ok(()) => IngressState::Applied,
            Err(e) if apply::is_not_installed(&e) => IngressState::TraefikNotInstalled,
            Err(e) => return Err(e),
        }
    };
    if traefik {
        applier
            .prune(&build::unwanted(traefik_optional, &children), &mut report)
            .await?;
    }
    for (object, change) in report.written() {
        tracing::info!(%object, ?change, "applied");
    }

    let observed = observe(ctx, v, &refs, &report, ingress, cnpg).await?;
    let new = status::compute(v, &observed, msc.status.as_ref(), Time(now));
    status::write(&ctx.client, msc, &new).await?;
    match status::prune_members(&ctx.client, msc, &observed.pods, now, ctx.member_ttl).await {
        Ok(pruned) if !pruned.is_empty() => tracing::info!(?pruned, "pruned stale members"),
        Ok(_) => {}
        // The list changed under us (a replica wrote); the next reconcile tries again.
        Err(error) => tracing::debug!(%error, "member pruning skipped"),
    }
    let notices = status::events(
        old_conditions,
        &new.conditions,
        &report.changes,
        &report.pruned,
    );
    status::publish(&ctx.recorder, msc, &notices).await;

    let waiting = [
        observed.database_secret,
        observed.redis_secret,
        observed.admin_secret,
    ]
    .iter()
    .any(SecretCheck::is_absent)
        || observed.media_claim == Presence::Missing
        // CloudNativePG's Cluster is not watched (its CRD may be absent): poll it until ready.
        || status::cnpg_waiting(&observed.cnpg);
    Ok(Action::requeue(if waiting {
        WAIT_FOR_DEPENDENCY
    } else {
        RESYNC
    }))
}

/// What one reconcile needs from the API besides the cluster itself, read in one step before
/// anything is built: from here on `build` and `status` work on values, and the API is next
/// read only to see the effect of the writes.
struct Referenced {
    /// The config PersistentVolume name to keep (see [`kept_config_volume`]).
    kept_config_volume: Option<String>,
    /// Passwords kept in the operator's own Secrets, or generated for new ones.
    inputs: BuildInputs,
    /// The external database Secret.
    database_secret: SecretCheck,
    /// The external Redis Secret.
    redis_secret: SecretCheck,
    /// The person's Secret with the initial administrator's password.
    admin_secret: SecretCheck,
    /// The media claim the spec names.
    media_claim: Presence,
    /// CloudNativePG's API is served (asked only when the spec wants a CloudNativePG
    /// database, so other clusters never depend on it).
    cnpg_installed: bool,
    /// Traefik's API is served.
    traefik_installed: bool,
}

async fn dereference(client: &Client, v: &ValidatedCluster) -> Result<Referenced, Error> {
    let ns = v.names.namespace().as_str();
    let kept_config_volume = match v.config_volume {
        ConfigVolume::Nfs { .. } => kept_config_volume(client, v).await?,
        _ => None,
    };
    let database_secret = match &v.database {
        Database::External(r) => secret_check(client, ns, r).await?,
        Database::Managed(_) | Database::CloudNativePg(_) => SecretCheck::NotNeeded,
    };
    let redis_secret = match &v.redis {
        Redis::External(r) => secret_check(client, ns, r).await?,
        Redis::Managed(_) => SecretCheck::NotNeeded,
    };
    let admin_secret = match (&v.initial_admin, v.admin_password_ref()) {
        (Some(admin), Some((name, key)))
            if admin.password != crate::validate::AdminPassword::Generated =>
        {
            secret_check(client, ns, &ephyra_crd::SecretKeyRef { name, key }).await?
        }
        _ => SecretCheck::NotNeeded,
    };
    let media_claim = match &v.media {
        MediaVolume::Claim(claim) => {
            let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
            match api
                .get_opt(claim)
                .await
                .map_err(|source| Error::GetObject {
                    kind: "PersistentVolumeClaim".to_owned(),
                    name: claim.clone(),
                    source,
                })? {
                Some(_) => Presence::Found,
                None => Presence::Missing,
            }
        }
        MediaVolume::Nfs { .. } => Presence::NotNeeded,
    };
    let cnpg_installed = match v.database {
        Database::CloudNativePg(_) => apply::cnpg_installed(client).await?,
        _ => false,
    };
    Ok(Referenced {
        kept_config_volume,
        inputs: BuildInputs {
            postgres_password: postgres_password(client, v).await?,
            admin_password: admin_password(client, v).await?,
            redis_password: redis_password(client, v).await?,
        },
        database_secret,
        redis_secret,
        admin_secret,
        media_claim,
        cnpg_installed,
        traefik_installed: apply::traefik_installed(client).await?,
    })
}

/// The config PersistentVolume name to keep: the pre-hash one when the existing claim is
/// already bound to it (a claim's `volumeName` is immutable), otherwise `None`.
async fn kept_config_volume(
    client: &Client,
    v: &ValidatedCluster,
) -> Result<Option<String>, Error> {
    let name = v.names.config_claim();
    let api: Api<PersistentVolumeClaim> =
        Api::namespaced(client.clone(), v.names.namespace().as_str());
    let claim = api
        .get_opt(&name)
        .await
        .map_err(|source| Error::GetObject {
            kind: "PersistentVolumeClaim".to_owned(),
            name,
            source,
        })?;
    let legacy = v.names.legacy_config_volume();
    Ok(claim
        .and_then(|c| c.spec.and_then(|s| s.volume_name))
        .filter(|bound| *bound == legacy))
}

/// The managed PostgreSQL password: the existing Secret's, or a new one when there is none.
async fn postgres_password(client: &Client, v: &ValidatedCluster) -> Result<SecretValue, Error> {
    if !matches!(v.database, Database::Managed(_)) {
        // Not used: no Secret is built for an external database.
        return Ok(SecretValue::new(String::new()));
    }
    let name = v.names.postgres();
    match stored_password(client, v, &name, build::postgres::PASSWORD_KEY).await? {
        (false, _) => Ok(generate_password()),
        (true, kept) => kept.map(SecretValue::new).ok_or(Error::PasswordMissing {
            name,
            advice: "restore it (the database was initialised with that password) or \
                         delete the Secret and the database claim to start afresh",
        }),
    }
}

/// The generated initial-administrator password: the existing `<cluster>-admin` Secret's, or
/// a new one when there is none (like [`postgres_password`]).
async fn admin_password(client: &Client, v: &ValidatedCluster) -> Result<SecretValue, Error> {
    let generated = v
        .initial_admin
        .as_ref()
        .is_some_and(|a| a.password == crate::validate::AdminPassword::Generated);
    if !generated {
        // Not used: no Secret is built.
        return Ok(SecretValue::new(String::new()));
    }
    let name = v.names.admin();
    match stored_password(client, v, &name, build::admin::PASSWORD_KEY).await? {
        (false, _) => Ok(generate_password()),
        (true, kept) => kept.map(SecretValue::new).ok_or(Error::PasswordMissing {
            name,
            advice: "restore it, or delete the Secret to have a new password generated \
                         (the server creates the administrator only in an empty database, so \
                         a new password applies only to a new database)",
        }),
    }
}

/// The managed Redis password: the existing `<cluster>-redis` Secret's, or a new one when the
/// Secret or its key is gone (an operator before passwords, or a Secret deleted by hand). Unlike
/// PostgreSQL's, a new password loses nothing: Redis keeps no data, and the password's hash on
/// the pod templates restarts Redis and the replicas onto the new one.
async fn redis_password(client: &Client, v: &ValidatedCluster) -> Result<SecretValue, Error> {
    if !matches!(v.redis, Redis::Managed(_)) {
        // Not used: no Secret is built for an external Redis.
        return Ok(SecretValue::new(String::new()));
    }
    let name = v.names.redis();
    let (exists, kept) = stored_password(client, v, &name, build::redis::PASSWORD_KEY).await?;
    Ok(match kept {
        Some(password) => SecretValue::new(password),
        None => {
            if exists {
                tracing::info!(secret = %name, "the Redis Secret has no password: generating one");
            } else {
                tracing::info!(secret = %name, "no Redis Secret: generating a password");
            }
            generate_password()
        }
    })
}

/// Whether Secret `name` exists, and its non-empty UTF-8 value under `key`.
async fn stored_password(
    client: &Client,
    v: &ValidatedCluster,
    name: &str,
    key: &str,
) -> Result<(bool, Option<String>), Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), v.names.namespace().as_str());
    let existing = api.get_opt(name).await.map_err(|source| Error::GetObject {
        kind: "Secret".to_owned(),
        name: name.to_owned(),
        source,
    })?;
    let kept = existing
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .and_then(|d| d.get(key))
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .filter(|p| !p.is_empty());
    Ok((existing.is_some(), kept))
}

/// 32 random alphanumeric characters (~190 bits).
fn generate_password() -> SecretValue {
    let password: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    SecretValue::new(password)
}

async fn secret_check(
    client: &Client,
    namespace: &str,
    r: &ephyra_crd::SecretKeyRef,
) -> Result<SecretCheck, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = api
        .get_opt(&r.name)
        .await
        .map_err(|source| Error::GetObject {
            kind: "Secret".to_owned(),
            name: r.name.clone(),
            source,
        })?;
    Ok(match secret {
        None => SecretCheck::Missing,
        Some(s) => {
            let in_data = s.data.as_ref().is_some_and(|d| d.contains_key(&r.key));
            let in_string_data = s
                .string_data
                .as_ref()
                .is_some_and(|d| d.contains_key(&r.key));
            if in_data || in_string_data {
                SecretCheck::Found
            } else {
                SecretCheck::KeyMissing
            }
        }
    })
}

fn typed<K: Resource + serde::de::DeserializeOwned>(
    report: &Report,
    kind: &str,
    name: &str,
) -> Option<K> {
    report
        .observed
        .get(&apply::key(kind, name))
        .and_then(|o| o.clone().try_parse::<K>().ok())
}

/// Reads what the status needs beyond the objects `apply` already read.
/// What the writes did: the children as the apply saw them and the server pods that exist,
/// with what [`dereference`] read before.
async fn observe(
    ctx: &Context,
    v: &ValidatedCluster,
    refs: &Referenced,
    report: &Report,
    ingress: IngressState,
    cnpg: CnpgState,
) -> Result<Observed, Error> {
    let ns = v.names.namespace().as_str();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let selector = v.names.server_selector_string();
    let pods = pods
        .list_metadata(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| Error::GetObject {
            kind: "Pod".to_owned(),
            name: selector.clone(),
            source,
        })?
        .items
        .into_iter()
        .map(|p| p.name_any())
        .collect();
    Ok(Observed {
        server: typed(report, "StatefulSet", &v.names.server()),
        postgres: typed(report, "StatefulSet", &v.names.postgres()),
        redis: typed(report, "Deployment", &v.names.redis()),
        config_claim: typed(report, "PersistentVolumeClaim", &v.names.config_claim()),
        media_claim: refs.media_claim,
        database_secret: refs.database_secret,
        redis_secret: refs.redis_secret,
        admin_secret: refs.admin_secret,
        ingress,
        cnpg,
        pods,
        changed: report.written().map(|(key, _)| key.clone()).collect(),
    })
}

/// Adds [`PV_FINALIZER`] unless present. The JSON patch is guarded by the resource version, so
/// it never overwrites another controller's finalizer.
async fn add_finalizer(client: &Client, msc: &MediaServerCluster) -> Result<(), Error> {
    if msc.finalizers().iter().any(|f| f == PV_FINALIZER) {
        return Ok(());
    }
    let finalizers = || [Token::from("metadata"), Token::from("finalizers")];
    let ops = if msc.finalizers().is_empty() {
        vec![
            patch::test(
                patch::pointer([Token::from("metadata"), Token::from("resourceVersion")]),
                msc.resource_version(),
            ),
            patch::add(patch::pointer(finalizers()), json!([PV_FINALIZER])),
        ]
    } else {
        let end = finalizers().into_iter().chain([Token::from("-")]);
        vec![patch::add(patch::pointer(end), PV_FINALIZER)]
    };
    patch_finalizers(client, msc, ops).await
}

async fn patch_finalizers(
    client: &Client,
    msc: &MediaServerCluster,
    ops: Vec<json_patch::PatchOperation>,
) -> Result<(), Error> {
    let patch = patch::of(ops);
    let api: Api<MediaServerCluster> =
        Api::namespaced(client.clone(), &msc.namespace().unwrap_or_default());
    api.patch(
        &msc.name_any(),
        &PatchParams::default(),
        &Patch::Json::<()>(patch),
    )
    .await
    .map_err(|source| Error::Finalizer {
        name: msc.name_any(),
        source,
    })?;
    Ok(())
}

/// A cluster is being deleted: remove its NFS PersistentVolume (owner references cannot), then
/// the finalizer. Namespaced children go with the garbage collector.
async fn cleanup(msc: &MediaServerCluster, ctx: &Context) -> Result<Action, Error> {
    let Some(index) = msc.finalizers().iter().position(|f| f == PV_FINALIZER) else {
        return Ok(Action::await_change());
    };
    let namespace = msc.namespace().unwrap_or_default();
    if let Ok(cluster) = ClusterName::parse(&msc.name_any()) {
        let names = Names::new(cluster, Namespace::new(namespace.clone()));
        // The current name, and the one an earlier operator version gave it.
        for pv_name in [names.config_volume(), names.legacy_config_volume()] {
            delete_config_volume(ctx, &names, &pv_name).await?;
        }
    }
    patch_finalizers(&ctx.client, msc, {
        let entry = || {
            patch::pointer([
                Token::from("metadata"),
                Token::from("finalizers"),
                Token::from(index),
            ])
        };
        vec![patch::test(entry(), PV_FINALIZER), patch::remove(entry())]
    })
    .await?;
    Ok(Action::await_change())
}

/// Deletes the PersistentVolume `pv_name` if its labels say it is this cluster's.
async fn delete_config_volume(ctx: &Context, names: &Names, pv_name: &str) -> Result<(), Error> {
    let namespace = names.namespace().to_string();
    {
        let api: Api<PersistentVolume> = Api::all(ctx.client.clone());
        let pv = api
            .get_opt(pv_name)
            .await
            .map_err(|source| Error::GetObject {
                kind: "PersistentVolume".to_owned(),
                name: pv_name.to_owned(),
                source,
            })?;
        let ours = pv.as_ref().is_some_and(|pv| {
            let labels = pv.labels();
            labels.get("app.kubernetes.io/instance").map(String::as_str)
                == Some(names.cluster().as_str())
                && labels.get(NAMESPACE_LABEL) == Some(&namespace)
        });
        if ours {
            api.delete(pv_name, &Default::default())
                .await
                .map_err(|source| Error::DeleteObject {
                    kind: "PersistentVolume".to_owned(),
                    name: pv_name.to_owned(),
                    source,
                })?;
            tracing::info!(pv = %pv_name, "deleted the config PersistentVolume (NFS data is kept)");
        }
    }
    Ok(())
}

/// Settings of [`run`].
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Namespace of the leader Lease (the operator's own).
    pub lease_namespace: String,
    /// Name of the leader Lease.
    pub lease_name: String,
    /// This replica's identity in the Lease (its pod name).
    pub identity: String,
    /// Lease duration in seconds.
    pub lease_seconds: u64,
    /// Members whose heartbeat is older than this are pruned.
    pub member_ttl: Duration,
    /// The NFS exports clusters may mount.
    pub nfs_policy: NfsPolicy,
    /// Namespaces to watch; empty: every namespace (the cluster-wide install). With a list, the
    /// operator needs Roles in those namespaces only (deploy/namespaced/), plus
    /// PersistentVolume rights if clusters put their config volume on NFS.
    pub namespaces: Vec<String>,
}

/// Why [`run`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The leader Lease could not be set up.
    #[error("cannot set up leader election: {0}")]
    Lease(#[from] kube_lease_manager::LeaseManagerError),
    /// The leader-election task stopped unexpectedly.
    #[error("leader election stopped unexpectedly")]
    LeaseLost,
}

/// Runs the controller while this replica holds the leader Lease, until `shutdown` completes.
/// `ready` turns true once the Lease is set up (the API is reachable) and false on shutdown.
pub async fn run(
    client: Client,
    config: RunConfig,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    let manager = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &config.lease_name)
        .with_namespace(&config.lease_namespace)
        .with_identity(&config.identity)
        .with_duration(config.lease_seconds)
        .with_grace(config.lease_seconds.div_ceil(3).max(1))
        .build()
        .await?;
    let (mut leader, lease_task) = manager.watch().await;
    ready.store(true, Ordering::Relaxed);
    tracing::info!(identity = %config.identity, lease = %config.lease_name, "waiting for leadership");

    let reporter = Reporter {
        controller: MANAGED_BY.to_owned(),
        instance: Some(config.identity.clone()),
    };
    let mut ctx = Context::new(client.clone(), reporter, metrics.clone(), config.member_ttl);
    ctx.nfs_policy = config.nfs_policy.clone();
    let ctx = Arc::new(ctx);

    let mut stop = stop_rx.clone();
    let result = loop {
        if *stop.borrow() {
            break Ok(());
        }
        // Wait to lead, or to stop.
        tokio::select! {
            _ = stop.changed() => continue,
            changed = leader.wait_for(|is_leader| *is_leader) => {
                if changed.is_err() {
                    break Err(RunError::LeaseLost);
                }
            }
        }
        tracing::info!("leading: starting the controller");
        metrics.leader.set(1);
        let mut lost = leader.clone();
        let mut stop_inner = stop_rx.clone();
        let until = async move {
            tokio::select! {
                _ = lost.wait_for(|is_leader| !*is_leader) => {
                    tracing::warn!("lost leadership: stopping the controller");
                }
                _ = stop_inner.wait_for(|stop| *stop) => {
                    tracing::info!("shutting down the controller");
                }
            }
        };
        if config.namespaces.is_empty() {
            controller(client.clone(), ctx.clone(), None, until).await;
        } else {
            // One controller per namespace: a reflector store holds one watch's objects, and
            // merged watches would clear each other's objects on a re-list.
            let until = futures::FutureExt::shared(Box::pin(until));
            futures::future::join_all(config.namespaces.iter().map(|namespace| {
                controller(
                    client.clone(),
                    ctx.clone(),
                    Some(namespace.as_str()),
                    until.clone(),
                )
            }))
            .await;
        }
        metrics.leader.set(0);
    };
    ready.store(false, Ordering::Relaxed);
    // Closing the channel makes the lease task release the Lease, so the other replica takes
    // over at once instead of waiting for it to expire.
    drop(leader);
    match lease_task.await {
        Ok(Ok(_)) => tracing::info!("leader Lease released"),
        Ok(Err(error)) => tracing::warn!(%error, "could not release the leader Lease"),
        Err(error) => tracing::warn!(%error, "leader-election task failed"),
    }
    result
}

/// An API over every namespace, or over one.
fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// The kube-runtime Controller over MediaServerClusters (of every namespace, or of one),
/// owning everything the operator creates, until `until` completes (then in-flight reconciles
/// finish).
async fn controller(
    client: Client,
    ctx: Arc<Context>,
    namespace: Option<&str>,
    until: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let clusters: Api<MediaServerCluster> = scoped(&client, namespace);
    let (reader, writer) = reflector::store();
    // Status-only updates (replica heartbeats) do not bump the generation: the predicate keeps
    // them from triggering reconciles. Deletion does bump it, so cleanup still runs.
    let trigger = watcher(clusters, watcher::Config::default().any_semantic())
        .default_backoff()
        .reflect(writer)
        .touched_objects()
        .predicate_filter(predicates::generation, Default::default());
    let owned =
        || watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGED_BY}"));
    Controller::for_stream(trigger, reader)
        .owns(scoped::<StatefulSet>(&client, namespace), owned())
        .owns(scoped::<Deployment>(&client, namespace), owned())
        .owns(scoped::<Service>(&client, namespace), owned())
        .owns(scoped::<ConfigMap>(&client, namespace), owned())
        .owns(scoped::<Secret>(&client, namespace), owned())
        .owns(scoped::<PersistentVolumeClaim>(&client, namespace), owned())
        .owns(scoped::<PodDisruptionBudget>(&client, namespace), owned())
        .owns(scoped::<NetworkPolicy>(&client, namespace), owned())
        .owns(scoped::<ServiceAccount>(&client, namespace), owned())
        .owns(scoped::<Role>(&client, namespace), owned())
        .owns(scoped::<RoleBinding>(&client, namespace), owned())
        .graceful_shutdown_on(until)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "controller event");
            }
        })
        .await;
}

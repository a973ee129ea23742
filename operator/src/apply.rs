//! Apply: write the desired objects with server-side apply, one field manager
//! (`ephyra-operator`), forced, and write nothing when nothing changed.
//!
//! # How "unchanged" is decided
//!
//! Every desired object carries [`APPLIED_HASH`]: a hash of the object as built, computed
//! before the annotation is added (see `build::Child`). Before writing, `apply` reads the live
//! object; when its annotation equals the desired hash, the last apply already sent exactly
//! this content and the object is skipped. Otherwise it is applied, which also stores the new
//! hash. So a reconcile of an unchanged cluster sends only reads, and a spec change writes only
//! the objects whose built form changed.
//!
//! Why a hash and not a field-by-field comparison with the live object: the API server adds
//! defaults (`imagePullPolicy`, `terminationMessagePath`, `volumeMode`, ...), normalises
//! quantities (`1000m` → `1`) and other controllers add fields, so a naive comparison sees
//! differences that are not there and writes on every reconcile; doing it right means
//! re-implementing the server's defaulting. Comparing managed fields has the same problem
//! (values are not in them). The hash compares what the operator *means*, which is exactly
//! what decides whether an apply is needed.
//!
//! The price: a field the operator owns that someone else changes by hand keeps the same hash
//! annotation, so it is not put back until the spec (or the operator's builders) change.
//! Server-side apply makes such edits visible (`managedFields` names the other manager), and
//! deleting the object or the annotation makes the next reconcile restore it.
//!
//! # Immutable fields
//!
//! A StatefulSet's `volumeClaimTemplates` cannot be changed. When they must (a new transcode
//! size), the StatefulSet is deleted with `propagationPolicy: Orphan` (its pods keep serving)
//! and applied again; the new StatefulSet adopts the running pods. Existing claims keep their
//! size; new replicas get the new one.
//!
//! # Pruning
//!
//! Objects that a spec change makes unnecessary (managed PostgreSQL → external, no ingress,
//! no PodDisruptionBudget) are deleted when they are controlled by this cluster. The managed
//! PostgreSQL Secret is never pruned: its password still opens the retained database volume.

use std::collections::BTreeMap;

use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::Value;

use crate::build::Child;
use crate::build::ingress_route::{TRAEFIK_GROUP, TRAEFIK_VERSION};
use crate::error::Error;
use crate::names::{APPLIED_HASH, FIELD_MANAGER, NAMESPACE_LABEL};

/// What applying one object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Already as desired: nothing was sent.
    Unchanged,
    /// It did not exist and was created.
    Created,
    /// It was patched.
    Updated,
    /// It was deleted (orphaning its pods) and created again, for an immutable field.
    Recreated,
}

/// What one apply pass did and saw.
#[derive(Debug, Default)]
pub struct Report {
    /// Each applied object (`Kind/name`) and what happened to it.
    pub changes: Vec<(String, Change)>,
    /// Objects deleted because the spec no longer needs them (`Kind/name`).
    pub pruned: Vec<String>,
    /// The objects as read before applying, by `Kind/name` (their status is the observed
    /// state; objects created in this pass are absent).
    pub observed: BTreeMap<String, DynamicObject>,
}

impl Report {
    /// Objects that were created, updated or recreated.
    pub fn written(&self) -> impl Iterator<Item = &(String, Change)> {
        self.changes.iter().filter(|(_, c)| *c != Change::Unchanged)
    }
}

/// Writes the desired objects of one cluster.
#[derive(Clone)]
pub struct Applier {
    client: Client,
    namespace: String,
    owner_uid: String,
    cluster: String,
}

impl std::fmt::Debug for Applier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier")
            .field("namespace", &self.namespace)
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

/// `Kind/name`, the key of an object in reports.
pub fn key(kind: &str, name: &str) -> String {
    format!("{kind}/{name}")
}

impl Applier {
    /// An applier for cluster `cluster` (uid `owner_uid`) in `namespace`.
    pub fn new(client: Client, namespace: &str, cluster: &str, owner_uid: &str) -> Self {
        Applier {
            client,
            namespace: namespace.to_owned(),
            owner_uid: owner_uid.to_owned(),
            cluster: cluster.to_owned(),
        }
    }

    fn api(&self, resource: &ApiResource, cluster_scoped: bool) -> Api<DynamicObject> {
        if cluster_scoped {
            Api::all_with(self.client.clone(), resource)
        } else {
            Api::namespaced_with(self.client.clone(), &self.namespace, resource)
        }
    }

    /// Reads one object; `None` when it does not exist.
    pub async fn get(
        &self,
        resource: &ApiResource,
        cluster_scoped: bool,
        name: &str,
    ) -> Result<Option<DynamicObject>, Error> {
        self.api(resource, cluster_scoped)
            .get_opt(name)
            .await
            .map_err(|source| Error::GetObject {
                kind: resource.kind.clone(),
                name: name.to_owned(),
                source,
            })
    }

    /// Whether the live object is this cluster's to manage.
    fn check_owner(&self, child: &Child, observed: &DynamicObject) -> Result<(), Error> {
        let foreign = if child.cluster_scoped {
            let labels = observed.labels();
            labels.get("app.kubernetes.io/instance") != Some(&self.cluster)
                || labels.get(NAMESPACE_LABEL) != Some(&self.namespace)
        } else {
            observed
                .owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && o.uid != self.owner_uid)
        };
        if foreign {
            return Err(Error::NotOwned {
                kind: child.kind().to_owned(),
                name: child.name(),
            });
        }
        Ok(())
    }

    /// Applies one object unless the live one already carries its hash.
    pub async fn apply(&self, child: &Child) -> Result<(Change, Option<DynamicObject>), Error> {
        let name = child.name();
        let api = self.api(&child.resource, child.cluster_scoped);
        let observed = self
            .get(&child.resource, child.cluster_scoped, &name)
            .await?;
        let mut change = Change::Created;
        if let Some(live) = &observed {
            self.check_owner(child, live)?;
            if live.annotations().get(APPLIED_HASH).map(String::as_str) == child.hash() {
                return Ok((Change::Unchanged, observed));
            }
            change = Change::Updated;
            if child.kind() == "StatefulSet"
                && claim_templates(&live.data) != claim_templates(&child.object.data)
            {
                tracing::info!(kind = "StatefulSet", %name, "volumeClaimTemplates changed: recreating, pods are kept");
                api.delete(&name, &DeleteParams::orphan())
                    .await
                    .map_err(|source| Error::DeleteObject {
                        kind: child.kind().to_owned(),
                        name: name.clone(),
                        source,
                    })?;
                change = Change::Recreated;
            }
        }
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&child.object),
        )
        .await
        .map_err(|source| Error::ApplyObject {
            kind: child.kind().to_owned(),
            name: name.clone(),
            source,
        })?;
        tracing::debug!(kind = child.kind(), %name, ?change, "applied");
        Ok((change, observed))
    }

    /// Applies every child in order, collecting what happened.
    pub async fn apply_all(&self, children: &[Child], report: &mut Report) -> Result<(), Error> {
        for child in children {
            let (change, observed) = self.apply(child).await?;
            let key = key(child.kind(), &child.name());
            if let Some(live) = observed {
                report.observed.insert(key.clone(), live);
            }
            report.changes.push((key, change));
        }
        Ok(())
    }

    /// Deletes each of `candidates` that exists and is controlled by this cluster.
    pub async fn prune(
        &self,
        candidates: &[(ApiResource, String)],
        report: &mut Report,
    ) -> Result<(), Error> {
        for (resource, name) in candidates {
            let Some(live) = self.get(resource, false, name).await? else {
                continue;
            };
            let ours = live
                .owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && o.uid == self.owner_uid);
            if !ours {
                continue;
            }
            self.api(resource, false)
                .delete(name, &DeleteParams::background())
                .await
                .map_err(|source| Error::DeleteObject {
                    kind: resource.kind.clone(),
                    name: name.clone(),
                    source,
                })?;
            tracing::info!(kind = %resource.kind, %name, "pruned: the spec no longer needs it");
            report.pruned.push(key(&resource.kind, name));
        }
        Ok(())
    }
}

/// The parts of `volumeClaimTemplates` a person sets (the API server adds defaults and a
/// status to the rest, which must not count as a change).
fn claim_templates(data: &Value) -> Vec<(Value, Value, Value, Value)> {
    data["spec"]["volumeClaimTemplates"]
        .as_array()
        .map(|templates| {
            templates
                .iter()
                .map(|t| {
                    (
                        t["metadata"]["name"].clone(),
                        t["spec"]["storageClassName"].clone(),
                        t["spec"]["accessModes"].clone(),
                        t["spec"]["resources"]["requests"]["storage"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether Traefik's `traefik.io/v1alpha1` API serves IngressRoutes and Middlewares.
pub async fn traefik_installed(client: &Client) -> Result<bool, Error> {
    let group_version = format!("{TRAEFIK_GROUP}/{TRAEFIK_VERSION}");
    match client.list_api_group_resources(&group_version).await {
        Ok(list) => {
            let served = |plural: &str| list.resources.iter().any(|r| r.name == plural);
            Ok(served("ingressroutes") && served("middlewares"))
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(source) => Err(Error::Discovery {
            group: group_version,
            source,
        }),
    }
}

/// Whether CloudNativePG's `postgresql.cnpg.io/v1` API serves Clusters (discovered at each
/// reconcile that wants one, like Traefik: installing CloudNativePG later needs no restart).
pub async fn cnpg_installed(client: &Client) -> Result<bool, Error> {
    use crate::build::cnpg::{CNPG_GROUP, CNPG_VERSION};
    let group_version = format!("{CNPG_GROUP}/{CNPG_VERSION}");
    match client.list_api_group_resources(&group_version).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == "clusters")),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(source) => Err(Error::Discovery {
            group: group_version,
            source,
        }),
    }
}

/// Whether an error from applying a Traefik (or CloudNativePG) object means its CRD is not
/// installed.
pub fn is_not_installed(err: &Error) -> bool {
    matches!(
        err,
        Error::ApplyObject { source: kube::Error::Api(status), .. }
            | Error::GetObject { source: kube::Error::Api(status), .. }
            if status.code == 404
    )
}

//! Condition types and a setter that follows `metav1.Condition` rules: one entry per type,
//! `lastTransitionTime` changes only when the status changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition types of a MediaServerCluster.
pub mod types {
    /// The cluster serves clients.
    pub const READY: &str = "Ready";
    /// The operator is still working towards this generation: applying, rolling out, waiting
    /// for replicas or dependencies to become ready. kstatus (Flux) reads True as InProgress.
    pub const RECONCILING: &str = "Reconciling";
    /// The operator cannot progress until a person acts: an invalid spec, a missing Secret or
    /// claim, Traefik not installed, a name clash. kstatus (Flux) reads True as Failed.
    pub const STALLED: &str = "Stalled";
    /// PostgreSQL is reachable (managed: its StatefulSet is ready; external: its Secret exists).
    pub const DATABASE_READY: &str = "DatabaseReady";
    /// Redis is reachable.
    pub const REDIS_READY: &str = "RedisReady";
    /// Config and transcode volumes are bound.
    pub const STORAGE_READY: &str = "StorageReady";
    /// All server replicas are ready.
    pub const REPLICAS_READY: &str = "ReplicasReady";
    /// The Traefik route is in place.
    pub const INGRESS_READY: &str = "IngressReady";
    /// A replica holds leadership.
    pub const LEADER_ELECTED: &str = "LeaderElected";
    /// Serving, but with less redundancy than asked for.
    pub const DEGRADED: &str = "Degraded";
    /// How the first person signs in: the initial administrator's Secret, or the first-run
    /// wizard; False when the Secret the spec names is missing.
    pub const FIRST_SIGN_IN: &str = "FirstSignIn";
}

/// `True`, `False` or `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The condition holds.
    True,
    /// It does not.
    False,
    /// It cannot be told yet.
    Unknown,
}

impl Status {
    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

impl From<bool> for Status {
    fn from(value: bool) -> Self {
        if value { Status::True } else { Status::False }
    }
}

/// Sets condition `type_` in `conditions`, keeping `lastTransitionTime` when the status did
/// not change. `reason` must be CamelCase.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: Status,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: Time,
) {
    let message = message.into();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            if existing.status != status.as_str() {
                existing.last_transition_time = now;
                existing.status = status.as_str().to_owned();
            }
            existing.reason = reason.to_owned();
            existing.message = message;
            existing.observed_generation = observed_generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_owned(),
            status: status.as_str().to_owned(),
            reason: reason.to_owned(),
            message,
            observed_generation,
            last_transition_time: now,
        }),
    }
}

/// The condition of `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether condition `type_` is present and `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn transition_time_changes_only_when_status_changes() {
        let mut c = Vec::new();
        set(
            &mut c,
            types::READY,
            Status::False,
            "Starting",
            "waiting",
            Some(1),
            at(10),
        );
        set(
            &mut c,
            types::READY,
            Status::False,
            "StillStarting",
            "waiting more",
            Some(2),
            at(20),
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].last_transition_time, at(10));
        assert_eq!(c[0].reason, "StillStarting");
        assert_eq!(c[0].observed_generation, Some(2));
        set(
            &mut c,
            types::READY,
            Status::True,
            "AllReady",
            "serving",
            Some(2),
            at(30),
        );
        assert_eq!(c[0].last_transition_time, at(30));
        assert!(is_true(&c, types::READY));
    }
}

//! The operator's one error enum. Variants are named after the operation that failed; each has
//! a static metric label and says whether retrying can help (`error_policy` waits for a change
//! on errors a person must fix, and backs off on the others).

use crate::build::BuildError;
use crate::validate::InvalidSpec;

/// Everything a reconcile can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec is wrong; the status says where. Retrying cannot help until it changes.
    #[error("invalid spec: {0}")]
    InvalidSpec(#[from] InvalidSpec),

    /// The desired objects could not be built (a bug, reported rather than panicking).
    #[error(transparent)]
    Build(#[from] BuildError),

    /// Reading an object failed.
    #[error("cannot read {kind} {name}: {source}")]
    GetObject {
        /// Kind of the object.
        kind: String,
        /// Its name.
        name: String,
        /// The API's answer.
        source: kube::Error,
    },

    /// Server-side apply of an object failed.
    #[error("cannot apply {kind} {name}: {source}")]
    ApplyObject {
        /// Kind of the object.
        kind: String,
        /// Its name.
        name: String,
        /// The API's answer.
        source: kube::Error,
    },

    /// Deleting an object failed.
    #[error("cannot delete {kind} {name}: {source}")]
    DeleteObject {
        /// Kind of the object.
        kind: String,
        /// Its name.
        name: String,
        /// The API's answer.
        source: kube::Error,
    },

    /// Writing the MediaServerCluster's status failed.
    #[error("cannot write the status of {name}: {source}")]
    WriteStatus {
        /// The cluster.
        name: String,
        /// The API's answer.
        source: kube::Error,
    },

    /// Adding or removing the finalizer failed.
    #[error("cannot update the finalizers of {name}: {source}")]
    Finalizer {
        /// The cluster.
        name: String,
        /// The API's answer.
        source: kube::Error,
    },

    /// Asking the API which Traefik resources exist failed (other than "not there").
    #[error("cannot discover the {group} API: {source}")]
    Discovery {
        /// The API group.
        group: String,
        /// The API's answer.
        source: kube::Error,
    },

    /// An object the operator would create exists and is controlled by something else.
    #[error("{kind} {name} already exists and is controlled by another owner; rename or remove it")]
    NotOwned {
        /// Kind of the object.
        kind: String,
        /// Its name.
        name: String,
    },

    /// A generated password's Secret exists without its password (managed PostgreSQL, or the
    /// initial administrator): generating a new one would lock the server out of the existing
    /// database, or state a password the administrator does not have.
    #[error("Secret {name} has no `password` key; {advice}")]
    PasswordMissing {
        /// The Secret.
        name: String,
        /// What a person can do.
        advice: &'static str,
    },
}

impl Error {
    /// Static metric label of the error's kind (never `Debug` output).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::InvalidSpec(_) => "invalid_spec",
            Error::Build(_) => "build",
            Error::GetObject { .. } => "get_object",
            Error::ApplyObject { .. } => "apply_object",
            Error::DeleteObject { .. } => "delete_object",
            Error::WriteStatus { .. } => "write_status",
            Error::Finalizer { .. } => "finalizer",
            Error::Discovery { .. } => "discovery",
            Error::NotOwned { .. } => "not_owned",
            Error::PasswordMissing { .. } => "password_missing",
        }
    }

    /// The Ready reason written to the status for an error only a person can fix.
    pub fn blocked_reason(&self) -> Option<&'static str> {
        if !self.needs_a_person() {
            return None;
        }
        Some(match self {
            Error::InvalidSpec(_) => "SpecInvalid",
            Error::NotOwned { .. } => "NameConflict",
            Error::PasswordMissing { .. } => "PasswordMissing",
            Error::Build(_) => "BuildFailed",
            _ => "ObjectRejected",
        })
    }

    /// Whether only a person can fix it (retrying soon cannot help): a wrong spec, a name
    /// clash, a lost password, or an object the API refused as invalid (422).
    pub fn needs_a_person(&self) -> bool {
        match self {
            Error::InvalidSpec(_)
            | Error::Build(_)
            | Error::NotOwned { .. }
            | Error::PasswordMissing { .. } => true,
            Error::ApplyObject { source, .. } => {
                matches!(source, kube::Error::Api(status) if status.code == 422)
            }
            _ => false,
        }
    }
}

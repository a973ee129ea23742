//! Tests across modules: reconcile against the in-memory API, the status as GitOps tools read
//! it (kstatus, Argo CD's Lua check), one version everywhere, and every rendered object against
//! the official schemas.

mod health;
mod reconcile;
pub(crate) mod schemas;
mod version;

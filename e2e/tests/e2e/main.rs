//! End-to-end tests over the built binaries. One test binary, one module per area.
//!
//! Cluster tests need a Kubernetes API server; without `KUBECONFIG` they are reported as
//! ignored with the reason, and `make e2e` runs them when a kubeconfig is given.

mod cluster;
mod python_client;
mod single;

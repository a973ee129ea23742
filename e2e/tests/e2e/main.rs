//! End-to-end tests over the built binaries. One test binary, one module per area.
//!
//! The local HA stack (real PostgreSQL, Redis, HAProxy and `ephyra-server` replicas on
//! 127.0.0.1) runs in every `cargo test`: `replicas`, `leadership`, `jobs`, `failover`,
//! `degraded`, `pg_failover` (a PostgreSQL switchover and failover: a real standby promoted
//! behind a proxy), `traefik` (the real Traefik v3 with the route the operator renders), and
//! `rendered` (each example's rendered pod, run as the server binary).
//! Cluster tests need a Kubernetes API server; without `KUBECONFIG` they are reported as
//! ignored with the reason, and `make e2e` runs them when a kubeconfig is given.

mod cluster;
mod degraded;
mod failover;
mod hardening;
mod hls;
mod jobs;
mod leadership;
mod pg_failover;
mod python_client;
mod redis_tls;
mod rendered;
mod replicas;
mod single;
mod traefik;
mod web_client;

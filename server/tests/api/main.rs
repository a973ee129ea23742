//! HTTP tests of the server, one binary for the whole suite (one build, shared PostgreSQL).
//! Storage-touching tests run on both providers through `on_both_providers!`.

mod support;

mod conventions;
mod discovery;
mod health;
mod perf;
mod quickconnect;
mod serving;
mod sessions;
mod socket;
mod store;
mod system;
mod users;

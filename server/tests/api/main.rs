//! HTTP tests of the server, one binary for the whole suite (one build, shared PostgreSQL).
//! Storage-touching tests run on both providers through `on_both_providers!`.

mod support;
// Browsing, images, playback and playstate over a scanned sample library.
mod library;

mod artwork;
mod boxsets;
mod conventions;
mod coord;
mod discovery;
mod hardening;
mod health;
mod hls;
mod images;
mod items;
mod jobs;
mod k8s;
mod keyed_ids;
mod metadata;
mod naming;
mod perf;
mod person_images;
mod playback;
mod playstate;
mod probing;
mod quickconnect;
mod read_keys;
mod scan;
mod serving;
mod sessions;
mod socket;
mod startup;
mod store;
mod subtitles;
mod system;
mod users;
mod webclient;

//! The `ephyra-server` binary: reads configuration, starts logging, calls `ephyra_server::run`.

fn main() {}

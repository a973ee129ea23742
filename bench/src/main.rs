//! `make bench`: measures the release binaries on this machine and writes
//! `docs/benchmarks.md` (or `BENCH_OUT`). Everything runs in one process, in temporary
//! folders, on free ports: PostgreSQL and Redis from `ephyra-testsupport`, the servers,
//! replicas and HAProxy from `ephyra-e2e`, nginx as the baseline, wrk as the load generator,
//! ffmpeg for the media and the transcoding baselines.
//!
//! Figures are printed and written next to their targets and baselines; nothing here asserts
//! on a timing: the run succeeds when it completes, even if a target is missed (the report
//! says so). The load average is recorded with the figures, since other work on the machine
//! shows in them.
//!
//! Settings (environment): `BENCH_SECONDS` (each wrk run, default 5), `BENCH_OUT` (default
//! `docs/benchmarks.md` of this checkout), `BENCH_ONLY` (a comma list of `api`, `hls`,
//! `floods`, `library`: a partial run, written only where `BENCH_OUT` says; its sections are
//! printed on stdout too), `BENCH_LIBRARY_PERCENT` (the size of the generated 20,000-file
//! library, default 100, up to 500 for 100,000 items), `BENCH_LIBRARY_SEEDED=1` (its rows written with SQL instead of
//! scanned: the list figures without the scan's hours on a loaded machine).

mod api;
mod big_library;
mod floods;
mod hls;
mod library;
mod machine;
mod nginx;
mod report;
mod wrk;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

/// The parts of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Api,
    Hls,
    Floods,
    /// The generated 20,000-file library.
    Library,
}

/// Every part, in the order a full run takes them.
const ALL_PARTS: [Part; 4] = [Part::Api, Part::Hls, Part::Floods, Part::Library];

/// What the environment asked for.
#[derive(Debug, Clone)]
struct Settings {
    /// Length of each wrk run.
    seconds: u32,
    /// Where the report goes; `None` for a partial run without `BENCH_OUT`.
    out: Option<PathBuf>,
    /// The parts to run.
    parts: Vec<Part>,
}

impl Settings {
    /// Reads the settings through `var` (the process environment in `main`).
    fn from_source(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Settings> {
        let seconds =
            match var("BENCH_SECONDS") {
                Some(s) => s.parse().ok().filter(|s| *s > 0).with_context(|| {
                    format!("BENCH_SECONDS={s:?} is not a whole number of seconds")
                })?,
                None => 5,
            };
        let parts = match var("BENCH_ONLY") {
            None => ALL_PARTS.to_vec(),
            Some(list) => list
                .split(',')
                .map(|p| match p.trim() {
                    "api" => Ok(Part::Api),
                    "hls" => Ok(Part::Hls),
                    "floods" => Ok(Part::Floods),
                    "library" => Ok(Part::Library),
                    other => anyhow::bail!(
                        "BENCH_ONLY: unknown part {other:?} (api, hls, floods, library)"
                    ),
                })
                .collect::<anyhow::Result<_>>()?,
        };
        let out = match var("BENCH_OUT") {
            Some(path) => Some(PathBuf::from(path)),
            None if parts.len() == ALL_PARTS.len() => Some(repo_root().join("docs/benchmarks.md")),
            None => None,
        };
        Ok(Settings {
            seconds,
            out,
            parts,
        })
    }
}

/// This checkout (the runner is a development tool, built where it runs).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// e2e's harness finds `ephyra-server` in the parent of the running executable's folder, as
/// for a test binary (`target/release/deps/x` → `target/release/ephyra-server`). Cargo builds
/// this binary in `deps/` and links it to `target/release/ephyra-bench`; started from there,
/// it executes its `deps/` twin (the same file) instead.
fn run_from_deps() -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    use std::os::unix::process::CommandExt as _;

    if ephyra_e2e::binary("ephyra-server").is_ok() {
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let me = std::fs::metadata(&exe)?;
    let deps = exe.parent().context("no folder")?.join("deps");
    let twin = std::fs::read_dir(&deps)
        .with_context(|| format!("reading {}", deps.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("ephyra_bench-") && !n.contains('.'))
        })
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| {
                (m.dev(), m.ino()) == (me.dev(), me.ino())
                    || (m.len() == me.len() && m.mtime() >= me.mtime())
            })
        })
        .with_context(|| {
            format!(
                "ephyra-server is not where the harness looks, and no twin of {} in {}: \
                 build with `cargo build --release --workspace --bins` (make bench does)",
                exe.display(),
                deps.display()
            )
        })?;
    let error = std::process::Command::new(&twin)
        .args(std::env::args_os().skip(1))
        .exec();
    Err(error).with_context(|| format!("executing {}", twin.display()))
}

fn main() -> ExitCode {
    let settings = match Settings::from_source(|k| std::env::var(k).ok()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ephyra-bench: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = run_from_deps() {
        eprintln!("ephyra-bench: {e:#}");
        return ExitCode::FAILURE;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    let outcome = runtime
        .context("starting the runtime")
        .and_then(|rt| rt.block_on(run(settings)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ephyra-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let root = repo_root();
    let mut facts = report::Facts::observe(&root, settings.seconds);
    let scratch = tempfile::Builder::new().prefix("ephyra-bench-").tempdir()?;
    let wrk = wrk::Wrk::new(
        scratch.path(),
        settings.seconds,
        root.join("build/bench/wrk.log"),
    )?;
    // The small library serves the API and flood parts; the 20,000-file one makes its own.
    let library = if settings.parts.contains(&Part::Api) || settings.parts.contains(&Part::Floods) {
        eprintln!("bench: generating the library with ffmpeg");
        Some(library::prepare().await?)
    } else {
        None
    };

    // A part that fails is reported and the others still run: a ten-minute run keeps what
    // it measured.
    let mut results = report::Results::default();
    if let (true, Some(library)) = (settings.parts.contains(&Part::Api), &library) {
        facts.phase_load("API and static files");
        let outcome = api::run(&wrk, library, scratch.path()).await;
        results.api = results.keep("API and static files", outcome);
    }
    if settings.parts.contains(&Part::Hls) {
        facts.phase_load("transcoding");
        let outcome = hls::run(scratch.path()).await;
        results.hls = results.keep("transcoding", outcome);
    }
    if let (true, Some(library)) = (settings.parts.contains(&Part::Floods), &library) {
        facts.phase_load("floods");
        let outcome = floods::run(&wrk, library, scratch.path()).await;
        results.floods = results.keep("floods", outcome);
    }
    if settings.parts.contains(&Part::Library) {
        facts.phase_load("20,000-item library");
        let outcome = match big_library::percent_from_env() {
            Ok(percent) => {
                let seeded = big_library::seeded_from_env();
                big_library::run(&wrk, scratch.path(), percent, seeded).await
            }
            Err(e) => Err(e),
        };
        results.library = results.keep("20,000-item library", outcome);
    }
    facts.finish();

    let report = report::render(&facts, &results);
    for line in report::missed(&facts, &results) {
        eprintln!("bench: target missed: {line}");
    }
    match &settings.out {
        Some(out) => {
            let previous = std::fs::read_to_string(out).unwrap_or_default();
            let text = report::keep_images_section(&report, &previous);
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
            eprintln!("bench: wrote {}", out.display());
        }
        None => {
            eprintln!("bench: a partial run (BENCH_ONLY) without BENCH_OUT: no report written");
            if let Some(library) = &results.library {
                println!("{}", report::big_library_section(&facts, library));
            }
        }
    }
    match results.failures.len() {
        0 => Ok(()),
        n => anyhow::bail!("{n} part(s) of the run failed (see above and the report)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_source(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_run_everything_into_the_docs() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.seconds, 5);
        assert_eq!(s.parts.len(), 4);
        assert!(s.out.unwrap().ends_with("docs/benchmarks.md"));
    }

    #[test]
    fn a_partial_run_writes_only_where_asked_and_bad_values_are_named() {
        let s = settings(&[("BENCH_ONLY", "hls"), ("BENCH_SECONDS", "2")]).unwrap();
        assert_eq!((s.parts, s.out, s.seconds), (vec![Part::Hls], None, 2));
        let err = settings(&[("BENCH_ONLY", "gpu")]).unwrap_err();
        assert!(err.to_string().contains("gpu"));
        let err = settings(&[("BENCH_SECONDS", "five")]).unwrap_err();
        assert!(err.to_string().contains("five"));
    }
}

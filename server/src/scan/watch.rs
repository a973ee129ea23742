//! File system events on the library folders (inotify on Linux, through `notify`): a file or
//! folder that appears, changes or goes makes a scan of its film's or series' folder only
//! (the top-level folder under the library folder that holds it), through the job queue, so a
//! new file in a 20,000-file library shows up without walking the rest.
//!
//! Every replica watches (they all see the same files), but only the leader enqueues, so one
//! replica scans; events seen while leadership moves may be lost, and the periodic full scan
//! is the fallback for them, for shares that send no events (NFS), and for libraries too
//! large for the kernel's watch limit (logged at start). Events are gathered for a quiet
//! [`QUIET`] (a copy in progress keeps sending them) and at most [`MAX_WAIT`].
//!
//! This module only decides what to scan; it writes nothing but jobs, and it never removes an
//! item itself: the scan of a folder keeps every item when its library folder reads as empty
//! or unreadable (an unmounted share sends removal events too).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio_util::sync::CancellationToken;

use super::names;
use crate::state::AppState;
use crate::store::jobs::Enqueued;

/// Events are gathered until none came for this long.
pub const QUIET: Duration = Duration::from_secs(2);
/// ... or for this long at most, while they keep coming.
pub const MAX_WAIT: Duration = Duration::from_secs(10);
/// Events buffered between the watcher's thread and this task; beyond it the library is
/// scanned in full instead (an event storm: a whole folder tree copied in).
const EVENT_BUFFER: usize = 4096;

/// What an event asks for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// Scan this folder of this library (by name).
    Folder(String, PathBuf),
    /// Scan the whole library (a file directly in a library folder: it is placed together
    /// with the other files there).
    Library(String),
}

/// The library folders to watch: (library name, canonical folder).
fn roots(state: &AppState) -> Vec<(String, PathBuf)> {
    state
        .config
        .libraries
        .iter()
        .flat_map(|l| {
            l.folders
                .iter()
                .filter_map(|f| Some((l.name.clone(), f.canonicalize().ok()?)))
        })
        .collect()
}

/// What a change at `path` asks to scan, or `None` for a change the scan would not look at
/// (hidden files, NAS system folders, partial downloads) or one outside every library.
pub fn target_of(roots: &[(String, PathBuf)], path: &Path) -> Option<Target> {
    let (library, root) = roots.iter().find(|(_, r)| path.starts_with(r))?;
    let relative = path.strip_prefix(root).ok()?;
    let mut parts = relative.components();
    let first = parts.next()?;
    let first_name = first.as_os_str().to_string_lossy();
    let deeper = parts.next().is_some();
    // Any ignored part (a hidden file, `@eaDir`, a `.part` download) hides the change.
    let components: Vec<_> = relative.components().collect();
    for (i, part) in components.iter().enumerate() {
        let text = part.as_os_str().to_string_lossy();
        let last = i + 1 == components.len();
        if names::is_ignored_folder(&text) || (last && names::is_ignored_file(&text)) {
            return None;
        }
    }
    let top = root.join(first.as_os_str());
    if deeper || top.is_dir() {
        return Some(Target::Folder(library.clone(), top));
    }
    if top.exists() || names_a_file(Path::new(first_name.as_ref())) {
        // A file right in the library folder (or one that was, by its name).
        return Some(Target::Library(library.clone()));
    }
    // Gone, without an extension: a folder that was removed.
    Some(Target::Folder(library.clone(), top))
}

/// Whether a name that is gone was one of the files a scan reads (a video, an image, an
/// `.nfo`, a subtitle), rather than a folder (`Mr. Smith (1939)` has a dot, not an extension).
fn names_a_file(name: &Path) -> bool {
    let known = name
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .is_some_and(|e| {
            matches!(
                e.as_str(),
                "nfo" | "srt" | "ass" | "ssa" | "vtt" | "sub" | "idx"
            )
        });
    known || names::is_video(name) || super::walk::is_image(name)
}

/// Watches the library folders until `shutdown`; see the module doc. Returns at once when
/// `scan.watch` is off or no folder can be watched.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    if !state.config.scan.watch {
        return;
    }
    let roots = roots(&state);
    if roots.is_empty() {
        return;
    }
    let (events_tx, mut events) = tokio::sync::mpsc::channel(EVENT_BUFFER);
    let overflow_tx = events_tx.clone();
    let handler = move |event: notify::Result<notify::Event>| {
        // Called on notify's own thread: never block it.
        if events_tx.try_send(event).is_err() {
            // Full: ask for full scans instead of losing the change.
            let _ = overflow_tx.try_send(Err(notify::Error::generic("event buffer full")));
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch library folders; the periodic scan finds new files");
            return;
        }
    };
    for (library, root) in &roots {
        if let Err(e) = watcher.watch(root, RecursiveMode::Recursive) {
            // Often the kernel's inotify watch limit (fs.inotify.max_user_watches).
            tracing::warn!(%library, folder = %root.display(), error = %e, "cannot watch this library folder; the periodic scan finds its new files");
        }
    }
    tracing::info!(folders = roots.len(), "watching library folders");

    let mut pending: BTreeSet<Target> = BTreeSet::new();
    let mut first_at: Option<tokio::time::Instant> = None;
    let mut last_at = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            event = events.recv() => {
                let Some(event) = event else { break };
                let now = tokio::time::Instant::now();
                match event {
                    Ok(event) => {
                        if matches!(event.kind, EventKind::Access(_)) {
                            continue;
                        }
                        pending.extend(event.paths.iter().filter_map(|p| target_of(&roots, p)));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "file system events lost; the libraries are scanned in full");
                        pending.extend(roots.iter().map(|(l, _)| Target::Library(l.clone())));
                    }
                }
                last_at = now;
                first_at.get_or_insert(now);
            }
            _ = tick.tick() => {
                let Some(first) = first_at else { continue };
                let now = tokio::time::Instant::now();
                let quiet = now.duration_since(last_at) >= QUIET;
                let waited = now.duration_since(first) >= MAX_WAIT;
                if pending.is_empty() {
                    first_at = None;
                } else if (quiet || waited) && enqueue(&state, &pending).await {
                    pending.clear();
                    first_at = None;
                }
            }
        }
    }
    drop(watcher);
}

/// Enqueues the scans `pending` asks for; `true` when done (or not this replica's to do),
/// `false` to try again later (the lane already has a waiting scan, or the store failed).
async fn enqueue(state: &AppState, pending: &BTreeSet<Target>) -> bool {
    if !state.coordinator.is_leader() {
        // The leader saw the same events and scans.
        return true;
    }
    let whole = pending.iter().any(|t| matches!(t, Target::Library(_)));
    let job = if whole {
        crate::jobs::kinds::library_scan()
    } else {
        let folders: Vec<serde_json::Value> = pending
            .iter()
            .filter_map(|t| match t {
                Target::Folder(library, path) => Some(serde_json::json!({
                    "library": library,
                    "path": path.to_string_lossy(),
                })),
                Target::Library(_) => None,
            })
            .collect();
        crate::jobs::kinds::folder_scan(serde_json::json!({ "folders": folders }))
    };
    match state.store.enqueue(&job).await {
        Ok(Enqueued::Added(id)) => {
            tracing::info!(id = %id.to_n(), kind = %job.kind, changes = pending.len(), "files changed; scan enqueued");
            true
        }
        // A scan waits in the lane: it may not cover these folders, so try again once it runs.
        Ok(Enqueued::Duplicate) => false,
        Err(e) => {
            tracing::warn!(error = %crate::error::DisplayChain(&e), "cannot enqueue the scan of changed folders");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_asks_for_its_top_level_folder_or_the_whole_library() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().canonicalize().expect("canonical");
        std::fs::create_dir_all(root.join("Show/Season 01")).expect("mkdir");
        std::fs::write(root.join("Film (2000).mkv"), b"1").expect("write");
        let roots = vec![("Lib".to_owned(), root.clone())];
        let folder = |p: &str| Some(Target::Folder("Lib".to_owned(), root.join(p)));
        assert_eq!(
            target_of(&roots, &root.join("Show/Season 01/Show S01E01.mkv")),
            folder("Show")
        );
        assert_eq!(target_of(&roots, &root.join("Show")), folder("Show"));
        assert_eq!(
            target_of(&roots, &root.join("Gone Show")),
            folder("Gone Show")
        );
        assert_eq!(
            target_of(&roots, &root.join("Mr. Smith (1939)")),
            folder("Mr. Smith (1939)")
        );
        assert_eq!(
            target_of(&roots, &root.join("Film (2000).mkv")),
            Some(Target::Library("Lib".to_owned()))
        );
        assert_eq!(
            target_of(&roots, &root.join("Deleted (2001).mkv")),
            Some(Target::Library("Lib".to_owned()))
        );
        assert_eq!(target_of(&roots, &root.join("Show/@eaDir/x.jpg")), None);
        assert_eq!(target_of(&roots, &root.join("Show/.x.mkv.swp")), None);
        assert_eq!(target_of(&roots, &root.join("Film (2001).mkv.part")), None);
        assert_eq!(target_of(&roots, Path::new("/elsewhere/x.mkv")), None);
        assert_eq!(target_of(&roots, &root), None, "the library folder itself");
    }
}

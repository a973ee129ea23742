//! Removes orphaned files from this replica's transcode folder: a per-replica periodic task,
//! not a queued job (see the module docs of `jobs` for why).
//!
//! A live transcode writes a segment every few seconds and one nobody asks for is stopped
//! after `transcode.idleTimeoutSeconds`, so an entry of the folder untouched for much longer
//! than that belongs to no running transcode: it is what a killed ffmpeg or a crashed replica
//! left behind. It must not touch anything outside the transcode folder (links are removed,
//! never followed).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

/// An entry is orphaned once untouched this long, whatever the idle timeout says.
pub const MIN_ORPHAN_AGE: Duration = Duration::from_secs(10 * 60);
/// How often the folder is swept.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

/// The age after which an entry is orphaned: four idle timeouts, at least [`MIN_ORPHAN_AGE`].
pub fn orphan_age(idle_timeout_seconds: u32) -> Duration {
    Duration::from_secs(u64::from(idle_timeout_seconds) * 4).max(MIN_ORPHAN_AGE)
}

/// Sweeps `dir` at start and then every `every`, until `shutdown`.
pub async fn run(dir: PathBuf, older_than: Duration, every: Duration, shutdown: CancellationToken) {
    loop {
        let target = dir.clone();
        match tokio::task::spawn_blocking(move || sweep(&target, older_than, SystemTime::now()))
            .await
        {
            Ok(Ok(0)) => {}
            Ok(Ok(removed)) => {
                tracing::info!(removed, dir = %dir.display(), "removed orphaned transcode files")
            }
            Ok(Err(e)) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot sweep the transcode folder")
            }
            Err(e) => tracing::warn!(error = %e, "transcode sweep panicked"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// Removes every top-level entry of `dir` whose newest modification (for a folder, of
/// anything inside it) is older than `older_than` at `now`. Returns how many entries went. A
/// missing folder is empty.
pub fn sweep(dir: &Path, older_than: Duration, now: SystemTime) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let Some(newest) = newest_modification(&path) else {
            continue;
        };
        let age = now.duration_since(newest).unwrap_or_default();
        if age < older_than {
            continue;
        }
        let kind = entry.file_type()?;
        let result = if kind.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match result {
            Ok(()) => removed += 1,
            // Another sweep or the transcoder removed it first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// The newest modification time of `path` and, for a folder, of everything under it (links
/// are not followed).
fn newest_modification(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let mut newest = meta.modified().ok()?;
    if meta.is_dir()
        && let Ok(entries) = std::fs::read_dir(path)
    {
        for entry in entries.flatten() {
            if let Some(t) = newest_modification(&entry.path()) {
                newest = newest.max(t);
            }
        }
    }
    Some(newest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_entries_untouched_for_the_orphan_age_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stale = dir.path().join("stale-stream");
        std::fs::create_dir(&stale).expect("mkdir");
        std::fs::write(stale.join("seg-0.ts"), b"x").expect("write");
        std::fs::write(dir.path().join("live.m3u8"), b"x").expect("write");
        let hour = Duration::from_secs(3600);
        // Nothing is an hour old yet.
        assert_eq!(
            sweep(dir.path(), hour, SystemTime::now()).expect("sweep"),
            0
        );
        // Two hours later, everything is.
        let later = SystemTime::now() + 2 * hour;
        assert_eq!(sweep(dir.path(), hour, later).expect("sweep"), 2);
        assert!(
            std::fs::read_dir(dir.path())
                .expect("read")
                .next()
                .is_none()
        );
    }

    #[test]
    fn a_stale_file_goes_while_a_folder_with_a_fresh_file_stays() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stream = dir.path().join("stream");
        std::fs::create_dir(&stream).expect("mkdir");
        std::fs::write(stream.join("seg-9.ts"), b"x").expect("write");
        let leftover = dir.path().join("leftover.ts");
        std::fs::write(&leftover, b"x").expect("write");
        let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
        std::fs::File::options()
            .write(true)
            .open(&leftover)
            .and_then(|f| f.set_modified(two_hours_ago))
            .expect("set mtime");
        let removed =
            sweep(dir.path(), Duration::from_secs(3600), SystemTime::now()).expect("sweep");
        assert_eq!(removed, 1);
        assert!(!leftover.exists());
        assert!(stream.join("seg-9.ts").exists());
    }

    #[test]
    fn a_missing_folder_is_empty_and_the_orphan_age_has_a_floor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gone = dir.path().join("never-made");
        assert_eq!(
            sweep(&gone, MIN_ORPHAN_AGE, SystemTime::now()).expect("sweep"),
            0
        );
        assert_eq!(orphan_age(1), MIN_ORPHAN_AGE);
        assert_eq!(orphan_age(3600), Duration::from_secs(4 * 3600));
    }
}

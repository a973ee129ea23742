//! This replica's cache of resized images, bounded twice: in disk (the files it keeps) and in
//! memory (how many resizes run at once).
//!
//! Image routes are anonymous, as Jellyfin's are, and every distinct `maxWidth`/`quality`/
//! `format` makes a new file and a new decode. Without a bound, one client walking the sizes
//! fills the data folder (in Kubernetes an `emptyDir`, whose overflow evicts the pod), and a
//! burst of large decodes (up to 256 MiB each) takes the replica past its memory limit.
//! So the cache keeps at most [`ImageCache::max_bytes`], dropping the least recently used files
//! (by modification time, refreshed when a file is served), and at most one resize per core
//! runs at once; a request that waits too long for a slot gets `503` with `Retry-After`.
//!
//! It must not decide what is resized or how (that is [`super::resize`]), and it never holds
//! an image in memory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use tokio::sync::{Semaphore, SemaphorePermit};

/// How long a request waits for a resize slot before it is told to come back.
const SLOT_WAIT: Duration = Duration::from_secs(15);
/// A served file's modification time is refreshed when older than this (the recency the
/// pruning reads), so a hot poster is not rewritten on every request.
const TOUCH_AFTER: Duration = Duration::from_secs(600);
/// Pruning stops at this share of the limit, so it does not run again at the next write.
const PRUNE_TO_PERCENT: u64 = 75;

/// The resized-image cache of one replica.
#[derive(Debug)]
pub struct ImageCache {
    dir: PathBuf,
    max_bytes: u64,
    /// Bytes in the folder, counted from disk once, then kept by each write and prune.
    used: AtomicU64,
    counted: OnceLock<()>,
    pruning: AtomicBool,
    slots: Semaphore,
}

/// Every resize slot stayed busy for the whole wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

impl ImageCache {
    /// A cache in `dir` holding at most `max_bytes`, with `slots` resizes at once.
    pub fn new(dir: PathBuf, max_bytes: u64, slots: usize) -> Arc<ImageCache> {
        Arc::new(ImageCache {
            dir,
            max_bytes,
            used: AtomicU64::new(0),
            counted: OnceLock::new(),
            pruning: AtomicBool::new(false),
            slots: Semaphore::new(slots.max(1)),
        })
    }

    /// The folder the cached files live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The most the folder holds once a prune has run.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The cached file called `name`, if present, marked as used now.
    pub async fn lookup(&self, name: &str) -> Option<PathBuf> {
        let path = self.dir.join(name);
        let meta = tokio::fs::metadata(&path).await.ok()?;
        let stale = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age > TOUCH_AFTER);
        if stale {
            let touched = path.clone();
            // Best effort: a file pruned meanwhile is simply made again next time.
            let _ = tokio::task::spawn_blocking(move || {
                std::fs::File::options()
                    .append(true)
                    .open(&touched)
                    .and_then(|f| f.set_modified(SystemTime::now()))
            })
            .await;
        }
        Some(path)
    }

    /// A resize slot, waiting up to [`SLOT_WAIT`] for one.
    pub async fn slot(&self) -> Result<SemaphorePermit<'_>, Busy> {
        match tokio::time::timeout(SLOT_WAIT, self.slots.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Busy),
        }
    }

    /// Records that `path` was just written into the cache; prunes (in the background, one
    /// prune at a time) when the folder went over the limit.
    pub async fn written(self: &Arc<Self>, path: &Path) {
        let used = if self.count_once().await {
            // The count just made includes this file.
            self.used.load(Ordering::Relaxed)
        } else {
            let size = tokio::fs::metadata(path).await.map_or(0, |m| m.len());
            self.used.fetch_add(size, Ordering::Relaxed) + size
        };
        if used > self.max_bytes && !self.pruning.swap(true, Ordering::AcqRel) {
            let cache = Arc::clone(self);
            tokio::task::spawn_blocking(move || {
                let remaining = prune(&cache.dir, cache.max_bytes * PRUNE_TO_PERCENT / 100);
                cache.used.store(remaining, Ordering::Relaxed);
                cache.pruning.store(false, Ordering::Release);
            });
        }
    }

    /// Counts what is in the folder (an earlier run of this replica may have left files), the
    /// first time only; `true` when this call counted.
    async fn count_once(&self) -> bool {
        if self.counted.get().is_some() {
            return false;
        }
        let dir = self.dir.clone();
        let existing = tokio::task::spawn_blocking(move || cached_files(&dir))
            .await
            .unwrap_or_default()
            .iter()
            .map(|f| f.size)
            .sum::<u64>();
        let first = self.counted.set(()).is_ok();
        if first {
            self.used.fetch_add(existing, Ordering::Relaxed);
        }
        first
    }
}

struct CachedFile {
    path: PathBuf,
    size: u64,
    modified: SystemTime,
}

/// The finished files of the folder (half-written `.partial` files belong to a running resize).
fn cached_files(dir: &Path) -> Vec<CachedFile> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".partial"))
        .filter_map(|e| {
            let meta = e.metadata().ok().filter(std::fs::Metadata::is_file)?;
            Some(CachedFile {
                path: e.path(),
                size: meta.len(),
                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            })
        })
        .collect()
}

/// Removes the least recently used files until the folder holds at most `target` bytes;
/// returns what it holds then.
fn prune(dir: &Path, target: u64) -> u64 {
    let mut files = cached_files(dir);
    let mut used: u64 = files.iter().map(|f| f.size).sum();
    files.sort_by_key(|f| f.modified);
    for file in files {
        if used <= target {
            break;
        }
        if std::fs::remove_file(&file.path).is_ok() {
            used -= file.size;
        }
    }
    tracing::debug!(dir = %dir.display(), used, target, "resized image cache pruned");
    used
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, size: usize, age_secs: u64) {
        let path = dir.join(name);
        std::fs::write(&path, vec![7u8; size]).unwrap();
        let when = SystemTime::now() - Duration::from_secs(age_secs);
        std::fs::File::options()
            .append(true)
            .open(&path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }

    #[test]
    fn pruning_drops_the_least_recently_used_files_first_and_spares_partial_ones() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "old.jpg", 400, 300);
        write(dir.path(), "middle.jpg", 400, 200);
        write(dir.path(), "new.jpg", 400, 100);
        write(dir.path(), "running.jpg.abc.partial", 400, 400);
        let left = prune(dir.path(), 800);
        assert_eq!(left, 800);
        assert!(!dir.path().join("old.jpg").exists());
        assert!(dir.path().join("middle.jpg").exists());
        assert!(dir.path().join("new.jpg").exists());
        assert!(dir.path().join("running.jpg.abc.partial").exists());
    }

    #[tokio::test]
    async fn a_write_over_the_limit_prunes_down_to_three_quarters_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ImageCache::new(dir.path().to_owned(), 1000, 1);
        for (i, age) in [(0, 50), (1, 40), (2, 30), (3, 20)] {
            write(dir.path(), &format!("{i}.jpg"), 300, age);
        }
        // The first three fit; the fourth goes over (1200 > 1000) and starts a prune.
        cache.written(&dir.path().join("3.jpg")).await;
        ephyra_testsupport::wait::until("the prune", Duration::from_secs(10), || async {
            let left: u64 = cached_files(dir.path()).iter().map(|f| f.size).sum();
            Ok((left <= 750 && !cache.pruning.load(Ordering::Acquire)).then_some(()))
        })
        .await
        .expect("pruned");
        assert!(!dir.path().join("0.jpg").exists());
        assert!(!dir.path().join("1.jpg").exists());
        assert!(dir.path().join("3.jpg").exists());
        assert_eq!(cache.used.load(Ordering::Relaxed), 600);
    }

    #[tokio::test]
    async fn a_lookup_marks_an_old_file_as_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "poster.jpg", 10, 3600);
        let cache = ImageCache::new(dir.path().to_owned(), 1000, 1);
        assert!(cache.lookup("poster.jpg").await.is_some());
        assert!(cache.lookup("absent.jpg").await.is_none());
        let age = std::fs::metadata(dir.path().join("poster.jpg"))
            .unwrap()
            .modified()
            .unwrap()
            .elapsed()
            .unwrap_or_default();
        assert!(age < Duration::from_secs(600), "{age:?}");
    }

    #[tokio::test]
    async fn slots_bound_concurrent_resizes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ImageCache::new(dir.path().to_owned(), 1000, 2);
        let a = cache.slot().await.unwrap();
        let _b = cache.slot().await.unwrap();
        assert_eq!(cache.slots.available_permits(), 0);
        drop(a);
        assert!(cache.slot().await.is_ok());
    }
}

//! Temporary folders that a later test process can clean up.
//!
//! Guards remove their folder on drop, but statics (the shared PostgreSQL, the cached sample
//! library) are never dropped, and a test process can be killed. So each folder is named
//! `ephyra-<kind>-<pid>-<random>`, and whoever creates a folder of a kind first removes the ones
//! whose process is gone. Nothing here is shared between live processes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::SupportError;

/// Creates a fresh folder for `kind` ("pg", "redis", "media") and removes abandoned ones.
///
/// `for_other_user` asks for a base folder that another (unprivileged) user can reach, which
/// `$TMPDIR` may not be when tests run as root.
pub(crate) fn scratch_dir(kind: &str, for_other_user: bool) -> Result<TempDir, SupportError> {
    let base = base_dir(for_other_user);
    remove_abandoned(&base, kind);
    tempfile::Builder::new()
        .prefix(&format!("ephyra-{kind}-{}-", std::process::id()))
        .tempdir_in(&base)
        .map_err(|source| SupportError::CreateScratchDir { base, source })
}

fn base_dir(for_other_user: bool) -> PathBuf {
    let base = std::env::temp_dir();
    if for_other_user && !traversable_by_others(&base) {
        // /tmp is world-traversable on every Unix we care about; $TMPDIR under /root is not.
        return PathBuf::from("/tmp");
    }
    base
}

fn traversable_by_others(path: &Path) -> bool {
    path.ancestors().all(|folder| {
        std::fs::metadata(folder).is_ok_and(|meta| meta.permissions().mode() & 0o001 != 0)
    })
}

/// Best effort: a folder that cannot be removed now is tried again by the next process.
fn remove_abandoned(base: &Path, kind: &str) {
    // Without /proc there is no cheap, safe way to tell whether a process is alive.
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    let prefix = format!("ephyra-{kind}-");
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix(&prefix))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_of_dead_processes_are_removed_and_live_ones_kept() {
        let base = tempfile::tempdir().unwrap();
        // Pid numbers above the kernel's maximum (4194304) are never alive.
        let dead = base.path().join("ephyra-demo-4999999-abc");
        let live = base
            .path()
            .join(format!("ephyra-demo-{}-abc", std::process::id()));
        let other_kind = base.path().join("ephyra-other-4999999-abc");
        for folder in [&dead, &live, &other_kind] {
            std::fs::create_dir(folder).unwrap();
        }

        remove_abandoned(base.path(), "demo");

        assert!(!dead.exists());
        assert!(live.exists());
        assert!(other_kind.exists());
    }
}

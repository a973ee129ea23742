//! Walking a library folder: which video and image files it holds, and which of the videos are
//! new, changed or gone compared with what the store already knows.
//!
//! The walk is blocking filesystem work (run it on `spawn_blocking`); [`plan`] is pure.
//! Hidden entries (a leading `.`), NAS and system folders (`@eaDir`, `#recycle`,
//! `$RECYCLE.BIN`, `lost+found`, ...), downloads in progress (`.part`, `.!qB`, ...) and folders
//! holding a `.ignore` file are skipped and counted. A DVD or Blu-ray folder (`VIDEO_TS/`,
//! `BDMV/`) yields one file, its main title (the largest `.VOB` or `STREAM/*.m2ts`). A symbolic link is followed only when its target,
//! canonicalized, is still inside the library folder: a link to `/etc` is logged and ignored,
//! and a link loop is walked once. The serving side checks containment again, at request time
//! (see `scan::library_root_of`), because a link can change after the scan.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::names;

/// Image extensions (lower case) picked up next to videos.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp"];

/// A video found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundFile {
    /// Path under the canonical library folder, as walked (links not resolved).
    pub path: PathBuf,
    /// The same path relative to the library folder; names and ids derive from it.
    pub relative: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, milliseconds since the Unix epoch.
    pub mtime_ms: i64,
}

/// Everything one library folder holds that the scanner cares about.
#[derive(Debug, Default)]
pub struct Walked {
    /// The folder, canonicalized.
    pub root: PathBuf,
    /// Video files, sorted by path.
    pub videos: Vec<FoundFile>,
    /// Image files, as paths under `root`.
    pub images: HashSet<PathBuf>,
    /// Entries that could not be read or were refused, with the reason (for the log).
    pub skipped: Vec<(PathBuf, String)>,
    /// Entries skipped on purpose (system folders, partial downloads, `.ignore`d folders).
    pub ignored: Vec<PathBuf>,
}

/// Why a library folder could not be walked at all.
#[derive(Debug, thiserror::Error)]
#[error("cannot read library folder {folder}: {source}")]
pub struct WalkError {
    /// The folder as configured.
    pub folder: PathBuf,
    /// The filesystem's reason.
    #[source]
    pub source: std::io::Error,
}

/// Walks `folder` recursively. Fails only when the folder itself cannot be read, which the
/// scanner must not mistake for "every file was deleted".
pub fn walk(folder: &Path) -> Result<Walked, WalkError> {
    walk_from(folder, None)
}

/// Walks only `sub`, a folder inside library folder `folder` (one film's or one series'
/// folder, where a file system event said something changed); paths stay relative to
/// `folder`, as in a full walk, so names and ids are the same. A `sub` that resolves outside
/// `folder` is an error.
pub fn walk_under(folder: &Path, sub: &Path) -> Result<Walked, WalkError> {
    walk_from(folder, Some(sub))
}

fn walk_from(folder: &Path, sub: Option<&Path>) -> Result<Walked, WalkError> {
    let to_error = |source| WalkError {
        folder: folder.to_owned(),
        source,
    };
    let root = folder.canonicalize().map_err(to_error)?;
    // Read the root once up front so an unreadable root is an error, not an empty library.
    std::fs::read_dir(&root).map_err(to_error)?;
    let start = match sub {
        None => root.clone(),
        Some(sub) => {
            let start = sub.canonicalize().map_err(to_error)?;
            if !start.starts_with(&root) {
                return Err(to_error(std::io::Error::other(
                    "the folder to walk is outside the library folder",
                )));
            }
            start
        }
    };
    let mut walker = Walker::new(root, None);
    walker.visited.insert(start.clone());
    walker.pending.push(start);
    Ok(walker.run())
}

/// The parts of a library folder that a scan walks, places and writes one at a time, so what
/// it holds is bounded by the largest part rather than the library: each top-level folder (a
/// film's, a series', any other), and the files lying directly in the root, together (the
/// naming rules place those by each other's names: stacks, extras of a loose film).
///
/// Nothing a rule decides crosses a top-level folder: a film's versions, parts and extras are
/// in its folder (extras folders under it), an episode's series is its top-level folder.
#[derive(Debug, Default)]
pub struct Units {
    /// The library folder, canonicalized.
    pub root: PathBuf,
    /// Top-level folders (and links that may lead to one), as paths under `root`, in the
    /// order of the stored paths under them (see [`unit_key`]).
    pub folders: Vec<PathBuf>,
    /// Entries directly in the root that are not folders (files, links to files).
    pub loose: Vec<PathBuf>,
    /// Top-level entries skipped on purpose (NAS system folders, partial downloads).
    pub ignored: Vec<PathBuf>,
}

/// Lists the top-level entries of library folder `folder` without walking them. Fails only when
/// the folder itself cannot be read, as [`walk`] does.
pub fn units(folder: &Path) -> Result<Units, WalkError> {
    let to_error = |source| WalkError {
        folder: folder.to_owned(),
        source,
    };
    let root = folder.canonicalize().map_err(to_error)?;
    let entries = std::fs::read_dir(&root).map_err(to_error)?;
    let mut units = Units {
        root,
        ..Units::default()
    };
    for entry in entries {
        // An entry that cannot be read is met again, and reported, by the loose files' walk.
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let text = name.to_string_lossy();
        let file_type = entry.file_type().ok();
        let is_dir = file_type.is_some_and(|t| t.is_dir());
        let path = units.root.join(&name);
        if is_skipped(&text, is_dir) {
            if is_listed_when_skipped(&text, is_dir) {
                units.ignored.push(path);
            }
            continue;
        }
        let leads_to_dir = is_dir
            || (file_type.is_some_and(|t| t.is_symlink())
                && std::fs::metadata(&path).is_ok_and(|m| m.is_dir()));
        if leads_to_dir {
            units.folders.push(path);
        } else {
            units.loose.push(path);
        }
    }
    units
        .folders
        .sort_by_cached_key(|folder| folder_key(folder));
    units.loose.sort();
    Ok(units)
}

/// The bytes every path under `folder` starts with: `<folder>/`.
pub fn folder_key(folder: &Path) -> Vec<u8> {
    let mut key = folder.as_os_str().as_encoded_bytes().to_vec();
    key.push(b'/');
    key
}

/// The bytes every stored path under the top-level folder of `path` (inside `root`) starts
/// with: `<root>/<folder>/`. `None` for a file directly in the root. Stored paths read in
/// byte order meet the folders in the order of these keys.
pub fn unit_key(root: &Path, path: &Path) -> Option<Vec<u8>> {
    let mut components = path.strip_prefix(root).ok()?.components();
    let first = components.next()?;
    // A file directly in the root has no folder of its own.
    components.next()?;
    Some(folder_key(&root.join(first)))
}

/// Walks one part of library folder `units.root`: a top-level folder of `units.folders`, or
/// (`folder` = `None`) the loose files. Paths are as a whole [`walk`] records them, and a file
/// reached through a link is recorded only when the walk of the library's real entries does
/// not reach it, as in a whole walk; `linked` carries what links already led to between the
/// parts of one library (it stays as small as the links).
pub fn walk_unit(units: &Units, folder: Option<&Path>, linked: &mut HashSet<PathBuf>) -> Walked {
    let mut walker = Walker::new(units.root.clone(), Some(linked));
    let entries = match folder {
        Some(folder) => vec![folder.to_path_buf()],
        None => units.loose.clone(),
    };
    for path in entries {
        let is_link = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
        if is_link {
            walker.links.push(path);
        } else {
            walker.visit(path);
        }
    }
    walker.run()
}

/// Whether a walk of the real entries of `root` (no links followed) reaches `target`, a
/// canonical path under `root`: every folder on the way is walked (not skipped by name, not a
/// disc folder, no `.ignore` marker) and the target's own name is not skipped.
fn reached_without_links(root: &Path, target: &Path) -> bool {
    let Ok(relative) = target.strip_prefix(root) else {
        return false;
    };
    let count = relative.components().count();
    let mut at = root.to_path_buf();
    for (i, component) in relative.components().enumerate() {
        at.push(component);
        let name = component.as_os_str().to_string_lossy();
        let is_dir = std::fs::symlink_metadata(&at).is_ok_and(|m| m.is_dir());
        if is_skipped(&name, is_dir) {
            return false;
        }
        let last = i + 1 == count;
        if !last && (names::is_disc_folder(&name) || at.join(names::IGNORE_MARKER).exists()) {
            return false;
        }
    }
    true
}

/// Whether a walk skips the entry `name` (NAS system folders, partial downloads, hidden
/// files), as a folder or as a file.
fn is_skipped(name: &str, is_dir: bool) -> bool {
    if is_dir {
        names::is_ignored_folder(name)
    } else {
        names::is_ignored_file(name)
    }
}

/// Whether a skipped entry is counted among the ignored: hidden files are too common
/// (`.DS_Store`, `.nfo` shadows) to list.
fn is_listed_when_skipped(name: &str, is_dir: bool) -> bool {
    is_dir || !name.starts_with('.')
}

/// One walk's state: real entries first, links after (sorted), in rounds.
struct Walker<'l> {
    root: PathBuf,
    walked: Walked,
    visited: HashSet<PathBuf>,
    seen_files: HashSet<PathBuf>,
    pending: Vec<PathBuf>,
    links: Vec<PathBuf>,
    /// For a walk of one part of a library ([`walk_unit`]): what links led to in the parts
    /// walked before. `None` for a whole walk, whose own sets know every real entry.
    linked: Option<&'l mut HashSet<PathBuf>>,
    /// Whether the walk follows links now (after the real entries).
    through_links: bool,
}

impl<'l> Walker<'l> {
    fn new(root: PathBuf, linked: Option<&'l mut HashSet<PathBuf>>) -> Walker<'l> {
        Walker {
            walked: Walked {
                root: root.clone(),
                ..Walked::default()
            },
            visited: HashSet::from([root.clone()]),
            root,
            seen_files: HashSet::new(),
            pending: Vec::new(),
            links: Vec::new(),
            linked,
            through_links: false,
        }
    }

    // Real entries first, links after (sorted): a file reachable both directly and through a
    // link inside the library is always recorded under its real path, whatever order the
    // directory listing comes in, so its item id does not change between scans.
    fn run(mut self) -> Walked {
        loop {
            while let Some(dir) = self.pending.pop() {
                self.read_dir(dir);
            }
            if self.links.is_empty() {
                break;
            }
            self.through_links = true;
            self.links.sort();
            for link in std::mem::take(&mut self.links) {
                self.visit(link);
            }
        }
        self.walked.videos.sort_by(|a, b| a.path.cmp(&b.path));
        self.walked
    }

    fn read_dir(&mut self, dir: PathBuf) {
        if dir != self.root && dir.join(names::IGNORE_MARKER).exists() {
            self.walked.ignored.push(dir);
            return;
        }
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                self.walked.skipped.push((dir, e.to_string()));
                return;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    self.walked.skipped.push((dir.clone(), e.to_string()));
                    continue;
                }
            };
            let name = entry.file_name();
            let text = name.to_string_lossy();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let path = dir.join(&name);
            if is_skipped(&text, is_dir) {
                if is_listed_when_skipped(&text, is_dir) {
                    self.walked.ignored.push(path);
                }
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_symlink()) {
                self.links.push(path);
                continue;
            }
            self.visit(path);
        }
    }

    /// Whether an entry met through a link is new: not reached by the real entries of the
    /// library (this part's, or another part's: `reached_without_links`), nor by a link
    /// before.
    fn first_through_link(&mut self, canonical: &Path) -> bool {
        match &mut self.linked {
            Some(linked) if self.through_links => {
                !reached_without_links(&self.root, canonical) && linked.insert(canonical.to_owned())
            }
            _ => true,
        }
    }

    /// Records one entry: a directory to walk (once), a video or an image.
    fn visit(&mut self, path: PathBuf) {
        let root = self.root.clone();
        let root = root.as_path();
        match classify(root, &path) {
            Ok(Entry::Dir(canonical)) => {
                if !self.first_through_link(&canonical) || !self.visited.insert(canonical) {
                    return;
                }
                let is_disc = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(names::is_disc_folder);
                if !is_disc {
                    self.pending.push(path);
                    return;
                }
                match disc_main_title(&path) {
                    Some((main, metadata)) => {
                        if let Ok(relative) = main.strip_prefix(root).map(Path::to_path_buf) {
                            self.walked.videos.push(FoundFile {
                                path: main,
                                relative,
                                size: metadata.len(),
                                mtime_ms: mtime_ms(&metadata),
                            });
                        }
                    }
                    None => self
                        .walked
                        .skipped
                        .push((path, "disc folder without a main title".to_owned())),
                }
            }
            Ok(Entry::File(canonical, metadata)) => {
                if !self.first_through_link(&canonical) || !self.seen_files.insert(canonical) {
                    return;
                }
                let Ok(relative) = path.strip_prefix(root).map(Path::to_path_buf) else {
                    return;
                };
                if names::is_video(&path) {
                    self.walked.videos.push(FoundFile {
                        path,
                        relative,
                        size: metadata.len(),
                        mtime_ms: mtime_ms(&metadata),
                    });
                } else if is_image(&path) {
                    self.walked.images.insert(path);
                }
            }
            Ok(Entry::Other) => {}
            Err(reason) => self.walked.skipped.push((path, reason)),
        }
    }
}

enum Entry {
    /// A directory, with its canonical path (to walk each directory once).
    Dir(PathBuf),
    /// A regular file, with its canonical path (to record each file once).
    File(PathBuf, std::fs::Metadata),
    /// Sockets, devices, FIFOs: not media.
    Other,
}

/// Looks at one entry, following a link only when its target stays inside `root`.
fn classify(root: &Path, path: &Path) -> Result<Entry, String> {
    let canonical = path
        .canonicalize()
        .map_err(|e| format!("cannot resolve: {e}"))?;
    if !canonical.starts_with(root) {
        return Err(format!(
            "link leaves the library (points to {})",
            canonical.display()
        ));
    }
    let metadata = std::fs::metadata(&canonical).map_err(|e| e.to_string())?;
    if metadata.is_dir() {
        Ok(Entry::Dir(canonical))
    } else if metadata.is_file() {
        Ok(Entry::File(canonical, metadata))
    } else {
        Ok(Entry::Other)
    }
}

/// The main title of a DVD (`VIDEO_TS/`: the largest `.VOB`) or Blu-ray (`BDMV/`: the
/// largest `STREAM/*.m2ts`) folder: the file the item plays.
fn disc_main_title(folder: &Path) -> Option<(PathBuf, std::fs::Metadata)> {
    let dvd = folder
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.eq_ignore_ascii_case("VIDEO_TS"));
    let (dir, extension) = if dvd {
        (folder.to_path_buf(), "vob")
    } else {
        (folder.join("STREAM"), "m2ts")
    };
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case(extension))
        })
        .filter_map(|p| {
            let metadata = std::fs::metadata(&p).ok()?;
            metadata.is_file().then_some((p, metadata))
        })
        .max_by(|(pa, a), (pb, b)| a.len().cmp(&b.len()).then(pb.cmp(pa)))
}

/// Whether the path names an image, by extension.
pub fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

pub(crate) fn mtime_ms(metadata: &std::fs::Metadata) -> i64 {
    metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What the store knows about a file from an earlier scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownFile {
    /// Size in bytes at the last probe.
    pub size: u64,
    /// Modification time (ms) at the last probe.
    pub mtime_ms: i64,
}

/// The work a scan of one folder has to do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Files never seen before, or whose size or modification time changed: probe them.
    pub to_probe: Vec<FoundFile>,
    /// Files as they were: keep their items, only refresh names and hierarchy.
    pub unchanged: Vec<FoundFile>,
    /// Known paths no longer on disk: remove their items.
    pub removed: Vec<PathBuf>,
}

/// Compares the files on disk with the known ones (keyed by path).
/// `found` is any walk over the files (several folders' lists chained, without copying them).
pub fn plan<'a, I>(found: I, known: &BTreeMap<PathBuf, KnownFile>) -> Plan
where
    I: IntoIterator<Item = &'a FoundFile> + Clone,
{
    let mut out = Plan::default();
    let on_disk: HashSet<&Path> = found
        .clone()
        .into_iter()
        .map(|f| f.path.as_path())
        .collect();
    for file in found {
        match known.get(&file.path) {
            Some(k) if k.size == file.size && k.mtime_ms == file.mtime_ms => {
                out.unchanged.push(file.clone());
            }
            _ => out.to_probe.push(file.clone()),
        }
    }
    out.removed = known
        .keys()
        .filter(|p| !on_disk.contains(p.as_path()))
        .cloned()
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path, bytes: &[u8]) {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, bytes).expect("write");
    }

    fn relatives(walked: &Walked) -> Vec<String> {
        walked
            .videos
            .iter()
            .map(|f| f.relative.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn videos_and_images_are_found_in_nested_folders() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        touch(&root.join("Film (2001)/Film (2001).mkv"), b"12345");
        touch(&root.join("Film (2001)/poster.jpg"), b"jpg");
        touch(&root.join("Other (1999).mp4"), b"1");
        touch(&root.join("notes.txt"), b"x");
        let walked = walk(root).expect("walk");
        assert_eq!(
            relatives(&walked),
            ["Film (2001)/Film (2001).mkv", "Other (1999).mp4"]
        );
        assert_eq!(walked.videos[0].size, 5);
        assert!(walked.videos[0].mtime_ms > 0);
        let canonical = root.canonicalize().expect("canonical");
        assert!(
            walked
                .images
                .contains(&canonical.join("Film (2001)/poster.jpg"))
        );
        assert_eq!(walked.images.len(), 1);
    }

    #[test]
    fn hidden_files_and_folders_are_skipped() {
        let dir = tempfile::tempdir().expect("temp dir");
        touch(&dir.path().join(".hidden.mkv"), b"1");
        touch(&dir.path().join(".trash/Film (2000).mkv"), b"1");
        touch(&dir.path().join("Seen (2000).mkv"), b"1");
        let walked = walk(dir.path()).expect("walk");
        assert_eq!(relatives(&walked), ["Seen (2000).mkv"]);
    }

    #[test]
    fn nas_folders_partial_downloads_and_ignored_folders_are_skipped_and_counted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        touch(&root.join("Film (2000)/Film (2000).mkv"), b"1");
        touch(
            &root.join("Film (2000)/@eaDir/Film (2000).mkv/SYNOVIDEO_VIDEO_SCREENSHOT.jpg"),
            b"1",
        );
        touch(&root.join("@eaDir/Other.mkv"), b"1");
        touch(&root.join("#recycle/Deleted (2001).mkv"), b"1");
        touch(&root.join("$RECYCLE.BIN/x.mkv"), b"1");
        touch(&root.join("lost+found/x.mkv"), b"1");
        touch(&root.join(".@__thumb/x.mkv"), b"1");
        touch(&root.join("Downloading (2024).mkv.part"), b"1");
        touch(&root.join("Downloading (2024).mkv.!qB"), b"1");
        touch(&root.join("Private/.ignore"), b"");
        touch(&root.join("Private/Secret (2002).mkv"), b"1");
        let walked = walk(root).expect("walk");
        assert_eq!(relatives(&walked), ["Film (2000)/Film (2000).mkv"]);
        assert_eq!(walked.ignored.len(), 9, "{:?}", walked.ignored);
    }

    #[test]
    fn a_disc_folder_yields_its_main_title_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        touch(&root.join("Heat (1995)/VIDEO_TS/VIDEO_TS.VOB"), b"1");
        touch(&root.join("Heat (1995)/VIDEO_TS/VTS_01_1.VOB"), b"123456");
        touch(&root.join("Heat (1995)/VIDEO_TS/VTS_01_2.VOB"), b"123");
        touch(&root.join("Heat (1995)/VIDEO_TS/VTS_01_0.IFO"), b"1");
        touch(&root.join("Alien (1979)/BDMV/STREAM/00001.m2ts"), b"1");
        touch(&root.join("Alien (1979)/BDMV/STREAM/00002.m2ts"), b"12345");
        touch(&root.join("Alien (1979)/BDMV/index.bdmv"), b"1");
        let walked = walk(root).expect("walk");
        assert_eq!(
            relatives(&walked),
            [
                "Alien (1979)/BDMV/STREAM/00002.m2ts",
                "Heat (1995)/VIDEO_TS/VTS_01_1.VOB"
            ]
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_link_that_leaves_the_library_is_not_followed() {
        let outside = tempfile::tempdir().expect("temp dir");
        touch(&outside.path().join("secret.mkv"), b"secret");
        touch(&outside.path().join("dir/other.mkv"), b"secret");
        let dir = tempfile::tempdir().expect("temp dir");
        std::os::unix::fs::symlink(
            outside.path().join("secret.mkv"),
            dir.path().join("Escape.mkv"),
        )
        .expect("symlink");
        std::os::unix::fs::symlink(outside.path().join("dir"), dir.path().join("Escaped Dir"))
            .expect("symlink");
        let walked = walk(dir.path()).expect("walk");
        assert!(walked.videos.is_empty(), "{:?}", walked.videos);
        assert_eq!(walked.skipped.len(), 2, "{:?}", walked.skipped);
    }

    #[cfg(unix)]
    #[test]
    fn a_link_inside_the_library_is_followed_and_a_loop_is_walked_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        touch(&dir.path().join("real/Film (2000).mkv"), b"1");
        touch(&dir.path().join("elsewhere/Linked (2001).mkv"), b"1");
        // `a-alias` sorts before `real`, yet the film keeps its real path.
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("a-alias"))
            .expect("symlink");
        std::os::unix::fs::symlink(dir.path(), dir.path().join("real/loop")).expect("symlink");
        std::fs::create_dir_all(dir.path().join("links")).expect("mkdir");
        std::os::unix::fs::symlink(
            dir.path().join(".store/Hidden (2002).mkv"),
            dir.path().join("links/Hidden (2002).mkv"),
        )
        .expect("symlink");
        touch(&dir.path().join(".store/Hidden (2002).mkv"), b"1");
        let walked = walk(dir.path()).expect("walk");
        assert_eq!(
            relatives(&walked),
            [
                "elsewhere/Linked (2001).mkv",
                "links/Hidden (2002).mkv",
                "real/Film (2000).mkv"
            ]
        );
    }

    /// The parts of a library, walked one after the other, find what one whole walk finds.
    fn walked_by_parts(root: &Path) -> (Vec<String>, usize) {
        let units = units(root).expect("units");
        let mut linked = HashSet::new();
        let mut found = Vec::new();
        let mut ignored = units.ignored.len();
        let parts = units.folders.iter().map(Some).chain([None]);
        for part in parts {
            let walked = walk_unit(&units, part.map(PathBuf::as_path), &mut linked);
            found.extend(relatives(&walked));
            ignored += walked.ignored.len();
        }
        found.sort();
        (found, ignored)
    }

    #[cfg(unix)]
    #[test]
    fn walking_a_library_a_top_level_folder_at_a_time_finds_what_a_whole_walk_finds() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        touch(&root.join("real/Film (2000).mkv"), b"1");
        touch(&root.join("elsewhere/Linked (2001).mkv"), b"1");
        touch(&root.join(".store/Hidden (2002).mkv"), b"1");
        touch(&root.join("Loose (2003).mkv"), b"1");
        touch(&root.join("Loose (2003)-trailer.mkv"), b"1");
        touch(&root.join("@eaDir/x.mkv"), b"1");
        touch(&root.join("Private/.ignore"), b"");
        touch(&root.join("Private/Secret (2004).mkv"), b"1");
        touch(&root.join("Heat (1995)/VIDEO_TS/VTS_01_1.VOB"), b"123");
        touch(&root.join("Downloading (2024).mkv.part"), b"1");
        let link = |target: &Path, at: &str| {
            std::os::unix::fs::symlink(target, root.join(at)).expect("symlink");
        };
        // A top-level link to a walked folder, a loop, links into a hidden folder from two
        // parts (recorded once), a link into another part's walked folder, a loose link.
        link(&root.join("real"), "a-alias");
        link(root, "real/loop");
        std::fs::create_dir_all(root.join("links")).expect("mkdir");
        link(
            &root.join(".store/Hidden (2002).mkv"),
            "links/Hidden (2002).mkv",
        );
        link(&root.join(".store/Hidden (2002).mkv"), "zz-links");
        link(&root.join("elsewhere/Linked (2001).mkv"), "real/Again.mkv");
        link(&root.join("Loose (2003).mkv"), "Loose link.mkv");
        let whole = walk(root).expect("walk");
        let (parts, ignored) = walked_by_parts(root);
        let mut expected = relatives(&whole);
        expected.sort();
        assert_eq!(parts, expected);
        assert_eq!(ignored, whole.ignored.len());
        assert!(
            parts.contains(&"links/Hidden (2002).mkv".to_owned()),
            "{parts:?}"
        );
        assert!(parts.contains(&"Loose (2003).mkv".to_owned()), "{parts:?}");
    }

    #[test]
    fn stored_paths_meet_the_top_level_folders_in_byte_order() {
        let root = Path::new("/lib");
        let mut folders = [
            root.join("a"),
            root.join("a b"),
            root.join("a-b"),
            root.join("ab"),
        ];
        folders.sort_by_cached_key(|f| folder_key(f));
        let mut stored = [
            "/lib/a/x.mkv",
            "/lib/a b/x.mkv",
            "/lib/a-b/x.mkv",
            "/lib/ab/x.mkv",
            "/lib/a.mkv",
        ];
        stored.sort();
        let keys: Vec<Vec<u8>> = stored
            .iter()
            .filter_map(|p| unit_key(root, Path::new(p)))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(
            keys,
            folders.iter().map(|f| folder_key(f)).collect::<Vec<_>>()
        );
        assert_eq!(unit_key(root, Path::new("/lib/a.mkv")), None);
    }

    #[test]
    fn a_missing_library_folder_is_an_error_not_an_empty_library() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(walk(&dir.path().join("missing")).is_err());
    }

    fn found(path: &str, size: u64, mtime_ms: i64) -> FoundFile {
        FoundFile {
            path: PathBuf::from(path),
            relative: PathBuf::from(path.trim_start_matches('/')),
            size,
            mtime_ms,
        }
    }

    #[test]
    fn the_plan_probes_new_and_changed_files_and_removes_vanished_ones() {
        let on_disk = vec![
            found("/lib/new.mkv", 1, 1),
            found("/lib/same.mkv", 10, 100),
            found("/lib/bigger.mkv", 20, 100),
            found("/lib/touched.mkv", 10, 200),
        ];
        let known: BTreeMap<PathBuf, KnownFile> = [
            ("/lib/same.mkv", 10, 100),
            ("/lib/bigger.mkv", 10, 100),
            ("/lib/touched.mkv", 10, 100),
            ("/lib/gone.mkv", 5, 5),
        ]
        .into_iter()
        .map(|(p, size, mtime_ms)| (PathBuf::from(p), KnownFile { size, mtime_ms }))
        .collect();
        let plan = plan(&on_disk, &known);
        let paths = |files: &[FoundFile]| {
            files
                .iter()
                .map(|f| f.path.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            paths(&plan.to_probe),
            ["/lib/new.mkv", "/lib/bigger.mkv", "/lib/touched.mkv"]
        );
        assert_eq!(paths(&plan.unchanged), ["/lib/same.mkv"]);
        assert_eq!(plan.removed, [PathBuf::from("/lib/gone.mkv")]);
    }
}

//! Library scanning: walk the configured folders, probe new or changed video files with
//! ffprobe, name them (films, series → seasons → episodes), find or extract artwork, and write
//! the result to the store; items whose files are gone are removed.
//!
//! The parts are separate so each can be tested alone: [`walk`] (filesystem, containment of
//! links, ignored folders, disc folders), [`names`] (pure parsing), [`place`] (pure: films,
//! versions, stacks, extras and episodes over a whole folder tree), [`probe`] (ffprobe), [`prober`] (ffprobe without its start-up per file),
//! [`images`] (artwork), [`ids`] (stable item ids). This module ties them together and is the
//! only one that writes scan results.
//!
//! A library is walked, compared with the store, placed and written one top-level folder at a
//! time (the loose files of a library folder's root together, last), with the files the store
//! knows read a page at a time in the same order, so a scan holds the largest folder's files,
//! not the library's ([`ScanReport::largest_unit`]); new or changed files flow to the probes
//! through a short queue.
//!
//! A file the naming rules cannot place is reported (log, [`ScanReport::unplaced`], and the
//! library's scan summary in the store that `/Library/ScanSummary` serves), never dropped
//! silently. A library folder that reads as empty while its files were known is treated like
//! an unreadable one (an unmounted share): its items and users' play history are kept.
//!
//! A scan never stops at one bad file: a file ffprobe cannot read is recorded with its error
//! (and hidden from clients) and the scan goes on; a library folder that cannot be read at all
//! is skipped without removing its items, so an unmounted share does not empty a library.
//!
//! Serving checks containment again ([`media_path_for_serving`]): the stored path must still
//! resolve inside one of its library's configured folders when a client asks for it.

pub mod images;
pub mod names;
pub mod nfo;
pub mod place;
pub mod probe;
pub mod prober;
pub mod subtitles;
pub mod walk;
pub mod watch;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ephyra_config::{LibraryConfig, ServerConfig};
use futures::StreamExt;

use crate::jf::JfId;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::store::ids::ItemIds;
use crate::store::items::{
    ItemImage, ItemKind, ItemNaming, Library, NewItem, OwnerRole, ScanItemPages,
};
use crate::store::{Store, StoreError};

/// How long ffprobe may take on one file.
const PROBE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long ffmpeg may take to extract one frame.
const EXTRACT_TIMEOUT: Duration = Duration::from_secs(120);
/// Image type of the poster or thumbnail of an item.
pub const PRIMARY: &str = "Primary";

/// What a scan did, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Libraries scanned.
    pub libraries: usize,
    /// Video files found on disk.
    pub files: usize,
    /// Files probed because they were new or changed.
    pub probed: usize,
    /// Items removed because their files are gone.
    pub removed: u64,
    /// Files ffprobe could not read in this scan, with the reason.
    pub errors: Vec<(PathBuf, String)>,
    /// Frames newly recorded for films and episodes without artwork; the frame job
    /// ([`extract_planned_frames`]) extracts them after the scan, off its critical path.
    pub frames_planned: usize,
    /// Library folders that could not be read (their items were kept).
    pub unreadable_folders: Vec<PathBuf>,
    /// The folders walked: every library folder for a full scan, only the changed film's or
    /// series' folder for a scan of one folder ([`scan_folders`]).
    pub walked_folders: Vec<PathBuf>,
    /// Files placed, by role (`Movie`, `Episode`, `Extra`, `Version`, `Part`), this scan.
    pub placed: BTreeMap<&'static str, usize>,
    /// Files the naming rules could not place, with the reason (never dropped silently).
    pub unplaced: Vec<(PathBuf, String)>,
    /// Files and folders skipped on purpose (NAS system folders, downloads in progress,
    /// `.ignore`d folders).
    pub ignored: usize,
    /// The most video files the scan walked, placed and compared at once: a scan takes a
    /// library a top-level folder at a time (the loose files in a library folder's root
    /// together), so this is the largest such part, not the library.
    pub largest_unit: usize,
}

impl ScanReport {
    /// Adds what the placing side of a library's scan found to this report (the probing side
    /// writes here directly).
    fn absorb(&mut self, other: ScanReport) {
        self.files += other.files;
        self.probed += other.probed;
        self.removed += other.removed;
        self.errors.extend(other.errors);
        self.frames_planned += other.frames_planned;
        self.unreadable_folders.extend(other.unreadable_folders);
        self.walked_folders.extend(other.walked_folders);
        for (role, count) in other.placed {
            *self.placed.entry(role).or_default() += count;
        }
        self.unplaced.extend(other.unplaced);
        self.unplaced.sort();
        self.ignored += other.ignored;
        self.largest_unit = self.largest_unit.max(other.largest_unit);
    }
}

/// Why a scan did not run or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// Another scan is running in this process; it will see the same files.
    #[error("a library scan is already running")]
    AlreadyRunning,
    /// The store failed; the scan stopped and will be retried by the next one.
    #[error("the library scan could not write to the store")]
    Store(#[from] StoreError),
}

/// Resets the `scan_running` gauge when a scan ends, however it ends.
struct RunningGuard(Arc<Metrics>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.scan_running.set(0);
    }
}

/// Scans every configured library once. At most one scan runs per process: a second call
/// while one runs returns [`ScanError::AlreadyRunning`] at once.
pub async fn scan_all(state: &AppState) -> Result<ScanReport, ScanError> {
    let report = scan_with(&state.store, &state.config, &state.metrics).await?;
    finish(state, &report).await;
    Ok(report)
}

/// [`scan_all`] over explicit parts.
pub async fn scan_with(
    store: &Store,
    config: &ServerConfig,
    metrics: &Arc<Metrics>,
) -> Result<ScanReport, ScanError> {
    scan_paged(store, config, metrics, SCAN_PAGE).await
}

/// [`scan_all`] with the passes over every item reading `page` items at a time instead of
/// [`SCAN_PAGE`]: tests use a page smaller than their library to show that the passes page
/// (the result must not depend on it).
pub async fn scan_all_paged(state: &AppState, page: i64) -> Result<ScanReport, ScanError> {
    let report = scan_paged(&state.store, &state.config, &state.metrics, page.max(1)).await?;
    finish(state, &report).await;
    Ok(report)
}

async fn scan_paged(
    store: &Store,
    config: &ServerConfig,
    metrics: &Arc<Metrics>,
    page: i64,
) -> Result<ScanReport, ScanError> {
    // The gauge doubles as the lock: `set` swaps atomically and returns the old value.
    if metrics.scan_running.set(1) == 1 {
        return Err(ScanError::AlreadyRunning);
    }
    let _running = RunningGuard(metrics.clone());
    metrics.scan_files_total.set(0);
    metrics.scan_files_done.set(0);

    let libraries: Vec<Library> = config
        .libraries
        .iter()
        .map(|l| Library {
            id: store.ids().library(&l.name),
            name: l.name.clone(),
            kind: l.kind,
            folders: l.folders.clone(),
            created_at: 0,
        })
        .collect();
    store.sync_libraries(&libraries).await?;

    let mut report = ScanReport::default();
    let started = std::time::Instant::now();
    for library in &config.libraries {
        let scanner = LibraryScan {
            store,
            config,
            metrics,
            library,
            library_id: store.ids().library(&library.name),
            scope: None,
            page,
        };
        scanner.run(&mut report).await?;
        report.libraries += 1;
    }
    tracing::info!(
        libraries = report.libraries,
        files = report.files,
        probed = report.probed,
        removed = report.removed,
        errors = report.errors.len(),
        frames_planned = report.frames_planned,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "library scan finished"
    );
    Ok(report)
}

/// Scans only `folders` (library name, folder inside that library: a film's or a series'
/// folder where a file system event said something changed), not the rest of the library.
/// Files under each folder are compared with what the store knows under it: new or changed
/// ones are probed, gone ones removed; a folder that is gone while its library folder is
/// there was deleted, but a library folder that is unreadable or empty (an unmounted share)
/// keeps every item. Shares the one-scan-per-process lock with [`scan_all`].
pub async fn scan_folders(
    state: &AppState,
    folders: &[(String, PathBuf)],
) -> Result<ScanReport, ScanError> {
    let metrics = &state.metrics;
    if metrics.scan_running.set(1) == 1 {
        return Err(ScanError::AlreadyRunning);
    }
    let _running = RunningGuard(metrics.clone());
    metrics.scan_files_total.set(0);
    metrics.scan_files_done.set(0);
    let mut report = ScanReport::default();
    let started = std::time::Instant::now();
    for (name, folder) in folders {
        let Some(library) = state.config.libraries.iter().find(|l| &l.name == name) else {
            tracing::warn!(library = %name, "a folder scan names a library that is no longer configured; skipped");
            continue;
        };
        // A folder that is gone cannot be canonicalized: its parent can (links resolved the
        // same way the walk resolves them, so stored paths match).
        let scope = match folder.canonicalize() {
            Ok(path) => path,
            Err(_) => match (folder.parent().map(Path::canonicalize), folder.file_name()) {
                (Some(Ok(parent)), Some(name)) => parent.join(name),
                _ => folder.clone(),
            },
        };
        let scanner = LibraryScan {
            store: &state.store,
            config: &state.config,
            metrics,
            library,
            library_id: state.store.ids().library(&library.name),
            scope: Some(scope),
            page: SCAN_PAGE,
        };
        scanner.run(&mut report).await?;
    }
    tracing::info!(
        folders = folders.len(),
        files = report.files,
        probed = report.probed,
        removed = report.removed,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "folder scan finished"
    );
    finish(state, &report).await;
    Ok(report)
}

/// What every scan does once it wrote: the frame job when frames were recorded, and a
/// library-changed event when items came or went.
async fn finish(state: &AppState, report: &ScanReport) {
    if report.frames_planned > 0 {
        // One replica makes the frames, after the items are listed; a frame job already
        // waiting in the lane covers these too.
        if let Err(e) = state
            .store
            .enqueue(&crate::jobs::kinds::frame_extraction())
            .await
        {
            tracing::warn!(error = %crate::error::DisplayChain(&e), "cannot enqueue the frame job; frames are made on request");
        }
    }
    if report.probed > 0 || report.removed > 0 {
        // Clients on every replica refresh their views (the scan does not track ids yet, so
        // the lists are empty and `IsEmpty` is false: "something changed").
        state
            .coordinator
            .publish_or_log(crate::coord::Event::library_changed(serde_json::json!({
                "FoldersAddedTo": [], "FoldersRemovedFrom": [], "ItemsAdded": [],
                "ItemsRemoved": [], "ItemsUpdated": [], "CollectionFolders": [],
                "IsEmpty": false,
            })))
            .await;
    }
}

/// The path to open for a stored media or image path, or `None` when it no longer resolves
/// inside one of `library_id`'s configured folders (or, for extracted images, the data
/// folder's `images/`). Links are resolved first, so a link swapped after the scan to point
/// outside the library is refused.
pub fn media_path_for_serving(
    config: &ServerConfig,
    ids: &ItemIds,
    library_id: JfId,
    stored: &Path,
) -> Option<PathBuf> {
    let resolved = stored.canonicalize().ok()?;
    let library = config
        .libraries
        .iter()
        .find(|l| ids.library(&l.name) == library_id)?;
    let mut allowed: Vec<PathBuf> = library
        .folders
        .iter()
        .filter_map(|f| f.canonicalize().ok())
        .collect();
    if let Ok(images) = extracted_images_dir(config).canonicalize() {
        allowed.push(images);
    }
    allowed
        .iter()
        .any(|root| resolved.starts_with(root))
        .then_some(resolved)
}

/// Where extracted frames are written.
pub fn extracted_images_dir(config: &ServerConfig) -> PathBuf {
    config.data_dir.join("images")
}

/// Extracts the frame that stands for a video (10 % in, as Jellyfin does: past titles, before
/// credits) into `output`.
async fn extract_item_frame(
    config: &ServerConfig,
    output: &Path,
    video: &Path,
    runtime_ticks: Option<i64>,
) -> Result<(), images::ExtractError> {
    let at = runtime_ticks.map_or(0.0, |t| t as f64 / probe::TICKS_PER_SECOND as f64 / 10.0);
    images::extract_frame(&config.ffmpeg.ffmpeg, video, output, at, EXTRACT_TIMEOUT).await
}

/// The Primary image a film or episode without artwork of its own gets: a frame of its video,
/// recorded by the scan before it exists and extracted later (by the frame job, or by the
/// first request on a replica that lacks it). The file is named `<item id>-<tag>.jpg` and the
/// tag comes from the video's size and modification time, not from the frame's file, so every
/// replica records and serves the same tag for the same bytes, and a changed video gets a new
/// name instead of an old frame.
pub fn planned_frame(config: &ServerConfig, item_id: JfId, size: i64, mtime: i64) -> ItemImage {
    let tag = images::image_tag(
        Path::new(&format!("frame:{}", item_id.to_n())),
        u64::try_from(size).unwrap_or(0),
        mtime,
    );
    ItemImage {
        item_id,
        image_type: PRIMARY.to_owned(),
        image_index: 0,
        path: extracted_images_dir(config).join(format!("{}-{tag}.jpg", item_id.to_n())),
        tag,
        file_mtime: Some(mtime),
    }
}

/// The item whose video an extracted frame at `stored` comes from: `images/<id>.jpg` (frames
/// extracted by earlier versions) or `images/<id>-<tag>.jpg`. `None` for any other path.
fn frame_source(stored: &Path) -> Option<JfId> {
    let in_images_dir = stored.parent()?.file_name()? == "images";
    let is_jpeg = stored.extension()? == "jpg";
    if !(in_images_dir && is_jpeg) {
        return None;
    }
    let stem = stored.file_stem()?.to_str()?;
    stem.split('-').next()?.parse().ok()
}

/// Whether two records name the same extracted frame (the folder differs between replicas).
fn same_frame(a: &ItemImage, b: &ItemImage) -> bool {
    a.tag == b.tag && a.path.file_name() == b.path.file_name()
}

/// The local copy of an extracted frame recorded at `stored`, made now when this replica has
/// none. The scan only records frames; the frame job ([`extract_planned_frames`]) makes them
/// on one replica, and each replica has its own data folder: any replica must still serve any
/// image, so one that lacks the file extracts the same frame from the same video (at most
/// [`FRAME_EXTRACTIONS`] at once, shared with the frame job). `None` when `stored` is not an
/// extracted frame or its video cannot give one.
pub async fn local_extracted_frame(
    config: &ServerConfig,
    store: &Store,
    stored: &Path,
) -> Option<PathBuf> {
    let source = frame_source(stored)?;
    let local = extracted_images_dir(config).join(stored.file_name()?);
    if tokio::fs::metadata(&local).await.is_ok() {
        return local.canonicalize().ok();
    }
    let item = store.item(source, None).await.ok()??;
    let video = PathBuf::from(item.path?);
    // The video must still be inside its library, as for any file served.
    let video = media_path_for_serving(config, store.ids(), item.library_id, &video)?;
    let _slot = FRAME_SLOTS.acquire().await.ok()?;
    // Another request may have made it while this one waited for a slot.
    if tokio::fs::metadata(&local).await.is_err()
        && let Err(e) = extract_item_frame(config, &local, &video, item.run_time_ticks).await
    {
        tracing::warn!(item_id = %source, error = %e, "no frame extracted");
        return None;
    }
    local.canonicalize().ok()
}

/// Frames a replica extracts at once (each is one short ffmpeg run): requests for images it
/// lacks and the frame job share these, so the job never holds more than one of them and
/// playback keeps the cores.
const FRAME_EXTRACTIONS: usize = 2;
static FRAME_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(FRAME_EXTRACTIONS);

/// What the frame job did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FramesReport {
    /// Frames extracted now.
    pub extracted: usize,
    /// Frames already on this replica's disk.
    pub present: usize,
    /// Videos that gave no frame: their records (and the borrowing series' and seasons') are
    /// removed, so clients are not sent to an image that cannot exist.
    pub failed: usize,
}

/// The frame job: extracts, one at a time, every frame the scans recorded and this replica
/// does not have yet. Run once, on any replica, after a scan that recorded new frames; the
/// other replicas extract what they are asked for on request.
pub async fn extract_planned_frames(
    config: &ServerConfig,
    store: &Store,
) -> Result<FramesReport, StoreError> {
    extract_planned_frames_paged(config, store, SCAN_PAGE).await
}

/// [`extract_planned_frames`] reading `page` image records at a time instead of
/// [`SCAN_PAGE`] (tests: a frame's holders split over pages are still one frame).
pub async fn extract_planned_frames_paged(
    config: &ServerConfig,
    store: &Store,
    page: i64,
) -> Result<FramesReport, StoreError> {
    let page_size = page.max(1);
    let mut report = FramesReport::default();
    let dir = extracted_images_dir(config);
    for library in store.libraries().await? {
        // A page of records at a time, in the order of their paths: series and seasons borrow
        // an episode's record (one frame, several holders), and those holders come one after
        // the other, so a frame is looked at once with all its holders while the job holds
        // one page, not the library's every image.
        let mut holders: Option<(PathBuf, Vec<JfId>)> = None;
        let mut after: Option<(PathBuf, JfId)> = None;
        loop {
            let page = store
                .primary_images_page(
                    library.id,
                    after.as_ref().map(|(p, id)| (p.as_path(), *id)),
                    page_size,
                )
                .await?;
            let last_page = page.len() < usize::try_from(page_size).unwrap_or(usize::MAX);
            after = page.last().map(|(id, path)| (path.clone(), *id));
            for (item_id, path) in page {
                if frame_source(&path).is_none() {
                    continue;
                }
                let Some(name) = path.file_name().map(PathBuf::from) else {
                    continue;
                };
                match &mut holders {
                    Some((current, items)) if *current == name => items.push(item_id),
                    _ => {
                        if let Some((name, items)) = holders.take() {
                            make_frame(config, store, &dir.join(name), items, &mut report).await?;
                        }
                        holders = Some((name, vec![item_id]));
                    }
                }
            }
            if last_page {
                break;
            }
        }
        if let Some((name, items)) = holders {
            make_frame(config, store, &dir.join(name), items, &mut report).await?;
        }
        log_phase_memory(&library.name, "frames");
    }
    Ok(report)
}

/// The frame job's work for one frame file `local` and the items whose records name it.
async fn make_frame(
    config: &ServerConfig,
    store: &Store,
    local: &Path,
    items: Vec<JfId>,
    report: &mut FramesReport,
) -> Result<(), StoreError> {
    if tokio::fs::metadata(local).await.is_ok() {
        report.present += 1;
        return Ok(());
    }
    if local_extracted_frame(config, store, local).await.is_some() {
        report.extracted += 1;
        return Ok(());
    }
    report.failed += 1;
    for item in items {
        store.remove_image(item, PRIMARY, 0).await?;
    }
    Ok(())
}

/// Logs (at debug level) the process's resident set now and its peak so far after a scan
/// phase, so a run with `EPHYRA_LOG=info,ephyra_server::scan=debug` shows which phase holds
/// memory (Linux only: elsewhere nothing is logged).
fn log_phase_memory(library: &str, phase: &'static str) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return;
    };
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    tracing::debug!(
        library,
        phase,
        rss_kib = field("VmRSS:"),
        peak_kib = field("VmHWM:"),
        "scan phase done"
    );
}

/// One library's scan.
struct LibraryScan<'a> {
    store: &'a Store,
    config: &'a ServerConfig,
    metrics: &'a Arc<Metrics>,
    library: &'a LibraryConfig,
    library_id: JfId,
    /// Scan only this folder (canonical, inside one of the library's folders): a film's or a
    /// series' folder where a file system event said something changed. `None`: everything.
    scope: Option<PathBuf>,
    /// Items read at once by the passes over every item ([`SCAN_PAGE`] but in tests).
    page: i64,
}

/// One item's row as the scan writes it: the item, its streams when probed, its naming.
type ItemRows = (NewItem, Option<Vec<probe::StreamInfo>>, ItemNaming);

/// Items read at once by the passes over every item of a library (metadata, artwork).
const SCAN_PAGE: i64 = 500;

/// Files whose rows are written in one batch (see `LibraryScan::probe_and_write`).
const WRITE_BATCH: usize = 64;

/// A file placed by the naming rules, ready to be probed and written.
struct Named {
    file: walk::FoundFile,
    root: PathBuf,
    role: place::Role,
}

/// What the scan of one library gathers for its summary and the passes after the probes.
#[derive(Debug, Default)]
struct LibraryWalk {
    /// The library folders walked (roots and the images found under them; no file lists).
    walked: Vec<walk::Walked>,
    /// Video files found.
    files: usize,
    /// Entries skipped on purpose.
    ignored: usize,
    /// Files placed, by role.
    placed: BTreeMap<&'static str, usize>,
}

/// Where the scan of one library folder stands.
#[derive(Debug, Default)]
struct RootState {
    /// Video files found under the folder so far.
    found: usize,
    /// Known files found gone before any video was found: removed once one is, kept when the
    /// folder turns out empty (an unmounted share).
    held_back: Vec<PathBuf>,
}

/// The files the store knows under one folder, read a page at a time in the byte order of
/// their paths, and handed out a top-level folder at a time as the walk reaches it.
struct KnownPages<'s> {
    store: &'s Store,
    library_id: JfId,
    folder: PathBuf,
    page: i64,
    buffer: std::collections::VecDeque<(String, crate::store::items::KnownFile)>,
    after: Option<String>,
    done: bool,
}

impl<'s> KnownPages<'s> {
    fn new(scan: &LibraryScan<'s>, folder: &Path) -> KnownPages<'s> {
        KnownPages {
            store: scan.store,
            library_id: scan.library_id,
            folder: folder.to_owned(),
            page: scan.page.max(1),
            buffer: std::collections::VecDeque::new(),
            after: None,
            done: false,
        }
    }

    /// Whether a known path is left, reading a page when the last one is used up.
    async fn peek(&mut self) -> Result<bool, StoreError> {
        if self.buffer.is_empty() && !self.done {
            let page = self
                .store
                .known_files_page(
                    self.library_id,
                    &self.folder,
                    self.after.as_deref(),
                    self.page,
                )
                .await?;
            self.done = page.len() < usize::try_from(self.page).unwrap_or(usize::MAX);
            self.after = page.last().map(|(path, _)| path.clone());
            self.buffer.extend(page);
        }
        Ok(!self.buffer.is_empty())
    }

    /// Every known file left.
    async fn take_all(
        &mut self,
    ) -> Result<Vec<(String, crate::store::items::KnownFile)>, StoreError> {
        let mut all = Vec::new();
        while self.peek().await? {
            all.extend(self.buffer.drain(..));
        }
        Ok(all)
    }

    /// The known files of the top-level folder whose [`walk::folder_key`] is `key` (`None`:
    /// of none, to the end). On the way, files of top-level folders before it (no longer on
    /// disk) go to `vanished` and files directly in the root to `loose`.
    async fn take_unit(
        &mut self,
        key: Option<&[u8]>,
        vanished: &mut Vec<PathBuf>,
        loose: &mut Vec<(String, crate::store::items::KnownFile)>,
    ) -> Result<Vec<(String, crate::store::items::KnownFile)>, StoreError> {
        let mut own = Vec::new();
        while self.peek().await? {
            let Some(next) = self.buffer.pop_front() else {
                break;
            };
            let path_key = walk::unit_key(&self.folder, Path::new(&next.0));
            match (path_key, key) {
                (None, _) => loose.push(next),
                (Some(at), Some(key)) if at.as_slice() == key => own.push(next),
                (Some(at), Some(key)) if at.as_slice() > key => {
                    self.buffer.push_front(next);
                    break;
                }
                _ => vanished.push(PathBuf::from(next.0)),
            }
        }
        Ok(own)
    }
}

impl LibraryScan<'_> {
    /// The library's items (of `kinds`, or all), a page at a time in id order: the passes
    /// over every item read the library this way, so their memory does not grow with it.
    fn item_pages<'k>(&'k self, kinds: &'k [ItemKind]) -> ScanItemPages<'k> {
        self.store
            .scan_item_pages(self.library_id, kinds, self.page)
    }

    /// Every series' folder, by id.
    async fn series_dirs(&self) -> Result<HashMap<JfId, PathBuf>, StoreError> {
        let mut dirs = HashMap::new();
        let mut pages = self.item_pages(&[ItemKind::Series]);
        while let Some(items) = pages.next().await? {
            dirs.extend(
                items
                    .into_iter()
                    .filter_map(|i| Some((i.id, PathBuf::from(i.path?)))),
            );
        }
        Ok(dirs)
    }

    /// Whether the scan looks at an item with this path: every item for a full scan; for a
    /// scoped one, those under its folder (and path-less ones, cheap: seasons without a folder).
    fn in_scope(&self, path: Option<&Path>) -> bool {
        match (&self.scope, path) {
            (Some(scope), Some(path)) => path.starts_with(scope),
            _ => true,
        }
    }

    /// Walks the scope's folder. `None` when the library folder holding it cannot be read or
    /// reads as empty (an unmounted share: nothing may be taken for deleted, and the scope is
    /// recorded as unreadable). A scope that is gone while its library folder is there was
    /// deleted: it walks as empty, and its items are removed.
    async fn walk_scope(&self, scope: &Path, report: &mut ScanReport) -> Option<walk::Walked> {
        let root = self
            .library
            .folders
            .iter()
            .filter_map(|f| f.canonicalize().ok())
            .find(|root| scope.starts_with(root));
        let Some(root) = root else {
            tracing::error!(library = %self.library.name, folder = %scope.display(), "the folder to scan is not under a readable library folder; items are kept");
            report.unreadable_folders.push(scope.to_owned());
            return None;
        };
        let readable_and_not_empty = std::fs::read_dir(&root).is_ok_and(|mut e| e.next().is_some());
        if !readable_and_not_empty {
            tracing::error!(library = %self.library.name, folder = %root.display(), "library folder unreadable or empty; taken for an unmounted share, its items are kept");
            report.unreadable_folders.push(root);
            return None;
        }
        let (walk_root, sub) = (root.clone(), scope.to_owned());
        let result = tokio::task::spawn_blocking(move || {
            if sub.exists() {
                walk::walk_under(&walk_root, &sub).map(Some)
            } else {
                Ok(None)
            }
        })
        .await;
        match result {
            Ok(Ok(Some(w))) => Some(w),
            Ok(Ok(None)) => Some(walk::Walked {
                root,
                ..walk::Walked::default()
            }),
            Ok(Err(e)) => {
                tracing::error!(library = %self.library.name, error = %e, "folder unreadable; its items are kept");
                report.unreadable_folders.push(scope.to_owned());
                None
            }
            Err(join) => {
                tracing::error!(library = %self.library.name, error = %join, "folder walk failed");
                None
            }
        }
    }

    async fn run(&self, report: &mut ScanReport) -> Result<(), ScanError> {
        let name = self.library.name.as_str();
        // 1-5. Walk, compare, place and write one top-level folder at a time, while the files
        //      to probe flow to the probes through a short queue: what the scan holds is
        //      bounded by the largest folder, not by the library.
        let (to_probe, queue) = tokio::sync::mpsc::channel(WRITE_BATCH);
        let mut placing = ScanReport::default();
        let mut library = LibraryWalk::default();
        let mut queue = queue;
        let queued = futures::stream::poll_fn(move |cx| queue.poll_recv(cx));
        let (go_on, ()) = futures::future::try_join(
            self.place_units(to_probe, &mut placing, &mut library),
            self.probe_and_write(queued, report),
        )
        .await?;
        report.absorb(placing);
        log_phase_memory(name, "probe");
        if !go_on {
            return Ok(());
        }
        self.store.remove_empty_folders(self.library_id).await?;
        self.store.sum_stacked_runtimes(self.library_id).await?;
        log_phase_memory(name, "folders");
        if self.scope.is_none() {
            // A scoped scan saw one folder: the library's summary stays the last full scan's.
            self.store
                .set_scan_summary(self.library_id, &summary_json(report, &library))
                .await?;
        }
        // The passes below need the walked folders' roots and images.
        let walked = library.walked;

        // 5b. External subtitles beside every video, changed or not.
        let roots: Vec<PathBuf> = match &self.scope {
            Some(scope) => vec![scope.clone()],
            None => walked.iter().map(|w| w.root.clone()).collect(),
        };
        subtitles::refresh(self.store, self.library_id, &roots, self.page).await?;
        log_phase_memory(name, "subtitles");

        // 5c. Local metadata from .nfo files beside the media, re-read when they change.
        self.refresh_metadata(&walked).await?;
        log_phase_memory(name, "metadata");

        // 6. Artwork.
        report.frames_planned += self.refresh_images(&walked).await?;
        log_phase_memory(name, "images");
        self.refresh_artwork(&walked).await?;
        log_phase_memory(name, "artwork");
        Ok(())
    }

    /// Walks the library (or the scope's folder), compares each part with what the store
    /// knows, removes the items of vanished files, places the files and re-places unchanged
    /// ones whose placement changed, and queues new or changed files on `to_probe`. A library
    /// folder is taken a top-level folder at a time ([`walk::Units`]). `false` when the scan
    /// must stop here (a scoped scan whose library folder reads as unmounted).
    async fn place_units(
        &self,
        to_probe: tokio::sync::mpsc::Sender<Named>,
        report: &mut ScanReport,
        library: &mut LibraryWalk,
    ) -> Result<bool, ScanError> {
        if let Some(scope) = &self.scope {
            // The library folder is unreadable or empty: an unmounted share keeps every item.
            let Some(mut w) = self.walk_scope(scope, report).await else {
                return Ok(false);
            };
            report.walked_folders.push(scope.clone());
            // A scoped scan compares only the files under its folder; its library folder was
            // checked for an unmounted share above, and an empty scope is files deleted.
            let own = KnownPages::new(self, scope).take_all().await?;
            // Nothing is held back: an empty scope is files deleted.
            let mut state = RootState {
                found: 1,
                ..RootState::default()
            };
            let videos = std::mem::take(&mut w.videos);
            report.ignored += w.ignored.len();
            library.ignored += w.ignored.len();
            self.scan_unit(&w.root, videos, own, &mut state, report, library, &to_probe)
                .await?;
            library.walked.push(walk::Walked {
                root: w.root,
                images: w.images,
                ..walk::Walked::default()
            });
            log_phase_memory(&self.library.name, "place");
            return Ok(true);
        }
        let mut all_reachable = true;
        for folder in &self.library.folders {
            let folder = folder.clone();
            let units = match tokio::task::spawn_blocking(move || walk::units(&folder)).await {
                Ok(Ok(units)) => units,
                Ok(Err(e)) => {
                    tracing::error!(library = %self.library.name, error = %e, "library folder unreadable; its items are kept");
                    report.unreadable_folders.push(e.folder.clone());
                    all_reachable = false;
                    continue;
                }
                Err(join) => {
                    tracing::error!(library = %self.library.name, error = %join, "folder walk failed");
                    all_reachable = false;
                    continue;
                }
            };
            report.walked_folders.push(units.root.clone());
            if !self.scan_root(units, report, library, &to_probe).await? {
                all_reachable = false;
            }
        }
        // Files under none of the library's folders (a folder taken out of its configuration)
        // are gone, unless a folder could not be read: they may be under it.
        if all_reachable {
            let folders: Vec<PathBuf> = library.walked.iter().map(|w| w.root.clone()).collect();
            let mut after: Option<String> = None;
            loop {
                let page = self
                    .store
                    .known_files_outside(self.library_id, &folders, after.as_deref(), self.page)
                    .await?;
                let last_page = page.len() < usize::try_from(self.page).unwrap_or(usize::MAX);
                after.clone_from(&page.last().cloned());
                let paths: Vec<PathBuf> = page.into_iter().map(PathBuf::from).collect();
                if !paths.is_empty() {
                    report.removed += self.store.remove_files(self.library_id, &paths).await?;
                }
                if last_page {
                    break;
                }
            }
        }
        log_phase_memory(&self.library.name, "place");
        Ok(true)
    }

    /// [`Self::place_units`] for one library folder, a top-level folder at a time (the loose
    /// files in the root last, together). `false` when the folder reads as empty while the
    /// store knows files under it: taken for an unmounted share (an NFS mount point left
    /// empty), not for a library whose every file was deleted, its items are kept.
    async fn scan_root(
        &self,
        units: walk::Units,
        report: &mut ScanReport,
        library: &mut LibraryWalk,
        to_probe: &tokio::sync::mpsc::Sender<Named>,
    ) -> Result<bool, ScanError> {
        let root = units.root.clone();
        let mut ignored = units.ignored.len();
        // The walk runs ahead by one part, off the async threads.
        let (parts, mut walked_parts) = tokio::sync::mpsc::channel(1);
        let walking = tokio::task::spawn_blocking(move || {
            let mut linked = HashSet::new();
            for folder in &units.folders {
                let part = walk::walk_unit(&units, Some(folder), &mut linked);
                if parts
                    .blocking_send((Some(walk::folder_key(folder)), part))
                    .is_err()
                {
                    return;
                }
            }
            let loose = walk::walk_unit(&units, None, &mut linked);
            let _ = parts.blocking_send((None, loose));
        });
        let mut known = KnownPages::new(self, &root);
        let mut state = RootState::default();
        let mut images = HashSet::new();
        let mut loose_known = Vec::new();
        while let Some((key, part)) = walked_parts.recv().await {
            for (path, reason) in &part.skipped {
                tracing::warn!(library = %self.library.name, path = %path.display(), %reason, "skipped");
            }
            ignored += part.ignored.len();
            images.extend(part.images);
            let mut vanished = Vec::new();
            let own = match key {
                Some(key) => {
                    known
                        .take_unit(Some(&key), &mut vanished, &mut loose_known)
                        .await?
                }
                None => {
                    known
                        .take_unit(None, &mut vanished, &mut loose_known)
                        .await?;
                    std::mem::take(&mut loose_known)
                }
            };
            // Known files of top-level folders no longer on disk.
            self.remove_vanished(vanished, &mut state, report).await?;
            self.scan_unit(
                &root,
                part.videos,
                own,
                &mut state,
                report,
                library,
                to_probe,
            )
            .await?;
        }
        if let Err(join) = walking.await {
            tracing::error!(library = %self.library.name, error = %join, "folder walk failed");
        }
        if state.found == 0 && !state.held_back.is_empty() {
            tracing::error!(library = %self.library.name, folder = %root.display(), "library folder is empty but its files were known; taken for an unmounted share, its items are kept");
            report.unreadable_folders.push(root);
            return Ok(false);
        }
        report.ignored += ignored;
        library.ignored += ignored;
        library.walked.push(walk::Walked {
            root,
            images,
            ..walk::Walked::default()
        });
        Ok(true)
    }

    /// Removes the items of known files that are gone, unless no video was found yet under
    /// the library folder: those are held back until one is (a folder that reads as empty
    /// is taken for an unmounted share, and nothing under it may be taken for deleted).
    async fn remove_vanished(
        &self,
        mut gone: Vec<PathBuf>,
        state: &mut RootState,
        report: &mut ScanReport,
    ) -> Result<(), ScanError> {
        if state.found == 0 {
            state.held_back.append(&mut gone);
            return Ok(());
        }
        gone.append(&mut state.held_back);
        if !gone.is_empty() {
            report.removed += self.store.remove_files(self.library_id, &gone).await?;
        }
        Ok(())
    }

    /// One part of a library folder: its files on disk (`videos`) and the files the store
    /// knows under it (`known`). Removes the items of vanished files, places every file (the
    /// rules look at a folder's files together: versions, stacks, extras), reports what cannot
    /// be placed, re-places unchanged files whose placement changed, and queues new or changed
    /// files on `to_probe`.
    #[allow(clippy::too_many_arguments)] // The parts of one scan's state, each used here.
    async fn scan_unit(
        &self,
        root: &Path,
        videos: Vec<walk::FoundFile>,
        known: Vec<(String, crate::store::items::KnownFile)>,
        state: &mut RootState,
        report: &mut ScanReport,
        library: &mut LibraryWalk,
        to_probe: &tokio::sync::mpsc::Sender<Named>,
    ) -> Result<(), ScanError> {
        // 2. Compare with what the store knows.
        let found_count = videos.len();
        state.found += found_count;
        report.files += found_count;
        library.files += found_count;
        report.largest_unit = report.largest_unit.max(found_count);
        self.metrics
            .scan_files_total
            .inc_by(i64::try_from(found_count).unwrap_or(i64::MAX));
        let mut considered = BTreeMap::new();
        let mut placements = HashMap::new();
        for (path, k) in known {
            let path = PathBuf::from(path);
            considered.insert(
                path.clone(),
                walk::KnownFile {
                    size: u64::try_from(k.size_bytes).unwrap_or(u64::MAX),
                    mtime_ms: k.file_mtime,
                },
            );
            placements.insert(path, k.placement);
        }
        let plan = walk::plan(&videos, &considered);
        self.metrics
            .scan_files_done
            .inc_by(i64::try_from(plan.unchanged.len()).unwrap_or(i64::MAX));

        // 3. Remove items of vanished files (and seasons/series left empty).
        self.remove_vanished(plan.removed, state, report).await?;
        if videos.is_empty() {
            return Ok(());
        }

        // 4. Place every file, report what cannot be placed, and re-place unchanged files
        //    whose placement changed.
        let relative: Vec<PathBuf> = videos.iter().map(|f| f.relative.clone()).collect();
        let roles: HashMap<PathBuf, place::Role> = place::place(self.library.kind, &relative)
            .into_iter()
            .map(|(rel, role)| (root.join(rel), role))
            .collect();
        drop(relative);
        let mut unplaced_known = Vec::new();
        for file in &videos {
            let Some(role) = roles.get(&file.path) else {
                continue;
            };
            let key = role_name(role);
            *library.placed.entry(key).or_default() += 1;
            *report.placed.entry(key).or_default() += 1;
            if let place::Role::Unplaced(reason) = role {
                tracing::warn!(library = %self.library.name, path = %file.path.display(), %reason, "file cannot be placed; not added");
                report
                    .unplaced
                    .push((file.path.clone(), (*reason).to_owned()));
                if considered.contains_key(&file.path) {
                    unplaced_known.push(file.path.clone());
                }
            }
        }
        if !unplaced_known.is_empty() {
            report.removed += self
                .store
                .remove_files(self.library_id, &unplaced_known)
                .await?;
        }
        for file in &plan.unchanged {
            let Some(role) = roles.get(&file.path) else {
                continue;
            };
            if matches!(role, place::Role::Unplaced(_)) {
                continue;
            }
            if placements.get(&file.path) == Some(&placement_key(role)) {
                continue;
            }
            let named = Named {
                file: file.clone(),
                root: root.to_owned(),
                role: role.clone(),
            };
            let rows = self.items_for(&named, None);
            let (file_rows, folder_rows): (Vec<_>, Vec<_>) = rows
                .into_iter()
                .partition(|(item, _, _)| item.path.as_deref() == Some(named.file.path.as_path()));
            if !folder_rows.is_empty() {
                self.write_rows(&named, folder_rows).await?;
            }
            let relink: Vec<(NewItem, ItemNaming)> = file_rows
                .into_iter()
                .map(|(item, _, naming)| (item, naming))
                .collect();
            self.store.relink_items(&relink).await?;
        }

        // 5. New or changed files go to the probes. Disc images are not probed (ffprobe
        //    cannot read them) but listed.
        for file in plan.to_probe {
            let Some(role) = roles.get(&file.path) else {
                continue;
            };
            if matches!(role, place::Role::Unplaced(_)) {
                self.metrics.scan_files_done.inc();
                continue;
            }
            let named = Named {
                file,
                root: root.to_owned(),
                role: role.clone(),
            };
            if to_probe.send(named).await.is_err() {
                // The writer stopped on an error, which the scan returns.
                break;
            }
        }
        Ok(())
    }

    /// Probes `files` (`scan.concurrency` ffprobe runs at once) and writes their rows. The
    /// writes run beside the probes, not between them, and take what has finished in one
    /// batch of up to [`WRITE_BATCH`] files (two transactions instead of two per file), so a
    /// slow write never leaves the cores idle and the database is not the bottleneck.
    async fn probe_and_write(
        &self,
        files: impl futures::Stream<Item = Named> + Unpin,
        report: &mut ScanReport,
    ) -> Result<(), ScanError> {
        let prober = prober::Prober::new(
            &self.config.ffmpeg.ffprobe,
            self.config.scan.fork_server,
            &self.config.data_dir,
        );
        let prober = &prober;
        let concurrency = usize::try_from(self.config.scan.concurrency.max(1)).unwrap_or(1);
        let (done_tx, mut done_rx) = tokio::sync::mpsc::channel(WRITE_BATCH * 2);
        let probing = async move {
            let mut probed = files
                .map(|named| async move {
                    let info = if names::is_disc_image(&named.file.path) {
                        Ok(probe::MediaInfo {
                            container: "iso".to_owned(),
                            duration_ticks: None,
                            bitrate: None,
                            size: i64::try_from(named.file.size).ok(),
                            streams: Vec::new(),
                            chapters: Vec::new(),
                        })
                    } else {
                        prober.probe(&named.file.path, PROBE_TIMEOUT).await
                    };
                    (named, info)
                })
                .buffer_unordered(concurrency);
            while let Some(done) = probed.next().await {
                if done_tx.send(done).await.is_err() {
                    // The writer stopped on an error, which the scan returns.
                    break;
                }
            }
            Ok::<(), ScanError>(())
        };
        let writing = async {
            let mut batch = Vec::with_capacity(WRITE_BATCH);
            while done_rx.recv_many(&mut batch, WRITE_BATCH).await > 0 {
                let mut rows = Vec::with_capacity(batch.len());
                let mut chapters = Vec::with_capacity(batch.len());
                for (named, info) in batch.drain(..) {
                    report.probed += 1;
                    if let Err(e) = &info {
                        let reason = e.to_string();
                        tracing::warn!(library = %self.library.name, path = %named.file.path.display(), %reason, "ffprobe cannot read the file; recorded and skipped");
                        self.metrics.scan_errors.inc();
                        report.errors.push((named.file.path.clone(), reason));
                    }
                    let id = self
                        .store
                        .ids()
                        .file_item(&self.library.name, &named.file.path);
                    let found = info.as_ref().map(|i| i.chapters.clone());
                    chapters.push((id, found.unwrap_or_default()));
                    let file_rows = self.items_for(&named, Some(info.ok()));
                    rows.push((named, file_rows));
                }
                let files = i64::try_from(rows.len()).unwrap_or(i64::MAX);
                self.write_batch(rows).await?;
                // After the items: a file skipped (it belongs to another library) gets none.
                let chapters: Vec<_> = chapters.iter().map(|(id, c)| (*id, c.as_slice())).collect();
                self.store.replace_chapters(&chapters).await?;
                self.metrics.scan_files_done.inc_by(files);
            }
            Ok::<(), ScanError>(())
        };
        futures::future::try_join(probing, writing).await?;
        Ok(())
    }

    /// Writes several files' rows together; when that is refused because one of them already
    /// belongs to another library, each file is written alone so only that one is skipped.
    async fn write_batch(&self, files: Vec<(Named, Vec<ItemRows>)>) -> Result<(), ScanError> {
        // Episodes of one season repeat their series' and season's rows: write each once.
        let mut seen = HashSet::new();
        let all: Vec<ItemRows> = files
            .iter()
            .flat_map(|(_, rows)| rows.iter())
            .filter(|(item, _, _)| seen.insert(item.id))
            .cloned()
            .collect();
        match self.store.upsert_named_items(&all).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict(_)) => {
                for (named, rows) in files {
                    self.write_rows(&named, rows).await?;
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Writes one file's rows; a file already under another library is skipped.
    async fn write_rows(
        &self,
        named: &Named,
        rows: Vec<(NewItem, Option<Vec<probe::StreamInfo>>, ItemNaming)>,
    ) -> Result<(), ScanError> {
        match self.store.upsert_named_items(&rows).await {
            Ok(()) => Ok(()),
            // The same file under two libraries (overlapping folders): keep the first.
            Err(StoreError::Conflict(_)) => {
                tracing::warn!(library = %self.library.name, path = %named.file.path.display(), "file already belongs to another library; skipped");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The rows to write for one file: the film (or its version, part or extra), or the
    /// series, season and episode. `probed` is `None` for a re-placement of an unchanged file
    /// (media columns are then not written), `Some(None)` when ffprobe failed.
    fn items_for(
        &self,
        named: &Named,
        probed: Option<Option<probe::MediaInfo>>,
    ) -> Vec<(NewItem, Option<Vec<probe::StreamInfo>>, ItemNaming)> {
        let file = &named.file;
        let info = probed.clone().flatten();
        let probe_error =
            matches!(probed, Some(None)).then(|| "ffprobe could not read the file".to_owned());
        let media = |id: JfId, kind: ItemKind, name: String, sort_name: String| NewItem {
            id,
            library_id: self.library_id,
            parent_id: None,
            kind,
            name,
            sort_name,
            path: Some(file.path.clone()),
            series_id: None,
            season_id: None,
            index_number: None,
            parent_index_number: None,
            production_year: None,
            run_time_ticks: info.as_ref().and_then(|i| i.duration_ticks),
            container: info.as_ref().map(|i| i.container.clone()),
            size_bytes: i64::try_from(file.size).ok(),
            bitrate: info.as_ref().and_then(|i| i.bitrate),
            file_mtime: Some(file.mtime_ms),
            probe_error: probe_error.clone(),
        };
        let ids = self.store.ids();
        let id = ids.file_item(&self.library.name, &file.path);
        let streams = probed
            .as_ref()
            .map(|p| p.as_ref().map(|i| i.streams.clone()).unwrap_or_default());
        let naming = ItemNaming {
            placement: placement_key(&named.role),
            ..ItemNaming::default()
        };
        let film_id =
            |relative: &Path| ids.file_item(&self.library.name, &named.root.join(relative));
        let series_id = |series: &names::SeriesName| ids.series(&self.library.name, &series.name);
        match &named.role {
            place::Role::Movie { name, version } => {
                let mut item = media(
                    id,
                    ItemKind::Movie,
                    name.title.clone(),
                    names::sort_name(&name.title),
                );
                item.production_year = name.year.map(i64::from);
                let naming = ItemNaming {
                    version_name: version.clone(),
                    provider_ids: name.provider_ids.clone(),
                    ..naming
                };
                vec![(item, streams, naming)]
            }
            place::Role::Version { primary, label } => {
                let movie = names::parse_movie(&file.relative);
                let item = media(
                    id,
                    ItemKind::Movie,
                    movie.title.clone(),
                    names::sort_name(&movie.title),
                );
                let naming = ItemNaming {
                    owner: Some((film_id(primary), OwnerRole::Version)),
                    version_name: Some(label.clone()),
                    ..naming
                };
                vec![(item, streams, naming)]
            }
            place::Role::Part { primary, number } => {
                let movie = names::parse_movie(&file.relative);
                let item = media(
                    id,
                    ItemKind::Movie,
                    movie.title.clone(),
                    names::sort_name(&movie.title),
                );
                let naming = ItemNaming {
                    owner: Some((film_id(primary), OwnerRole::Part)),
                    part_number: Some(i64::from(*number)),
                    ..naming
                };
                vec![(item, streams, naming)]
            }
            place::Role::Extra {
                owner,
                extra_type,
                title,
            } => {
                let kind = if *extra_type == names::ExtraType::Trailer {
                    ItemKind::Trailer
                } else {
                    ItemKind::Video
                };
                // The owner is linked by `owner_id` only (no foreign key): a series' extra may
                // be written before the series' first episode creates the series.
                let item = media(id, kind, title.clone(), names::sort_name(title));
                let owner_id = match owner {
                    place::Owner::Movie(primary) => film_id(primary),
                    place::Owner::Series(series) => series_id(series),
                };
                let naming = ItemNaming {
                    owner: Some((owner_id, OwnerRole::Extra)),
                    extra_type: Some(extra_type.as_str().to_owned()),
                    ..naming
                };
                vec![(item, streams, naming)]
            }
            place::Role::Episode(episode) => {
                let title = episode.title.clone().unwrap_or_else(|| {
                    match (episode.episode, episode.air_date) {
                        (Some(n), _) => format!("Episode {n}"),
                        (None, Some(d)) => format!("{:04}-{:02}-{:02}", d.year, d.month, d.day),
                        (None, None) => file
                            .relative
                            .file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                    }
                });
                let order = match (episode.episode, episode.air_date) {
                    (Some(n), _) => format!("{n:06}"),
                    (None, Some(d)) => format!("{:04}{:02}{:02}", d.year, d.month, d.day),
                    (None, None) => "999999".to_owned(),
                };
                let sort = format!("{:04}-{order} {}", episode.season, names::sort_name(&title));
                let mut item = media(id, ItemKind::Episode, title, sort);
                item.index_number = episode.episode.map(i64::from);
                item.parent_index_number = Some(i64::from(episode.season));
                item.production_year = episode.air_date.map(|d| i64::from(d.year));
                let naming = ItemNaming {
                    index_number_end: episode.episode_end.map(i64::from),
                    premiere_date: episode.air_date.and_then(|d| d.unix_ms()),
                    ..naming
                };
                if probe_error.is_some() {
                    // An unreadable episode is recorded alone: it must not create (or keep
                    // alive) a series or season that would show up empty.
                    return vec![(item, streams, naming)];
                }
                let series_id = series_id(&episode.series);
                let season_id = ids.season(series_id, episode.season);
                let (series_dir, season_dir) = series_folders(&named.root, &file.relative);
                let series = NewItem {
                    id: series_id,
                    library_id: self.library_id,
                    parent_id: None,
                    kind: ItemKind::Series,
                    name: episode.series.name.clone(),
                    sort_name: names::sort_name(&episode.series.name),
                    path: series_dir,
                    series_id: None,
                    season_id: None,
                    index_number: None,
                    parent_index_number: None,
                    production_year: episode.series.year.map(i64::from),
                    run_time_ticks: None,
                    container: None,
                    size_bytes: None,
                    bitrate: None,
                    file_mtime: None,
                    probe_error: None,
                };
                let series_naming = ItemNaming {
                    provider_ids: episode.series.provider_ids.clone(),
                    placement: "series".to_owned(),
                    ..ItemNaming::default()
                };
                let season_name = if episode.season == 0 {
                    "Specials".to_owned()
                } else {
                    format!("Season {}", episode.season)
                };
                let season = NewItem {
                    id: season_id,
                    parent_id: Some(series_id),
                    kind: ItemKind::Season,
                    name: season_name,
                    sort_name: format!("{:04}", episode.season),
                    path: season_dir,
                    series_id: Some(series_id),
                    index_number: Some(i64::from(episode.season)),
                    production_year: None,
                    ..series.clone()
                };
                item.parent_id = Some(season_id);
                item.series_id = Some(series_id);
                item.season_id = Some(season_id);
                vec![
                    (series, None, series_naming),
                    (
                        season,
                        None,
                        ItemNaming {
                            placement: "season".to_owned(),
                            ..ItemNaming::default()
                        },
                    ),
                    (item, streams, naming),
                ]
            }
            place::Role::Unplaced(_) => Vec::new(),
        }
    }

    /// Reads the `.nfo` of every film, series, season and episode whose `.nfo` is new or
    /// changed (size, modification time), and forgets metadata whose `.nfo` is gone. A broken
    /// or oversized file is logged and recorded as such (so it is not re-read until it
    /// changes); the item keeps what its file name says.
    async fn refresh_metadata(&self, walked: &[walk::Walked]) -> Result<(), StoreError> {
        let stamps = self.store.nfo_stamps(self.library_id).await?;
        let mut pages = self.item_pages(&[]);
        while let Some(items) = pages.next().await? {
            for item in &items {
                self.refresh_item_metadata(item, walked, &stamps).await?;
            }
        }
        Ok(())
    }

    /// [`Self::refresh_metadata`] for one item.
    async fn refresh_item_metadata(
        &self,
        item: &crate::store::items::ScanItem,
        walked: &[walk::Walked],
        stamps: &HashMap<JfId, crate::store::metadata::NfoStamp>,
    ) -> Result<(), StoreError> {
        {
            let Some(path) = item.path.as_ref().map(PathBuf::from) else {
                return Ok(());
            };
            if !self.in_scope(Some(&path)) {
                return Ok(());
            }
            let Some(root) = walked.iter().find(|w| path.starts_with(&w.root)) else {
                // Under an unreadable folder: keep what it has.
                return Ok(());
            };
            let candidates = match item.kind {
                ItemKind::Movie => nfo::video_nfo_candidates(&path, true, &root.root),
                ItemKind::Episode => nfo::video_nfo_candidates(&path, false, &root.root),
                ItemKind::Series => vec![path.join("tvshow.nfo")],
                ItemKind::Season => vec![path.join("season.nfo")],
                _ => Vec::new(),
            };
            let mut found = None;
            for candidate in candidates {
                if let Ok(meta) = tokio::fs::metadata(&candidate).await
                    && meta.is_file()
                {
                    found = Some((candidate, meta));
                    break;
                }
            }
            let stored = stamps.get(&item.id);
            let Some((nfo_path, meta)) = found else {
                if stored.is_some() {
                    self.store.remove_local_metadata(item.id).await?;
                }
                return Ok(());
            };
            let stamp = crate::store::metadata::NfoStamp {
                path: nfo_path.to_string_lossy().into_owned(),
                size: i64::try_from(meta.len()).unwrap_or(i64::MAX),
                mtime: walk::mtime_ms(&meta),
            };
            if stored == Some(&stamp) {
                return Ok(());
            }
            let (local, error) = match nfo::read(&nfo_path).await {
                Ok(mut local) => {
                    nfo::resolve_person_images(&mut local, &nfo_path, &root.root).await;
                    (local, None)
                }
                Err(e) => {
                    tracing::warn!(library = %self.library.name, path = %nfo_path.display(), error = %e, ".nfo unreadable; the item keeps its other data");
                    self.metrics.scan_errors.inc();
                    (nfo::LocalMetadata::default(), Some(e.to_string()))
                }
            };
            self.store
                .set_local_metadata(item.id, &stamp, &local, error.as_deref())
                .await?;
        }
        Ok(())
    }

    /// Records the backdrops, logos, thumbs and banners found beside films, series and
    /// seasons, and forgets those whose file is gone.
    async fn refresh_artwork(&self, walked: &[walk::Walked]) -> Result<(), StoreError> {
        let all_images: HashSet<PathBuf> = walked.iter().flat_map(|w| w.images.clone()).collect();
        let index = images::ImageIndex::new(&all_images);
        let series_dirs = self.series_dirs().await?;
        let kinds = [ItemKind::Movie, ItemKind::Series, ItemKind::Season];
        let mut pages = self.item_pages(&kinds);
        while let Some(items) = pages.next().await? {
            // The page's stored images only: the library's would grow with it.
            let ids: Vec<JfId> = items.iter().map(|i| i.id).collect();
            let stored = self.store.images(&ids).await?;
            for item in &items {
                let path = item.path.as_ref().map(PathBuf::from);
                if !self.in_scope(path.as_deref()) {
                    continue;
                }
                let root = path
                    .as_ref()
                    .and_then(|p| walked.iter().find(|w| p.starts_with(&w.root)));
                if path.is_some() && root.is_none() {
                    // Under an unreadable folder: keep what it has.
                    continue;
                }
                let found = match (item.kind, &path, root) {
                    (ItemKind::Movie, Some(video), Some(root)) => match video.parent() {
                        Some(dir) => {
                            let stem = video.file_stem().map(|s| s.to_string_lossy().into_owned());
                            index.artwork(dir, stem.as_deref(), dir != root.root, None)
                        }
                        None => Vec::new(),
                    },
                    (ItemKind::Series, Some(dir), _) => index.artwork(dir, None, true, None),
                    (ItemKind::Season, season_dir, _) => {
                        let number = item.index_number.unwrap_or(0);
                        let prefix = if number == 0 {
                            "season-specials".to_owned()
                        } else {
                            format!("season{number:02}")
                        };
                        let series_dir = item.parent_id.and_then(|s| series_dirs.get(&s));
                        match (season_dir, series_dir) {
                            (Some(dir), series) if Some(dir) != series => index.artwork(
                                dir,
                                None,
                                true,
                                series.map(|s| (s.as_path(), prefix.as_str())),
                            ),
                            (_, Some(series)) => {
                                index.artwork(series, None, false, Some((series, prefix.as_str())))
                            }
                            _ => Vec::new(),
                        }
                    }
                    _ => Vec::new(),
                };
                let current: Vec<&ItemImage> = stored
                    .get(&item.id)
                    .map(|images| images.iter().filter(|i| i.image_type != PRIMARY).collect())
                    .unwrap_or_default();
                for (kind, number, file) in &found {
                    let Some(image) = image_record_as(item.id, file, kind, *number).await else {
                        continue;
                    };
                    let same = current.iter().any(|c| {
                        c.image_type == image.image_type
                            && c.image_index == image.image_index
                            && c.path == image.path
                            && c.tag == image.tag
                    });
                    if !same {
                        self.store.set_image(&image).await?;
                    }
                }
                for gone in current.iter().filter(|c| {
                    !found
                        .iter()
                        .any(|(k, n, _)| *k == c.image_type && *n == c.image_index)
                }) {
                    self.store
                        .remove_image(item.id, &gone.image_type, gone.image_index)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Records artwork for every readable item of the library: an image file beside it if
    /// there is one, else (films and episodes) a frame of the video, recorded here and
    /// extracted later ([`planned_frame`]), else (series and seasons) the image of their first
    /// episode. Returns how many frames were newly recorded (for the frame job to make).
    async fn refresh_images(&self, walked: &[walk::Walked]) -> Result<usize, StoreError> {
        let all_images: HashSet<PathBuf> = walked.iter().flat_map(|w| w.images.clone()).collect();
        let index = images::ImageIndex::new(&all_images);
        let folder_paths = self.series_dirs().await?;
        let mut planned = 0;
        let mut borrowers = Vec::new();
        // The first episode of each series and season (season, episode, id): whose image a
        // series or season without its own borrows.
        type EpisodeKey = (Option<i64>, Option<i64>, JfId);
        let mut first_episodes: HashMap<JfId, EpisodeKey> = HashMap::new();
        let mut pages = self.item_pages(&[]);
        while let Some(items) = pages.next().await? {
            // The page's stored images only: the library's would grow with it.
            let ids: Vec<JfId> = items.iter().map(|i| i.id).collect();
            let stored = self.store.images(&ids).await?;
            for item in &items {
                if item.kind == ItemKind::Episode {
                    let key = (item.parent_index_number, item.index_number, item.id);
                    for folder in [item.series_id, item.season_id].into_iter().flatten() {
                        let first = first_episodes.entry(folder).or_insert(key);
                        if key < *first {
                            *first = key;
                        }
                    }
                }
                let path = item.path.as_ref().map(PathBuf::from);
                if !self.in_scope(path.as_deref()) {
                    continue;
                }
                let root = path
                    .as_ref()
                    .and_then(|p| walked.iter().find(|w| p.starts_with(&w.root)))
                    .map(|w| w.root.clone());
                // Items under an unreadable folder keep what they have.
                if path.is_some() && root.is_none() {
                    continue;
                }
                let local = match (item.kind, &path, &root) {
                    (ItemKind::Movie, Some(p), Some(r)) => index.movie_poster(p, r),
                    (ItemKind::Episode, Some(p), _) => index.episode_thumb(p),
                    (ItemKind::Series, Some(p), _) => index.series_poster(p),
                    (ItemKind::Season, season_dir, _) => item
                        .parent_id
                        .and_then(|s| folder_paths.get(&s))
                        .and_then(|series_dir| {
                            index.season_poster(
                                season_dir.as_deref(),
                                series_dir,
                                u32::try_from(item.index_number.unwrap_or(0)).unwrap_or(0),
                            )
                        }),
                    _ => None,
                };
                let current = stored.get(&item.id).and_then(|images| {
                    images
                        .iter()
                        .find(|i| i.image_type == PRIMARY && i.image_index == 0)
                });
                if let Some(local) = local {
                    let Some(image) = image_record(item.id, &local).await else {
                        continue;
                    };
                    if current.is_none_or(|c| c.path != image.path || c.tag != image.tag) {
                        self.store.set_image(&image).await?;
                    }
                    continue;
                }
                if item.kind.is_folder() {
                    borrowers.push(item.id);
                    continue;
                }
                // A film or episode without artwork of its own: a frame of its video, recorded now
                // and extracted by the frame job (or by the first request for it).
                let (ItemKind::Movie | ItemKind::Episode, Some(size), Some(mtime)) =
                    (item.kind, item.size_bytes, item.file_mtime)
                else {
                    if current.is_some() {
                        self.store.remove_image(item.id, PRIMARY, 0).await?;
                    }
                    continue;
                };
                let frame = planned_frame(self.config, item.id, size, mtime);
                if current.is_none_or(|c| !same_frame(c, &frame)) {
                    self.store.set_image(&frame).await?;
                    planned += 1;
                }
            }
        }

        // Series and seasons without artwork of their own show their first episode's; their
        // images and their episodes' are read a page of series and seasons at a time.
        for page in borrowers.chunks(usize::try_from(self.page / 2).unwrap_or(1).max(1)) {
            let ids: Vec<JfId> = page
                .iter()
                .copied()
                .chain(
                    page.iter()
                        .filter_map(|f| first_episodes.get(f).map(|(_, _, e)| *e)),
                )
                .collect();
            let stored = self.store.images(&ids).await?;
            let primary = |id: JfId| {
                stored.get(&id).and_then(|images| {
                    images
                        .iter()
                        .find(|i| i.image_type == PRIMARY && i.image_index == 0)
                })
            };
            for &folder in page {
                let wanted = first_episodes
                    .get(&folder)
                    .and_then(|(_, _, episode)| primary(*episode));
                match (wanted, primary(folder)) {
                    (Some(w), current) => {
                        if current.is_none_or(|c| c.path != w.path || c.tag != w.tag) {
                            let image = ItemImage {
                                item_id: folder,
                                ..w.clone()
                            };
                            self.store.set_image(&image).await?;
                        }
                    }
                    (None, Some(_)) => self.store.remove_image(folder, PRIMARY, 0).await?,
                    (None, None) => {}
                }
            }
        }
        Ok(planned)
    }
}

/// The role's name in the scan summary.
fn role_name(role: &place::Role) -> &'static str {
    match role {
        place::Role::Movie { .. } => "Movie",
        place::Role::Episode(_) => "Episode",
        place::Role::Extra { .. } => "Extra",
        place::Role::Version { .. } => "Version",
        place::Role::Part { .. } => "Part",
        place::Role::Unplaced(_) => "Unplaced",
    }
}

/// A fingerprint of what the rules made of a file: a rescan re-places an unchanged file
/// when it differs (a version added beside it, rules changed by an upgrade).
fn placement_key(role: &place::Role) -> String {
    use sha2::Digest;
    let text = format!("v1 {role:?}");
    hex::encode(&sha2::Sha256::digest(text.as_bytes())[..12])
}

/// How many examples of unplaced files a summary keeps.
const SUMMARY_EXAMPLES: usize = 20;

/// A library's scan summary for the store: counts by role, ignored entries, unreadable
/// folders and files, and examples of what could not be placed.
fn summary_json(report: &ScanReport, library: &LibraryWalk) -> serde_json::Value {
    let under = |p: &Path| library.walked.iter().any(|w| p.starts_with(&w.root));
    let unplaced: Vec<serde_json::Value> = report
        .unplaced
        .iter()
        .filter(|(p, _)| under(p))
        .take(SUMMARY_EXAMPLES)
        .map(|(p, reason)| serde_json::json!({ "Path": p.to_string_lossy(), "Reason": reason }))
        .collect();
    let unplaced_count = report.unplaced.iter().filter(|(p, _)| under(p)).count();
    let errors: Vec<serde_json::Value> = report
        .errors
        .iter()
        .filter(|(p, _)| under(p))
        .take(SUMMARY_EXAMPLES)
        .map(|(p, reason)| serde_json::json!({ "Path": p.to_string_lossy(), "Reason": reason }))
        .collect();
    serde_json::json!({
        "Files": library.files,
        "Placed": library.placed,
        "Ignored": library.ignored,
        "UnplacedCount": unplaced_count,
        "Unplaced": unplaced,
        "UnreadableFiles": errors,
        "UnreadableFolders": report.unreadable_folders.iter().map(|p| p.to_string_lossy().into_owned()).collect::<Vec<_>>(),
    })
}

/// A Primary image record for a file, with a tag from its size and modification time.
async fn image_record(item_id: JfId, path: &Path) -> Option<ItemImage> {
    image_record_as(item_id, path, PRIMARY, 0).await
}

/// An image record of any type, with a tag from its size and modification time.
async fn image_record_as(
    item_id: JfId,
    path: &Path,
    image_type: &str,
    image_index: i64,
) -> Option<ItemImage> {
    let metadata = tokio::fs::metadata(path).await.ok()?;
    let mtime = metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Some(ItemImage {
        item_id,
        image_type: image_type.to_owned(),
        image_index,
        path: path.to_owned(),
        tag: images::image_tag(path, metadata.len(), mtime),
        file_mtime: Some(mtime),
    })
}

/// The series and season folders of an episode file, from its path relative to the library
/// folder: `Show/Season 01/x.mkv` → (`root/Show`, `root/Show/Season 01`); a file directly in
/// the series folder has no season folder; a file at the root has neither.
fn series_folders(root: &Path, relative: &Path) -> (Option<PathBuf>, Option<PathBuf>) {
    let folders: Vec<&std::ffi::OsStr> = relative
        .parent()
        .map(|p| p.iter().collect())
        .unwrap_or_default();
    let Some(first) = folders.first() else {
        return (None, None);
    };
    let first_is_season = names::season_folder_number(&first.to_string_lossy()).is_some();
    if first_is_season {
        // A library of one show: the season folders sit at the root.
        return (None, Some(root.join(first)));
    }
    let series = root.join(first);
    let season = folders
        .get(1)
        .filter(|f| names::season_folder_number(&f.to_string_lossy()).is_some())
        .map(|f| series.join(f));
    (Some(series), season)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_and_season_folders_come_from_the_relative_path() {
        let root = Path::new("/lib");
        assert_eq!(
            series_folders(root, Path::new("Show/Season 01/Show S01E01.mkv")),
            (
                Some(PathBuf::from("/lib/Show")),
                Some(PathBuf::from("/lib/Show/Season 01"))
            )
        );
        assert_eq!(
            series_folders(root, Path::new("Show/Show 1x01.mkv")),
            (Some(PathBuf::from("/lib/Show")), None)
        );
        assert_eq!(
            series_folders(root, Path::new("Show S01E01.mkv")),
            (None, None)
        );
        assert_eq!(
            series_folders(root, Path::new("Season 2/Show S02E01.mkv")),
            (None, Some(PathBuf::from("/lib/Season 2")))
        );
    }
}

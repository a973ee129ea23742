//! This replica's transcodes: one [`Stream`] per output (named by its key), at most one ffmpeg
//! run per stream at a time, and a cap on runs per replica.
//!
//! A run writes chunks into its own folder; its supervisor moves each chunk into the stream's
//! folder once the next chunk exists (or ffmpeg exited cleanly), so a file in the stream
//! folder is always complete and may be served, and a later run rewriting the same chunk
//! replaces it atomically. A segment request waits for its chunks; it starts a run at its
//! segment when none is coming (cold start, backward seek, a jump far ahead). A run that gets
//! too far ahead of the player is stopped, and restarted when the player comes close to the
//! end of what exists. Streams nobody asked for during the idle timeout are stopped and their
//! files removed.
//!
//! It must never leave an ffmpeg behind: runs are killed when stopped, when their supervisor
//! is dropped (`kill_on_drop`), and, where `setpriv` exists, by the kernel when the server
//! dies (`--pdeathsig KILL`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use super::command::{HwPath, Run};
use super::grid::Grid;
use super::request::OutputSpec;
use crate::metrics::Metrics;

/// How often a supervisor looks at its run's folder.
const POLL: Duration = Duration::from_millis(100);
/// How long a segment request waits for its segment.
pub const SEGMENT_WAIT: Duration = Duration::from_secs(120);
/// Seconds ahead of the requested segment within which a running run is waited for rather
/// than restarted (Jellyfin: 24 s).
const WAIT_AHEAD_SECONDS: f64 = 24.0;
/// A run this many seconds ahead of the player's last request is stopped.
const MAX_AHEAD_SECONDS: f64 = 120.0;
/// After serving a segment, a stopped stream is resumed when less than this much lies ready
/// ahead of it.
const RESUME_AHEAD_SECONDS: f64 = 60.0;

/// Why a segment could not be given.
#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    /// Every transcode slot of this replica is taken.
    #[error("all {max} transcode slots are in use")]
    Busy {
        /// The limit.
        max: usize,
    },
    /// ffmpeg failed or could not start.
    #[error("ffmpeg failed: {0}")]
    Failed(String),
    /// The segment did not appear in time.
    #[error("the segment was not produced within {0:?}")]
    Timeout(Duration),
    /// The folder could not be prepared.
    #[error("transcode folder")]
    Io(#[from] std::io::Error),
}

/// What a stream is made from.
#[derive(Debug, Clone)]
pub struct StreamSource {
    /// The media file.
    pub input: PathBuf,
    /// The output.
    pub spec: OutputSpec,
    /// Its grid.
    pub grid: Arc<Grid>,
    /// The source audio stream's sample rate.
    pub source_sample_rate: Option<u32>,
}

/// One output being served by this replica.
#[derive(Debug)]
pub struct Stream {
    key: String,
    dir: PathBuf,
    source: StreamSource,
    /// Playback sessions reading it; `Playing/Stopped` of the last one stops it.
    sessions: Mutex<HashSet<String>>,
    /// Last segment request or ping.
    last_seen: Mutex<Instant>,
    /// The last segment asked for (throttling measures from it).
    requested: AtomicI64,
    run: tokio::sync::Mutex<Option<RunHandle>>,
}

#[derive(Debug)]
struct RunHandle {
    start_segment: usize,
    state: Arc<RunState>,
    cancel: CancellationToken,
    done: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Default)]
struct RunState {
    /// The newest chunk moved into the stream folder, -1 before the first.
    newest_chunk: AtomicI64,
    exited: AtomicBool,
    /// ffmpeg's last error line, when it failed.
    failure: Mutex<Option<String>>,
}

impl RunHandle {
    fn alive(&self) -> bool {
        !self.state.exited.load(Ordering::Acquire)
    }

    async fn stop(self) {
        self.cancel.cancel();
        let _ = self.done.await;
    }
}

impl Stream {
    /// The stream's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The stream's grid.
    pub fn grid(&self) -> &Grid {
        &self.source.grid
    }

    fn chunk_path(&self, chunk: u32) -> PathBuf {
        self.dir.join(format!(
            "{chunk}.{}",
            self.source.spec.container.extension()
        ))
    }

    /// The init segment (fMP4).
    pub fn init_path(&self) -> PathBuf {
        self.dir.join("init.mp4")
    }

    /// The files of segment `k` if they are all complete.
    fn ready(&self, k: usize) -> Option<Vec<PathBuf>> {
        let seg = self.source.grid.segments.get(k)?;
        let end = match seg.end_chunk {
            Some(e) => e,
            None => std::fs::read_to_string(self.dir.join("end"))
                .ok()?
                .trim()
                .parse::<u32>()
                .ok()?
                .checked_add(1)?,
        };
        let paths: Vec<PathBuf> = (seg.first_chunk..end.max(seg.first_chunk + 1))
            .map(|c| self.chunk_path(c))
            .collect();
        paths.iter().all(|p| p.is_file()).then_some(paths)
    }

    fn touch(&self) {
        if let Ok(mut t) = self.last_seen.lock() {
            *t = Instant::now();
        }
    }

    fn idle_for(&self) -> Duration {
        self.last_seen
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or_default()
    }

    fn segments_for(&self, seconds: f64) -> usize {
        let d = f64::from(self.source.spec.segment_seconds.max(1));
        (seconds / d).ceil().max(2.0) as usize
    }
}

/// The transcodes of this replica.
#[derive(Debug, Clone)]
pub struct Transcodes {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    max: usize,
    idle_timeout: Duration,
    ffmpeg: PathBuf,
    hw: Mutex<HwPath>,
    metrics: Arc<Metrics>,
    streams: Mutex<HashMap<String, Arc<Stream>>>,
    /// ffmpeg processes running now (segment runs and progressive streams).
    active: AtomicUsize,
    setpriv: Option<PathBuf>,
}

/// A slot taken from the limit; given back when dropped.
#[derive(Debug)]
pub struct Slot(Arc<Inner>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.active_transcodes.dec();
    }
}

impl Transcodes {
    /// A manager writing under `dir` (this replica's own folder), running at most `max`
    /// ffmpeg processes, stopping streams idle for `idle_timeout`.
    pub fn new(
        dir: PathBuf,
        max: usize,
        idle_timeout: Duration,
        ffmpeg: PathBuf,
        metrics: Arc<Metrics>,
    ) -> Transcodes {
        let setpriv = crate::transcode::find_program("setpriv");
        Transcodes {
            inner: Arc::new(Inner {
                dir,
                max: max.max(1),
                idle_timeout,
                ffmpeg,
                hw: Mutex::new(HwPath::software()),
                metrics,
                streams: Mutex::new(HashMap::new()),
                active: AtomicUsize::new(0),
                setpriv,
            }),
        }
    }

    /// The transcode folder.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The limit of ffmpeg processes.
    pub fn max(&self) -> usize {
        self.inner.max
    }

    /// ffmpeg processes running now.
    pub fn active(&self) -> usize {
        self.inner.active.load(Ordering::Acquire)
    }

    /// The hardware path in use.
    pub fn hw(&self) -> HwPath {
        self.inner
            .hw
            .lock()
            .map(|h| h.clone())
            .unwrap_or_else(|_| HwPath::software())
    }

    /// Sets the hardware path (after the start-up probe).
    pub fn set_hw(&self, hw: HwPath) {
        if let Ok(mut h) = self.inner.hw.lock() {
            *h = hw;
        }
    }

    /// The metrics transcodes update.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The ffmpeg binary.
    pub fn ffmpeg(&self) -> &Path {
        &self.inner.ffmpeg
    }

    /// Takes a slot, or says the replica is busy.
    pub fn take_slot(&self) -> Result<Slot, TranscodeError> {
        let max = self.inner.max;
        self.inner
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| TranscodeError::Busy { max })?;
        self.inner.metrics.active_transcodes.inc();
        Ok(Slot(Arc::clone(&self.inner)))
    }

    /// A command for ffmpeg that dies with this process where `setpriv` can arrange it.
    pub fn command(&self, args: Vec<std::ffi::OsString>) -> tokio::process::Command {
        let mut cmd = match &self.inner.setpriv {
            Some(setpriv) => {
                let mut c = tokio::process::Command::new(setpriv);
                c.args(["--pdeathsig", "KILL", "--"])
                    .arg(&self.inner.ffmpeg);
                c
            }
            None => tokio::process::Command::new(&self.inner.ffmpeg),
        };
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        cmd
    }

    /// The stream named `key`, opened from `source` if this replica has none yet, joined by
    /// `session`.
    pub fn open(
        &self,
        key: &str,
        source: impl FnOnce() -> StreamSource,
        session: Option<&str>,
    ) -> Arc<Stream> {
        let mut streams = match self.inner.streams.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let stream = streams
            .entry(key.to_owned())
            .or_insert_with(|| {
                Arc::new(Stream {
                    key: key.to_owned(),
                    dir: self.inner.dir.join(key),
                    source: source(),
                    sessions: Mutex::new(HashSet::new()),
                    last_seen: Mutex::new(Instant::now()),
                    requested: AtomicI64::new(-1),
                    run: tokio::sync::Mutex::new(None),
                })
            })
            .clone();
        if let Some(s) = session
            && let Ok(mut sessions) = stream.sessions.lock()
        {
            sessions.insert(s.to_owned());
        }
        stream.touch();
        stream
    }

    /// Keeps the streams of `session` alive (`/Sessions/Playing/Ping`).
    pub fn ping_session(&self, session: &str) -> usize {
        let streams = self.streams_of(session);
        for s in &streams {
            s.touch();
        }
        streams.len()
    }

    fn streams_of(&self, session: &str) -> Vec<Arc<Stream>> {
        let streams = match self.inner.streams.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        streams
            .values()
            .filter(|s| s.sessions.lock().is_ok_and(|set| set.contains(session)))
            .cloned()
            .collect()
    }

    /// Ends the transcodes of a playback session: streams no other session reads are stopped
    /// and their files removed. Returns how many streams were stopped.
    pub async fn stop_session(&self, session: &str) -> usize {
        let mut stopped = 0;
        for stream in self.streams_of(session) {
            let last = stream.sessions.lock().is_ok_and(|mut set| {
                set.remove(session);
                set.is_empty()
            });
            if last {
                self.remove(&stream.key).await;
                stopped += 1;
            }
        }
        stopped
    }

    /// Stops every stream (shutdown) and removes this replica's files.
    pub async fn stop_all(&self) {
        let keys: Vec<String> = match self.inner.streams.lock() {
            Ok(s) => s.keys().cloned().collect(),
            Err(p) => p.into_inner().keys().cloned().collect(),
        };
        for key in keys {
            self.remove(&key).await;
        }
        clean_dir(&self.inner.dir);
    }

    async fn remove(&self, key: &str) {
        let stream = match self.inner.streams.lock() {
            Ok(mut s) => s.remove(key),
            Err(p) => p.into_inner().remove(key),
        };
        if let Some(stream) = stream {
            if let Some(run) = stream.run.lock().await.take() {
                run.stop().await;
            }
            let dir = stream.dir.clone();
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
            tracing::info!(stream = %key, "transcode stopped and its files removed");
        }
    }

    /// Stops streams idle longer than the idle timeout. Returns how many.
    pub async fn reap_idle(&self) -> usize {
        let idle: Vec<String> = match self.inner.streams.lock() {
            Ok(s) => s
                .values()
                .filter(|s| s.idle_for() >= self.inner.idle_timeout)
                .map(|s| s.key.clone())
                .collect(),
            Err(_) => Vec::new(),
        };
        for key in &idle {
            self.remove(key).await;
        }
        idle.len()
    }

    /// Streams open on this replica.
    pub fn stream_count(&self) -> usize {
        self.inner.streams.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Runs the idle reaper until `shutdown`, then stops everything.
    pub async fn run_reaper(self, shutdown: CancellationToken) {
        let every =
            (self.inner.idle_timeout / 4).clamp(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(every) => {}
            }
            let n = self.reap_idle().await;
            if n > 0 {
                tracing::info!(stopped = n, "idle transcodes stopped");
            }
        }
        self.stop_all().await;
    }

    /// The files of segment `k` of `stream`, once complete; starts or restarts a run when
    /// none will produce it soon.
    pub async fn segment(
        &self,
        stream: &Arc<Stream>,
        k: usize,
    ) -> Result<Vec<PathBuf>, TranscodeError> {
        stream.touch();
        stream.requested.store(k as i64, Ordering::Release);
        let deadline = Instant::now() + SEGMENT_WAIT;
        loop {
            if let Some(paths) = stream.ready(k) {
                self.resume_if_needed(stream, k).await;
                return Ok(paths);
            }
            {
                let mut run = stream.run.lock().await;
                let wait_ahead = stream.segments_for(WAIT_AHEAD_SECONDS);
                let coming = run.as_ref().is_some_and(|r| {
                    let newest = stream.grid().segment_of_chunk(
                        u32::try_from(r.state.newest_chunk.load(Ordering::Acquire)).unwrap_or(0),
                    );
                    let newest = if r.state.newest_chunk.load(Ordering::Acquire) < 0 {
                        r.start_segment
                    } else {
                        newest.unwrap_or(r.start_segment)
                    };
                    r.alive() && r.start_segment <= k && k <= newest + wait_ahead
                });
                if !coming {
                    if let Some(r) = run.as_ref()
                        && !r.alive()
                        && r.start_segment <= k
                    {
                        let failure = r.state.failure.lock().ok().and_then(|f| f.clone());
                        if let Some(message) = failure {
                            if r.start_segment == k {
                                return Err(TranscodeError::Failed(message));
                            }
                        } else if stream.dir.join("end").is_file() {
                            // A run reached the end of the file without writing it.
                            return Err(TranscodeError::Failed(format!(
                                "segment {k} was not produced"
                            )));
                        }
                    }
                    if let Some(old) = run.take() {
                        old.stop().await;
                    }
                    *run = Some(self.start_run(stream, k).await?);
                }
            }
            if Instant::now() >= deadline {
                return Err(TranscodeError::Timeout(SEGMENT_WAIT));
            }
            stream.touch();
            tokio::time::sleep(POLL).await;
        }
    }

    /// The init segment of an fMP4 stream, once written.
    pub async fn init_segment(&self, stream: &Arc<Stream>) -> Result<PathBuf, TranscodeError> {
        let path = stream.init_path();
        if path.is_file() {
            return Ok(path);
        }
        // Any run writes the same init segment; the first segment's run is the usual one.
        let requested = usize::try_from(stream.requested.load(Ordering::Acquire)).unwrap_or(0);
        self.segment(stream, requested).await?;
        if path.is_file() {
            Ok(path)
        } else {
            Err(TranscodeError::Failed(
                "no init segment was written".to_owned(),
            ))
        }
    }

    /// After serving `k`: when no run is going and little is ready ahead, a run starts at the
    /// first missing segment, so the player never waits for a cold start.
    async fn resume_if_needed(&self, stream: &Arc<Stream>, k: usize) {
        let mut run = stream.run.lock().await;
        if run.as_ref().is_some_and(RunHandle::alive) {
            return;
        }
        let ahead = stream.segments_for(RESUME_AHEAD_SECONDS);
        let last = stream.grid().segments.len();
        let missing = (k + 1..(k + 1 + ahead).min(last)).find(|&m| stream.ready(m).is_none());
        if let Some(m) = missing {
            match self.start_run(stream, m).await {
                Ok(handle) => {
                    if let Some(old) = run.replace(handle) {
                        old.stop().await;
                    }
                }
                Err(e) => tracing::debug!(error = %e, "transcode not resumed ahead"),
            }
        }
    }

    async fn start_run(&self, stream: &Arc<Stream>, k: usize) -> Result<RunHandle, TranscodeError> {
        let slot = self.take_slot()?;
        let run_dir = stream.dir.join(format!("run-{k}"));
        let _ = std::fs::remove_dir_all(&run_dir);
        std::fs::create_dir_all(&run_dir)?;
        let src = &stream.source;
        let hw = self.hw().for_output(&src.spec);
        let args = Run {
            input: &src.input,
            spec: &src.spec,
            grid: &src.grid,
            segment: k,
            out_dir: &run_dir,
            hw: &hw,
            source_sample_rate: src.source_sample_rate,
        }
        .args();
        tracing::info!(stream = %stream.key, segment = k, path = hw.name(), "starting ffmpeg");
        tracing::debug!(args = ?args, "ffmpeg arguments");
        let child = self
            .command(args)
            .spawn()
            .map_err(|e| TranscodeError::Failed(format!("cannot start ffmpeg: {e}")))?;
        self.inner.metrics.transcodes_started.inc();
        let state = Arc::new(RunState {
            newest_chunk: AtomicI64::new(-1),
            ..RunState::default()
        });
        let cancel = CancellationToken::new();
        let done = tokio::spawn(supervise(
            Arc::clone(stream),
            child,
            run_dir,
            k,
            Arc::clone(&state),
            cancel.clone(),
            slot,
        ));
        Ok(RunHandle {
            start_segment: k,
            state,
            cancel,
            done,
        })
    }
}

/// Watches one run: moves its complete chunks into the stream folder, stops it when too far
/// ahead of the player or when told to, and records how it ended.
async fn supervise(
    stream: Arc<Stream>,
    mut child: tokio::process::Child,
    run_dir: PathBuf,
    start_segment: usize,
    state: Arc<RunState>,
    cancel: CancellationToken,
    slot: Slot,
) {
    let ext = stream.source.spec.container.extension();
    let mut stderr = child.stderr.take();
    let stderr_task = tokio::spawn(async move {
        let mut text = String::new();
        if let Some(err) = stderr.as_mut() {
            let mut buf = Vec::new();
            // Bounded: ffmpeg at `-loglevel error` says little, but never keep more than 64 KiB.
            let _ = err.take(64 * 1024).read_to_end(&mut buf).await;
            text = String::from_utf8_lossy(&buf).into_owned();
        }
        text
    });
    let max_ahead = stream.segments_for(MAX_AHEAD_SECONDS);
    let outcome = loop {
        tokio::select! {
            () = cancel.cancelled() => break None,
            status = child.wait() => break Some(status),
            () = tokio::time::sleep(POLL) => {}
        }
        promote(&stream, &run_dir, ext, &state);
        let newest = state.newest_chunk.load(Ordering::Acquire);
        let requested = stream
            .requested
            .load(Ordering::Acquire)
            .max(start_segment as i64);
        if newest >= 0
            && let Some(seg) = stream.grid().segment_of_chunk(newest as u32)
            && seg as i64 > requested + max_ahead as i64
        {
            tracing::debug!(stream = %stream.key, "transcode far enough ahead; stopped");
            break None;
        }
    };
    match outcome {
        None => {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        Some(Ok(status)) if status.success() => {
            promote(&stream, &run_dir, ext, &state);
            let newest = state.newest_chunk.load(Ordering::Acquire);
            if newest >= 0 {
                let _ = std::fs::write(stream.dir.join("end"), newest.to_string());
            }
        }
        Some(status) => {
            let text = stderr_task.await.unwrap_or_default();
            let line = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message");
            tracing::warn!(stream = %stream.key, ?status, error = %line, "ffmpeg failed");
            if let Ok(mut f) = state.failure.lock() {
                *f = Some(line.to_owned());
            }
            state.exited.store(true, Ordering::Release);
            let _ = tokio::fs::remove_dir_all(&run_dir).await;
            drop(slot);
            return;
        }
    }
    state.exited.store(true, Ordering::Release);
    let _ = tokio::fs::remove_dir_all(&run_dir).await;
    drop(slot);
}

/// Moves complete chunks (and the init segment) from `run_dir` into the stream folder. ffmpeg
/// writes each chunk as `N.ext.tmp` and renames it to `N.ext` when it closes it
/// (`-hls_flags temp_file`), so a chunk under its final name is complete: it is served at
/// once, not after the next chunk is encoded too (which added a whole segment's encoding time
/// to the first segment a player waits for).
fn promote(stream: &Stream, run_dir: &Path, ext: &str, state: &RunState) {
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return;
    };
    let mut chunks: Vec<u32> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let name = name.to_str()?;
            name.strip_suffix(ext)?
                .strip_suffix('.')?
                .parse::<u32>()
                .ok()
        })
        .collect();
    chunks.sort_unstable();
    let init = run_dir.join("init.mp4");
    for &c in &chunks {
        if init.is_file() && !stream.init_path().is_file() {
            let _ = std::fs::rename(&init, stream.init_path());
        }
        let from = run_dir.join(format!("{c}.{ext}"));
        if std::fs::rename(&from, stream.chunk_path(c)).is_ok() {
            state.newest_chunk.fetch_max(i64::from(c), Ordering::AcqRel);
        }
    }
}

/// Removes the stream folders in `dir` (names of 32 hex digits) left by an earlier process.
pub fn clean_dir(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let ours = name
            .to_str()
            .is_some_and(|n| n.len() == 32 && n.bytes().all(|b| b.is_ascii_hexdigit()));
        if ours && std::fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

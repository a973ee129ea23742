//! Transcoding and on-demand HLS: the segment grid every replica agrees on ([`grid`], from the
//! per-file [`media`] index kept in the database), the output a request decides
//! ([`request`]), the ffmpeg command of a run for the software, VAAPI, QSV and NVENC paths
//! ([`command`]), the start-up probe of the configured hardware ([`hwaccel`]) and this
//! replica's transcodes ([`manager`]).
//!
//! HTTP lives in `api::hls`; this module never parses a request or writes a response.

pub mod command;
pub mod grid;
pub mod hwaccel;
pub mod manager;
pub mod media;
pub mod request;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use manager::{Stream, StreamSource, TranscodeError, Transcodes};

use crate::jf::JfId;
use crate::store::Store;
use crate::store::media_index::StoredIndex;
use media::{IndexError, MediaIndex};

/// The MPEG-TS timestamp of source time 0 in every TS segment: the muxer adds twice
/// `-max_delay 5000000` (10 s at 90 kHz), as Jellyfin does. WebVTT segments use it in
/// `X-TIMESTAMP-MAP=MPEGTS:900000,LOCAL:00:00:00.000`. fMP4 segments carry source times.
pub const HLS_MPEGTS_OFFSET_90K: u64 = 900_000;

/// How long indexing a file may take.
pub const INDEX_TIMEOUT: Duration = Duration::from_secs(600);

/// A program on `PATH`, if there is one.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Why a file's index is not available.
#[derive(Debug, thiserror::Error)]
pub enum LoadIndexError {
    /// The database failed.
    #[error("database")]
    Store(#[from] crate::store::StoreError),
    /// ffprobe failed.
    #[error("indexing")]
    Index(#[from] IndexError),
    /// The file cannot be read.
    #[error("media file")]
    Io(#[from] std::io::Error),
}

/// The index of `item`'s file at `path`: from the database when it describes the file as it
/// is now, else computed with ffprobe and stored for every replica.
pub async fn load_index(
    store: &Store,
    ffprobe: &Path,
    item: JfId,
    path: &Path,
) -> Result<MediaIndex, LoadIndexError> {
    let meta = tokio::fs::metadata(path).await?;
    let size = i64::try_from(meta.len()).unwrap_or(i64::MAX);
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    if let Some(stored) = store.media_index(item).await?
        && stored.file_size == size
        && stored.file_mtime == mtime
        && let Ok(index) = serde_json::from_str::<MediaIndex>(&stored.data)
    {
        return Ok(index);
    }
    let index = media::index_file(ffprobe, path, INDEX_TIMEOUT).await?;
    let data = serde_json::to_string(&index).unwrap_or_default();
    store
        .put_media_index(
            item,
            &StoredIndex {
                file_size: size,
                file_mtime: mtime,
                data,
            },
        )
        .await?;
    tracing::info!(item = %item, keyframes = index.keyframes.len(), "media file indexed");
    Ok(index)
}

/// The identity of a file version, part of every output key.
pub fn file_identity(item: JfId, path: &Path) -> String {
    let meta = std::fs::metadata(path).ok();
    let size = meta.as_ref().map_or(0, std::fs::Metadata::len);
    let mtime = meta
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis());
    format!("{}:{size}:{mtime}", item.to_n())
}

/// Prepares this replica's transcodes: empties its transcode folder of what an earlier
/// process left, chooses the hardware path (probing the device), and runs the idle reaper
/// until `shutdown`, after which every transcode is stopped and its files removed.
pub async fn start(
    transcodes: &Transcodes,
    config: &ephyra_config::ServerConfig,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let removed = manager::clean_dir(transcodes.dir());
    if removed > 0 {
        tracing::info!(removed, "removed transcodes an earlier process left");
    }
    let hw = hwaccel::choose(&config.ffmpeg.ffmpeg, &config.hardware_acceleration).await;
    transcodes.set_hw(hw.clone());
    transcodes
        .metrics()
        .transcode_path
        .get_or_create(&crate::metrics::PathLabels {
            path: hw.name().to_owned(),
        })
        .set(1);
    tokio::spawn(transcodes.clone().run_reaper(shutdown));
}

//! The sample library for `make run`: two short films and a two-episode series, generated
//! with ffmpeg the first time, so a fresh clone has something to play.
//!
//! Used only by the binary's `--sample-library` option. Each file is written under a temporary
//! name and renamed when complete, so an interrupted run never leaves a half file that looks
//! finished.

use std::path::{Path, PathBuf};

use ephyra_config::{LibraryConfig, LibraryKind};
use tokio::process::Command;

/// Why the sample library could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// A folder could not be created or a file renamed.
    #[error("cannot write the sample library under {path}")]
    Io {
        /// The path at fault.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// ffmpeg could not be started (not installed?).
    #[error("cannot run {ffmpeg} (is ffmpeg installed?)")]
    Spawn {
        /// The binary.
        ffmpeg: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// ffmpeg failed on one file.
    #[error("ffmpeg failed to generate {path}: {stderr}")]
    Ffmpeg {
        /// The file.
        path: PathBuf,
        /// The end of ffmpeg's error output.
        stderr: String,
    },
}

/// One file of the sample library.
struct SampleVideo {
    relative: &'static str,
    seconds: u32,
    /// lavfi source: a different picture per file, so they are told apart on screen.
    source: &'static str,
    tone_hz: u32,
}

const VIDEOS: &[SampleVideo] = &[
    SampleVideo {
        relative: "films/Colour Bars (2020)/Colour Bars (2020).mkv",
        seconds: 60,
        source: "smptehdbars=size=640x360:rate=24",
        tone_hz: 440,
    },
    SampleVideo {
        relative: "films/Test Pattern (2022).mp4",
        seconds: 45,
        source: "testsrc2=size=640x360:rate=24",
        tone_hz: 660,
    },
    SampleVideo {
        relative: "series/Sample Show/Season 01/Sample Show S01E01.mkv",
        seconds: 40,
        source: "mandelbrot=size=640x360:rate=24",
        tone_hz: 330,
    },
    SampleVideo {
        relative: "series/Sample Show/Season 01/Sample Show S01E02.mkv",
        seconds: 40,
        source: "life=size=640x360:rate=24:mold=10:ratio=0.3:death_color=#203040",
        tone_hz: 550,
    },
];

/// The two libraries of the sample folder.
pub fn libraries(root: &Path) -> Vec<LibraryConfig> {
    vec![
        LibraryConfig {
            name: "Films".to_owned(),
            kind: LibraryKind::Movies,
            folders: vec![root.join("films")],
        },
        LibraryConfig {
            name: "Series".to_owned(),
            kind: LibraryKind::Tvshows,
            folders: vec![root.join("series")],
        },
    ]
}

/// Generates whichever sample files are missing under `root`; returns how many were made.
pub async fn ensure(root: &Path, ffmpeg: &Path) -> Result<usize, SampleError> {
    let mut made = 0;
    for video in VIDEOS {
        let path = root.join(video.relative);
        if path.exists() {
            continue;
        }
        generate(video, &path, ffmpeg).await?;
        made += 1;
    }
    Ok(made)
}

async fn generate(video: &SampleVideo, path: &Path, ffmpeg: &Path) -> Result<(), SampleError> {
    let io = |source| SampleError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("mkv");
    let muxer = if extension == "mp4" {
        "mp4"
    } else {
        "matroska"
    };
    let partial = path.with_extension(format!("partial.{extension}"));
    let output = Command::new(ffmpeg)
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            video.source,
        ])
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency={}:sample_rate=48000",
            video.tone_hz
        ))
        .args(["-map", "0:v:0", "-map", "1:a:0", "-t"])
        .arg(video.seconds.to_string())
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        ])
        .args(["-g", "48", "-keyint_min", "48", "-sc_threshold", "0"])
        .args([
            "-c:a",
            "aac",
            "-b:a",
            "96k",
            "-movflags",
            "+faststart",
            "-f",
            muxer,
        ])
        .arg(&partial)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| SampleError::Spawn {
            ffmpeg: ffmpeg.to_owned(),
            source,
        })?;
    if !output.status.success() {
        let _ = std::fs::remove_file(&partial);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: String = stderr.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
        return Err(SampleError::Ffmpeg {
            path: path.to_owned(),
            stderr: tail,
        });
    }
    std::fs::rename(&partial, path).map_err(io)
}

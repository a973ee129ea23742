//! Short, real videos made with ffmpeg, laid out as a Jellyfin library.
//!
//! [`generate_library`] writes two films and a two-episode series, named the way Jellyfin
//! names them, and returns a [`SampleLibrary`] saying what a scanner should find there. The
//! videos are H.264 (`testsrc2`) with an AAC sine tone and a keyframe exactly every
//! [`VideoSpec::keyframe_interval`] frames (2 s by default), so HLS segment boundaries are
//! predictable. [`cached_sample_library`] makes one library per test process.
//!
//! Files are generated, never downloaded, and nothing is shared between processes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tempfile::TempDir;
use tokio::sync::OnceCell;

use crate::SupportError;
use crate::process::find_on_path;
use crate::scratch::scratch_dir;

/// What the generated videos look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoSpec {
    /// Length of every video, in seconds.
    pub seconds: u32,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Frames from one keyframe to the next; fixed (no scene-cut keyframes).
    pub keyframe_interval: u32,
}

impl Default for VideoSpec {
    /// 12 s of 320x180 at 24 fps, a keyframe every 2 s.
    fn default() -> Self {
        Self {
            seconds: 12,
            width: 320,
            height: 180,
            fps: 24,
            keyframe_interval: 48,
        }
    }
}

impl VideoSpec {
    /// The same spec with videos `seconds` long.
    pub fn seconds(self, seconds: u32) -> Self {
        Self { seconds, ..self }
    }

    /// The same spec with a keyframe every `frames` frames.
    pub fn keyframe_interval(self, frames: u32) -> Self {
        Self {
            keyframe_interval: frames,
            ..self
        }
    }

    /// The length of every video.
    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.seconds.into())
    }
}

/// The container a video is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// Matroska (`.mkv`).
    Mkv,
    /// MPEG-4 (`.mp4`), with the index at the front (`+faststart`).
    Mp4,
}

impl Container {
    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Mkv => "mkv",
            Self::Mp4 => "mp4",
        }
    }
}

/// A generated library and what a scanner should find in it.
#[derive(Debug, Clone)]
pub struct SampleLibrary {
    /// The library's root folder.
    pub root: PathBuf,
    /// `root/films`: the films' library folder.
    pub films_dir: PathBuf,
    /// `root/series`: the series' library folder.
    pub series_dir: PathBuf,
    /// Every film, in a fixed order.
    pub films: Vec<SampleFilm>,
    /// Every series, in a fixed order.
    pub series: Vec<SampleSeries>,
    /// What every video in the library looks like.
    pub spec: VideoSpec,
}

impl SampleLibrary {
    /// Every video file of the library: films first, then episodes.
    pub fn videos(&self) -> Vec<&Path> {
        let films = self.films.iter().map(|film| film.path.as_path());
        let episodes = self
            .series
            .iter()
            .flat_map(|series| series.episodes.iter().map(|episode| episode.path.as_path()));
        films.chain(episodes).collect()
    }
}

/// A film as a scanner should report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleFilm {
    /// The title, without the year.
    pub title: String,
    /// The production year, as in the file name.
    pub year: u16,
    /// The video file.
    pub path: PathBuf,
    /// Its container.
    pub container: Container,
    /// Its length.
    pub duration: Duration,
    /// A poster image beside it (`<file name>-poster.jpg`, Jellyfin's convention for films
    /// sharing a folder), if it has one.
    pub poster: Option<PathBuf>,
}

/// A series as a scanner should report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleSeries {
    /// The series' name, as its folder is called.
    pub name: String,
    /// The series' folder.
    pub path: PathBuf,
    /// Every episode, by season and episode number.
    pub episodes: Vec<SampleEpisode>,
}

/// An episode as a scanner should report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleEpisode {
    /// The season number.
    pub season: u32,
    /// The episode number within the season.
    pub episode: u32,
    /// The video file.
    pub path: PathBuf,
    /// Its container.
    pub container: Container,
    /// Its length.
    pub duration: Duration,
}

/// Writes the sample library under `root` with the default [`VideoSpec`]:
///
/// ```text
/// root/films/Big Buck Test (2019).mkv
/// root/films/Big Buck Test (2019)-poster.jpg
/// root/films/Tiny Planet (2021).mp4
/// root/series/Test Show/Season 01/Test Show S01E01.mkv
/// root/series/Test Show/Season 01/Test Show S01E02.mkv
/// ```
pub async fn generate_library(root: &Path) -> Result<SampleLibrary, SupportError> {
    generate_library_with(root, VideoSpec::default()).await
}

/// [`generate_library`] with videos made to `spec`.
pub async fn generate_library_with(
    root: &Path,
    spec: VideoSpec,
) -> Result<SampleLibrary, SupportError> {
    let films_dir = root.join("films");
    let series_dir = root.join("series");
    let show_dir = series_dir.join("Test Show");
    let film = |title: &str, year: u16, container: Container, poster: Option<PathBuf>| SampleFilm {
        title: title.to_owned(),
        year,
        path: films_dir.join(format!("{title} ({year}).{}", container.extension())),
        container,
        duration: spec.duration(),
        poster,
    };
    let episode = |number: u32| SampleEpisode {
        season: 1,
        episode: number,
        path: show_dir
            .join("Season 01")
            .join(format!("Test Show S01E{number:02}.mkv")),
        container: Container::Mkv,
        duration: spec.duration(),
    };
    let poster = films_dir.join("Big Buck Test (2019)-poster.jpg");
    let big_buck = film("Big Buck Test", 2019, Container::Mkv, Some(poster.clone()));
    let tiny_planet = film("Tiny Planet", 2021, Container::Mp4, None);
    let (first, second) = (episode(1), episode(2));

    // Four small encodes at once keep both cores busy.
    tokio::try_join!(
        generate_video_with(&big_buck.path, spec, big_buck.container),
        generate_video_with(&tiny_planet.path, spec, tiny_planet.container),
        generate_video_with(&first.path, spec, first.container),
        generate_video_with(&second.path, spec, second.container),
        generate_poster(&poster),
    )?;
    let library = SampleLibrary {
        root: root.to_path_buf(),
        films_dir,
        series_dir,
        films: vec![big_buck, tiny_planet],
        series: vec![SampleSeries {
            name: "Test Show".to_owned(),
            path: show_dir,
            episodes: vec![first, second],
        }],
        spec,
    };
    Ok(library)
}

/// The sample library of this test process, generated by the first caller into a temporary
/// folder of its own (never a fixed path, so parallel test processes do not collide).
///
/// Treat it as read-only: other tests of the process use it too.
pub async fn cached_sample_library() -> Result<&'static SampleLibrary, SupportError> {
    /// The folder stays for the life of the process; the next test process removes it.
    static CACHED: OnceCell<(TempDir, SampleLibrary)> = OnceCell::const_new();
    let (_, library) = CACHED
        .get_or_try_init(|| async {
            let folder = scratch_dir("media", false)?;
            let library = generate_library(folder.path()).await?;
            Ok::<_, SupportError>((folder, library))
        })
        .await?;
    Ok(library)
}

/// Writes a `seconds` long video to `path` (creating its folder), with the default spec
/// otherwise.
pub async fn generate_video(
    path: &Path,
    seconds: u32,
    container: Container,
) -> Result<(), SupportError> {
    generate_video_with(path, VideoSpec::default().seconds(seconds), container).await
}

/// Writes a video made to `spec` to `path` (creating its folder).
pub async fn generate_video_with(
    path: &Path,
    spec: VideoSpec,
    container: Container,
) -> Result<(), SupportError> {
    create_parent(path)?;
    let VideoSpec {
        seconds,
        width,
        height,
        fps,
        keyframe_interval,
    } = spec;
    let mut args = vec![
        "-f".to_owned(),
        "lavfi".to_owned(),
        "-i".to_owned(),
        format!("testsrc2=size={width}x{height}:rate={fps}"),
        "-f".to_owned(),
        "lavfi".to_owned(),
        "-i".to_owned(),
        "sine=frequency=440:sample_rate=48000".to_owned(),
        "-map".to_owned(),
        "0:v:0".to_owned(),
        "-map".to_owned(),
        "1:a:0".to_owned(),
        "-t".to_owned(),
        seconds.to_string(),
        "-c:v".to_owned(),
        "libx264".to_owned(),
        "-preset".to_owned(),
        "ultrafast".to_owned(),
        "-pix_fmt".to_owned(),
        "yuv420p".to_owned(),
        "-g".to_owned(),
        keyframe_interval.to_string(),
        "-keyint_min".to_owned(),
        keyframe_interval.to_string(),
        "-sc_threshold".to_owned(),
        "0".to_owned(),
        "-c:a".to_owned(),
        "aac".to_owned(),
        "-b:a".to_owned(),
        "64k".to_owned(),
    ];
    if container == Container::Mp4 {
        args.extend(["-movflags".to_owned(), "+faststart".to_owned()]);
    }
    args.extend(["-f".to_owned(), muxer(container).to_owned()]);
    ffmpeg(&args, path).await
}

/// Writes a 300x450 JPEG test pattern to `path` (creating its folder), for poster tests.
pub async fn generate_poster(path: &Path) -> Result<(), SupportError> {
    generate_poster_sized(path, 300, 450).await
}

/// Writes a `width`x`height` JPEG test pattern to `path` (creating its folder).
pub async fn generate_poster_sized(
    path: &Path,
    width: u32,
    height: u32,
) -> Result<(), SupportError> {
    create_parent(path)?;
    let args = [
        "-f".to_owned(),
        "lavfi".to_owned(),
        "-i".to_owned(),
        format!("testsrc2=size={width}x{height}:rate=1"),
        "-frames:v".to_owned(),
        "1".to_owned(),
        "-update".to_owned(),
        "1".to_owned(),
    ];
    ffmpeg(&args, path).await
}

/// Writes 64 KiB of noise to `path` (creating its folder): name it `.mkv` or `.mp4` to test
/// how unreadable media is handled. The bytes are the same every time.
pub fn write_corrupt_video(path: &Path) -> Result<(), SupportError> {
    create_parent(path)?;
    // xorshift64: noise that matches no container's magic bytes, without a `rand` dependency.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let noise: Vec<u8> = (0..64 * 1024 / 8)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .collect();
    std::fs::write(path, noise).map_err(|source| SupportError::File {
        action: "writing a corrupt video",
        path: path.to_path_buf(),
        source,
    })
}

/// What ffprobe says about a media file.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// ffprobe's container names, e.g. "matroska,webm".
    pub format_name: String,
    /// The container's duration.
    pub duration: Duration,
    /// Every stream, in file order.
    pub streams: Vec<ProbedStream>,
}

impl Probe {
    /// How many streams are of `kind` ("video", "audio", ...).
    pub fn count(&self, kind: &str) -> usize {
        self.streams
            .iter()
            .filter(|stream| stream.kind == kind)
            .count()
    }
}

/// One stream as ffprobe describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbedStream {
    /// "video", "audio", "subtitle", ...
    pub kind: String,
    /// e.g. "h264", "aac".
    pub codec: String,
    /// Width in pixels, for video.
    pub width: Option<u32>,
    /// Height in pixels, for video.
    pub height: Option<u32>,
}

/// Describes `path` with ffprobe; fails on a file ffprobe cannot read.
pub async fn probe(path: &Path) -> Result<Probe, SupportError> {
    #[derive(Deserialize)]
    struct Output {
        #[serde(default)]
        streams: Vec<Stream>,
        format: Format,
    }
    #[derive(Deserialize)]
    struct Stream {
        codec_type: String,
        #[serde(default)]
        codec_name: String,
        width: Option<u32>,
        height: Option<u32>,
    }
    #[derive(Deserialize)]
    struct Format {
        format_name: String,
        duration: String,
    }

    let stdout = ffprobe(
        &[
            "-show_entries",
            "format=format_name,duration:stream=codec_type,codec_name,width,height",
            "-of",
            "json",
        ],
        path,
    )
    .await?;
    let invalid = |message: String| SupportError::Probe {
        path: path.to_path_buf(),
        message,
    };
    let output: Output =
        serde_json::from_str(&stdout).map_err(|error| invalid(error.to_string()))?;
    let seconds: f64 = output
        .format
        .duration
        .parse()
        .map_err(|_| invalid(format!("duration {:?}", output.format.duration)))?;
    let duration =
        Duration::try_from_secs_f64(seconds).map_err(|error| invalid(error.to_string()))?;
    Ok(Probe {
        format_name: output.format.format_name,
        duration,
        streams: output
            .streams
            .into_iter()
            .map(|stream| ProbedStream {
                kind: stream.codec_type,
                codec: stream.codec_name,
                width: stream.width,
                height: stream.height,
            })
            .collect(),
    })
}

/// The presentation times of the first video stream's keyframes, in order.
pub async fn keyframe_times(path: &Path) -> Result<Vec<Duration>, SupportError> {
    let stdout = ffprobe(
        &[
            "-select_streams",
            "v:0",
            "-skip_frame",
            "nokey",
            "-show_entries",
            "frame=pts_time",
            "-of",
            "csv=p=0",
        ],
        path,
    )
    .await?;
    stdout
        .lines()
        // Frames with side data print extra, empty columns after the time.
        .filter_map(|line| line.split(',').next().filter(|time| !time.is_empty()))
        .map(|time| {
            time.parse::<f64>()
                .ok()
                .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
                .ok_or_else(|| SupportError::Probe {
                    path: path.to_path_buf(),
                    message: format!("keyframe time {time:?}"),
                })
        })
        .collect()
}

fn muxer(container: Container) -> &'static str {
    match container {
        Container::Mkv => "matroska",
        Container::Mp4 => "mp4",
    }
}

fn create_parent(path: &Path) -> Result<(), SupportError> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    std::fs::create_dir_all(parent).map_err(|source| SupportError::File {
        action: "creating the folder of",
        path: path.to_path_buf(),
        source,
    })
}

/// Runs ffmpeg with `args`, writing `output`.
pub(crate) async fn ffmpeg(args: &[String], output: &Path) -> Result<(), SupportError> {
    let binary = find_on_path("ffmpeg").ok_or(SupportError::MissingBinary {
        what: "ffmpeg",
        searched: "on PATH",
        package: "ffmpeg",
    })?;
    let mut command = tokio::process::Command::new(&binary);
    command
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(output);
    run(command, &binary).await.map(drop)
}

/// Runs ffprobe with `args` on `input` and returns its stdout.
async fn ffprobe(args: &[&str], input: &Path) -> Result<String, SupportError> {
    let binary = find_on_path("ffprobe").ok_or(SupportError::MissingBinary {
        what: "ffprobe",
        searched: "on PATH",
        package: "ffmpeg",
    })?;
    let mut command = tokio::process::Command::new(&binary);
    command.args(["-v", "error"]).args(args).arg(input);
    run(command, &binary).await
}

async fn run(mut command: tokio::process::Command, binary: &Path) -> Result<String, SupportError> {
    let output = command
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| SupportError::Spawn {
            program: binary.display().to_string(),
            source,
        })?;
    if !output.status.success() {
        return Err(SupportError::CommandFailed {
            program: binary.display().to_string(),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Which codecs a [`generate_coded_video`] file carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codecs {
    /// H.264 8-bit with stereo AAC, at 24000/1001 fps (the fractional rate whose segment
    /// grid drifts when segment lengths are not whole frames).
    H264AacNtsc,
    /// HEVC 8-bit with AC-3 5.1 (what a browser cannot play as it is).
    HevcAc3Surround,
    /// HEVC 10-bit (`yuv420p10le`) with stereo AAC.
    Hevc10BitAac,
}

/// Writes a `seconds` long Matroska file with `codecs` to `path` (creating its folder):
/// 320x180 `testsrc2` with a keyframe every 48 frames and a 440 Hz tone, so transcodes of it
/// are quick and their audio continuity measurable.
pub async fn generate_coded_video(
    path: &Path,
    seconds: u32,
    codecs: Codecs,
) -> Result<(), SupportError> {
    generate_coded_video_sized(path, seconds, codecs, 320, 180).await
}

/// [`generate_coded_video`] at `width`x`height` (the benchmarks transcode a 720p source).
pub async fn generate_coded_video_sized(
    path: &Path,
    seconds: u32,
    codecs: Codecs,
    width: u32,
    height: u32,
) -> Result<(), SupportError> {
    create_parent(path)?;
    let rate = match codecs {
        Codecs::H264AacNtsc => "24000/1001",
        Codecs::HevcAc3Surround | Codecs::Hevc10BitAac => "24",
    };
    let mut args: Vec<String> = [
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size={width}x{height}:rate={rate}"),
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-map",
        "0:v:0",
        "-map",
        "1:a:0",
        "-t",
        &seconds.to_string(),
    ]
    .map(str::to_owned)
    .to_vec();
    let video: &[&str] = match codecs {
        Codecs::H264AacNtsc => &[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "48",
            "-keyint_min",
            "48",
            "-sc_threshold",
            "0",
        ],
        Codecs::HevcAc3Surround => &[
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-x265-params",
            "keyint=48:min-keyint=48:scenecut=0:log-level=error",
        ],
        Codecs::Hevc10BitAac => &[
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p10le",
            "-x265-params",
            "keyint=48:min-keyint=48:scenecut=0:log-level=error",
        ],
    };
    args.extend(video.iter().map(|s| (*s).to_owned()));
    let audio: &[&str] = match codecs {
        Codecs::HevcAc3Surround => &["-c:a", "ac3", "-ac", "6", "-b:a", "384k"],
        Codecs::H264AacNtsc | Codecs::Hevc10BitAac => &["-c:a", "aac", "-ac", "2", "-b:a", "96k"],
    };
    args.extend(audio.iter().map(|s| (*s).to_owned()));
    args.extend(["-f".to_owned(), "matroska".to_owned()]);
    ffmpeg(&args, path).await
}

//! The library every server of the run serves: e2e's HA library (the sample library and its
//! long film, see `ephyra_e2e::cluster::ha_library`) plus three files the benchmarks need,
//! all made with ffmpeg by `ephyra-testsupport`:
//!
//! - [`STATIC_FILM`]: 20 s of 720p H.264, the file streamed byte for byte by ephyra and nginx;
//! - [`HEVC_FILM`]: 14 s of 720p HEVC with AC-3 5.1, what a browser cannot play as it is
//!   (the first-segment figure transcodes it to H.264/AAC);
//! - [`FULL_HD_FILM`]: 48 s of 1080p H.264 (the 1080p → 720p figures: failover, real time).
//!
//! Nothing here starts a server.

use std::path::PathBuf;

use ephyra_testsupport::SampleLibrary;
use ephyra_testsupport::media::{
    Codecs, Container, VideoSpec, generate_coded_video_sized, generate_video_with,
};

/// The film streamed as a file.
pub const STATIC_FILM: &str = "Static Test";
/// The HEVC + AC-3 film (no codec or resolution word in a title: the scanner strips them, as
/// Jellyfin's naming rules do).
pub const HEVC_FILM: &str = "Amber Coast";
/// The 1080p H.264 film.
pub const FULL_HD_FILM: &str = "Granite Valley";
/// Length of [`FULL_HD_FILM`]: eight 6 s segments.
pub const FULL_HD_SECONDS: u32 = 48;

/// The library and where the benchmark files are.
#[derive(Debug)]
pub struct BenchLibrary {
    /// The HA library with the files below added to its films.
    pub library: &'static SampleLibrary,
    /// [`STATIC_FILM`]'s file.
    pub static_film: PathBuf,
}

impl BenchLibrary {
    /// How many video files a scan finds.
    pub fn files(&self) -> usize {
        self.library.videos().len() + 4
    }

    /// `EPHYRA_LIBRARIES` for it.
    pub fn env(&self) -> String {
        ephyra_e2e::cluster::libraries_env(self.library)
    }
}

/// Generates the library (the four encodes at once).
pub async fn prepare() -> anyhow::Result<BenchLibrary> {
    let library = ephyra_e2e::cluster::ha_library().await?;
    let films = &library.films_dir;
    let static_film = films.join(format!("{STATIC_FILM} (2020).mkv"));
    let hevc_film = films.join(format!("{HEVC_FILM} (2022).mkv"));
    let full_hd_film = films.join(format!("{FULL_HD_FILM} (2023).mkv"));
    let keyframe_every_2s = VideoSpec {
        seconds: 20,
        width: 1280,
        height: 720,
        fps: 24,
        keyframe_interval: 48,
    };
    tokio::try_join!(
        generate_video_with(&static_film, keyframe_every_2s, Container::Mkv),
        generate_coded_video_sized(&hevc_film, 14, Codecs::HevcAc3Surround, 1280, 720),
        generate_video_with(
            &full_hd_film,
            VideoSpec {
                seconds: FULL_HD_SECONDS,
                width: 1920,
                height: 1080,
                ..keyframe_every_2s
            },
            Container::Mkv,
        ),
    )?;
    Ok(BenchLibrary {
        library,
        static_film,
    })
}

//! Artwork for items: an image file the user put next to the media, or else a frame extracted
//! from the video with ffmpeg.
//!
//! Lookup is pure over the set of image files the walk found ([`ImageIndex`]); extraction
//! ([`extract_frame`]) runs ffmpeg with a time limit and writes through a temporary file, so a
//! half-written image is never served. Names follow Jellyfin's and Kodi's conventions:
//! `poster.jpg`, `folder.jpg`, `cover.jpg`, `<video name>.jpg`, `<video name>-poster.jpg`,
//! `<video name>-thumb.jpg`, `season01-poster.jpg`, `season-specials-poster.jpg`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::walk::IMAGE_EXTENSIONS;

/// The image files of one library folder, looked up without regard to case.
#[derive(Debug, Default)]
pub struct ImageIndex {
    by_lower_path: HashMap<String, PathBuf>,
}

impl ImageIndex {
    /// Indexes the images the walk found.
    pub fn new(images: &HashSet<PathBuf>) -> ImageIndex {
        ImageIndex {
            by_lower_path: images
                .iter()
                .map(|p| (p.to_string_lossy().to_lowercase(), p.clone()))
                .collect(),
        }
    }

    /// The first of `stems` (file names without extension) found in `dir`, trying each image
    /// extension in turn.
    fn find(&self, dir: &Path, stems: &[String]) -> Option<PathBuf> {
        stems.iter().find_map(|stem| {
            IMAGE_EXTENSIONS.iter().find_map(|ext| {
                let candidate = dir.join(format!("{stem}.{ext}"));
                self.by_lower_path
                    .get(&candidate.to_string_lossy().to_lowercase())
                    .cloned()
            })
        })
    }

    /// A film's poster: `<name>.jpg`, `<name>-poster.jpg`, and, when the film has a folder of
    /// its own (not the library root), `poster.jpg`, `folder.jpg`, `cover.jpg`, `movie.jpg`.
    pub fn movie_poster(&self, video: &Path, library_root: &Path) -> Option<PathBuf> {
        let dir = video.parent()?;
        let stem = video.file_stem()?.to_string_lossy();
        let mut stems = vec![stem.to_string(), format!("{stem}-poster")];
        if dir != library_root {
            stems.extend(["poster", "folder", "cover", "movie", "default"].map(String::from));
        }
        self.find(dir, &stems)
    }

    /// An episode's thumbnail: `<name>.jpg`, `<name>-thumb.jpg`.
    pub fn episode_thumb(&self, video: &Path) -> Option<PathBuf> {
        let dir = video.parent()?;
        let stem = video.file_stem()?.to_string_lossy();
        self.find(dir, &[stem.to_string(), format!("{stem}-thumb")])
    }

    /// A series poster in its folder: `poster.jpg`, `folder.jpg`, `cover.jpg`, `show.jpg`.
    pub fn series_poster(&self, series_dir: &Path) -> Option<PathBuf> {
        self.find(
            series_dir,
            &["poster", "folder", "cover", "show", "default"].map(String::from),
        )
    }

    /// A season poster: `poster.jpg`/`folder.jpg` in the season folder, else
    /// `season01-poster.jpg` (or `season-specials-poster.jpg`) in the series folder.
    pub fn season_poster(
        &self,
        season_dir: Option<&Path>,
        series_dir: &Path,
        season: u32,
    ) -> Option<PathBuf> {
        if let Some(dir) = season_dir
            && let Some(found) = self.find(dir, &["poster", "folder", "cover"].map(String::from))
        {
            return Some(found);
        }
        let named = if season == 0 {
            "season-specials-poster".to_owned()
        } else {
            format!("season{season:02}-poster")
        };
        self.find(series_dir, &[named])
    }
}

/// Most backdrops recorded for one item (`backdrop1.jpg` ... `backdrop20.jpg`).
const MAX_BACKDROPS: usize = 20;

/// Artwork other than the poster: `(image type, index, file)`, backdrops in order.
pub type Artwork = Vec<(&'static str, i64, PathBuf)>;

impl ImageIndex {
    /// Backdrops, logos, thumbs and banners of a film, series or season, by Jellyfin's and
    /// Kodi's names. `stem` is the video's name (films): `<stem>-fanart.jpg` and so on;
    /// `own_folder` allows the plain names (`fanart.jpg`, `logo.png`, ...) in `dir`;
    /// `prefixed` is `(series folder, "season01")` for a season's `season01-fanart.jpg`.
    pub fn artwork(
        &self,
        dir: &Path,
        stem: Option<&str>,
        own_folder: bool,
        prefixed: Option<(&Path, &str)>,
    ) -> Artwork {
        let mut out: Artwork = Vec::new();
        let kinds: [(&'static str, &[&str]); 4] = [
            ("Backdrop", &["fanart", "backdrop", "background", "art"]),
            ("Logo", &["logo", "clearlogo"]),
            ("Thumb", &["landscape", "thumb"]),
            ("Banner", &["banner"]),
        ];
        for (kind, names) in kinds {
            let mut found: Vec<PathBuf> = Vec::new();
            let mut add = |path: Option<PathBuf>| {
                if let Some(path) = path
                    && !found.contains(&path)
                {
                    found.push(path);
                }
            };
            for name in names {
                if let Some(stem) = stem {
                    add(self.find(dir, &[format!("{stem}-{name}")]));
                }
                if own_folder {
                    add(self.find(dir, &[(*name).to_owned()]));
                }
                if let Some((series_dir, prefix)) = prefixed {
                    add(self.find(series_dir, &[format!("{prefix}-{name}")]));
                }
            }
            if kind == "Backdrop" {
                // Numbered extra backdrops: `fanart1.jpg`, `backdrop2.jpg`, `<stem>-fanart1.jpg`.
                for n in 1..=MAX_BACKDROPS {
                    for name in ["fanart", "backdrop"] {
                        if let Some(stem) = stem {
                            add(self.find(dir, &[format!("{stem}-{name}{n}")]));
                        }
                        if own_folder {
                            add(self.find(dir, &[format!("{name}{n}")]));
                        }
                    }
                }
                found.truncate(MAX_BACKDROPS);
            } else {
                found.truncate(1);
            }
            out.extend(
                found
                    .into_iter()
                    .enumerate()
                    .map(|(i, path)| (kind, i as i64, path)),
            );
        }
        out
    }
}

/// The cache tag of an image: changes whenever the file does, so clients may cache by it for a
/// year. 32 hex digits, like Jellyfin's.
pub fn image_tag(path: &Path, size: u64, mtime_ms: i64) -> String {
    let mut hash = Sha256::new();
    hash.update(path.as_os_str().as_encoded_bytes());
    hash.update(size.to_le_bytes());
    hash.update(mtime_ms.to_le_bytes());
    hex::encode(&hash.finalize()[..16])
}

/// The `Content-Type` of an image file, by extension.
pub fn image_content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        _ => "image/jpeg",
    }
}

/// Why a frame could not be extracted.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// ffmpeg could not be started, or the output could not be written or moved.
    #[error("cannot run ffmpeg or write its output: {0}")]
    Io(#[from] std::io::Error),
    /// ffmpeg ran longer than the time limit and was killed.
    #[error("ffmpeg took longer than {0:?}")]
    Timeout(Duration),
    /// ffmpeg failed, or wrote nothing.
    #[error("ffmpeg could not extract a frame: {0}")]
    Failed(String),
}

/// Writes one frame of `video`, taken `at_seconds` in, as a JPEG at `output` (at most 720
/// pixels wide). Tries the very first frame when the chosen moment yields none.
pub async fn extract_frame(
    ffmpeg: &Path,
    video: &Path,
    output: &Path,
    at_seconds: f64,
    timeout: Duration,
) -> Result<(), ExtractError> {
    if let Some(dir) = output.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    // A name of its own: two replicas scanning at once must not write into one file. The
    // rename is atomic, so readers see the old image or the new one, never half of one.
    let partial = output.with_extension(format!("{}.partial.jpg", crate::jf::JfId::random()));
    let mut result = run_ffmpeg(ffmpeg, video, &partial, at_seconds, timeout).await;
    if result.is_err() && at_seconds > 0.0 {
        result = run_ffmpeg(ffmpeg, video, &partial, 0.0, timeout).await;
    }
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(e);
    }
    tokio::fs::rename(&partial, output).await?;
    Ok(())
}

async fn run_ffmpeg(
    ffmpeg: &Path,
    video: &Path,
    output: &Path,
    at_seconds: f64,
    timeout: Duration,
) -> Result<(), ExtractError> {
    let child = tokio::process::Command::new(ffmpeg)
        .args([
            "-nostdin",
            "-v",
            "error",
            "-ss",
            &format!("{at_seconds:.3}"),
            "-i",
        ])
        .arg(super::probe::prefixed_file_arg(video))
        .args([
            "-map",
            "0:v:0",
            "-frames:v",
            "1",
            "-vf",
            "scale='min(720,iw)':-2",
        ])
        .args(["-f", "image2", "-c:v", "mjpeg", "-q:v", "3", "-y"])
        .arg(super::probe::prefixed_file_arg(output))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let done = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| ExtractError::Timeout(timeout))??;
    if !done.status.success() {
        let stderr = String::from_utf8_lossy(&done.stderr);
        return Err(ExtractError::Failed(
            stderr
                .lines()
                .last()
                .unwrap_or("no message")
                .trim()
                .to_owned(),
        ));
    }
    match tokio::fs::metadata(output).await {
        Ok(m) if m.len() > 0 => Ok(()),
        _ => Err(ExtractError::Failed("no frame written".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artwork_of_every_kind_is_found_by_its_names() {
        let files: HashSet<PathBuf> = [
            "/lib/Film (2010)/Film (2010)-fanart.jpg",
            "/lib/Film (2010)/backdrop1.jpg",
            "/lib/Film (2010)/Backdrop.JPG",
            "/lib/Film (2010)/clearlogo.png",
            "/lib/Film (2010)/landscape.jpg",
            "/lib/Film (2010)/banner.jpg",
            "/lib/Show/season01-fanart.jpg",
        ]
        .into_iter()
        .map(PathBuf::from)
        .collect();
        let index = ImageIndex::new(&files);
        let found = index.artwork(
            Path::new("/lib/Film (2010)"),
            Some("Film (2010)"),
            true,
            None,
        );
        let named: Vec<(&str, i64, String)> = found
            .iter()
            .map(|(k, i, p)| {
                (
                    *k,
                    *i,
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                )
            })
            .collect();
        assert_eq!(
            named,
            vec![
                ("Backdrop", 0, "Film (2010)-fanart.jpg".to_owned()),
                ("Backdrop", 1, "Backdrop.JPG".to_owned()),
                ("Backdrop", 2, "backdrop1.jpg".to_owned()),
                ("Logo", 0, "clearlogo.png".to_owned()),
                ("Thumb", 0, "landscape.jpg".to_owned()),
                ("Banner", 0, "banner.jpg".to_owned()),
            ]
        );
        let season = index.artwork(
            Path::new("/lib/Show/Season 1"),
            None,
            true,
            Some((Path::new("/lib/Show"), "season01")),
        );
        assert_eq!(season.len(), 1);
        assert_eq!(season[0].0, "Backdrop");
    }

    fn index(paths: &[&str]) -> ImageIndex {
        ImageIndex::new(&paths.iter().map(PathBuf::from).collect())
    }

    #[test]
    fn a_film_in_its_own_folder_uses_poster_or_folder_images() {
        let idx = index(&["/lib/Film (2000)/folder.JPG"]);
        assert_eq!(
            idx.movie_poster(
                Path::new("/lib/Film (2000)/Film (2000).mkv"),
                Path::new("/lib")
            ),
            Some(PathBuf::from("/lib/Film (2000)/folder.JPG"))
        );
    }

    #[test]
    fn a_film_at_the_library_root_does_not_take_the_roots_poster() {
        let idx = index(&["/lib/poster.jpg", "/lib/Other (2001).jpg"]);
        assert_eq!(
            idx.movie_poster(Path::new("/lib/Film (2000).mkv"), Path::new("/lib")),
            None
        );
        assert_eq!(
            idx.movie_poster(Path::new("/lib/Other (2001).mkv"), Path::new("/lib")),
            Some(PathBuf::from("/lib/Other (2001).jpg"))
        );
    }

    #[test]
    fn an_image_named_after_the_video_wins_over_a_folder_poster() {
        let idx = index(&["/lib/F/poster.jpg", "/lib/F/F-poster.png"]);
        assert_eq!(
            idx.movie_poster(Path::new("/lib/F/F.mkv"), Path::new("/lib")),
            Some(PathBuf::from("/lib/F/F-poster.png"))
        );
    }

    #[test]
    fn series_and_season_posters_are_found_in_their_folders() {
        let idx = index(&[
            "/lib/Show/poster.jpg",
            "/lib/Show/Season 01/folder.jpg",
            "/lib/Show/season02-poster.jpg",
            "/lib/Show/season-specials-poster.jpg",
            "/lib/Show/Season 01/Show S01E01-thumb.jpg",
        ]);
        assert_eq!(
            idx.series_poster(Path::new("/lib/Show")),
            Some(PathBuf::from("/lib/Show/poster.jpg"))
        );
        assert_eq!(
            idx.season_poster(
                Some(Path::new("/lib/Show/Season 01")),
                Path::new("/lib/Show"),
                1
            ),
            Some(PathBuf::from("/lib/Show/Season 01/folder.jpg"))
        );
        assert_eq!(
            idx.season_poster(
                Some(Path::new("/lib/Show/Season 02")),
                Path::new("/lib/Show"),
                2
            ),
            Some(PathBuf::from("/lib/Show/season02-poster.jpg"))
        );
        assert_eq!(
            idx.season_poster(None, Path::new("/lib/Show"), 0),
            Some(PathBuf::from("/lib/Show/season-specials-poster.jpg"))
        );
        assert_eq!(
            idx.episode_thumb(Path::new("/lib/Show/Season 01/Show S01E01.mkv")),
            Some(PathBuf::from("/lib/Show/Season 01/Show S01E01-thumb.jpg"))
        );
        assert_eq!(
            idx.episode_thumb(Path::new("/lib/Show/Season 01/Show S01E02.mkv")),
            None
        );
    }

    #[test]
    fn an_image_tag_changes_with_the_file() {
        let path = Path::new("/lib/poster.jpg");
        let tag = image_tag(path, 10, 1000);
        assert_eq!(tag.len(), 32);
        assert!(tag.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(tag, image_tag(path, 10, 1000));
        assert_ne!(tag, image_tag(path, 10, 1001));
        assert_ne!(tag, image_tag(path, 11, 1000));
    }

    #[tokio::test]
    async fn a_frame_is_extracted_from_a_real_video() {
        let dir = tempfile::tempdir().expect("temp dir");
        let video = dir.path().join("clip.mkv");
        let status = std::process::Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=duration=1:size=160x120:rate=10",
            ])
            .args(["-c:v", "mpeg4", "-y"])
            .arg(&video)
            .status()
            .expect("ffmpeg runs");
        assert!(status.success());
        let output = dir.path().join("images/abc.jpg");
        // 30 s is past the end: extraction falls back to the first frame.
        extract_frame(
            Path::new("ffmpeg"),
            &video,
            &output,
            30.0,
            Duration::from_secs(30),
        )
        .await
        .expect("extract");
        let bytes = std::fs::read(&output).expect("image written");
        assert_eq!(&bytes[..2], &[0xff, 0xd8], "a JPEG");
        let leftovers = std::fs::read_dir(dir.path().join("images"))
            .expect("dir")
            .count();
        assert_eq!(leftovers, 1, "only the image, no partial file");
    }

    #[tokio::test]
    async fn a_file_without_video_gives_an_error_and_no_image() {
        let dir = tempfile::tempdir().expect("temp dir");
        let video = dir.path().join("broken.mkv");
        std::fs::write(&video, b"not a video").expect("write");
        let output = dir.path().join("out.jpg");
        let result = extract_frame(
            Path::new("ffmpeg"),
            &video,
            &output,
            1.0,
            Duration::from_secs(30),
        )
        .await;
        assert!(result.is_err());
        assert!(!output.exists());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["broken.mkv"], "no partial file left behind");
    }
}

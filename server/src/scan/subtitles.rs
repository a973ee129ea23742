//! External subtitle files beside a video (`Film (2019).en.forced.srt`), found at scan time
//! and stored as `Subtitle` media streams with `is_external`, after the file's own streams.
//!
//! Naming follows Jellyfin's `ExternalPathParser`: the subtitle's name starts with the video's
//! name without extension, then `.`-separated flags read from the right: `default`,
//! `forced`/`foreign`, `sdh`/`cc`/`hi` (hearing impaired), a language (ISO 639-1 or -2,
//! reported as the ISO 639-2/B code Jellyfin reports, `en` → `eng`, `fr` → `fre`), and
//! anything else as the title. [`parse_name`] and [`display_title`] are pure; [`refresh`]
//! reads folders and writes the store, and is run on every scan so that subtitle files added
//! or removed beside an unchanged video are seen.
//!
//! Only regular files (or links that stay inside the library folder) are taken; the file is
//! not read here (it is converted when a client asks for it).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::jf::JfId;
use crate::store::items::ItemKind;
use crate::store::{Store, StoreError};

use super::probe::{StreamInfo, StreamKind};

/// Subtitle file extensions taken, with the codec name ffprobe gives their content.
const EXTENSIONS: [(&str, &str); 4] = [
    ("srt", "subrip"),
    ("ass", "ass"),
    ("ssa", "ssa"),
    ("vtt", "webvtt"),
];

/// What a subtitle file's name says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExternalName {
    /// ISO 639-2/B code (`eng`), when the name carries a language.
    pub language: Option<String>,
    /// Leftover name parts (`Director's commentary`).
    pub title: Option<String>,
    /// `default` flag.
    pub is_default: bool,
    /// `forced` or `foreign` flag.
    pub is_forced: bool,
    /// `sdh`, `cc` or `hi` flag.
    pub is_hearing_impaired: bool,
    /// Codec of the content (`subrip`, `ass`, `ssa`, `webvtt`).
    pub codec: &'static str,
}

/// (ISO 639-1, ISO 639-2/B, ISO 639-2/T, English name) of the languages recognised in names.
const LANGUAGES: &[(&str, &str, &str, &str)] = &[
    ("ar", "ara", "ara", "Arabic"),
    ("bg", "bul", "bul", "Bulgarian"),
    ("ca", "cat", "cat", "Catalan"),
    ("cs", "cze", "ces", "Czech"),
    ("da", "dan", "dan", "Danish"),
    ("de", "ger", "deu", "German"),
    ("el", "gre", "ell", "Greek"),
    ("en", "eng", "eng", "English"),
    ("es", "spa", "spa", "Spanish"),
    ("et", "est", "est", "Estonian"),
    ("fa", "per", "fas", "Persian"),
    ("fi", "fin", "fin", "Finnish"),
    ("fr", "fre", "fra", "French"),
    ("he", "heb", "heb", "Hebrew"),
    ("hi", "hin", "hin", "Hindi"),
    ("hr", "hrv", "hrv", "Croatian"),
    ("hu", "hun", "hun", "Hungarian"),
    ("id", "ind", "ind", "Indonesian"),
    ("is", "ice", "isl", "Icelandic"),
    ("it", "ita", "ita", "Italian"),
    ("ja", "jpn", "jpn", "Japanese"),
    ("ko", "kor", "kor", "Korean"),
    ("lt", "lit", "lit", "Lithuanian"),
    ("lv", "lav", "lav", "Latvian"),
    ("ms", "may", "msa", "Malay"),
    ("nl", "dut", "nld", "Dutch"),
    ("no", "nor", "nor", "Norwegian"),
    ("nb", "nob", "nob", "Norwegian Bokmål"),
    ("pl", "pol", "pol", "Polish"),
    ("pt", "por", "por", "Portuguese"),
    ("ro", "rum", "ron", "Romanian"),
    ("ru", "rus", "rus", "Russian"),
    ("sk", "slo", "slk", "Slovak"),
    ("sl", "slv", "slv", "Slovenian"),
    ("sr", "srp", "srp", "Serbian"),
    ("sv", "swe", "swe", "Swedish"),
    ("th", "tha", "tha", "Thai"),
    ("tr", "tur", "tur", "Turkish"),
    ("uk", "ukr", "ukr", "Ukrainian"),
    ("vi", "vie", "vie", "Vietnamese"),
    ("zh", "chi", "zho", "Chinese"),
];

fn find_language(
    code: &str,
) -> Option<&'static (&'static str, &'static str, &'static str, &'static str)> {
    let code = code.trim();
    LANGUAGES.iter().find(|(one, b, t, name)| {
        [*one, *b, *t, *name]
            .iter()
            .any(|c| c.eq_ignore_ascii_case(code))
    })
}

/// The ISO 639-2/B code for a language code or English name (`en`, `fra`, `French`).
pub fn language_code(code: &str) -> Option<&'static str> {
    find_language(code).map(|l| l.1)
}

/// The English name of a language code (`eng` → `English`).
pub fn language_name(code: &str) -> Option<&'static str> {
    find_language(code).map(|l| l.3)
}

/// The codec of a subtitle file, from its extension; `None` for other files.
pub fn codec_for(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?;
    EXTENSIONS
        .iter()
        .find(|(e, _)| e.eq_ignore_ascii_case(ext))
        .map(|(_, codec)| *codec)
}

/// Parses `subtitle`'s file name as an external subtitle of `video`; `None` when it is not a
/// subtitle file or not named after the video.
pub fn parse_name(video: &Path, subtitle: &Path) -> Option<ExternalName> {
    let codec = codec_for(subtitle)?;
    let prefix = video.file_stem()?.to_str()?;
    let stem = subtitle.file_stem()?.to_str()?;
    let head = stem.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let extra = &stem[prefix.len()..];
    if !(extra.is_empty() || extra.starts_with('.')) {
        return None;
    }
    let mut name = ExternalName {
        codec,
        ..ExternalName::default()
    };
    let mut title_parts: Vec<&str> = Vec::new();
    // From the right, as Jellyfin reads them.
    let parts: Vec<&str> = extra.split('.').skip(1).collect();
    for part in parts.into_iter().rev() {
        let lower = part.trim().to_ascii_lowercase();
        if lower.is_empty() {
            continue;
        }
        if lower.contains("default") {
            name.is_default = true;
        } else if lower.contains("forced") || lower.contains("foreign") {
            name.is_forced = true;
        } else if let Some(language) = language_code(&lower).filter(|_| lower.len() <= 3) {
            match name.language.as_deref() {
                None => name.language = Some(language.to_owned()),
                // `hi` read first as Hindi was the hearing-impaired flag.
                Some("hin") => {
                    name.is_hearing_impaired = true;
                    name.language = Some(language.to_owned());
                }
                Some(_) => title_parts.insert(0, part),
            }
        } else if matches!(lower.as_str(), "sdh" | "cc" | "hi") {
            name.is_hearing_impaired = true;
        } else {
            title_parts.insert(0, part);
        }
    }
    if !title_parts.is_empty() {
        name.title = Some(title_parts.join("."));
    }
    Some(name)
}

/// The external subtitles of `video` among `siblings` (the files of its folder), sorted by
/// file name so every scan numbers them alike, indexed from `first_index`.
pub fn external_streams(video: &Path, siblings: &[PathBuf], first_index: i64) -> Vec<StreamInfo> {
    let mut found: Vec<(&PathBuf, ExternalName)> = siblings
        .iter()
        .filter(|p| p.parent() == video.parent())
        .filter_map(|p| parse_name(video, p).map(|n| (p, n)))
        .collect();
    found.sort_by(|a, b| a.0.file_name().cmp(&b.0.file_name()));
    found
        .into_iter()
        .zip(first_index..)
        .map(|((path, name), index)| StreamInfo {
            index,
            kind: StreamKind::Subtitle,
            codec: Some(name.codec.to_owned()),
            language: name.language,
            title: name.title,
            is_default: name.is_default,
            is_forced: name.is_forced,
            is_hearing_impaired: name.is_hearing_impaired,
            is_external: true,
            path: Some(path.to_string_lossy().into_owned()),
            ..StreamInfo::default()
        })
        .collect()
}

/// Jellyfin's subtitle `DisplayTitle`: `English - Forced - SUBRIP - External`, the title first
/// when there is one (tags it already contains left out).
pub fn display_title(s: &StreamInfo) -> String {
    let mut tags: Vec<String> = Vec::new();
    tags.push(match s.language.as_deref() {
        Some(code) => language_name(code).map_or_else(|| first_upper(code), str::to_owned),
        None => "Und".to_owned(),
    });
    if s.is_hearing_impaired {
        tags.push("Hearing Impaired".to_owned());
    }
    if s.is_default {
        tags.push("Default".to_owned());
    }
    if s.is_forced {
        tags.push("Forced".to_owned());
    }
    if let Some(codec) = s.client_codec() {
        tags.push(codec.to_ascii_uppercase());
    }
    if s.is_external {
        tags.push("External".to_owned());
    }
    match s.title.as_deref().filter(|t| !t.trim().is_empty()) {
        Some(title) => {
            let lower = title.to_lowercase();
            let mut out = title.to_owned();
            for tag in tags {
                if !lower.contains(&tag.to_lowercase()) {
                    out.push_str(" - ");
                    out.push_str(&tag);
                }
            }
            out
        }
        None => tags.join(" - "),
    }
}

fn first_upper(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The files directly in `dir` that may be subtitles: regular files, or links that resolve
/// inside `root`. Unreadable folders give nothing (the scan logs the walk's own errors).
fn subtitle_files(dir: &Path, root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| codec_for(p).is_some())
        .filter(|p| match std::fs::symlink_metadata(p) {
            Ok(m) if m.file_type().is_file() => true,
            Ok(m) if m.file_type().is_symlink() => p
                .canonicalize()
                .is_ok_and(|target| target.starts_with(root) && target.is_file()),
            _ => false,
        })
        .collect()
}

/// Brings the stored external subtitles of every film and episode under `roots` (the library
/// folders that could be read in this scan) in line with the files on disk, reading `page_size`
/// videos at a time. Returns how many items' subtitles changed.
pub async fn refresh(
    store: &Store,
    library_id: JfId,
    roots: &[PathBuf],
    page_size: i64,
) -> Result<usize, StoreError> {
    // A page of videos at a time: the library's whole list of items would hold every row
    // (tens of megabytes at 20,000 files) for a pass that looks at one folder at a time.
    let mut changed = 0;
    let mut pages =
        store.scan_item_pages(library_id, &[ItemKind::Movie, ItemKind::Episode], page_size);
    while let Some(page) = pages.next().await? {
        let videos: Vec<(JfId, PathBuf, PathBuf)> = page
            .iter()
            .filter_map(|i| {
                let path = PathBuf::from(i.path.as_ref()?);
                let root = roots.iter().find(|r| path.starts_with(r))?.clone();
                Some((i.id, path, root))
            })
            .collect();
        drop(page);
        changed += refresh_page(store, &videos).await?;
    }
    if changed > 0 {
        tracing::info!(%library_id, items = changed, "external subtitles updated");
    }
    Ok(changed)
}

/// [`refresh`] for one page of videos (id, file, library folder): returns how many changed.
async fn refresh_page(
    store: &Store,
    videos: &[(JfId, PathBuf, PathBuf)],
) -> Result<usize, StoreError> {
    if videos.is_empty() {
        return Ok(0);
    }
    // One listing per folder, off the async threads.
    let folders: BTreeMap<PathBuf, PathBuf> = videos
        .iter()
        .filter_map(|(_, path, root)| Some((path.parent()?.to_owned(), root.clone())))
        .collect();
    let listings: HashMap<PathBuf, Vec<PathBuf>> = tokio::task::spawn_blocking(move || {
        folders
            .into_iter()
            .map(|(dir, root)| {
                let files = subtitle_files(&dir, &root);
                (dir, files)
            })
            .collect()
    })
    .await
    .unwrap_or_default();

    let mut changed = 0;
    for chunk in videos.chunks(200) {
        let ids: Vec<JfId> = chunk.iter().map(|(id, _, _)| *id).collect();
        let stored = store.media_streams(&ids).await?;
        for (id, path, _) in chunk {
            let streams = stored.get(id).map(Vec::as_slice).unwrap_or_default();
            let first_index = streams
                .iter()
                .filter(|s| !s.is_external)
                .map(|s| s.index + 1)
                .max()
                .unwrap_or(0);
            let siblings = path
                .parent()
                .and_then(|dir| listings.get(dir))
                .map(Vec::as_slice)
                .unwrap_or_default();
            let wanted = external_streams(path, siblings, first_index);
            let current: Vec<&StreamInfo> = streams.iter().filter(|s| s.is_external).collect();
            if current.len() != wanted.len() || current.iter().zip(&wanted).any(|(a, b)| *a != b) {
                store.replace_external_subtitles(*id, &wanted).await?;
                changed += 1;
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(subtitle: &str) -> Option<ExternalName> {
        parse_name(
            Path::new("/m/Film (2019)/Film (2019).mkv"),
            &Path::new("/m/Film (2019)").join(subtitle),
        )
    }

    #[test]
    fn language_and_flags_come_from_the_name() {
        let n = parse("Film (2019).en.forced.srt").unwrap();
        assert_eq!(n.language.as_deref(), Some("eng"));
        assert!(n.is_forced && !n.is_default && !n.is_hearing_impaired);
        assert_eq!(n.codec, "subrip");

        let n = parse("Film (2019).eng.sdh.srt").unwrap();
        assert_eq!(n.language.as_deref(), Some("eng"));
        assert!(n.is_hearing_impaired);

        let n = parse("film (2019).fr.default.ass").unwrap();
        assert_eq!(
            n.language.as_deref(),
            Some("fre"),
            "ISO 639-2/B, as Jellyfin"
        );
        assert!(n.is_default);
        assert_eq!(n.codec, "ass");

        let n = parse("Film (2019).de.cc.vtt").unwrap();
        assert_eq!(n.language.as_deref(), Some("ger"));
        assert!(n.is_hearing_impaired);
        assert_eq!(n.codec, "webvtt");

        let n = parse("Film (2019).srt").unwrap();
        assert_eq!(
            n,
            ExternalName {
                codec: "subrip",
                ..ExternalName::default()
            }
        );

        let n = parse("Film (2019).Commentary.spa.foreign.ssa").unwrap();
        assert_eq!(n.language.as_deref(), Some("spa"));
        assert!(n.is_forced);
        assert_eq!(n.title.as_deref(), Some("Commentary"));
        assert_eq!(n.codec, "ssa");
    }

    #[test]
    fn hi_is_hindi_alone_and_hearing_impaired_after_a_language() {
        assert_eq!(
            parse("Film (2019).hi.srt").unwrap().language.as_deref(),
            Some("hin")
        );
        let n = parse("Film (2019).en.hi.srt").unwrap();
        assert_eq!(n.language.as_deref(), Some("eng"));
        assert!(n.is_hearing_impaired);
    }

    #[test]
    fn other_files_are_not_subtitles_of_the_video() {
        assert_eq!(parse("Film (2019).en.txt"), None);
        assert_eq!(
            parse("Film (2019)-extra.en.srt"),
            None,
            "another video's name"
        );
        assert_eq!(parse("Other.en.srt"), None);
        assert_eq!(parse("Film (20.srt"), None);
    }

    #[test]
    fn externals_are_numbered_after_the_embedded_streams_in_name_order() {
        let video = Path::new("/m/F/Film.mkv");
        let siblings = vec![
            PathBuf::from("/m/F/Film.fr.forced.ass"),
            PathBuf::from("/m/F/Film.en.srt"),
            PathBuf::from("/m/F/Other.en.srt"),
            PathBuf::from("/m/G/Film.en.srt"),
        ];
        let streams = external_streams(video, &siblings, 3);
        assert_eq!(streams.len(), 2);
        assert_eq!(streams[0].index, 3);
        assert_eq!(streams[0].path.as_deref(), Some("/m/F/Film.en.srt"));
        assert_eq!(streams[1].index, 4);
        assert!(streams[1].is_forced && streams[1].is_external);
        assert_eq!(streams[1].kind, StreamKind::Subtitle);
    }

    #[test]
    fn display_titles_read_like_jellyfins() {
        let video = Path::new("/m/F/Film.mkv");
        let streams = external_streams(
            video,
            &[
                PathBuf::from("/m/F/Film.en.forced.srt"),
                PathBuf::from("/m/F/Film.srt"),
                PathBuf::from("/m/F/Film.Signs.eng.sdh.ass"),
            ],
            2,
        );
        let titles: Vec<String> = streams.iter().map(display_title).collect();
        assert_eq!(
            titles,
            [
                "Signs - English - Hearing Impaired - ASS - External",
                "English - Forced - SUBRIP - External",
                "Und - SUBRIP - External",
            ]
        );
        let embedded = StreamInfo {
            kind: StreamKind::Subtitle,
            codec: Some("subrip".into()),
            language: Some("fre".into()),
            is_default: true,
            ..StreamInfo::default()
        };
        assert_eq!(display_title(&embedded), "French - Default - SUBRIP");
    }

    #[test]
    fn language_codes_of_both_iso_639_parts_map_to_the_b_code() {
        assert_eq!(language_code("fr"), Some("fre"));
        assert_eq!(language_code("fra"), Some("fre"));
        assert_eq!(language_code("FRE"), Some("fre"));
        assert_eq!(language_code("zz"), None);
        assert_eq!(language_name("deu"), Some("German"));
    }

    #[test]
    fn subtitle_files_skip_links_that_leave_the_library() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let lib = root.join("lib");
        let outside = root.join("outside");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(lib.join("Film.en.srt"), "1\n").unwrap();
        std::fs::write(lib.join("Film.mkv"), "x").unwrap();
        std::fs::write(outside.join("secret.srt"), "1\n").unwrap();
        std::os::unix::fs::symlink(outside.join("secret.srt"), lib.join("Film.fr.srt")).unwrap();
        std::os::unix::fs::symlink(lib.join("Film.en.srt"), lib.join("Film.de.srt")).unwrap();
        let mut found = subtitle_files(&lib, &lib);
        found.sort();
        assert_eq!(found, [lib.join("Film.de.srt"), lib.join("Film.en.srt")]);
    }
}

//! What a file's name and folders say about it: a film's title, year and provider ids, an
//! episode's series, season, number(s) or air date, whether it is an extra (trailer, sample,
//! featurette, ...), a part of a stacked film (`cd1`, `part2`) or a file to ignore (NAS system
//! folders, downloads in progress). Pure functions over names and paths relative to a library
//! folder; no I/O. How files combine (versions, stacks, extras' owners) is `scan::place`.
//!
//! The rules follow Jellyfin's `Emby.Naming` (its options and unit tests), re-expressed here:
//! `Title (Year).mkv`, `Title.Year.1080p.BluRay.mkv`, a film in a folder of its own, series
//! folders with `(Year)` and `[tvdbid-…]`/`{tmdb-…}`/`[imdbid-tt…]` tags, episodes as
//! `S01E02`, `1x02`, `102` (with Jellyfin's guards), air dates, absolute numbers
//! (`[Group] Show - 12 [1080p]`), `Episode 3`, `03 - Title`, multi-episode ranges, and
//! specials (`Season 00`, `Specials/`). Where Ephyra departs from Jellyfin the test says so.

use std::collections::BTreeMap;
use std::path::{Component, Path};
use std::sync::LazyLock;

use regex::Regex;

/// File extensions (lower case) the scanner treats as video.
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mkv", "mp4", "m4v", "avi", "mov", "webm", "ts", "m2ts", "mts", "wmv", "mpg", "mpeg", "flv",
    "ogv", "3gp", "iso", "divx", "xvid", "vob", "m2t", "mk3d", "wtv", "f4v", "asf", "rmvb",
];

/// Whether the path names a video file the scanner picks up, judged by its extension.
pub fn is_video(path: &Path) -> bool {
    extension_is(path, VIDEO_EXTENSIONS)
}

/// Whether the path names a disc image (`.iso`): one item, not probed (ffprobe cannot read
/// one), played as a whole.
pub fn is_disc_image(path: &Path) -> bool {
    extension_is(path, &["iso"])
}

fn extension_is(path: &Path, list: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| list.contains(&e.to_ascii_lowercase().as_str()))
}

/// Folder names (compared without regard to case) that are never media: NAS and operating
/// system bookkeeping, recycle bins, artwork caches. Jellyfin ignores the same ones.
const IGNORED_FOLDERS: &[&str] = &[
    "@eadir",
    "eadir",
    "#recycle",
    "#snapshot",
    "@recycle",
    "@recently-snapshot",
    "$recycle.bin",
    "recycler",
    "lost+found",
    "system volume information",
    "extrafanart",
    "extrathumbs",
    "metadata",
    "ps3_update",
    "ps3_vprm",
    "@tmp",
    "@sharebin",
];

/// Extensions of downloads still in progress (torrent clients, browsers): never media yet.
const PARTIAL_EXTENSIONS: &[&str] = &["part", "partial", "!qb", "crdownload", "!ut", "tmp"];

/// Whether a folder is skipped with everything below it.
pub fn is_ignored_folder(name: &str) -> bool {
    name.starts_with('.') || IGNORED_FOLDERS.contains(&name.to_lowercase().as_str())
}

/// Whether a file is skipped: hidden (`.` first, which includes `.DS_Store` and macOS `._`
/// shadows), or a download in progress.
pub fn is_ignored_file(name: &str) -> bool {
    name.starts_with('.') || extension_is(Path::new(name), PARTIAL_EXTENSIONS)
}

/// The name of a marker file that makes the scanner skip its folder (Jellyfin's `.ignore`).
pub const IGNORE_MARKER: &str = ".ignore";

/// Provider ids found in a name, by Jellyfin's provider key (`Imdb`, `Tmdb`, `Tvdb`, ...).
pub type ProviderIds = BTreeMap<String, String>;

/// A film as its name describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovieName {
    /// Title as shown to people.
    pub title: String,
    /// Year of release, when the name carries one.
    pub year: Option<i32>,
    /// Ids tagged in the file or folder name (`[imdbid-tt0133093]`, `{tmdb-603}`).
    pub provider_ids: ProviderIds,
}

/// A series as its folder (or a file's prefix) names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesName {
    /// Name without year and id tags.
    pub name: String,
    /// `(2008)` in the folder name: the production year.
    pub year: Option<i32>,
    /// Id tags in the folder name.
    pub provider_ids: ProviderIds,
}

/// A calendar date, for daily shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AirDate {
    /// Year.
    pub year: i32,
    /// Month 1–12.
    pub month: u32,
    /// Day 1–31.
    pub day: u32,
}

impl AirDate {
    /// Milliseconds since the Unix epoch at midnight UTC.
    pub fn unix_ms(self) -> Option<i64> {
        let date = chrono::NaiveDate::from_ymd_opt(self.year, self.month, self.day)?;
        Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
    }

    fn valid(year: i32, month: u32, day: u32) -> Option<AirDate> {
        chrono::NaiveDate::from_ymd_opt(year, month, day)?;
        (1900..=2100)
            .contains(&year)
            .then_some(AirDate { year, month, day })
    }
}

/// An episode as its path describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpisodeName {
    /// The series, from the folder under the library root (or the file name's prefix).
    pub series: SeriesName,
    /// Season number; 0 for specials. From the name, else the season folder, else 1 (as
    /// Jellyfin assumes for a series without season folders).
    pub season: u32,
    /// Episode number within the season (the first one of a multi-episode file); `None` for
    /// a daily show's episode or a file in a series folder that carries no number.
    pub episode: Option<u32>,
    /// Last episode of a multi-episode file (`S01E01-E03` → 3).
    pub episode_end: Option<u32>,
    /// Air date of a daily show's episode (`Show 2024-05-01`).
    pub air_date: Option<AirDate>,
    /// The episode's own title, when the file name has one after the number.
    pub title: Option<String>,
}

/// Jellyfin's `ExtraType` for videos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExtraType {
    /// `-trailer`, `Trailers/`.
    Trailer,
    /// `.sample`, `sample.mkv`, `Samples/`.
    Sample,
    /// `-featurette`, `Featurettes/`.
    Featurette,
    /// `-behindthescenes`, `Behind The Scenes/`.
    BehindTheScenes,
    /// `-deleted`, `Deleted Scenes/`.
    DeletedScene,
    /// `-interview`, `Interviews/`.
    Interview,
    /// `-scene`, `Scenes/`.
    Scene,
    /// `-short`, `Shorts/`.
    Short,
    /// `-clip`, `Clips/`.
    Clip,
    /// `-other`, `-extra`, `Extras/`, `Other/`.
    Unknown,
}

impl ExtraType {
    /// Jellyfin's name, as stored and sent in `ExtraType`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExtraType::Trailer => "Trailer",
            ExtraType::Sample => "Sample",
            ExtraType::Featurette => "Featurette",
            ExtraType::BehindTheScenes => "BehindTheScenes",
            ExtraType::DeletedScene => "DeletedScene",
            ExtraType::Interview => "Interview",
            ExtraType::Scene => "Scene",
            ExtraType::Short => "Short",
            ExtraType::Clip => "Clip",
            ExtraType::Unknown => "Unknown",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<ExtraType> {
        [
            ExtraType::Trailer,
            ExtraType::Sample,
            ExtraType::Featurette,
            ExtraType::BehindTheScenes,
            ExtraType::DeletedScene,
            ExtraType::Interview,
            ExtraType::Scene,
            ExtraType::Short,
            ExtraType::Clip,
            ExtraType::Unknown,
        ]
        .into_iter()
        .find(|t| t.as_str().eq_ignore_ascii_case(text))
    }
}

/// The extra type a folder holds: `Trailers/`, `Extras/`, `Behind The Scenes/`, ...
pub fn extra_folder_type(folder: &str) -> Option<ExtraType> {
    Some(match folder.trim().to_lowercase().as_str() {
        "trailers" | "trailer" => ExtraType::Trailer,
        "samples" | "sample" => ExtraType::Sample,
        "featurettes" | "featurette" => ExtraType::Featurette,
        "behind the scenes" | "behindthescenes" => ExtraType::BehindTheScenes,
        "deleted scenes" | "deletedscenes" => ExtraType::DeletedScene,
        "interviews" | "interview" => ExtraType::Interview,
        "scenes" => ExtraType::Scene,
        "shorts" => ExtraType::Short,
        "clips" => ExtraType::Clip,
        "extras" | "extra" | "other" | "others" | "specials features" | "special features" => {
            ExtraType::Unknown
        }
        _ => return None,
    })
}

/// The extra type a file's own name gives it: the whole name (`trailer.mkv`, `sample.mkv`) or
/// a suffix (`-trailer`, ` - Trailer`, `.sample`, `-featurette`, ...).
pub fn extra_name_type(stem: &str) -> Option<ExtraType> {
    let lower = stem.trim().to_lowercase();
    match lower.as_str() {
        "trailer" => return Some(ExtraType::Trailer),
        "sample" => return Some(ExtraType::Sample),
        _ => {}
    }
    // Suffixes that any of `-`, `.`, `_` or a space introduces.
    for (word, kind) in [
        ("trailer", ExtraType::Trailer),
        ("sample", ExtraType::Sample),
    ] {
        if let Some(before) = lower.strip_suffix(word)
            && before.ends_with(['-', '.', '_', ' '])
            && !before.trim_end_matches(['-', '.', '_', ' ']).is_empty()
        {
            return Some(kind);
        }
    }
    // Suffixes only a dash introduces (`Film-scene.mkv`; `Film Scene.mkv` is a title).
    for (word, kind) in [
        ("behindthescenes", ExtraType::BehindTheScenes),
        ("deletedscene", ExtraType::DeletedScene),
        ("deleted", ExtraType::DeletedScene),
        ("featurette", ExtraType::Featurette),
        ("interview", ExtraType::Interview),
        ("scene", ExtraType::Scene),
        ("short", ExtraType::Short),
        ("clip", ExtraType::Clip),
        ("other", ExtraType::Unknown),
        ("extra", ExtraType::Unknown),
    ] {
        if let Some(before) = lower.strip_suffix(word)
            && before.ends_with('-')
            && !before.trim_end_matches(['-', ' ']).is_empty()
        {
            return Some(kind);
        }
    }
    None
}

/// The title of an extra: its name without the extra suffix (`Film (2001)-trailer` → `Film
/// (2001)`), or the name itself in an extras folder.
pub fn extra_title(stem: &str) -> String {
    static SUFFIX: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)(?:[-._ ]+(?:trailer|sample)|-(?:behindthescenes|deletedscene|deleted|featurette|interview|scene|short|clip|other|extra))$")
            .expect("valid regex")
    });
    let title = SUFFIX.replace(stem.trim(), "");
    let title = title.trim_end_matches([' ', '-', '.', '_']);
    if title.is_empty() {
        stem.trim().to_owned()
    } else {
        title.to_owned()
    }
}

/// One file of a stacked film: `Film (2001) cd1`, `Film part2`, `Film (Disc 01)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackPart {
    /// The name before the part marker (`Film (2001)`), as written.
    pub base: String,
    /// The marker word in lower case (`cd`, `dvd`, `part`, `pt`, `disc`, `disk`).
    pub kind: String,
    /// Part number: digits, or `a`–`d` as 1–4.
    pub number: u32,
    /// Whether the number was a letter (letters and digits never stack together).
    pub lettered: bool,
}

/// The stacking marker at the end of a file stem or folder name, if there is one.
pub fn stack_part(stem: &str) -> Option<StackPart> {
    static STACK: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)^(.*?)(?:[ _.\-]+|([\]\)\}]))[\(\[]?(cd|dvd|part|pt|dis[ck])[ _.\-]*([0-9]{1,3}|[a-d])[\)\]]?$")
            .expect("valid regex")
    });
    let caps = STACK.captures(stem)?;
    let mut base = caps.get(1)?.as_str().to_owned();
    if let Some(bracket) = caps.get(2) {
        base.push_str(bracket.as_str());
    }
    if base.trim().is_empty() {
        return None;
    }
    let number = caps.get(4)?.as_str();
    let (number, lettered) = match number.parse::<u32>() {
        Ok(n) => (n, false),
        Err(_) => (
            u32::from(number.bytes().next()?.to_ascii_lowercase() - b'a') + 1,
            true,
        ),
    };
    Some(StackPart {
        base,
        kind: caps.get(3)?.as_str().to_lowercase(),
        number,
        lettered,
    })
}

/// A vertical resolution a name announces (`1080p`, `2160p`, `4K`, `UHD`), to order versions.
pub fn resolution_of(name: &str) -> Option<u32> {
    static RES: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)(?:^|[^a-z0-9])(?:(\d{3,4})[pi]|(4k|uhd|2160))(?:[^a-z0-9]|$)")
            .expect("valid regex")
    });
    let caps = RES.captures(name)?;
    match (caps.get(1), caps.get(2)) {
        (Some(digits), _) => digits.as_str().parse().ok(),
        (None, Some(_)) => Some(2160),
        _ => None,
    }
}

/// Parses a film from its path relative to the library folder.
///
/// A year in the file name wins; otherwise a year in the film's own folder (a parent that is
/// not the library root) is used together with that folder's title. Id tags are read from
/// both; a disc folder (`Film (1999)/VIDEO_TS/…`, `…/BDMV/…`) is named after the folder
/// above it.
pub fn parse_movie(relative: &Path) -> MovieName {
    let folders = folder_names(relative);
    if let Some(at) = folders.iter().position(|f| is_disc_folder(f)) {
        let folder = if at > 0 { folders[at - 1] } else { "" };
        let mut name = parse_title_year_ids(folder);
        if name.title.is_empty() {
            name.title = folder.to_owned();
        }
        return name;
    }
    let stem = relative
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let mut from_file = parse_title_year_ids(stem);
    let parent = folders.last().copied();
    let from_folder = parent.map(parse_title_year_ids);
    if let Some(folder) = &from_folder {
        for (k, v) in &folder.provider_ids {
            from_file
                .provider_ids
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
    }
    if from_file.year.is_some() {
        return from_file;
    }
    if let Some(mut folder) = from_folder
        && folder.year.is_some()
        && !folder.title.is_empty()
    {
        folder.provider_ids = from_file.provider_ids;
        return folder;
    }
    if from_file.title.is_empty() {
        from_file.title = stem.to_owned();
    }
    from_file
}

/// Whether a folder is a DVD or Blu-ray structure (`VIDEO_TS`, `BDMV`).
pub fn is_disc_folder(name: &str) -> bool {
    name.eq_ignore_ascii_case("VIDEO_TS") || name.eq_ignore_ascii_case("BDMV")
}

/// Cleans a series folder name: `Breaking Bad (2008)` → "Breaking Bad", 2008;
/// `Ted Lasso (2020) [tvdbid-383203]` → "Ted Lasso", 2020, Tvdb 383203;
/// `Love.Death.and.Robots.S01.1080p.NF.WEB-DL` → "Love Death and Robots".
pub fn parse_series_folder(folder: &str) -> SeriesName {
    let parsed = parse_title_year_ids(strip_group_tags(folder));
    let mut words = split_words(&parsed.title);
    if let Some(at) = words.iter().position(|w| is_season_word(w)) {
        words.truncate(at);
    }
    let name = clean_title(&words.join(" "));
    SeriesName {
        name: if name.is_empty() {
            folder.trim().to_owned()
        } else {
            name
        },
        year: parsed.year,
        provider_ids: parsed.provider_ids,
    }
}

fn is_season_word(word: &str) -> bool {
    let lower = word.to_ascii_lowercase();
    lower
        .strip_prefix('s')
        .is_some_and(|d| !d.is_empty() && d.len() <= 4 && d.bytes().all(|b| b.is_ascii_digit()))
}

fn folder_names(relative: &Path) -> Vec<&str> {
    relative
        .parent()
        .map(|p| {
            p.components()
                .filter_map(|c| match c {
                    Component::Normal(s) => s.to_str(),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Parses an episode from its path relative to a TV library folder, or `None` when the file
/// is neither in a series folder nor named after its series with an episode marker (a file
/// at the library root without a marker cannot be placed).
///
/// A file inside a series folder is an episode even without any number (Jellyfin lists it
/// too, unnumbered); its extras are recognised by the caller first.
pub fn parse_episode(relative: &Path) -> Option<EpisodeName> {
    let stem = relative.file_stem()?.to_str()?;
    let folders = folder_names(relative);
    let season_from_folder = folders.iter().rev().find_map(|f| season_folder_number(f));
    let marker = find_marker(stem);

    // The series is the top folder under the library root, unless that folder is itself a
    // season folder (a library of one show), in which case the file name's prefix names it.
    let series_folder = folders
        .first()
        .filter(|f| season_folder_number(f).is_none());
    let series = match series_folder {
        Some(folder) => parse_series_folder(folder),
        None => {
            let prefix = marker.as_ref().map(|m| &stem[..m.start])?;
            let prefix = strip_group_tags(prefix).trim();
            if prefix.is_empty() {
                return None;
            }
            parse_series_folder(prefix)
        }
    };
    if series.name.is_empty() {
        return None;
    }

    let Some(marker) = marker else {
        // In a series folder but no number: an unnumbered episode, titled after its file.
        let title = clean_title(strip_group_tags(stem));
        return Some(EpisodeName {
            series,
            season: season_from_folder.unwrap_or(1),
            episode: None,
            episode_end: None,
            air_date: None,
            title: Some(if title.is_empty() {
                stem.to_owned()
            } else {
                title
            }),
        });
    };
    let season = marker.season.or(season_from_folder).unwrap_or(1);
    let rest = &stem[marker.end.min(stem.len())..];
    let title = clean_title(strip_group_tags(strip_leading_separators(rest)));
    let title = (!title.is_empty() && !is_junk_only(&title)).then_some(title);
    let episode_end = marker
        .episode_end
        .filter(|end| marker.episode.is_some_and(|start| *end > start));
    Some(EpisodeName {
        series,
        season,
        episode: marker.episode,
        episode_end,
        air_date: marker.air_date,
        title,
    })
}

/// The season number a folder name stands for: `Season 1`, `Season 01`, `S01`, `Series 2`,
/// `Staffel 3`, `Saison 4`, `Season 00` and `Specials` (0).
pub fn season_folder_number(folder: &str) -> Option<u32> {
    let lower = folder.trim().to_lowercase();
    if lower == "specials" || lower == "special" || lower == "extras specials" {
        return Some(0);
    }
    for word in [
        "season",
        "series",
        "staffel",
        "saison",
        "temporada",
        "sezon",
        "s",
    ] {
        if let Some(rest) = lower.strip_prefix(word) {
            let digits = rest.trim_start_matches([' ', '.', '_', '-']);
            if !digits.is_empty() && digits.len() <= 4 && digits.bytes().all(|b| b.is_ascii_digit())
            {
                return digits.parse().ok();
            }
        }
    }
    None
}

/// The name to sort a title by: lower case, without a leading article ("The", "A", "An").
pub fn sort_name(title: &str) -> String {
    let lower = title.trim().to_lowercase();
    for article in ["the ", "a ", "an "] {
        if let Some(rest) = lower.strip_prefix(article) {
            let rest = rest.trim_start();
            if !rest.is_empty() {
                return rest.to_owned();
            }
        }
    }
    lower
}

/// What an episode marker in a file stem says, and where it sits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Marker {
    season: Option<u32>,
    episode: Option<u32>,
    episode_end: Option<u32>,
    air_date: Option<AirDate>,
    /// Byte offset where the marker starts (the series prefix ends).
    start: usize,
    /// Byte offset just after the marker (the title starts).
    end: usize,
}

/// Tries the episode rules in Jellyfin's order of confidence; the first that matches wins.
fn find_marker(stem: &str) -> Option<Marker> {
    sxxexx(stem)
        .or_else(|| nxnn(stem))
        .or_else(|| air_date(stem))
        .or_else(|| season_episode_words(stem))
        .or_else(|| ep_prefixed(stem))
        .or_else(|| bracketed_absolute(stem))
        .or_else(|| name_then_number(stem))
        .or_else(|| three_digit(stem))
        .or_else(|| part_number(stem))
        .or_else(|| episode_word(stem))
        .or_else(|| leading_number(stem))
        .or_else(|| dash_number(stem))
}

fn num(caps: &regex::Captures<'_>, i: usize) -> Option<u32> {
    caps.get(i).and_then(|m| m.as_str().parse().ok())
}

/// `S01E02`, `s1e2`, `S01.E02`, `S01 - E02`, `S01xE02`, then `E03`, `-E03`, `-03` (the last
/// number of a multi-episode file).
fn sxxexx(stem: &str) -> Option<Marker> {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)(?:^|[^a-z0-9])(s(\d{1,4})[\]\[ ._\-]*x?e(\d{1,4}))").expect("valid regex")
    });
    let caps = RE.captures(stem)?;
    let whole = caps.get(1)?;
    let (end_episode, end) = continuation(stem, whole.end());
    if stem[end..].starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return None;
    }
    Some(Marker {
        season: num(&caps, 2),
        episode: num(&caps, 3),
        episode_end: end_episode,
        start: whole.start(),
        end,
        ..Marker::default()
    })
}

/// `1x02`, `S01x02`, `2009x03`, then `-04`, `x04`, `-E04`, ` - x04`, ` - 02x04`.
fn nxnn(stem: &str) -> Option<Marker> {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)(?:^|[^a-z0-9])(s?(\d{1,4})x(\d{1,3}))(?:[^0-9]|$)").expect("valid regex")
    });
    for caps in RE.captures_iter(stem) {
        let whole = caps.get(1)?;
        let season = num(&caps, 2)?;
        // `1920x1080` is a resolution, not season 1920 (Jellyfin's guard).
        if (200..1928).contains(&season) || season > 2500 {
            continue;
        }
        let (end_episode, end) = continuation(stem, whole.end());
        return Some(Marker {
            season: Some(season),
            episode: num(&caps, 3),
            episode_end: end_episode,
            start: whole.start(),
            end,
            ..Marker::default()
        });
    }
    None
}

/// Continuations of a multi-episode marker from byte `at`: `E03`, `x03`, `-E03`, `-x03`,
/// `-03` (digits not followed by a letter, so `-1080p` is not one), ` - x03`, ` - 02x03`,
/// ` - S01E03`. Returns the last episode number seen and where the marker ends.
fn continuation(stem: &str, mut at: usize) -> (Option<u32>, usize) {
    static NEXT: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"(?i)^(?:(?:-|\s-\s)?(?:s?\d{1,4})?[ex]{1,2}(\d{1,4})|-(\d{1,3}))(?:[^a-z0-9]|[ex]\d|$)",
        )
        .expect("valid regex")
    });
    let mut last = None;
    while let Some(caps) = NEXT.captures(&stem[at..]) {
        let number = num(&caps, 1).or_else(|| num(&caps, 2));
        let Some(m) = caps.get(1).or_else(|| caps.get(2)) else {
            break;
        };
        last = number;
        at += m.end();
    }
    (last, at)
}

/// `Show 2024-05-01`, `show.2024.05.01`, `Show 2018_03_24_19_00_00`, `Show 01.05.2024`.
fn air_date(stem: &str) -> Option<Marker> {
    static YMD: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?:^|[^0-9])((\d{4})[._ \-](\d{2})[._ \-](\d{2}))(?:[^0-9]|$)")
            .expect("valid regex")
    });
    static DMY: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?:^|[^0-9])((\d{2})[._ \-](\d{2})[._ \-](\d{4}))(?:[^0-9]|$)")
            .expect("valid regex")
    });
    let marker = |whole: regex::Match<'_>, date: AirDate| Marker {
        air_date: Some(date),
        start: whole.start(),
        end: whole.end(),
        ..Marker::default()
    };
    if let Some(caps) = YMD.captures(stem)
        && let (Some(y), Some(m), Some(d)) = (num(&caps, 2), num(&caps, 3), num(&caps, 4))
        && let Some(date) = AirDate::valid(i32::try_from(y).ok()?, m, d)
    {
        return Some(marker(caps.get(1)?, date));
    }
    if let Some(caps) = DMY.captures(stem)
        && let (Some(d), Some(m), Some(y)) = (num(&caps, 2), num(&caps, 3), num(&caps, 4))
        && let Some(date) = AirDate::valid(i32::try_from(y).ok()?, m, d)
    {
        return Some(marker(caps.get(1)?, date));
    }
    None
}

/// `Series Season 3 Episode 9 - Title`, `s3 e9`.
fn season_episode_words(stem: &str) -> Option<Marker> {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"(?i)(?:^|[^a-z0-9])(s(?:eason)?\s*(\d{1,4})\s+e(?:pisode)?\s*(\d{1,4}))(?:[^0-9]|$)",
        )
        .expect("valid regex")
    });
    let caps = RE.captures(stem)?;
    let whole = caps.get(1)?;
    Some(Marker {
        season: num(&caps, 2),
        episode: num(&caps, 3),
        start: whole.start(),
        end: whole.end(),
        ..Marker::default()
    })
}

/// `foo.ep01`, `Foo_ep_02`, `E07 - Title`, `show.e01.`.
fn ep_prefixed(stem: &str) -> Option<Marker> {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)(?:^|[._ \-])(ep?_?(\d{1,4}))(?:[._ \-]|$)").expect("valid regex")
    });
    let caps = RE.captures(stem)?;
    let whole = caps.get(1)?;
    Some(Marker {
        episode: num(&caps, 2),
        start: whole.start(),
        end: whole.end(),
        ..Marker::default()
    })
}

/// Fansub releases: `[Group] Show - 12 [1080p]`, `[Group] Show - 1071`, `[Group] Show -
/// 24v2`: an absolute episode number after the last ` - ` that is followed by a number.
fn bracketed_absolute(stem: &str) -> Option<Marker> {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(.*?)[\s_]*-[\s_]*((\d{1,4})(?:v\d)?)(?:[\s_.\[\(].*)?$")
            .expect("valid regex")
    });
    if !stem.contains('[') && !stem.contains('(') {
        return None;
    }
    let inner = strip_group_tags(stem);
    let offset = stem.len() - inner.len();
    let caps = RE.captures(inner)?;
    let number = caps.get(2)?;
    let prefix = caps.get(1)?;
    Some(Marker {
        episode: num(&caps, 3),
        start: offset + prefix.end(),
        end: offset + number.end(),
        ..Marker::default()
    })
}

/// `The Simpsons 889`, `Show 12`: a name of words, a space and a number ending the name: the
/// absolute episode number (Jellyfin's "Foo Bar 889").
fn name_then_number(stem: &str) -> Option<Marker> {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^([\w\s]+?)\s((\d{1,4})(?:-(\d{2,4}))?)$").expect("valid regex")
    });
    let caps = RE.captures(stem)?;
    let name = caps.get(1)?.as_str();
    if name.trim().to_lowercase().starts_with("episode") || name.trim().is_empty() {
        return None;
    }
    let whole = caps.get(2)?;
    Some(Marker {
        episode: num(&caps, 3),
        episode_end: num(&caps, 4),
        start: caps.get(1)?.end(),
        end: whole.end(),
        ..Marker::default()
    })
}

/// `show_102`, `Show.Name.102.HDTV`: season 1, episode 02, with Jellyfin's guards (the name
/// before it is not a number, the number is set off by separators) and one of Ephyra's own:
/// a four-digit year (`Film.2019.1080p`) is not season 20, episode 19.
fn three_digit(stem: &str) -> Option<Marker> {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"[._ \-]((\d{1,2})(\d{2}))(?:[._ \-]|$)").expect("valid regex")
    });
    for caps in RE.captures_iter(stem) {
        let whole = caps.get(1)?;
        let before = &stem[..whole.start() - 1];
        if before.trim().is_empty() || before.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        // Codec names: `H.265`, `x.264`, `DDP5.1`.
        if before.ends_with(['h', 'H', 'x', 'X']) || before.ends_with(|c: char| c.is_ascii_digit())
        {
            continue;
        }
        let text = whole.as_str();
        if text.len() == 4 && (text.starts_with("19") || text.starts_with("20")) {
            continue;
        }
        return Some(Marker {
            season: num(&caps, 2),
            episode: num(&caps, 3),
            start: whole.start(),
            end: whole.end(),
            ..Marker::default()
        });
    }
    None
}

/// `Show.Pt.2`, `Show part 3`, `Show pt_IV`: the part is the episode.
fn part_number(stem: &str) -> Option<Marker> {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)[._ \-](p(?:ar)?t[_. \-]([ivx]+|\d+))(?:[._ \-]|$)").expect("valid regex")
    });
    let caps = RE.captures(stem)?;
    let whole = caps.get(1)?;
    let raw = caps.get(2)?.as_str();
    let episode = raw.parse().ok().or_else(|| roman(raw))?;
    Some(Marker {
        episode: Some(episode),
        start: whole.start(),
        end: whole.end(),
        ..Marker::default()
    })
}

fn roman(text: &str) -> Option<u32> {
    let value = |c: char| match c.to_ascii_lowercase() {
        'i' => Some(1),
        'v' => Some(5),
        'x' => Some(10),
        _ => None,
    };
    let digits: Vec<u32> = text.chars().map(value).collect::<Option<_>>()?;
    let mut total = 0;
    for (i, d) in digits.iter().enumerate() {
        if digits.get(i + 1).is_some_and(|next| next > d) {
            total -= *d as i64;
        } else {
            total += *d as i64;
        }
    }
    u32::try_from(total).ok().filter(|t| *t > 0)
}

/// `Episode 16`, `Episode 16 - Title`, `Episode - 16`, `Episode 1-2`.
fn episode_word(stem: &str) -> Option<Marker> {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)(episode[\s._\-]*(\d{1,4})(?:-(\d{1,4}))?)(?:[^0-9]|$)")
            .expect("valid regex")
    });
    let caps = RE.captures(stem)?;
    let whole = caps.get(1)?;
    Some(Marker {
        episode: num(&caps, 2),
        episode_end: num(&caps, 3),
        start: whole.start(),
        end: whole.end(),
        ..Marker::default()
    })
}

/// `02`, `02 - Title`, `02-03 - Title`, `2. Title`, `16 Title`, `7 - 12 Angry Men`.
fn leading_number(stem: &str) -> Option<Marker> {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^\s*((\d{1,3})(?:-(\d{1,3}))?)(?:$|\s*-\s|\.|\s)").expect("valid regex")
    });
    let caps = RE.captures(stem)?;
    let whole = caps.get(1)?;
    Some(Marker {
        episode: num(&caps, 2),
        episode_end: num(&caps, 3),
        start: whole.start(),
        end: whole.end(),
        ..Marker::default()
    })
}

/// `Show - 01 - Title`, `Show 2 - 01`, `blah - 01 blah`.
fn dash_number(stem: &str) -> Option<Marker> {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(.*?) - ((\d{1,3})(?:-(\d{2,3}))?)(?:$|[^0-9])").expect("valid regex")
    });
    let caps = RE.captures(stem)?;
    let whole = caps.get(2)?;
    Some(Marker {
        episode: num(&caps, 3),
        episode_end: num(&caps, 4),
        start: caps.get(1)?.end(),
        end: whole.end(),
        ..Marker::default()
    })
}

/// Drops leading `[Group]` tags: `[HorribleSubs] Show - 01` → `Show - 01`.
fn strip_group_tags(text: &str) -> &str {
    let mut rest = text.trim_start();
    while let Some(after) = rest.strip_prefix('[') {
        match after.find(']') {
            Some(end) => rest = after[end + 1..].trim_start(),
            None => break,
        }
    }
    rest
}

/// Reads `[imdbid-tt0133093]`, `{tmdb-603}`, `[tvdbid=81189]`, `(tmdbid 603)` tags and returns
/// the name without them.
fn take_provider_ids(name: &str) -> (String, ProviderIds) {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)[\[\{\(]\s*(imdb|tmdb|tvdb|tvmaze|anidb|anilist|tvrage)(?:id)?\s*[-=:\s]\s*([a-z0-9]+)\s*[\]\}\)]")
            .expect("valid regex")
    });
    let mut ids = ProviderIds::new();
    for caps in RE.captures_iter(name) {
        let key = match caps[1].to_lowercase().as_str() {
            "imdb" => "Imdb",
            "tmdb" => "Tmdb",
            "tvdb" => "Tvdb",
            "tvmaze" => "TvMaze",
            "anidb" => "AniDB",
            "anilist" => "AniList",
            _ => "TvRage",
        };
        ids.insert(key.to_owned(), caps[2].to_owned());
    }
    (RE.replace_all(name, " ").into_owned(), ids)
}

fn parse_title_year_ids(name: &str) -> MovieName {
    let (rest, provider_ids) = take_provider_ids(name);
    let mut parsed = parse_title_year(rest.trim());
    parsed.provider_ids = provider_ids;
    parsed
}

/// Splits `Title (Year)`, `Title [Year]` and `Title.Year.1080p...` into title and year.
fn parse_title_year(name: &str) -> MovieName {
    let titled = |title: String, year: Option<i32>| MovieName {
        title,
        year,
        provider_ids: ProviderIds::new(),
    };
    // `Title (2019)` / `Title [2019]`: the last bracketed year wins.
    for (open, close) in [('(', ')'), ('[', ']')] {
        if let Some(pos) = name.rfind(open) {
            let inner = &name[pos + open.len_utf8()..];
            if let Some(end) = inner.find(close)
                && let Some(year) = as_year(inner[..end].trim())
            {
                let title = clean_title(&name[..pos]);
                if !title.is_empty() {
                    return titled(title, Some(year));
                }
            }
        }
    }
    // `Title.2019.1080p.BluRay`: the last year-like word that is not the first word, so that
    // `2001.A.Space.Odyssey.1968` keeps its title.
    let words = split_words(name);
    let year_at = words
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, w)| as_year(w).is_some())
        .map(|(i, _)| i)
        .next_back();
    if let Some(at) = year_at {
        return titled(clean_title(&words[..at].join(" ")), as_year(words[at]));
    }
    // No year: drop release tags from the first one on.
    let end = words
        .iter()
        .position(|w| is_release_tag(w))
        .unwrap_or(words.len());
    titled(clean_title(&words[..end].join(" ")), None)
}

fn split_words(name: &str) -> Vec<&str> {
    // Dots and underscores separate words only when the name has no spaces: `Mr. Robot` keeps
    // its dot, `The.Matrix.1999` does not.
    if name.contains(' ') {
        name.split(' ').filter(|w| !w.is_empty()).collect()
    } else {
        name.split(['.', '_', ' '])
            .filter(|w| !w.is_empty())
            .collect()
    }
}

fn as_year(text: &str) -> Option<i32> {
    let year: i32 = (text.len() == 4 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())??;
    (1880..=2100).contains(&year).then_some(year)
}

/// Release-group tags that end the title part of a name.
fn is_release_tag(word: &str) -> bool {
    const TAGS: &[&str] = &[
        "480p", "480i", "576p", "576i", "720p", "720i", "1080p", "1080i", "2160p", "4k", "uhd",
        "hdr", "hdr10", "dv", "bluray", "blu-ray", "brrip", "bdrip", "webrip", "web-dl", "webdl",
        "web", "hdtv", "pdtv", "dsr", "hdrip", "dvdrip", "dvd", "dvdscr", "remux", "x264", "x265",
        "h264", "h265", "hevc", "avc", "xvid", "divx", "aac", "ac3", "dts", "truehd", "atmos",
        "10bit", "proper", "repack", "extended", "unrated", "multi", "ntsc", "pal", "internal",
        "limited", "nf", "amzn", "dsnp", "hmax", "ddp5", "ddp5.1", "dd5.1", "hdtvrip",
    ];
    let lower = word.trim_matches(['[', ']', '(', ')']).to_ascii_lowercase();
    TAGS.contains(&lower.as_str())
}

fn is_junk_only(title: &str) -> bool {
    split_words(title).iter().all(|w| is_release_tag(w))
}

fn strip_leading_separators(text: &str) -> &str {
    text.trim_start_matches([' ', '-', '.', '_', '–'])
}

/// Turns a name fragment into a display title: separators to spaces, release tags and any
/// bracketed tags after them dropped, surrounding punctuation trimmed.
fn clean_title(text: &str) -> String {
    let text = match text.find(" [") {
        // `Show - 05 [1080p][Multiple Subtitle]`: bracketed tags end the title.
        Some(at) if at > 0 => &text[..at],
        _ => text,
    };
    let words = split_words(text);
    let end = words
        .iter()
        .position(|w| is_release_tag(w))
        .unwrap_or(words.len());
    words[..end]
        .join(" ")
        .trim_matches([' ', '-', '.', '_', '–', '(', '[', ','])
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    //! Cases marked "Jellyfin:" are ported from `tests/Jellyfin.Naming.Tests` (the expected
    //! values are Jellyfin's unless a comment says where and why Ephyra differs).

    use super::*;

    fn movie(path: &str) -> MovieName {
        parse_movie(Path::new(path))
    }

    fn titled(title: &str, year: Option<i32>) -> MovieName {
        MovieName {
            title: title.to_owned(),
            year,
            provider_ids: ProviderIds::new(),
        }
    }

    fn episode(path: &str) -> EpisodeName {
        parse_episode(Path::new(path)).unwrap_or_else(|| panic!("{path} is an episode"))
    }

    /// (season, episode, end) of a path.
    fn numbers(path: &str) -> (u32, Option<u32>, Option<u32>) {
        let e = episode(path);
        (e.season, e.episode, e.episode_end)
    }

    #[test]
    fn a_film_named_title_and_year_in_parentheses_gives_both() {
        assert_eq!(
            movie("Big Buck Bunny (2008).mkv"),
            titled("Big Buck Bunny", Some(2008))
        );
    }

    #[test]
    fn a_dotted_release_name_drops_the_quality_tags() {
        assert_eq!(
            movie("The.Matrix.1999.1080p.BluRay.x264.mkv"),
            titled("The Matrix", Some(1999))
        );
        assert_eq!(movie("Heat_1995_720p.mp4"), titled("Heat", Some(1995)));
    }

    #[test]
    fn a_title_that_starts_with_a_year_keeps_it() {
        assert_eq!(
            movie("2001.A.Space.Odyssey.1968.mkv"),
            titled("2001 A Space Odyssey", Some(1968))
        );
        assert_eq!(movie("1917 (2019).mkv"), titled("1917", Some(2019)));
    }

    #[test]
    fn a_film_in_its_own_folder_takes_the_year_from_the_folder() {
        assert_eq!(
            movie("Sintel (2010)/Sintel (2010).mkv"),
            titled("Sintel", Some(2010))
        );
        assert_eq!(
            movie("Sintel (2010)/movie.mkv"),
            titled("Sintel", Some(2010))
        );
    }

    #[test]
    fn a_film_without_a_year_is_named_after_its_file() {
        assert_eq!(movie("Home Video.mp4"), titled("Home Video", None));
        assert_eq!(movie("Some.Film.1080p.mkv"), titled("Some Film", None));
    }

    #[test]
    fn square_brackets_hold_a_year_too() {
        assert_eq!(movie("Alien [1979].avi"), titled("Alien", Some(1979)));
    }

    #[test]
    fn id_tags_in_film_names_become_provider_ids() {
        let m = movie("The Matrix (1999) [imdbid-tt0133093]/The Matrix (1999) {tmdb-603}.mkv");
        assert_eq!(m.title, "The Matrix");
        assert_eq!(m.year, Some(1999));
        assert_eq!(
            m.provider_ids.get("Imdb").map(String::as_str),
            Some("tt0133093")
        );
        assert_eq!(m.provider_ids.get("Tmdb").map(String::as_str), Some("603"));
    }

    #[test]
    fn a_disc_folder_is_named_after_the_folder_above_it() {
        assert_eq!(
            movie("Heat (1995)/VIDEO_TS/VTS_01_1.VOB"),
            titled("Heat", Some(1995))
        );
        assert_eq!(
            movie("Alien (1979)/BDMV/STREAM/00001.m2ts"),
            titled("Alien", Some(1979))
        );
    }

    #[test]
    fn series_folders_lose_their_year_and_id_tags() {
        let s = parse_series_folder("Breaking Bad (2008)");
        assert_eq!((s.name.as_str(), s.year), ("Breaking Bad", Some(2008)));
        let s = parse_series_folder("Ted Lasso (2020) [tvdbid-383203]");
        assert_eq!((s.name.as_str(), s.year), ("Ted Lasso", Some(2020)));
        assert_eq!(
            s.provider_ids.get("Tvdb").map(String::as_str),
            Some("383203")
        );
        let s = parse_series_folder("Severance {tmdb-95396}");
        assert_eq!(s.name, "Severance");
        assert_eq!(
            s.provider_ids.get("Tmdb").map(String::as_str),
            Some("95396")
        );
        let s = parse_series_folder("The Office (US) [imdbid-tt0386676]");
        assert_eq!(s.name, "The Office (US)");
        assert_eq!(
            s.provider_ids.get("Imdb").map(String::as_str),
            Some("tt0386676")
        );
        let s = parse_series_folder("Love.Death.and.Robots.S01.1080p.NF.WEB-DL.DDP5.1.x264-NTG");
        assert_eq!(s.name, "Love Death and Robots");
    }

    #[test]
    fn a_canonical_episode_path_gives_series_season_and_number() {
        let e = episode("Show/Season 01/Show S01E02.mkv");
        assert_eq!(e.series.name, "Show");
        assert_eq!((e.season, e.episode, e.title), (1, Some(2), None));
    }

    #[test]
    fn an_episode_title_after_the_marker_is_kept() {
        let e = episode("Star Trek/Season 2/Star Trek - S02E05 - The Trouble.mkv");
        assert_eq!(e.title.as_deref(), Some("The Trouble"));
        assert_eq!(
            numbers("Star Trek/Season 2/Star Trek - S02E05 - The Trouble.mkv"),
            (2, Some(5), None)
        );
    }

    #[test]
    fn a_series_folder_with_a_year_names_the_series_without_it() {
        let e = episode("Breaking Bad (2008)/Season 01/Breaking.Bad.S01E01.720p.mkv");
        assert_eq!(e.series.name, "Breaking Bad");
        assert_eq!(e.series.year, Some(2008));
    }

    /// Jellyfin: EpisodeNumberTests (the path parser alone).
    #[test]
    fn episode_numbers_as_jellyfin_reads_them() {
        for (path, expected) in [
            ("Season 02/S02E03 blah.avi", 3),
            ("Season 2/02x03 - 02x04 - 02x15 - Ep Name.mp4", 3),
            ("Season 1/01x02 blah.avi", 2),
            ("Season 1/S01x02 blah.avi", 2),
            ("Season 1/S01E02 blah.avi", 2),
            ("Season 2/Elementary - 02x03-04-15 - Ep Name.mp4", 3),
            ("Season 1/S01xE02 blah.avi", 2),
            ("Season 1/seriesname S01E02 blah.avi", 2),
            ("Season 2/Episode - 16.avi", 16),
            ("Season 2/Episode 16.avi", 16),
            ("Season 2/Episode 16 - Some Title.avi", 16),
            ("Season 2/16 Some Title.avi", 16),
            ("Season 2/16 - 12 Some Title.avi", 16),
            ("Season 2/7 - 12 Angry Men.avi", 7),
            ("Season 4/Uchuu.Senkan.Yamato.2199.S04E03.avi", 3),
            ("Running Man/Running Man S2017E368.mkv", 368),
            ("Season 25/The Simpsons.S25E09.Steal this episode.mp4", 9),
            ("Season 1/seriesname S01x02 blah.avi", 2),
            (
                "Season 2/Elementary - 02x03 - 02x04 - 02x15 - Ep Name.mp4",
                3,
            ),
            ("Season 1/seriesname S01xE02 blah.avi", 2),
            ("Season 02/02x03 - x04 - x15 - Ep Name.mp4", 3),
            ("Season 02/Elementary - 02x03 - x04 - x15 - Ep Name.mp4", 3),
            ("Season 02/02x03x04x15 - Ep Name.mp4", 3),
            ("Season 02/Elementary - 02x03x04x15 - Ep Name.mp4", 3),
            ("Season 2/02x03-04-15 - Ep Name.mp4", 3),
            ("Season 02/02x03-E15 - Ep Name.mp4", 3),
            ("Season 1/Elementary - S01E23-E24-E26 - The Woman.mp4", 23),
            ("Season 2009/S2009E23-E24-E26 - The Woman.mp4", 23),
            ("Season 2009/2009x02 blah.avi", 2),
            ("Season 2009/S2009x02 blah.avi", 2),
            ("Season 2009/S2009E02 blah.avi", 2),
            ("Season 2009/Elementary - 2009x03x04x15 - Ep Name.mp4", 3),
            ("Season 2009/2009x03-E15 - Ep Name.mp4", 3),
            ("Season 2009/S2009xE02 blah.avi", 2),
            ("Season 2009/2009x03 - x04 - x15 - Ep Name.mp4", 3),
            ("Season 1/02 - blah-02 a.avi", 2),
            ("Season 1/02 - blah.avi", 2),
            ("Season 2/02 - blah 14 blah.avi", 2),
            ("Season 2/02.avi", 2),
            ("Season 2/2. Infestation.avi", 2),
            (
                "The Wonder Years/The.Wonder.Years.S04.PDTV.x264-JCH/The Wonder Years s04e07 Christmas Party NTSC PDTV.avi",
                7,
            ),
            // Jellyfin's path parser alone reads 36 here (its `102` rule); with the series'
            // absolute order, as its resolver and Ephyra place it, it is 136.
            (
                "Season 2/[HorribleSubs] Hunter X Hunter - 136 [720p].mkv",
                136,
            ),
        ] {
            let (_, got, _) = numbers(&format!("Show/{path}"));
            assert_eq!(got, Some(expected), "{path}");
        }
    }

    /// Jellyfin: MultiEpisodeTests (the last episode of a multi-episode file).
    #[test]
    fn multi_episode_ranges_as_jellyfin_reads_them() {
        for (path, expected) in [
            ("Season 1/4x01 – 20 Hours in America (1).mkv", None),
            ("Season 1/01x02 blah.avi", None),
            ("Season 1/S01x02 blah.avi", None),
            ("Season 1/S01E02 blah.avi", None),
            ("Season 1/S01xE02 blah.avi", None),
            ("Season 1/seriesname 01x02 blah.avi", None),
            ("Season 1/seriesname S01E02 blah.avi", None),
            ("Season 2/02x03 - 04 Ep Name.mp4", None),
            ("Season 2/My show name 02x03 - 04 Ep Name.mp4", None),
            (
                "Season 2/Elementary - 02x03 - 02x04 - 02x15 - Ep Name.mp4",
                Some(15),
            ),
            ("Season 2/02x03 - 02x04 - 02x15 - Ep Name.mp4", Some(15)),
            ("Season 2/02x03-04-15 - Ep Name.mp4", Some(15)),
            ("Season 2/Elementary - 02x03-04-15 - Ep Name.mp4", Some(15)),
            ("Season 02/02x03-E15 - Ep Name.mp4", Some(15)),
            ("Season 02/Elementary - 02x03-E15 - Ep Name.mp4", Some(15)),
            ("Season 02/02x03 - x04 - x15 - Ep Name.mp4", Some(15)),
            (
                "Season 02/Elementary - 02x03 - x04 - x15 - Ep Name.mp4",
                Some(15),
            ),
            ("Season 02/02x03x04x15 - Ep Name.mp4", Some(15)),
            ("Season 02/Elementary - 02x03x04x15 - Ep Name.mp4", Some(15)),
            (
                "Season 1/Elementary - S01E23-E24-E26 - The Woman.mp4",
                Some(26),
            ),
            ("Season 1/S01E23-E24-E26 - The Woman.mp4", Some(26)),
            ("Season 2009/2009x02 blah.avi", None),
            ("Season 2009/S2009E02 blah.avi", None),
            (
                "Season 2009/Elementary - 2009x03 - 2009x04 - 2009x15 - Ep Name.mp4",
                Some(15),
            ),
            ("Season 2009/2009x03-04-15 - Ep Name.mp4", Some(15)),
            ("Season 2009/2009x03-E15 - Ep Name.mp4", Some(15)),
            (
                "Season 2009/Elementary - 2009x03x04x15 - Ep Name.mp4",
                Some(15),
            ),
            ("Season 2009/S2009E23-E24-E26 - The Woman.mp4", Some(26)),
            ("Season 1/02 - blah.avi", None),
            ("Season 2/02 - blah 14 blah.avi", None),
            ("Season 1/02 - blah-02 a.avi", None),
            ("Season 2/02.avi", None),
            ("Season 1/02-03 - blah.avi", Some(3)),
            ("Season 2/02-04 - blah 14 blah.avi", Some(4)),
            ("Season 1/02-05 - blah-02 a.avi", Some(5)),
            ("Season 2/02-04.avi", Some(4)),
            (
                "Season 2 /[HorribleSubs] Hunter X Hunter - 136[720p].mkv",
                None,
            ),
            ("Season 1/series-s09e14-1080p.mkv", None),
            ("Season 1/series-s09e14-720p.mkv", None),
            ("Season 1/series-s09e14-720i.mkv", None),
            ("Season 1/MOONLIGHTING_s01e01-e04.mkv", Some(4)),
            ("Season 1/Show S01E01E02.mkv", Some(2)),
            ("Season 1/Show S01E01-02.mkv", Some(2)),
            ("Season 1/Show S01E01-E02 - Pilot.mkv", Some(2)),
        ] {
            let (_, _, end) = numbers(&format!("Show/{path}"));
            assert_eq!(end, expected, "{path}");
        }
    }

    /// Jellyfin: SimpleEpisodeTests (series name from the file when no series folder).
    #[test]
    fn simple_episodes_as_jellyfin_reads_them() {
        for (path, series, season, number) in [
            ("anything_s01e02.mp4", "anything", 1, 2),
            ("anything_s1e2.mp4", "anything", 1, 2),
            ("anything_s01.e02.mp4", "anything", 1, 2),
            ("anything_102.mp4", "anything", 1, 2),
            ("anything_1x02.mp4", "anything", 1, 2),
            ("The Walking Dead 4x01.mp4", "The Walking Dead", 4, 1),
            ("the_simpsons-s02e01_18536.mp4", "the simpsons", 2, 1),
            ("LA X, Pt. 1_s06e32.mp4", "LA X, Pt. 1", 6, 32),
            (
                "Love.Death.and.Robots.S01.1080p.NF.WEB-DL.DDP5.1.x264-NTG/Love.Death.and.Robots.S01E01.Sonnies.Edge.1080p.NF.WEB-DL.DDP5.1.x264-NTG.mkv",
                "Love Death and Robots",
                1,
                1,
            ),
            (
                "[Baz-Bar]Foo - [1080p][Multiple Subtitle]/[Baz-Bar] Foo - 05 [1080p][Multiple Subtitle].mkv",
                "Foo",
                1,
                5,
            ),
            (
                "[YuiSubs] Tensura Nikki - Tensei Shitara Slime Datta Ken/[YuiSubs] Tensura Nikki - Tensei Shitara Slime Datta Ken - 12 (NVENC H.265 1080p).mkv",
                "Tensura Nikki - Tensei Shitara Slime Datta Ken",
                1,
                12,
            ),
            ("Series/4x12 - The Woman.mp4", "Series", 4, 12),
        ] {
            let e = episode(path);
            assert_eq!(
                (e.series.name.to_lowercase(), e.season, e.episode),
                (series.to_lowercase(), season, Some(number)),
                "{path}"
            );
        }
    }

    /// Jellyfin: DailyEpisodeTests.
    #[test]
    fn daily_shows_are_placed_by_air_date() {
        for (path, series, (y, m, d)) in [
            ("anything_1996.11.14.mp4", "anything", (1996, 11, 14)),
            ("anything_1996-11-14.mp4", "anything", (1996, 11, 14)),
            (
                "james.corden.2017.04.20.anne.hathaway.720p.hdtv.x264-crooks.mkv",
                "james corden",
                (2017, 4, 20),
            ),
            (
                "ABC News 2018_03_24_19_00_00.mkv",
                "ABC News",
                (2018, 3, 24),
            ),
            (
                "Jeopardy 2023 07 14 HDTV x264 AC3.mkv",
                "Jeopardy",
                (2023, 7, 14),
            ),
            ("Show/Show 2024-05-01.mkv", "Show", (2024, 5, 1)),
            ("Show/Show.2024.05.01.Guest.Name.mkv", "Show", (2024, 5, 1)),
            ("Show/anything_14.11.1996.mp4", "Show", (1996, 11, 14)),
        ] {
            let e = episode(path);
            assert_eq!(
                e.series.name.to_lowercase(),
                series.to_lowercase(),
                "{path}"
            );
            assert_eq!(e.episode, None, "{path}");
            assert_eq!(
                e.air_date,
                Some(AirDate {
                    year: y,
                    month: m,
                    day: d
                }),
                "{path}"
            );
        }
        assert_eq!(
            episode("Show/Show.2024.05.01.Guest.Name.mkv")
                .title
                .as_deref(),
            Some("Guest Name")
        );
    }

    /// Jellyfin: AbsoluteEpisodeNumberTests, and fansub releases.
    #[test]
    fn absolute_numbers_are_episodes_of_season_one() {
        for (path, number) in [
            ("The Simpsons/12.avi", 12),
            ("The Simpsons/The Simpsons 12.avi", 12),
            ("The Simpsons/The Simpsons 82.avi", 82),
            ("The Simpsons/The Simpsons 112.avi", 112),
            ("The Simpsons/Foo_ep_02.avi", 2),
            ("The Simpsons/The Simpsons 889.avi", 889),
            ("The Simpsons/The Simpsons 101.avi", 101),
            ("One Piece/[Group] One Piece - 1071 [1080p].mkv", 1071),
            (
                "Frieren/[SubsPlease] Sousou no Frieren - 24v2 (1080p) [ABCD1234].mkv",
                24,
            ),
            (
                "Frieren/[SubsPlease] Sousou no Frieren - 12 [1080p].mkv",
                12,
            ),
        ] {
            assert_eq!(numbers(path), (1, Some(number), None), "{path}");
        }
    }

    #[test]
    fn the_one_hundred_and_one_form_has_jellyfins_guards() {
        assert_eq!(numbers("Show/show.name.101.hdtv.mkv"), (1, Some(1), None));
        assert_eq!(
            numbers("Show/show.name.1012.hdtv.mkv"),
            (10, Some(12), None)
        );
        // A resolution, a codec or a year is not an episode.
        assert_eq!(numbers("Show/Show Special (1920x1080).mkv").1, None);
        assert_eq!(numbers("Show/show.name.x.265.mkv").1, None);
        assert_eq!(numbers("Show/show.name.2019.mkv").1, None);
    }

    #[test]
    fn a_dash_number_inside_a_season_folder_takes_the_folder_season() {
        let e = episode("Doctor Who/Series 2/Doctor Who - 01 - New Earth.mkv");
        assert_eq!((e.season, e.episode), (2, Some(1)));
        assert_eq!(e.title.as_deref(), Some("New Earth"));
    }

    #[test]
    fn specials_are_season_zero_with_or_without_a_number() {
        assert_eq!(numbers("Show/Specials/Show S00E01.mkv"), (0, Some(1), None));
        assert_eq!(
            numbers("Show/Season 00/Show S00E02.mkv"),
            (0, Some(2), None)
        );
        assert_eq!(numbers("Show/Specials/Episode 3.mkv"), (0, Some(3), None));
        let e = episode("Show/Specials/Christmas Special.mkv");
        assert_eq!((e.season, e.episode), (0, None));
        assert_eq!(e.title.as_deref(), Some("Christmas Special"));
    }

    #[test]
    fn season_and_episode_words_are_understood() {
        assert_eq!(
            numbers("Show/Show Season 3 Episode 9 - Title.avi"),
            (3, Some(9), None)
        );
        assert_eq!(numbers("Show/s3 e9 - Title.avi"), (3, Some(9), None));
        assert_eq!(numbers("Show/Show.Pt.2.mkv"), (1, Some(2), None));
        assert_eq!(numbers("Show/Show.Part.IV.mkv"), (1, Some(4), None));
    }

    #[test]
    fn a_file_without_any_episode_number_at_the_root_cannot_be_placed() {
        assert_eq!(parse_episode(Path::new("Some Random Video.mkv")), None);
        // In a series folder it is an unnumbered episode, as Jellyfin lists it.
        assert_eq!(
            numbers("Show/Season 1/Behind the curtain.mkv"),
            (1, None, None)
        );
    }

    #[test]
    fn a_word_that_merely_contains_s_and_digits_is_not_a_marker() {
        assert_eq!(sxxexx("Pass1e2"), None);
        assert_eq!(nxnn("Film 1920x1080"), None);
    }

    #[test]
    fn season_folders_are_recognised_in_common_spellings() {
        assert_eq!(season_folder_number("Season 1"), Some(1));
        assert_eq!(season_folder_number("season 01"), Some(1));
        assert_eq!(season_folder_number("S03"), Some(3));
        assert_eq!(season_folder_number("Specials"), Some(0));
        assert_eq!(season_folder_number("Season 00"), Some(0));
        assert_eq!(season_folder_number("Series 2"), Some(2));
        assert_eq!(season_folder_number("Staffel 2"), Some(2));
        assert_eq!(season_folder_number("Show"), None);
        assert_eq!(season_folder_number("Seasonal"), None);
    }

    /// Jellyfin: ExtraTests (suffixes, whole names, folders).
    #[test]
    fn extras_are_recognised_by_suffix_name_and_folder() {
        for (stem, expected) in [
            ("Film (2001)-trailer", Some(ExtraType::Trailer)),
            ("Film (2001).trailer", Some(ExtraType::Trailer)),
            ("Film (2001)_trailer", Some(ExtraType::Trailer)),
            ("Film (2001) - Trailer", Some(ExtraType::Trailer)),
            ("trailer", Some(ExtraType::Trailer)),
            ("Film (2001)-sample", Some(ExtraType::Sample)),
            (
                "show.s01e03.720p.hdtv.x264-grp.sample",
                Some(ExtraType::Sample),
            ),
            ("sample", Some(ExtraType::Sample)),
            ("Film (2001)-scene", Some(ExtraType::Scene)),
            ("Film (2001)-clip", Some(ExtraType::Clip)),
            ("Film (2001)-interview", Some(ExtraType::Interview)),
            (
                "Film (2001)-behindthescenes",
                Some(ExtraType::BehindTheScenes),
            ),
            ("Film (2001)-deleted", Some(ExtraType::DeletedScene)),
            ("Film (2001)-deletedscene", Some(ExtraType::DeletedScene)),
            ("Film (2001)-featurette", Some(ExtraType::Featurette)),
            ("Film (2001)-short", Some(ExtraType::Short)),
            ("Film (2001)-other", Some(ExtraType::Unknown)),
            ("Film (2001)-extra", Some(ExtraType::Unknown)),
            ("Film (2001)", None),
            ("The Trailer Park (2001)", None),
            ("Deleted", None),
            ("Short Circuit (1986)", None),
            ("A Quiet Scene", None),
        ] {
            assert_eq!(extra_name_type(stem), expected, "{stem}");
        }
        for (folder, expected) in [
            ("Trailers", Some(ExtraType::Trailer)),
            ("trailers", Some(ExtraType::Trailer)),
            ("Extras", Some(ExtraType::Unknown)),
            ("Featurettes", Some(ExtraType::Featurette)),
            ("Behind The Scenes", Some(ExtraType::BehindTheScenes)),
            ("Deleted Scenes", Some(ExtraType::DeletedScene)),
            ("Interviews", Some(ExtraType::Interview)),
            ("Scenes", Some(ExtraType::Scene)),
            ("Shorts", Some(ExtraType::Short)),
            ("Other", Some(ExtraType::Unknown)),
            ("Sample", Some(ExtraType::Sample)),
            ("Samples", Some(ExtraType::Sample)),
            ("Season 1", None),
            ("Film (2001)", None),
        ] {
            assert_eq!(extra_folder_type(folder), expected, "{folder}");
        }
        assert_eq!(extra_title("Film (2001)-trailer"), "Film (2001)");
        assert_eq!(extra_title("Film (2001) - Trailer"), "Film (2001)");
        assert_eq!(extra_title("Making of"), "Making of");
    }

    /// Jellyfin: StackTests (the marker of one file; grouping is `scan::place`).
    #[test]
    fn stacking_markers_as_jellyfin_reads_them() {
        for (stem, base, number) in [
            ("Bad Boys (2006) part1", "Bad Boys (2006)", 1),
            ("Bad Boys (2006) part4", "Bad Boys (2006)", 4),
            ("300 2006 part2", "300 2006", 2),
            ("Film (2001) cd1", "Film (2001)", 1),
            ("Film (2001)-cd2", "Film (2001)", 2),
            ("Film.2001.DVD1", "Film.2001", 1),
            ("Film (2001) disc 2", "Film (2001)", 2),
            ("Film (2001) pt3", "Film (2001)", 3),
            ("Film (2001) parta", "Film (2001)", 1),
            (
                "Neverland (2011)[720p][PG][Voted 6.5][Family-Fantasy]part1",
                "Neverland (2011)[720p][PG][Voted 6.5][Family-Fantasy]",
                1,
            ),
            (
                "The Sound of Music (1965) (Disc 01)",
                "The Sound of Music (1965)",
                1,
            ),
        ] {
            let part = stack_part(stem).unwrap_or_else(|| panic!("{stem} stacks"));
            assert_eq!((part.base.as_str(), part.number), (base, number), "{stem}");
        }
        for stem in [
            "Bad Boys (2006)",
            "Bad Boys (2006) 1",
            "Harry Potter and the Deathly Hallows 2",
            "Star Trek 2- The wrath of khan",
            "Film (2001) parte",
            "part1",
            "Depart",
        ] {
            assert_eq!(stack_part(stem), None, "{stem}");
        }
    }

    #[test]
    fn nas_system_folders_and_partial_downloads_are_ignored() {
        for folder in [
            "@eaDir",
            "#recycle",
            ".@__thumb",
            "$RECYCLE.BIN",
            "lost+found",
            "System Volume Information",
            ".Trash-1000",
            "#snapshot",
        ] {
            assert!(is_ignored_folder(folder), "{folder}");
        }
        assert!(!is_ignored_folder("Season 1"));
        for file in [
            ".hidden.mkv",
            "._Film.mkv",
            "Film.mkv.part",
            "Film.mkv.partial",
            "Film.mkv.!qB",
            "Film.mkv.crdownload",
        ] {
            assert!(is_ignored_file(file), "{file}");
        }
        assert!(!is_ignored_file("Film (2001).mkv"));
    }

    #[test]
    fn resolutions_order_versions() {
        assert_eq!(resolution_of("Film (2021) - 1080p"), Some(1080));
        assert_eq!(resolution_of("Film (2021) - 2160p"), Some(2160));
        assert_eq!(resolution_of("Film (2021) - 4K"), Some(2160));
        assert_eq!(resolution_of("Film (2021) - Director's Cut"), None);
    }

    #[test]
    fn unusual_names_never_panic_and_keep_their_letters() {
        assert_eq!(movie("Amélie (2001).mkv"), titled("Amélie", Some(2001)));
        let e = episode("日本のショー/Season 1/日本のショー S01E02 – 終わり.mkv");
        assert_eq!(e.series.name, "日本のショー");
        assert_eq!(e.title.as_deref(), Some("終わり"));
        for name in [
            "",
            ".mkv",
            "(.mkv",
            "S.mkv",
            "S01E.mkv",
            "x (20).mkv",
            "ß/ü/é S1E1.mkv",
            "Ä 1x",
            "((((2000).mkv",
            "[ ].mkv",
            "[[[[",
            "-.mkv",
            "E",
            "Episode .mkv",
            "Season 1/E.mkv",
            " - 1.mkv",
            "[a] - 1v",
            "Show/part.mkv",
            "Show/pt.IIII.mkv",
        ] {
            let _ = parse_movie(Path::new(name));
            let _ = parse_episode(Path::new(name));
            let _ = stack_part(name);
            let _ = extra_name_type(name);
        }
    }

    #[test]
    fn sort_names_drop_a_leading_article() {
        assert_eq!(sort_name("The Matrix"), "matrix");
        assert_eq!(sort_name("A Bug's Life"), "bug's life");
        assert_eq!(sort_name("An Education"), "education");
        assert_eq!(sort_name("Theodore"), "theodore");
        assert_eq!(sort_name("The"), "the");
    }

    #[test]
    fn video_files_are_recognised_by_extension_in_any_case() {
        assert!(is_video(Path::new("a/b.MKV")));
        assert!(is_video(Path::new("b.mp4")));
        assert!(is_video(Path::new("Film (1999).iso")));
        assert!(!is_video(Path::new("poster.jpg")));
        assert!(!is_video(Path::new("notes")));
        assert!(!is_video(Path::new("subs.srt")));
    }
}

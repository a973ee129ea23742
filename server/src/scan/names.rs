//! What a file's name and folders say about it: a film's title and year, or an episode's series,
//! season and number. Pure functions over paths relative to a library folder; no I/O.
//!
//! The rules follow what people actually name files, as Jellyfin's own resolvers accept them:
//! `Title (Year).mkv`, `Title.Year.1080p.BluRay.mkv`, a film in a folder of its own
//! (`Title (Year)/Title (Year).mkv` or `Title (Year)/movie.mkv`), and episodes as
//! `Show/Season 01/Show S01E02.mkv`, `Show - 1x02.mkv`, `show.s01e02.mkv`, `Specials` (season 0)
//! and multi-episode files (`S01E01-E02`, of which the first number is kept).

use std::path::{Component, Path};

/// File extensions (lower case) the scanner treats as video.
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mkv", "mp4", "m4v", "avi", "mov", "webm", "ts", "m2ts", "mts", "wmv", "mpg", "mpeg", "flv",
    "ogv", "3gp",
];

/// Whether the path names a video file the scanner picks up, judged by its extension.
pub fn is_video(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// A film as its name describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovieName {
    /// Title as shown to people.
    pub title: String,
    /// Year of release, when the name carries one.
    pub year: Option<i32>,
}

/// An episode as its path describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpisodeName {
    /// The series, from the folder under the library root (or the file name's prefix).
    pub series: String,
    /// Season number; 0 for specials.
    pub season: u32,
    /// Episode number within the season (the first one of a multi-episode file).
    pub episode: u32,
    /// The episode's own title, when the file name has one after the number.
    pub title: Option<String>,
}

/// Parses a film from its path relative to the library folder.
///
/// A year in the file name wins; otherwise a year in the film's own folder (a parent that is
/// not the library root) is used together with that folder's title.
pub fn parse_movie(relative: &Path) -> MovieName {
    let stem = relative
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let from_file = parse_title_year(stem);
    if from_file.year.is_some() {
        return from_file;
    }
    let parent = relative
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|s| s.to_str());
    if let Some(folder) = parent {
        let from_folder = parse_title_year(folder);
        if from_folder.year.is_some() && !from_folder.title.is_empty() {
            return from_folder;
        }
    }
    if from_file.title.is_empty() {
        return MovieName {
            title: stem.to_owned(),
            year: None,
        };
    }
    from_file
}

/// Parses an episode from its path relative to the library folder, or `None` when neither the
/// file name nor its folders say which episode it is.
pub fn parse_episode(relative: &Path) -> Option<EpisodeName> {
    let stem = relative.file_stem()?.to_str()?;
    let folders: Vec<&str> = relative
        .parent()
        .map(|p| {
            p.components()
                .filter_map(|c| match c {
                    Component::Normal(s) => s.to_str(),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let season_from_folder = folders.iter().rev().find_map(|f| season_folder_number(f));

    let (season, episode, prefix, rest) = if let Some(m) = find_episode_marker(stem) {
        (Some(m.season), m.episode, &stem[..m.start], &stem[m.end..])
    } else {
        // `Show/Season 01/E02 - Title.mkv`, `Episode 2.mkv` or `02 - Title.mkv`: the season
        // must then come from the folder.
        season_from_folder?;
        let (episode, start, end) = find_bare_episode(stem)?;
        (None, episode, &stem[..start], &stem[end..])
    };
    let season = season.or(season_from_folder).unwrap_or(1);

    // The series is the top folder under the library root, unless that folder is itself a
    // season folder (a library of one show), in which case the file name's prefix names it.
    let series = folders
        .first()
        .filter(|f| season_folder_number(f).is_none())
        .map(|f| clean_title(f))
        .filter(|s| !s.is_empty())
        .or_else(|| Some(clean_title(prefix)).filter(|s| !s.is_empty()))?;

    let title = clean_title(strip_leading_separators(rest));
    let title = (!title.is_empty() && !is_junk_only(&title)).then_some(title);
    Some(EpisodeName {
        series,
        season,
        episode,
        title,
    })
}

/// The season number a folder name stands for: `Season 1`, `Season 01`, `S01`, `Series 2`,
/// `Staffel 3`, `Saison 4`, and `Specials` (0).
pub fn season_folder_number(folder: &str) -> Option<u32> {
    let lower = folder.trim().to_ascii_lowercase();
    if lower == "specials" {
        return Some(0);
    }
    for word in ["season", "series", "staffel", "saison", "temporada", "s"] {
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

/// Position and numbers of an `S01E02` or `1x02` marker in a file stem.
#[derive(Debug, PartialEq, Eq)]
struct EpisodeMarker {
    season: u32,
    episode: u32,
    /// Byte offset where the marker starts.
    start: usize,
    /// Byte offset just after the marker (and any `-E03` continuation).
    end: usize,
}

fn find_episode_marker(stem: &str) -> Option<EpisodeMarker> {
    let bytes = stem.as_bytes();
    for start in 0..bytes.len() {
        // A marker starts a word: `ShowS01E02` is not split, `Show.S01E02` is.
        if start > 0 && bytes[start - 1].is_ascii_alphanumeric() {
            continue;
        }
        if let Some(m) = sxxexx_at(bytes, start).or_else(|| nxnn_at(bytes, start)) {
            return Some(m);
        }
    }
    None
}

/// `S01E02`, `s1e2`, `S01.E02`, `S01 E02`, followed optionally by `-E03`, `E03`.
fn sxxexx_at(bytes: &[u8], start: usize) -> Option<EpisodeMarker> {
    let mut i = start;
    if !bytes.get(i)?.eq_ignore_ascii_case(&b's') {
        return None;
    }
    i += 1;
    let (season, next) = digits_at(bytes, i, 1, 4)?;
    i = next;
    if matches!(bytes.get(i), Some(b'.' | b' ' | b'_' | b'-')) {
        i += 1;
    }
    if !bytes.get(i)?.eq_ignore_ascii_case(&b'e') {
        return None;
    }
    let (episode, next) = digits_at(bytes, i + 1, 1, 4)?;
    i = next;
    i = skip_continuation(bytes, i);
    if bytes.get(i).is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    Some(EpisodeMarker {
        season,
        episode,
        start,
        end: i,
    })
}

/// `1x02`, `01x02`, followed optionally by `-x03`/`-03`/`x03`.
fn nxnn_at(bytes: &[u8], start: usize) -> Option<EpisodeMarker> {
    let (season, mut i) = digits_at(bytes, start, 1, 2)?;
    if !bytes.get(i)?.eq_ignore_ascii_case(&b'x') {
        return None;
    }
    let (episode, next) = digits_at(bytes, i + 1, 2, 3)?;
    i = next;
    // `-x03` or `-03` continuations of a multi-episode file.
    if bytes.get(i) == Some(&b'-') {
        let mut j = i + 1;
        if bytes.get(j).is_some_and(|b| b.eq_ignore_ascii_case(&b'x')) {
            j += 1;
        }
        if let Some((_, after)) = digits_at(bytes, j, 2, 3) {
            i = after;
        }
    }
    if bytes.get(i).is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    Some(EpisodeMarker {
        season,
        episode,
        start,
        end: i,
    })
}

/// Skips `-E03`, `E03`, `-03` after an `SxxEyy` marker (a multi-episode file).
fn skip_continuation(bytes: &[u8], mut i: usize) -> usize {
    loop {
        let mut j = i;
        let dash = bytes.get(j) == Some(&b'-');
        if dash {
            j += 1;
        }
        let e = bytes.get(j).is_some_and(|b| b.eq_ignore_ascii_case(&b'e'));
        if e {
            j += 1;
        }
        if !dash && !e {
            return i;
        }
        match digits_at(bytes, j, 1, 4) {
            // `-03` without an E only when a dash introduced it; `-2019` would be a year, so
            // bare continuations are limited to three digits.
            Some((_, after)) if e || after - j <= 3 => i = after,
            _ => return i,
        }
    }
}

/// An episode number without a season: `E02`, `Ep02`, `Episode 2`, or a leading `02`.
/// Returns the number and the byte span it occupies.
fn find_bare_episode(stem: &str) -> Option<(u32, usize, usize)> {
    let bytes = stem.as_bytes();
    let lower = stem.to_ascii_lowercase();
    for word in ["episode", "ep", "e"] {
        let mut from = 0;
        while let Some(pos) = lower[from..].find(word) {
            let start = from + pos;
            from = start + word.len();
            if start > 0 && bytes[start - 1].is_ascii_alphanumeric() {
                continue;
            }
            let mut i = start + word.len();
            while matches!(bytes.get(i), Some(b' ' | b'.' | b'_')) {
                i += 1;
            }
            if let Some((episode, end)) = digits_at(bytes, i, 1, 3)
                && !bytes.get(end).is_some_and(u8::is_ascii_alphanumeric)
            {
                return Some((episode, start, end));
            }
        }
    }
    let (episode, end) = digits_at(bytes, 0, 1, 3)?;
    if bytes.get(end).is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    Some((episode, 0, end))
}

/// Reads between `min` and `max` ASCII digits at `i`; fails when there are more.
fn digits_at(bytes: &[u8], i: usize, min: usize, max: usize) -> Option<(u32, usize)> {
    let len = bytes
        .get(i..)?
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if len < min || len > max {
        return None;
    }
    let text = std::str::from_utf8(&bytes[i..i + len]).ok()?;
    Some((text.parse().ok()?, i + len))
}

/// Splits `Title (Year)`, `Title [Year]` and `Title.Year.1080p...` into title and year.
fn parse_title_year(name: &str) -> MovieName {
    // `Title (2019)` / `Title [2019]`: the last bracketed year wins.
    for (open, close) in [('(', ')'), ('[', ']')] {
        if let Some(pos) = name.rfind(open) {
            let inner = &name[pos + open.len_utf8()..];
            if let Some(end) = inner.find(close)
                && let Some(year) = as_year(inner[..end].trim())
            {
                let title = clean_title(&name[..pos]);
                if !title.is_empty() {
                    return MovieName {
                        title,
                        year: Some(year),
                    };
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
        return MovieName {
            title: clean_title(&words[..at].join(" ")),
            year: as_year(words[at]),
        };
    }
    // No year: drop release tags from the first one on.
    let end = words
        .iter()
        .position(|w| is_release_tag(w))
        .unwrap_or(words.len());
    MovieName {
        title: clean_title(&words[..end].join(" ")),
        year: None,
    }
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
        "480p", "576p", "720p", "1080p", "1080i", "2160p", "4k", "uhd", "hdr", "hdr10", "dv",
        "bluray", "blu-ray", "brrip", "bdrip", "webrip", "web-dl", "webdl", "web", "hdtv",
        "dvdrip", "dvd", "remux", "x264", "x265", "h264", "h265", "hevc", "avc", "xvid", "divx",
        "aac", "ac3", "dts", "truehd", "atmos", "10bit", "proper", "repack", "extended", "unrated",
        "multi",
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

/// Turns a name fragment into a display title: separators to spaces, release tags dropped,
/// surrounding punctuation trimmed.
fn clean_title(text: &str) -> String {
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
    use super::*;

    fn movie(path: &str) -> MovieName {
        parse_movie(Path::new(path))
    }

    fn episode(path: &str) -> Option<EpisodeName> {
        parse_episode(Path::new(path))
    }

    fn ep(series: &str, season: u32, episode: u32, title: Option<&str>) -> Option<EpisodeName> {
        Some(EpisodeName {
            series: series.to_owned(),
            season,
            episode,
            title: title.map(str::to_owned),
        })
    }

    fn titled(title: &str, year: Option<i32>) -> MovieName {
        MovieName {
            title: title.to_owned(),
            year,
        }
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
    fn a_canonical_episode_path_gives_series_season_and_number() {
        assert_eq!(
            episode("Show/Season 01/Show S01E02.mkv"),
            ep("Show", 1, 2, None)
        );
    }

    #[test]
    fn an_episode_title_after_the_marker_is_kept() {
        assert_eq!(
            episode("Star Trek/Season 2/Star Trek - S02E05 - The Trouble.mkv"),
            ep("Star Trek", 2, 5, Some("The Trouble"))
        );
    }

    #[test]
    fn lower_case_and_dotted_markers_are_understood() {
        assert_eq!(
            episode("Mr Robot/Season 1/mr.robot.s01e03.720p.mkv"),
            ep("Mr Robot", 1, 3, None)
        );
        assert_eq!(
            episode("Show/Season 1/Show.S01.E04.mkv"),
            ep("Show", 1, 4, None)
        );
    }

    #[test]
    fn the_one_x_two_form_is_understood() {
        assert_eq!(episode("Show/Show - 1x02.mkv"), ep("Show", 1, 2, None));
        assert_eq!(
            episode("Show/Season 3/Show 3x10 Finale.mp4"),
            ep("Show", 3, 10, Some("Finale"))
        );
    }

    #[test]
    fn a_multi_episode_file_takes_the_first_number() {
        assert_eq!(
            episode("Show/Season 01/Show S01E01-E02.mkv"),
            ep("Show", 1, 1, None)
        );
        assert_eq!(
            episode("Show/Season 01/Show S01E01E02E03 - Pilot.mkv"),
            ep("Show", 1, 1, Some("Pilot"))
        );
        assert_eq!(episode("Show/Show 1x01-x02.mkv"), ep("Show", 1, 1, None));
    }

    #[test]
    fn specials_are_season_zero() {
        assert_eq!(
            episode("Show/Specials/Show S00E01.mkv"),
            ep("Show", 0, 1, None)
        );
        assert_eq!(
            episode("Show/Specials/Episode 3.mkv"),
            ep("Show", 0, 3, None)
        );
    }

    #[test]
    fn a_season_folder_supplies_the_season_when_the_file_has_only_an_episode_number() {
        assert_eq!(
            episode("Show/Season 02/E07 - Seven.mkv"),
            ep("Show", 2, 7, Some("Seven"))
        );
        assert_eq!(
            episode("Show/Season 02/07 - Seven.mkv"),
            ep("Show", 2, 7, Some("Seven"))
        );
    }

    #[test]
    fn a_file_at_the_library_root_is_named_after_its_prefix() {
        assert_eq!(
            episode("Breaking.Bad.S05E14.1080p.mkv"),
            ep("Breaking Bad", 5, 14, None)
        );
    }

    #[test]
    fn a_file_without_any_episode_number_is_not_an_episode() {
        assert_eq!(episode("Show/Extras/Behind the scenes.mkv"), None);
        assert_eq!(episode("Show/Season 1/Behind the scenes.mkv"), None);
    }

    #[test]
    fn a_word_that_merely_contains_s_and_digits_is_not_a_marker() {
        assert_eq!(find_episode_marker("Pass1e2"), None);
        assert_eq!(find_episode_marker("Film 1920x1080"), None);
    }

    #[test]
    fn season_folders_are_recognised_in_common_spellings() {
        assert_eq!(season_folder_number("Season 1"), Some(1));
        assert_eq!(season_folder_number("season 01"), Some(1));
        assert_eq!(season_folder_number("S03"), Some(3));
        assert_eq!(season_folder_number("Specials"), Some(0));
        assert_eq!(season_folder_number("Staffel 2"), Some(2));
        assert_eq!(season_folder_number("Show"), None);
        assert_eq!(season_folder_number("Seasonal"), None);
    }

    #[test]
    fn unusual_names_never_panic_and_keep_their_letters() {
        assert_eq!(movie("Amélie (2001).mkv"), titled("Amélie", Some(2001)));
        assert_eq!(
            episode("日本のショー/Season 1/日本のショー S01E02 – 終わり.mkv"),
            ep("日本のショー", 1, 2, Some("終わり"))
        );
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
            "-.mkv",
            "E",
            "Episode .mkv",
            "Season 1/E.mkv",
        ] {
            let _ = parse_movie(Path::new(name));
            let _ = parse_episode(Path::new(name));
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
        assert!(!is_video(Path::new("poster.jpg")));
        assert!(!is_video(Path::new("notes")));
        assert!(!is_video(Path::new("subs.srt")));
    }
}

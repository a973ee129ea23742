//! Local metadata from Kodi/Jellyfin `.nfo` files: `movie.nfo` or `<video name>.nfo` for films,
//! `tvshow.nfo` for series, `<episode name>.nfo` (episodedetails) for episodes.
//!
//! Parsing is pure ([`parse`]) over text already read; [`read`] reads one file with a size
//! bound. Broken XML never fails a scan: what can be read is kept and the error is returned
//! beside it for the log. Nothing here touches the store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Files larger than this are refused unread: a real `.nfo` is a few KiB, and the whole file
/// is held in memory while it is parsed.
pub const MAX_NFO_BYTES: u64 = 1024 * 1024;

/// Kind of a person in the credits, named as Jellyfin's `PersonKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonKind {
    /// `<actor>`.
    Actor,
    /// `<director>`.
    Director,
    /// `<credits>` or `<writer>`.
    Writer,
}

impl PersonKind {
    /// Jellyfin's name.
    pub fn as_str(self) -> &'static str {
        match self {
            PersonKind::Actor => "Actor",
            PersonKind::Director => "Director",
            PersonKind::Writer => "Writer",
        }
    }

    /// From Jellyfin's name.
    pub fn parse(text: &str) -> Option<PersonKind> {
        [PersonKind::Actor, PersonKind::Director, PersonKind::Writer]
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(text))
    }
}

/// A credited person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// As written.
    pub name: String,
    /// An actor's character.
    pub role: Option<String>,
    /// Actor, director or writer.
    pub kind: PersonKind,
    /// An actor's `<thumb>` as written (a URL or a path); see [`resolve_person_images`].
    pub thumb: Option<String>,
    /// The local image file `thumb` names, once resolved inside the library.
    pub image: Option<PersonImage>,
}

/// A person's local image: what Jellyfin makes of an `<actor><thumb>` naming a file
/// (`PersonInfo.ImageUrl`, set as the person's Primary image).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonImage {
    /// The file, canonical, inside the library folder.
    pub path: PathBuf,
    /// Its cache tag (changes with the file).
    pub tag: String,
}

/// What an `.nfo` says about an item. Every field is optional: an `.nfo` may hold only ids.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LocalMetadata {
    /// `<title>`.
    pub title: Option<String>,
    /// `<originaltitle>`.
    pub original_title: Option<String>,
    /// `<sorttitle>`.
    pub sort_title: Option<String>,
    /// `<year>` (or the year of `<premiered>`).
    pub year: Option<i64>,
    /// `<premiered>` or `<aired>`, as unix ms at midnight UTC.
    pub premiered: Option<i64>,
    /// `<plot>` (or `<outline>`).
    pub plot: Option<String>,
    /// `<tagline>`.
    pub tagline: Option<String>,
    /// `<genre>`, each once, in order.
    pub genres: Vec<String>,
    /// `<tag>`, each once, in order (taken whole, as Jellyfin does: not split on ` / `).
    pub tags: Vec<String>,
    /// `<studio>`, each once, in order.
    pub studios: Vec<String>,
    /// `<rating>` or the default `<ratings><rating>`'s `<value>` (0-10).
    pub community_rating: Option<f64>,
    /// `<mpaa>` (or `<certification>`): Jellyfin's `OfficialRating`.
    pub official_rating: Option<String>,
    /// `<runtime>` in minutes, as ticks.
    pub run_time_ticks: Option<i64>,
    /// `<uniqueid type=..>`, `<id>`, `<imdbid>`, `<tmdbid>`, `<tvdbid>`, keyed as Jellyfin
    /// keys `ProviderIds` (`Imdb`, `Tmdb`, `Tvdb`).
    pub provider_ids: BTreeMap<String, String>,
    /// Actors (in `<order>`, then as written), directors and writers.
    pub people: Vec<Person>,
    /// `<set>` (`<set><name>..</name></set>` or plain text): the film's collection.
    pub collection: Option<String>,
}

/// Why an `.nfo` could not be read in full.
#[derive(Debug, thiserror::Error)]
pub enum NfoError {
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    /// The file is larger than [`MAX_NFO_BYTES`].
    #[error("the file is {0} bytes, more than the 1 MiB an .nfo may have; ignored")]
    TooLarge(u64),
    /// The XML is broken.
    #[error("broken XML: {0}")]
    Xml(String),
}

/// Where an `.nfo` for a video may be: `<name>.nfo`, and for a film in a folder of its own,
/// `movie.nfo`.
pub fn video_nfo_candidates(video: &Path, is_movie: bool, library_root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Some(dir) = video.parent() else {
        return out;
    };
    if let Some(stem) = video.file_stem() {
        let mut name = stem.to_os_string();
        name.push(".nfo");
        out.push(dir.join(name));
    }
    if is_movie && dir != library_root {
        out.push(dir.join("movie.nfo"));
    }
    out
}

/// Reads and parses one `.nfo`. A file over the size bound is refused unread; broken XML
/// yields the error (the caller logs it and keeps the item's other data).
pub async fn read(path: &Path) -> Result<LocalMetadata, NfoError> {
    let size = tokio::fs::metadata(path).await?.len();
    if size > MAX_NFO_BYTES {
        return Err(NfoError::TooLarge(size));
    }
    let bytes = tokio::fs::read(path).await?;
    // Read again after the stat: the file may have grown in between.
    if bytes.len() as u64 > MAX_NFO_BYTES {
        return Err(NfoError::TooLarge(bytes.len() as u64));
    }
    parse(&String::from_utf8_lossy(&bytes))
}

/// Largest actor image accepted, in bytes: a portrait is a few hundred KiB.
const MAX_PERSON_IMAGE_BYTES: u64 = 20 * 1024 * 1024;

/// Resolves the actors' `<thumb>` paths of an `.nfo` at `nfo_path` to local image files, as
/// Jellyfin takes them for the person's Primary image. Only files count: a relative path is
/// read from the `.nfo`'s folder, and the file must resolve (links followed) inside
/// `library_root`, be an image by its extension and be of a sane size; URLs are left alone
/// (Ephyra fetches nothing remote). Anything else leaves the person without an image.
pub async fn resolve_person_images(meta: &mut LocalMetadata, nfo_path: &Path, library_root: &Path) {
    let Some(dir) = nfo_path.parent() else { return };
    let Ok(root) = tokio::fs::canonicalize(library_root).await else {
        return;
    };
    for person in &mut meta.people {
        person.image = None;
        let Some(thumb) = person.thumb.as_deref().map(str::trim) else {
            continue;
        };
        if thumb.is_empty() || thumb.contains("://") {
            continue;
        }
        let candidate = dir.join(thumb);
        let Ok(path) = tokio::fs::canonicalize(&candidate).await else {
            continue;
        };
        let is_image = path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
            ["jpg", "jpeg", "png", "webp"]
                .iter()
                .any(|x| x.eq_ignore_ascii_case(e))
        });
        if !path.starts_with(&root) || !is_image {
            continue;
        }
        let Ok(file) = tokio::fs::metadata(&path).await else {
            continue;
        };
        if !file.is_file() || file.len() > MAX_PERSON_IMAGE_BYTES {
            continue;
        }
        let tag =
            crate::scan::images::image_tag(&path, file.len(), crate::scan::walk::mtime_ms(&file));
        person.image = Some(PersonImage { path, tag });
    }
}

/// Parses an `.nfo`'s text. Kodi writes a URL or free text after the XML sometimes; only the
/// first root element is read.
pub fn parse(text: &str) -> Result<LocalMetadata, NfoError> {
    // Anything after the root element's end (a trailing IMDb URL, as Kodi allows) is cut off,
    // and a leading byte-order mark is skipped.
    let text = text.trim_start_matches('\u{feff}');
    let text = match root_end(text) {
        Some(end) => &text[..end],
        None => text,
    };
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: 100_000,
    };
    let doc = roxmltree::Document::parse_with_options(text, options)
        .map_err(|e| NfoError::Xml(e.to_string()))?;
    Ok(from_root(doc.root_element()))
}

/// The byte offset just past the closing tag of the first root element
/// (`</movie>`, `</tvshow>`, `</episodedetails>`), when the text has one.
fn root_end(text: &str) -> Option<usize> {
    ["</movie>", "</tvshow>", "</episodedetails>"]
        .iter()
        .filter_map(|tag| text.find(tag).map(|at| at + tag.len()))
        .min()
}

fn from_root(root: roxmltree::Node<'_, '_>) -> LocalMetadata {
    let mut meta = LocalMetadata::default();
    let mut actors: Vec<(i64, usize, Person)> = Vec::new();
    for child in root.children().filter(roxmltree::Node::is_element) {
        let name = child.tag_name().name().to_ascii_lowercase();
        let value = text_of(child);
        match name.as_str() {
            "title" => meta.title = meta.title.take().or(value),
            "originaltitle" => meta.original_title = value,
            "sorttitle" => meta.sort_title = value,
            "year" => meta.year = value.and_then(|v| v.parse().ok()).or(meta.year),
            "premiered" | "aired" | "releasedate" => {
                meta.premiered = meta
                    .premiered
                    .or_else(|| value.as_deref().and_then(date_ms));
            }
            "plot" => meta.plot = value.or(meta.plot.take()),
            "outline" => meta.plot = meta.plot.take().or(value),
            "tagline" => meta.tagline = value,
            "genre" => push_split(&mut meta.genres, value),
            "tag" => {
                if let Some(tag) =
                    value.filter(|t| !meta.tags.iter().any(|k| k.eq_ignore_ascii_case(t)))
                {
                    meta.tags.push(tag);
                }
            }
            "studio" => push_split(&mut meta.studios, value),
            "mpaa" => meta.official_rating = value.map(|v| official_rating(&v)),
            "certification" => {
                meta.official_rating = meta
                    .official_rating
                    .take()
                    .or_else(|| value.map(|v| official_rating(&v)));
            }
            "rating" => {
                meta.community_rating = meta
                    .community_rating
                    .or_else(|| value.and_then(|v| rating(&v)));
            }
            "ratings" => {
                if let Some(r) = default_rating(child) {
                    meta.community_rating = Some(r);
                }
            }
            "runtime" => {
                meta.run_time_ticks = value
                    .and_then(|v| v.split_whitespace().next()?.parse::<i64>().ok())
                    .filter(|m| *m > 0 && *m < 100_000)
                    .map(|m| m * 60 * 10_000_000);
            }
            "uniqueid" => {
                if let (Some(kind), Some(id)) = (child.attribute("type"), value) {
                    insert_provider(&mut meta.provider_ids, kind, id);
                }
            }
            "id" => {
                if let Some(id) = value {
                    // The old `<id>` held an IMDb id for films and a TVDB id for series.
                    let kind = if id.starts_with("tt") {
                        "imdb"
                    } else if root.tag_name().name() == "tvshow" {
                        "tvdb"
                    } else {
                        "tmdb"
                    };
                    if !meta.provider_ids.contains_key(provider_key(kind)) {
                        insert_provider(&mut meta.provider_ids, kind, id);
                    }
                }
            }
            "imdbid" | "imdb_id" => {
                if let Some(id) = value {
                    insert_provider(&mut meta.provider_ids, "imdb", id);
                }
            }
            "tmdbid" => {
                if let Some(id) = value {
                    insert_provider(&mut meta.provider_ids, "tmdb", id);
                }
            }
            "tvdbid" => {
                if let Some(id) = value {
                    insert_provider(&mut meta.provider_ids, "tvdb", id);
                }
            }
            "actor" => {
                let field = |n: &str| {
                    child
                        .children()
                        .find(|c| c.tag_name().name().eq_ignore_ascii_case(n))
                        .and_then(text_of)
                };
                if let Some(name) = field("name") {
                    let order = field("order")
                        .and_then(|o| o.parse().ok())
                        .unwrap_or(i64::MAX);
                    let position = actors.len();
                    actors.push((
                        order,
                        position,
                        Person {
                            name,
                            role: field("role"),
                            kind: PersonKind::Actor,
                            thumb: field("thumb"),
                            image: None,
                        },
                    ));
                }
            }
            "director" => push_person(&mut meta.people, value, PersonKind::Director),
            "credits" | "writer" => push_person(&mut meta.people, value, PersonKind::Writer),
            "set" => {
                let named = child
                    .children()
                    .find(|c| c.tag_name().name().eq_ignore_ascii_case("name"))
                    .and_then(text_of);
                meta.collection = named.or(value);
            }
            _ => {}
        }
    }
    if meta.year.is_none() {
        meta.year = meta.premiered.and_then(year_of_ms);
    }
    actors.sort_by_key(|(order, position, _)| (*order, *position));
    let mut people: Vec<Person> = actors.into_iter().map(|(_, _, p)| p).collect();
    people.append(&mut meta.people);
    meta.people = people;
    meta
}

/// An element's own text, trimmed; `None` when empty. Only direct text children count, so a
/// `<set>` with a `<name>` inside has no text of its own.
fn text_of(node: roxmltree::Node<'_, '_>) -> Option<String> {
    let text: String = node
        .children()
        .filter(roxmltree::Node::is_text)
        .filter_map(|t| t.text())
        .collect();
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Adds values once each; Kodi writers sometimes put `Action / Drama` in one element.
fn push_split(list: &mut Vec<String>, value: Option<String>) {
    let Some(value) = value else { return };
    for part in value.split(" / ").map(str::trim).filter(|p| !p.is_empty()) {
        if !list.iter().any(|g| g.eq_ignore_ascii_case(part)) {
            list.push(part.to_owned());
        }
    }
}

fn push_person(people: &mut Vec<Person>, value: Option<String>, kind: PersonKind) {
    let Some(name) = value else { return };
    if !people.iter().any(|p| p.kind == kind && p.name == name) {
        people.push(Person {
            name,
            role: None,
            kind,
            thumb: None,
            image: None,
        });
    }
}

/// Jellyfin's `ProviderIds` key for an `.nfo` id type.
fn provider_key(kind: &str) -> &'static str {
    match kind.to_ascii_lowercase().as_str() {
        "imdb" => "Imdb",
        "tmdb" | "themoviedb" => "Tmdb",
        "tvdb" => "Tvdb",
        "tvmaze" => "TvMaze",
        "anidb" => "AniDB",
        _ => "",
    }
}

fn insert_provider(ids: &mut BTreeMap<String, String>, kind: &str, id: String) {
    let key = provider_key(kind);
    if !key.is_empty() && id.len() <= 64 {
        ids.insert(key.to_owned(), id);
    }
}

/// `Rated PG-13` (Kodi's form) → `PG-13`; `US:PG-13` → `PG-13`.
fn official_rating(text: &str) -> String {
    let text = text.trim();
    let text = text.strip_prefix("Rated ").unwrap_or(text);
    let text = text.rsplit(':').next().unwrap_or(text);
    text.trim().to_owned()
}

/// A 0-10 rating; other values are dropped.
fn rating(text: &str) -> Option<f64> {
    let value: f64 = text.trim().replace(',', ".").parse().ok()?;
    (value.is_finite() && (0.0..=10.0).contains(&value)).then_some(value)
}

/// The `<value>` of the `<rating default="true">` (else the first) in `<ratings>`.
fn default_rating(ratings: roxmltree::Node<'_, '_>) -> Option<f64> {
    let entries: Vec<_> = ratings
        .children()
        .filter(|c| c.tag_name().name().eq_ignore_ascii_case("rating"))
        .collect();
    let chosen = entries
        .iter()
        .find(|r| r.attribute("default") == Some("true"))
        .or(entries.first())?;
    let value = chosen
        .children()
        .find(|c| c.tag_name().name().eq_ignore_ascii_case("value"))
        .and_then(text_of)?;
    let max: f64 = chosen
        .attribute("max")
        .and_then(|m| m.parse().ok())
        .unwrap_or(10.0);
    let value = rating(&value).or_else(|| value.parse::<f64>().ok())?;
    if max > 0.0 && max != 10.0 {
        rating(&(value * 10.0 / max).to_string())
    } else {
        rating(&value.to_string())
    }
}

/// `2010-07-16` → unix ms at midnight UTC.
fn date_ms(text: &str) -> Option<i64> {
    let date = chrono::NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

fn year_of_ms(ms: i64) -> Option<i64> {
    use chrono::Datelike;
    chrono::DateTime::from_timestamp_millis(ms).map(|d| i64::from(d.year()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOVIE: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes" ?>
<movie>
  <title>Inception</title>
  <originaltitle>Inception (orig)</originaltitle>
  <sorttitle>Inception 1</sorttitle>
  <ratings><rating name="imdb" max="10" default="true"><value>8.8</value></rating></ratings>
  <year>2010</year>
  <plot>A thief who steals corporate secrets.</plot>
  <tagline>Your mind is the scene of the crime.</tagline>
  <runtime>148</runtime>
  <mpaa>Rated PG-13</mpaa>
  <uniqueid type="imdb" default="true">tt1375666</uniqueid>
  <uniqueid type="tmdb">27205</uniqueid>
  <genre>Action</genre>
  <genre>Science Fiction / Action</genre>
  <studio>Warner Bros.</studio>
  <premiered>2010-07-16</premiered>
  <director>Christopher Nolan</director>
  <credits>Christopher Nolan</credits>
  <set><name>Nolan Films</name></set>
  <tag>mind-bending</tag>
  <tag>Heist / Dream</tag>
  <tag>MIND-BENDING</tag>
  <tag> </tag>
  <actor><name>Elliot Page</name><role>Ariadne</role><order>2</order></actor>
  <actor><name>Leonardo DiCaprio</name><role>Cobb</role><order>0</order></actor>
</movie>
https://www.imdb.com/title/tt1375666/"#;

    #[test]
    fn a_kodi_movie_nfo_is_read_in_full() {
        let m = parse(MOVIE).unwrap();
        assert_eq!(m.title.as_deref(), Some("Inception"));
        assert_eq!(m.original_title.as_deref(), Some("Inception (orig)"));
        assert_eq!(m.sort_title.as_deref(), Some("Inception 1"));
        assert_eq!(m.year, Some(2010));
        assert_eq!(m.premiered, date_ms("2010-07-16"));
        assert_eq!(
            m.tagline.as_deref(),
            Some("Your mind is the scene of the crime.")
        );
        assert_eq!(m.genres, vec!["Action", "Science Fiction"]);
        assert_eq!(m.studios, vec!["Warner Bros."]);
        // Tags are taken whole, each once whatever its case; blank ones are dropped.
        assert_eq!(m.tags, vec!["mind-bending", "Heist / Dream"]);
        assert_eq!(m.community_rating, Some(8.8));
        assert_eq!(m.official_rating.as_deref(), Some("PG-13"));
        assert_eq!(m.run_time_ticks, Some(148 * 60 * 10_000_000));
        assert_eq!(m.provider_ids["Imdb"], "tt1375666");
        assert_eq!(m.provider_ids["Tmdb"], "27205");
        assert_eq!(m.collection.as_deref(), Some("Nolan Films"));
        let names: Vec<(&str, PersonKind)> =
            m.people.iter().map(|p| (p.name.as_str(), p.kind)).collect();
        assert_eq!(
            names,
            vec![
                ("Leonardo DiCaprio", PersonKind::Actor),
                ("Elliot Page", PersonKind::Actor),
                ("Christopher Nolan", PersonKind::Director),
                ("Christopher Nolan", PersonKind::Writer),
            ]
        );
        assert_eq!(m.people[0].role.as_deref(), Some("Cobb"));
    }

    #[test]
    fn old_style_ids_and_plain_ratings_are_read() {
        let m = parse(
            "<tvshow><title>Show</title><id>81189</id><imdbid>tt0903747</imdbid>\
             <rating>9,5</rating><premiered>2008-01-20</premiered></tvshow>",
        )
        .unwrap();
        assert_eq!(m.provider_ids["Tvdb"], "81189");
        assert_eq!(m.provider_ids["Imdb"], "tt0903747");
        assert_eq!(m.community_rating, Some(9.5));
        assert_eq!(m.year, Some(2008));
    }

    #[test]
    fn broken_xml_is_an_error_not_a_panic() {
        assert!(matches!(
            parse("<movie><title>Half</title><plot>open"),
            Err(NfoError::Xml(_))
        ));
        assert!(matches!(parse(""), Err(NfoError::Xml(_))));
        assert!(matches!(
            parse("<!DOCTYPE x [<!ENTITY a \"aaaa\">]><movie>&a;</movie>"),
            Err(NfoError::Xml(_))
        ));
    }

    #[test]
    fn candidates_follow_jellyfin_names() {
        let root = Path::new("/lib");
        assert_eq!(
            video_nfo_candidates(Path::new("/lib/Film (2010)/Film (2010).mkv"), true, root),
            vec![
                PathBuf::from("/lib/Film (2010)/Film (2010).nfo"),
                PathBuf::from("/lib/Film (2010)/movie.nfo"),
            ]
        );
        assert_eq!(
            video_nfo_candidates(Path::new("/lib/Loose.mkv"), true, root),
            vec![PathBuf::from("/lib/Loose.nfo")]
        );
    }
}
